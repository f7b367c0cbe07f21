//! CDR codec for the ROS 2 messages the bridge exchanges with rmw_zenoh.
//!
//! # Wire format
//! Plain CDR (XCDR1) as ROS 2 uses it: a 4-byte encapsulation header, `00 01 00 00` for
//! little-endian (what every ROS 2 node on x86 and ARM sends) or `00 00 00 00` for big-endian,
//! followed by the fields in declaration order. Primitives are aligned to their size (`float64`
//! to 8), counted from the first byte after the header. A string is a `uint32` length that
//! counts the trailing NUL, the UTF-8 bytes, then the NUL. A sequence is a `uint32` element count
//! then the elements; an empty `float64[]` is not padded to 8 (as Fast-CDR and rosbags do).
//!
//! # Encoding
//! [`RosMessage::encode_into`] clears the caller's buffer and writes little-endian CDR into it,
//! so a publisher that keeps one `Vec<u8>` allocates nothing once the buffer has grown.
//!
//! # Decoding
//! [`RosMessage::decode`] builds a new message; [`RosMessage::decode_into`] overwrites an existing
//! one and reuses its strings and vectors, for the per-tick path. Both accept little- and
//! big-endian input. Decoding never panics: every malformed input (truncated data, a length larger
//! than what remains, a string without its NUL or with invalid UTF-8, a boolean byte other than
//! 0 or 1, an unknown encapsulation, more than 3 trailing bytes) is a [`CdrError`] that names the
//! field (`points[2].time_from_start.sec`) and the byte offset in the input. A bogus length never
//! causes a large allocation: counts are checked against the bytes that remain before anything is
//! reserved. Up to 3 trailing bytes are accepted because some DDS stacks pad the payload to 4.
//!
//! The reader and writer ([`CdrReader`], [`CdrWriter`]) are public so later message types can be
//! added outside this module with the same guarantees.

mod error;
pub mod msgs;
mod reader;
mod writer;

#[cfg(test)]
mod golden_tests;
#[cfg(test)]
mod tests;

pub use error::CdrError;
pub use reader::CdrReader;
pub use writer::CdrWriter;

/// Byte order of a CDR payload, announced by the second byte of the encapsulation header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Endianness {
    /// `00 01` header: the ROS 2 default on every platform Rivet targets.
    #[default]
    Little,
    /// `00 00` header: accepted when decoding; written only on request.
    Big,
}

impl Endianness {
    /// The 4-byte encapsulation header (representation id and zeroed options) for this order.
    pub const fn encapsulation_header(self) -> [u8; 4] {
        match self {
            Endianness::Little => [0x00, 0x01, 0x00, 0x00],
            Endianness::Big => [0x00, 0x00, 0x00, 0x00],
        }
    }
}

/// A ROS 2 message type with a CDR encoding.
///
/// Implementors only write and read their fields in declaration order; the provided methods add
/// the encapsulation header and the end-of-input check.
pub trait RosMessage: Sized + Default {
    /// The ROS 2 interface name, e.g. `sensor_msgs/msg/JointState`.
    const ROS_TYPE_NAME: &'static str;
    /// The DDS type name rmw_zenoh puts in key expressions, e.g.
    /// `sensor_msgs::msg::dds_::JointState_`.
    const DDS_TYPE_NAME: &'static str;

    /// Writes the fields, without the encapsulation header.
    fn write_fields(&self, w: &mut CdrWriter<'_>);

    /// Reads the fields into `self`, reusing its heap storage. Errors name fields relative to this
    /// message (`header.frame_id`); callers embedding it prefix their own field name.
    fn read_fields_into(&mut self, r: &mut CdrReader<'_>) -> Result<(), CdrError>;

    /// Clears `buf` and writes the complete little-endian payload (header and fields) into it.
    ///
    /// Panics only if a string or sequence is longer than `u32::MAX`, which CDR cannot express.
    fn encode_into(&self, buf: &mut Vec<u8>) {
        self.encode_into_with(buf, Endianness::Little);
    }

    /// Clears `buf` and writes the complete payload in the given byte order.
    ///
    /// Panics only if a string or sequence is longer than `u32::MAX`, which CDR cannot express.
    fn encode_into_with(&self, buf: &mut Vec<u8>, endianness: Endianness) {
        let mut w = CdrWriter::new(buf, endianness);
        self.write_fields(&mut w);
    }

    /// Decodes a complete payload (header and fields) into a new message.
    fn decode(bytes: &[u8]) -> Result<Self, CdrError> {
        let mut msg = Self::default();
        msg.decode_into(bytes)?;
        Ok(msg)
    }

    /// Decodes a complete payload into `self`, reusing its strings and vectors. On error `self`
    /// holds a mix of old and new values and should be discarded.
    fn decode_into(&mut self, bytes: &[u8]) -> Result<(), CdrError> {
        let mut r = CdrReader::new(bytes)?;
        self.read_fields_into(&mut r)?;
        r.finish(Self::ROS_TYPE_NAME)
    }
}
