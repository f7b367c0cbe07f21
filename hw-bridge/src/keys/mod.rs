//! Names on the zenoh side of rmw_zenoh: where ROS 2 data lives and how a node announces itself.
//!
//! - Data key expression ([`data_key_expr`]): `<domain>/<topic>/<dds type>/<type hash>`, the topic
//!   without its leading and trailing slash, inner slashes kept:
//!   `0/arm/joint_states/sensor_msgs::msg::dds_::JointState_/RIHS01_a13e...`. A subscriber may
//!   put `*` in the hash position ([`data_key_expr_any_hash`]) to tolerate hash drift.
//! - Type hashes ([`TypeHash`], [`TypeHashProfile`]): `RIHS01_<64 hex>` on Jazzy and later,
//!   the literal `TypeHashNotSupported` on Humble. The Jazzy hashes of the bridge's messages are
//!   built in, and a profile can override any of them from configuration.
//! - Liveliness tokens ([`NodeIdentity`], [`Endpoint`]): the `@ros2_lv/...` keys that make the
//!   bridge show up in `ros2 node list` and `ros2 topic list`, with rmw_zenoh's QoS encoding
//!   ([`QosProfile`]).
//! - Sample attachment ([`Attachment`]): the 33 bytes rmw_zenoh requires on every sample
//!   (sequence number, source timestamp, publisher GID); samples without it are dropped.
//! - Validated names ([`DomainId`], [`TopicName`], [`Namespace`], [`NodeName`], [`Zid`]): the ROS 2
//!   naming rules as `rmw_validate_*` applies them, checked once at construction so the string
//!   builders above cannot fail.
//!
//! The formats follow the rmw_zenoh sources (`liveliness_utils.cpp`, `qos.cpp`,
//! `attachment_helpers.cpp`); see `shared/reference/ros2-over-zenoh.md`.

mod attachment;
mod liveliness;
mod names;
mod type_hash;

pub use attachment::{ATTACHMENT_LEN, Attachment, Gid};
pub use liveliness::{
    Durability, Endpoint, EndpointKind, EntityId, History, NodeIdentity, QosProfile, Reliability,
    liveliness_subscription_key_expr,
};
pub use names::{DomainId, NameKind, Namespace, NodeName, TopicName, Zid};
pub use type_hash::{RosDistro, TypeHash, TypeHashProfile};

/// A name, hash or attachment did not follow the rmw_zenoh / ROS 2 rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A domain id above the ROS 2 maximum.
    #[error("domain id {value} is out of range: ROS 2 domain ids are 0 to {max}")]
    DomainIdOutOfRange {
        /// The value given.
        value: u32,
        /// The largest valid id.
        max: u32,
    },
    /// A domain id that is not a decimal number.
    #[error("domain id `{input}` is not a decimal number")]
    DomainIdNotANumber {
        /// The text given.
        input: String,
    },
    /// An empty name (a topic name of only `/` counts as empty).
    #[error("{kind} is empty")]
    EmptyName {
        /// Which kind of name.
        kind: NameKind,
    },
    /// A topic name or namespace that does not start with `/`.
    #[error(
        "{kind} `{name}` is not absolute: it must start with `/` (relative names are not expanded)"
    )]
    NotAbsolute {
        /// Which kind of name.
        kind: NameKind,
        /// The name given.
        name: String,
    },
    /// A topic name or namespace that ends with `/`.
    #[error("{kind} `{name}` ends with `/`")]
    EndsWithSlash {
        /// Which kind of name.
        kind: NameKind,
        /// The name given.
        name: String,
    },
    /// A character outside `A-Z a-z 0-9 _` (and `/` where the kind allows it).
    #[error(
        "{kind} `{name}` has the character {character:?} at byte {index}; allowed are A-Z, a-z, \
         0-9, `_`{slash} (expand `~` and `{{}}` substitutions first)",
        slash = if kind.allows_slash() { " and `/`" } else { "" }
    )]
    InvalidCharacter {
        /// Which kind of name.
        kind: NameKind,
        /// The name given.
        name: String,
        /// The character found.
        character: char,
        /// Byte index of `character` in `name`.
        index: usize,
    },
    /// Two slashes in a row.
    #[error("{kind} `{name}` has `//` at byte {index}")]
    RepeatedSlash {
        /// Which kind of name.
        kind: NameKind,
        /// The name given.
        name: String,
        /// Byte index of the second slash.
        index: usize,
    },
    /// A name, or one of its `/`-separated tokens, that starts with a digit.
    #[error("{kind} `{name}` has a token starting with a digit at byte {index}")]
    TokenStartsWithDigit {
        /// Which kind of name.
        kind: NameKind,
        /// The name given.
        name: String,
        /// Byte index of the digit.
        index: usize,
    },
    /// A name longer than rmw allows.
    #[error("{kind} `{name}` is {len} bytes long; the limit is {max}")]
    NameTooLong {
        /// Which kind of name.
        kind: NameKind,
        /// The name given.
        name: String,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// A zenoh session id that is not 1 to 32 lowercase hex digits.
    #[error("zenoh id `{input}` is not 1 to 32 lowercase hexadecimal digits")]
    InvalidZid {
        /// The text given.
        input: String,
    },
    /// A type hash that is neither `RIHS01_` followed by 64 hex digits nor `TypeHashNotSupported`.
    #[error(
        "type hash `{input}` is neither `RIHS01_` followed by 64 hexadecimal digits nor \
         `TypeHashNotSupported`"
    )]
    InvalidTypeHash {
        /// The text given.
        input: String,
    },
    /// A ROS distribution name this crate has no profile for.
    #[error("unknown ROS 2 distribution `{input}`; known: humble, jazzy")]
    UnknownDistro {
        /// The text given.
        input: String,
    },
    /// No type hash is known for a type under a profile.
    #[error(
        "no type hash for `{ros_type_name}` in the {distro} profile; add it to the configuration"
    )]
    UnknownTypeHash {
        /// The ROS type name looked up.
        ros_type_name: String,
        /// The profile's distribution.
        distro: RosDistro,
    },
    /// An attachment of the wrong size.
    #[error("attachment is {len} bytes; rmw_zenoh attachments are {expected}")]
    AttachmentLength {
        /// Bytes received.
        len: usize,
        /// Always [`ATTACHMENT_LEN`].
        expected: usize,
    },
    /// An attachment whose GID length byte is not 16.
    #[error("attachment byte {offset} (GID length) is {found:#04x}, expected 0x10")]
    AttachmentGidLength {
        /// Always 16.
        offset: usize,
        /// The byte found.
        found: u8,
    },
}

/// Removes one leading and one trailing `/`, as rmw_zenoh's `strip_slashes` does.
fn strip_slashes(name: &str) -> &str {
    let name = name.strip_prefix('/').unwrap_or(name);
    name.strip_suffix('/').unwrap_or(name)
}

/// The key expression rmw_zenoh publishes and subscribes data on:
/// `<domain>/<topic without leading slash>/<dds type name>/<type hash>`.
pub fn data_key_expr(
    domain: DomainId,
    topic: &TopicName,
    dds_type_name: &str,
    type_hash: &TypeHash,
) -> String {
    format!(
        "{domain}/{topic}/{dds_type_name}/{type_hash}",
        topic = strip_slashes(topic.as_str())
    )
}

/// Like [`data_key_expr`] with `*` in the hash position: matches publishers of any hash
/// (another distribution, or a hash this crate does not know). For subscribers only.
pub fn data_key_expr_any_hash(domain: DomainId, topic: &TopicName, dds_type_name: &str) -> String {
    format!(
        "{domain}/{topic}/{dds_type_name}/*",
        topic = strip_slashes(topic.as_str())
    )
}

#[cfg(test)]
mod tests;
