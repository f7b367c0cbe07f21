//! The one error type of the CDR codec. Every variant says where the problem is: the field path
//! (`points[2].positions`, built up as the error travels out of nested messages) and the byte
//! offset counted from the start of the input, encapsulation header included, so it can be found
//! in a hex dump of the payload.

use std::str::Utf8Error;

/// A CDR payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CdrError {
    /// The encapsulation header names a representation this codec does not read (only plain CDR,
    /// `00 01` little-endian and `00 00` big-endian, is supported; XCDR2 and parameter lists are
    /// not).
    #[error(
        "field `{field}` at byte {offset}: unsupported CDR encapsulation {found:02x?}, \
         expected [00, 01] (little-endian CDR) or [00, 00] (big-endian CDR)"
    )]
    UnsupportedEncapsulation {
        /// Always `encapsulation`.
        field: String,
        /// Always 0.
        offset: usize,
        /// The representation identifier found.
        found: [u8; 2],
    },
    /// The input ended inside a field (or inside the padding before it).
    #[error("field `{field}` at byte {offset}: needs {needed} bytes but only {remaining} remain")]
    UnexpectedEnd {
        /// Path of the field being read.
        field: String,
        /// Where the field (or its alignment padding) starts.
        offset: usize,
        /// Bytes the field needs, padding included.
        needed: usize,
        /// Bytes left in the input at `offset`.
        remaining: usize,
    },
    /// A string length or sequence count promises more data than the input holds.
    #[error(
        "field `{field}` at byte {offset}: length {length} needs at least {needed} bytes \
         but only {remaining} remain"
    )]
    LengthExceedsInput {
        /// Path of the string or sequence.
        field: String,
        /// Where its `uint32` length prefix starts.
        offset: usize,
        /// The length or count read.
        length: u32,
        /// The smallest number of bytes that many elements can occupy.
        needed: u64,
        /// Bytes left after the length prefix.
        remaining: usize,
    },
    /// A string's last byte (the one its length counts as the terminator) is not NUL.
    #[error("field `{field}` at byte {offset}: string is not NUL-terminated")]
    MissingNul {
        /// Path of the string.
        field: String,
        /// Where the terminator should be.
        offset: usize,
    },
    /// A string is not valid UTF-8.
    #[error("field `{field}` at byte {offset}: string is not valid UTF-8")]
    InvalidUtf8 {
        /// Path of the string.
        field: String,
        /// The first byte that is not valid UTF-8.
        offset: usize,
        /// The UTF-8 validation error.
        #[source]
        source: Utf8Error,
    },
    /// A boolean byte is neither 0 nor 1.
    #[error("field `{field}` at byte {offset}: boolean byte is {value:#04x}, expected 0 or 1")]
    InvalidBool {
        /// Path of the boolean.
        field: String,
        /// Where the byte is.
        offset: usize,
        /// The byte found.
        value: u8,
    },
    /// More bytes follow the message than the 0 to 3 bytes of padding some DDS stacks add. Usually
    /// a sign that the payload is of another type than the one decoded.
    #[error(
        "field `{field}` at byte {offset}: {count} unexpected bytes after the end of the message"
    )]
    TrailingBytes {
        /// The ROS type name of the message that ended.
        field: String,
        /// Where the message ended.
        offset: usize,
        /// How many bytes follow.
        count: usize,
    },
}

impl CdrError {
    /// Path of the field the error is about, e.g. `header.frame_id` or `name[3]`.
    pub fn field(&self) -> &str {
        match self {
            CdrError::UnsupportedEncapsulation { field, .. }
            | CdrError::UnexpectedEnd { field, .. }
            | CdrError::LengthExceedsInput { field, .. }
            | CdrError::MissingNul { field, .. }
            | CdrError::InvalidUtf8 { field, .. }
            | CdrError::InvalidBool { field, .. }
            | CdrError::TrailingBytes { field, .. } => field,
        }
    }

    /// Byte offset of the problem, counted from the start of the input (header included).
    pub fn offset(&self) -> usize {
        match self {
            CdrError::UnsupportedEncapsulation { offset, .. }
            | CdrError::UnexpectedEnd { offset, .. }
            | CdrError::LengthExceedsInput { offset, .. }
            | CdrError::MissingNul { offset, .. }
            | CdrError::InvalidUtf8 { offset, .. }
            | CdrError::InvalidBool { offset, .. }
            | CdrError::TrailingBytes { offset, .. } => *offset,
        }
    }

    /// Prefixes the field path with the name of the enclosing field: `frame_id` within `header`
    /// becomes `header.frame_id`. Used by message types when a nested read fails.
    #[must_use]
    pub fn within(mut self, parent: &str) -> Self {
        let path = self.field_mut();
        *path = join(parent.to_owned(), path);
        self
    }

    /// Prefixes the field path with an element of the enclosing sequence: `positions` within
    /// element 2 of `points` becomes `points[2].positions`.
    #[must_use]
    pub fn within_element(mut self, parent: &str, index: usize) -> Self {
        let path = self.field_mut();
        *path = join(format!("{parent}[{index}]"), path);
        self
    }

    fn field_mut(&mut self) -> &mut String {
        match self {
            CdrError::UnsupportedEncapsulation { field, .. }
            | CdrError::UnexpectedEnd { field, .. }
            | CdrError::LengthExceedsInput { field, .. }
            | CdrError::MissingNul { field, .. }
            | CdrError::InvalidUtf8 { field, .. }
            | CdrError::InvalidBool { field, .. }
            | CdrError::TrailingBytes { field, .. } => field,
        }
    }
}

fn join(mut prefix: String, rest: &str) -> String {
    if !rest.is_empty() {
        if !rest.starts_with('[') {
            prefix.push('.');
        }
        prefix.push_str(rest);
    }
    prefix
}
