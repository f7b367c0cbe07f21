//! CDR reader: a cursor over a borrowed payload that checks every length against the bytes that
//! remain before it reads, copies or allocates anything.

use super::{CdrError, Endianness, RosMessage};

/// Offset of the first field: alignment is relative to it.
const ORIGIN: usize = 4;

/// Most trailing bytes accepted after a message: DDS stacks that pad payloads pad to 4.
const MAX_TRAILING_PADDING: usize = 3;

/// Smallest encoding of a `string`: its `uint32` length (a zero length is read as "").
const MIN_STRING_BYTES: u64 = 4;

/// Reads one CDR payload. Every method takes the path of the field it reads so errors can say
/// which field was malformed; it is only turned into a `String` when an error is built.
#[derive(Debug, Clone)]
pub struct CdrReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    endianness: Endianness,
}

impl<'a> CdrReader<'a> {
    /// Checks the encapsulation header and positions the reader on the first field.
    pub fn new(bytes: &'a [u8]) -> Result<Self, CdrError> {
        const FIELD: &str = "encapsulation";
        let Some(header) = bytes.first_chunk::<ORIGIN>() else {
            return Err(CdrError::UnexpectedEnd {
                field: FIELD.to_owned(),
                offset: 0,
                needed: ORIGIN,
                remaining: bytes.len(),
            });
        };
        // The options bytes (2 and 3) are ignored: XCDR1 senders leave them zero or use them to
        // announce end padding, which `finish` tolerates anyway.
        let endianness = match [header[0], header[1]] {
            [0x00, 0x01] => Endianness::Little,
            [0x00, 0x00] => Endianness::Big,
            found => {
                return Err(CdrError::UnsupportedEncapsulation {
                    field: FIELD.to_owned(),
                    offset: 0,
                    found,
                });
            }
        };
        Ok(Self {
            bytes,
            pos: ORIGIN,
            endianness,
        })
    }

    /// Byte order announced by the header.
    pub fn endianness(&self) -> Endianness {
        self.endianness
    }

    /// Offset of the next byte to read, counted from the start of the input (header included).
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn padding(&self, alignment: usize) -> usize {
        let misalignment = (self.pos - ORIGIN) % alignment;
        if misalignment == 0 {
            0
        } else {
            alignment - misalignment
        }
    }

    fn unexpected_end(&self, field: &str, needed: usize) -> CdrError {
        CdrError::UnexpectedEnd {
            field: field.to_owned(),
            offset: self.pos,
            needed,
            remaining: self.remaining(),
        }
    }

    /// Skips the padding before a field of `alignment` bytes and returns the next `N` bytes.
    fn take<const N: usize>(&mut self, field: &str, alignment: usize) -> Result<[u8; N], CdrError> {
        let padding = self.padding(alignment);
        let start = self.pos + padding;
        let Some(chunk) = self
            .bytes
            .get(start..)
            .and_then(|rest| rest.first_chunk::<N>())
        else {
            return Err(self.unexpected_end(field, padding + N));
        };
        self.pos = start + N;
        Ok(*chunk)
    }

    /// Reads a `uint8` / `byte` / `char`.
    pub fn read_u8(&mut self, field: &str) -> Result<u8, CdrError> {
        let [byte] = self.take::<1>(field, 1)?;
        Ok(byte)
    }

    /// Reads a `bool`; bytes other than 0 and 1 are rejected, as Fast-CDR does.
    pub fn read_bool(&mut self, field: &str) -> Result<bool, CdrError> {
        let offset = self.pos;
        match self.read_u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(CdrError::InvalidBool {
                field: field.to_owned(),
                offset,
                value,
            }),
        }
    }

    /// Reads an `int32`, aligned to 4.
    pub fn read_i32(&mut self, field: &str) -> Result<i32, CdrError> {
        let bytes = self.take::<4>(field, 4)?;
        Ok(match self.endianness {
            Endianness::Little => i32::from_le_bytes(bytes),
            Endianness::Big => i32::from_be_bytes(bytes),
        })
    }

    /// Reads a `uint32`, aligned to 4.
    pub fn read_u32(&mut self, field: &str) -> Result<u32, CdrError> {
        let bytes = self.take::<4>(field, 4)?;
        Ok(match self.endianness {
            Endianness::Little => u32::from_le_bytes(bytes),
            Endianness::Big => u32::from_be_bytes(bytes),
        })
    }

    /// Reads a `float64`, aligned to 8.
    pub fn read_f64(&mut self, field: &str) -> Result<f64, CdrError> {
        let bytes = self.take::<8>(field, 8)?;
        Ok(self.f64_from(bytes))
    }

    fn f64_from(&self, bytes: [u8; 8]) -> f64 {
        match self.endianness {
            Endianness::Little => f64::from_le_bytes(bytes),
            Endianness::Big => f64::from_be_bytes(bytes),
        }
    }

    /// Reads a sequence count and checks that `count * min_element_bytes` bytes remain, so a bogus
    /// count is rejected before anything is allocated for it. `min_element_bytes` must be a lower
    /// bound of one element's encoded size (padding excluded).
    pub fn read_seq_len(&mut self, field: &str, min_element_bytes: u64) -> Result<usize, CdrError> {
        let count = self.read_u32(field)?;
        let needed = u64::from(count) * min_element_bytes;
        let remaining = self.remaining();
        if needed > remaining as u64 {
            return Err(CdrError::LengthExceedsInput {
                field: field.to_owned(),
                offset: self.pos - 4,
                length: count,
                needed,
                remaining,
            });
        }
        Ok(count as usize)
    }

    /// Reads a `string` into `out`, reusing its allocation.
    ///
    /// A length of 0 (no terminator at all) is read as the empty string, as Fast-CDR does. A NUL
    /// before the terminator is kept.
    pub fn read_string_into(&mut self, field: &str, out: &mut String) -> Result<(), CdrError> {
        let length = self.read_u32(field)?;
        let start = self.pos;
        let Some(body) = self
            .bytes
            .get(start..)
            .and_then(|rest| rest.get(..length as usize))
        else {
            return Err(CdrError::LengthExceedsInput {
                field: field.to_owned(),
                offset: start - 4,
                length,
                needed: u64::from(length),
                remaining: self.remaining(),
            });
        };
        let Some((&terminator, text)) = body.split_last() else {
            out.clear();
            return Ok(());
        };
        if terminator != 0 {
            return Err(CdrError::MissingNul {
                field: field.to_owned(),
                offset: start + text.len(),
            });
        }
        let text = std::str::from_utf8(text).map_err(|source| CdrError::InvalidUtf8 {
            field: field.to_owned(),
            offset: start + source.valid_up_to(),
            source,
        })?;
        out.clear();
        out.push_str(text);
        self.pos = start + body.len();
        Ok(())
    }

    /// Reads a `float64[]` into `out`, reusing its allocation.
    pub fn read_f64_seq_into(&mut self, field: &str, out: &mut Vec<f64>) -> Result<(), CdrError> {
        let count = self.read_seq_len(field, 8)?;
        out.clear();
        if count == 0 {
            // Empty float64 sequences are not padded to 8 (Fast-CDR, rosbags).
            return Ok(());
        }
        let padding = self.padding(8);
        let start = self.pos + padding;
        let Some(body) = self
            .bytes
            .get(start..)
            .and_then(|rest| rest.get(..count * 8))
        else {
            return Err(self.unexpected_end(field, padding + count * 8));
        };
        out.extend(body.chunks_exact(8).map(|chunk| {
            let mut bytes = [0; 8];
            bytes.copy_from_slice(chunk);
            self.f64_from(bytes)
        }));
        self.pos = start + body.len();
        Ok(())
    }

    /// Reads a `string[]` into `out`, reusing the vector and the strings already in it.
    pub fn read_string_seq_into(
        &mut self,
        field: &str,
        out: &mut Vec<String>,
    ) -> Result<(), CdrError> {
        let count = self.read_seq_len(field, MIN_STRING_BYTES)?;
        out.truncate(count);
        for index in 0..count {
            if out.len() == index {
                out.push(String::new());
            }
            self.read_string_into("", &mut out[index])
                .map_err(|e| e.within_element(field, index))?;
        }
        Ok(())
    }

    /// Reads a nested message; errors are prefixed with `field`.
    pub fn read_message_into<M: RosMessage>(
        &mut self,
        field: &str,
        out: &mut M,
    ) -> Result<(), CdrError> {
        out.read_fields_into(self).map_err(|e| e.within(field))
    }

    /// Reads a sequence of nested messages into `out`, reusing the vector and its elements.
    /// `min_element_bytes` is a lower bound of one element's encoded size (see
    /// [`CdrReader::read_seq_len`]).
    pub fn read_message_seq_into<M: RosMessage>(
        &mut self,
        field: &str,
        min_element_bytes: u64,
        out: &mut Vec<M>,
    ) -> Result<(), CdrError> {
        let count = self.read_seq_len(field, min_element_bytes)?;
        out.truncate(count);
        for index in 0..count {
            if out.len() == index {
                out.push(M::default());
            }
            out[index]
                .read_fields_into(self)
                .map_err(|e| e.within_element(field, index))?;
        }
        Ok(())
    }

    /// Checks that at most 3 bytes (end padding) follow the message named `message`.
    pub fn finish(self, message: &str) -> Result<(), CdrError> {
        let count = self.remaining();
        if count > MAX_TRAILING_PADDING {
            return Err(CdrError::TrailingBytes {
                field: message.to_owned(),
                offset: self.pos,
                count,
            });
        }
        Ok(())
    }
}
