//! The attachment rmw_zenoh puts on (and requires of) every data sample: 33 bytes, the
//! `zenoh_ext` serialization of `(i64, i64, [u8; 16])`.
//!
//! | bytes  | content                                                  |
//! |--------|----------------------------------------------------------|
//! | 0..8   | sequence number, i64 little-endian, 1 for the first sample |
//! | 8..16  | source timestamp, i64 little-endian, ns since the UNIX epoch |
//! | 16     | `0x10`: the GID's length (16) as a LEB128 varint          |
//! | 17..33 | publisher GID                                             |

use super::KeyError;

/// Size of an rmw_zenoh attachment in bytes.
pub const ATTACHMENT_LEN: usize = 33;

/// Offset of the GID length byte.
const GID_LEN_OFFSET: usize = 16;

/// Length of a GID, and the value of the length byte.
const GID_LEN: u8 = 16;

/// A publisher's global id. rmw_zenoh derives it from the publisher's liveliness token; any 16
/// bytes that stay the same for the publisher's lifetime will do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Gid(pub [u8; 16]);

/// Per-sample metadata rmw_zenoh exchanges in the zenoh attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Attachment {
    /// Publisher-local sample counter, starting at 1.
    pub sequence_number: i64,
    /// When the sample was published, in ns since the UNIX epoch.
    pub source_timestamp_ns: i64,
    /// The publisher's id.
    pub source_gid: Gid,
}

impl Attachment {
    /// The 33 attachment bytes.
    pub fn encode(&self) -> [u8; ATTACHMENT_LEN] {
        let mut bytes = [0u8; ATTACHMENT_LEN];
        bytes[0..8].copy_from_slice(&self.sequence_number.to_le_bytes());
        bytes[8..16].copy_from_slice(&self.source_timestamp_ns.to_le_bytes());
        bytes[GID_LEN_OFFSET] = GID_LEN;
        bytes[17..].copy_from_slice(&self.source_gid.0);
        bytes
    }

    /// Parses an attachment, checking its length and the GID length byte.
    pub fn decode(bytes: &[u8]) -> Result<Self, KeyError> {
        let Ok(bytes) = <&[u8; ATTACHMENT_LEN]>::try_from(bytes) else {
            return Err(KeyError::AttachmentLength {
                len: bytes.len(),
                expected: ATTACHMENT_LEN,
            });
        };
        // `bytes` is exactly 33 long, so these constant ranges are in bounds.
        if bytes[GID_LEN_OFFSET] != GID_LEN {
            return Err(KeyError::AttachmentGidLength {
                offset: GID_LEN_OFFSET,
                found: bytes[GID_LEN_OFFSET],
            });
        }
        let mut sequence_number = [0u8; 8];
        sequence_number.copy_from_slice(&bytes[0..8]);
        let mut source_timestamp = [0u8; 8];
        source_timestamp.copy_from_slice(&bytes[8..16]);
        let mut source_gid = [0u8; 16];
        source_gid.copy_from_slice(&bytes[17..]);
        Ok(Self {
            sequence_number: i64::from_le_bytes(sequence_number),
            source_timestamp_ns: i64::from_le_bytes(source_timestamp),
            source_gid: Gid(source_gid),
        })
    }
}
