//! CDR writer: appends aligned primitives, strings and sequences to a caller-owned buffer.

use super::{Endianness, RosMessage};

/// Writes one CDR payload into a borrowed `Vec<u8>`.
///
/// [`CdrWriter::new`] clears the buffer and writes the encapsulation header; alignment is counted
/// from the byte after it. Writing cannot fail; the only panic is a string or sequence longer than
/// `u32::MAX`, which CDR cannot express.
#[derive(Debug)]
pub struct CdrWriter<'a> {
    buf: &'a mut Vec<u8>,
    endianness: Endianness,
}

/// Offset of the first field: alignment is relative to it.
const ORIGIN: usize = 4;

impl<'a> CdrWriter<'a> {
    /// Clears `buf` and writes the encapsulation header for `endianness`.
    pub fn new(buf: &'a mut Vec<u8>, endianness: Endianness) -> Self {
        buf.clear();
        buf.extend_from_slice(&endianness.encapsulation_header());
        Self { buf, endianness }
    }

    fn align(&mut self, alignment: usize) {
        let misalignment = (self.buf.len() - ORIGIN) % alignment;
        if misalignment != 0 {
            let padded_len = self.buf.len() + alignment - misalignment;
            self.buf.resize(padded_len, 0);
        }
    }

    /// Writes a `uint8` / `byte` / `char`.
    pub fn write_u8(&mut self, value: u8) {
        self.buf.push(value);
    }

    /// Writes a `bool` as one byte, 0 or 1.
    pub fn write_bool(&mut self, value: bool) {
        self.buf.push(u8::from(value));
    }

    /// Writes an `int32`, aligned to 4.
    pub fn write_i32(&mut self, value: i32) {
        self.align(4);
        let bytes = match self.endianness {
            Endianness::Little => value.to_le_bytes(),
            Endianness::Big => value.to_be_bytes(),
        };
        self.buf.extend_from_slice(&bytes);
    }

    /// Writes a `uint32`, aligned to 4.
    pub fn write_u32(&mut self, value: u32) {
        self.align(4);
        let bytes = match self.endianness {
            Endianness::Little => value.to_le_bytes(),
            Endianness::Big => value.to_be_bytes(),
        };
        self.buf.extend_from_slice(&bytes);
    }

    /// Writes a `float64`, aligned to 8.
    pub fn write_f64(&mut self, value: f64) {
        self.align(8);
        self.push_f64(value);
    }

    fn push_f64(&mut self, value: f64) {
        let bytes = match self.endianness {
            Endianness::Little => value.to_le_bytes(),
            Endianness::Big => value.to_be_bytes(),
        };
        self.buf.extend_from_slice(&bytes);
    }

    /// Writes a sequence length or string length prefix.
    ///
    /// # Panics
    /// If `len` exceeds `u32::MAX`: CDR cannot express it, and no real message gets there.
    pub fn write_len(&mut self, len: usize) {
        let len =
            u32::try_from(len).expect("CDR strings and sequences hold at most u32::MAX items");
        self.write_u32(len);
    }

    /// Writes a `string`: length (counting the NUL), UTF-8 bytes, NUL.
    ///
    /// A `\0` inside `value` is written as is; C and C++ readers will see the string end there.
    pub fn write_string(&mut self, value: &str) {
        self.write_len(value.len() + 1);
        self.buf.extend_from_slice(value.as_bytes());
        self.buf.push(0);
    }

    /// Writes a `float64[]`: count, then (only when non-empty) padding to 8 and the values.
    pub fn write_f64_seq(&mut self, values: &[f64]) {
        self.write_len(values.len());
        if values.is_empty() {
            return;
        }
        self.align(8);
        self.buf.reserve(values.len() * 8);
        for &value in values {
            self.push_f64(value);
        }
    }

    /// Writes a `string[]`: count, then each string.
    pub fn write_string_seq<S: AsRef<str>>(&mut self, values: &[S]) {
        self.write_len(values.len());
        for value in values {
            self.write_string(value.as_ref());
        }
    }

    /// Writes a sequence of nested messages: count, then each message's fields.
    pub fn write_message_seq<M: RosMessage>(&mut self, values: &[M]) {
        self.write_len(values.len());
        for value in values {
            value.write_fields(self);
        }
    }
}
