//! Validated ROS 2 names and ids. Each type checks the rules `rmw_validate_full_topic_name`,
//! `rmw_validate_namespace` and `rmw_validate_node_name` apply, once, at construction; afterwards
//! the key and token builders use them without further checks.

use std::fmt;
use std::str::FromStr;

use super::KeyError;

/// A ROS 2 domain id (`ROS_DOMAIN_ID`): 0 to 232.
///
/// rmw_zenoh itself accepts any number, but 232 is the largest id the DDS-based rmws (and so a
/// mixed system) accept, and the ROS 2 documentation's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct DomainId(u32);

impl DomainId {
    /// Largest valid domain id.
    pub const MAX: u32 = 232;

    /// Checks the range.
    pub fn new(value: u32) -> Result<Self, KeyError> {
        if value > Self::MAX {
            return Err(KeyError::DomainIdOutOfRange {
                value,
                max: Self::MAX,
            });
        }
        Ok(Self(value))
    }

    /// The id as a number.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl FromStr for DomainId {
    type Err = KeyError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let value = input
            .parse::<u32>()
            .map_err(|_| KeyError::DomainIdNotANumber {
                input: input.to_owned(),
            })?;
        Self::new(value)
    }
}

impl fmt::Display for DomainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Which kind of name failed validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameKind {
    /// A fully qualified topic name.
    Topic,
    /// A node namespace (or an enclave, which follows the same rules).
    Namespace,
    /// A node name.
    Node,
}

impl NameKind {
    /// Whether `/` is allowed in this kind of name.
    pub fn allows_slash(self) -> bool {
        !matches!(self, NameKind::Node)
    }

    fn max_len(self) -> usize {
        match self {
            // RMW_TOPIC_MAX_NAME_LENGTH: 255 minus 8 reserved for DDS prefixes.
            NameKind::Topic => 247,
            // RMW_NAMESPACE_MAX_LENGTH: room for the shortest topic, `/x`, below it.
            NameKind::Namespace => 245,
            // RMW_NODE_NAME_MAX_NAME_LENGTH.
            NameKind::Node => 255,
        }
    }
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Topic => "topic name",
            NameKind::Namespace => "namespace",
            NameKind::Node => "node name",
        })
    }
}

/// Checks `name` against the ROS 2 name rules for `kind`. `/` alone is accepted here (the root
/// namespace); callers for which it is empty reject it themselves.
fn validate(kind: NameKind, name: &str) -> Result<(), KeyError> {
    let owned = || name.to_owned();
    if name.is_empty() {
        return Err(KeyError::EmptyName { kind });
    }
    if kind.allows_slash() && !name.starts_with('/') {
        return Err(KeyError::NotAbsolute {
            kind,
            name: owned(),
        });
    }
    let mut previous = None;
    for (index, character) in name.char_indices() {
        let allowed = character.is_ascii_alphanumeric()
            || character == '_'
            || (character == '/' && kind.allows_slash());
        if !allowed {
            return Err(KeyError::InvalidCharacter {
                kind,
                name: owned(),
                character,
                index,
            });
        }
        if character == '/' && previous == Some('/') {
            return Err(KeyError::RepeatedSlash {
                kind,
                name: owned(),
                index,
            });
        }
        let starts_token = previous.is_none() || previous == Some('/');
        if starts_token && character.is_ascii_digit() {
            return Err(KeyError::TokenStartsWithDigit {
                kind,
                name: owned(),
                index,
            });
        }
        previous = Some(character);
    }
    if name.len() > 1 && name.ends_with('/') {
        return Err(KeyError::EndsWithSlash {
            kind,
            name: owned(),
        });
    }
    if name.len() > kind.max_len() {
        return Err(KeyError::NameTooLong {
            kind,
            name: owned(),
            len: name.len(),
            max: kind.max_len(),
        });
    }
    Ok(())
}

/// A fully qualified ROS 2 topic name such as `/arm/joint_states`: starts with `/`, does not end
/// with one, only `A-Z a-z 0-9 _ /`, no `//`, no token starting with a digit, at most 247 bytes.
///
/// Relative names (`joint_states`, `~/cmd`) are rejected rather than expanded: the bridge does not
/// know which namespace the robot's nodes resolve them against.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicName(String);

impl TopicName {
    /// Validates `name`.
    pub fn new(name: &str) -> Result<Self, KeyError> {
        if name == "/" {
            return Err(KeyError::EmptyName {
                kind: NameKind::Topic,
            });
        }
        validate(NameKind::Topic, name)?;
        Ok(Self(name.to_owned()))
    }

    /// The name, with its leading `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TopicName {
    type Err = KeyError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::new(name)
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A node namespace (`/`, `/arm`, `/site/arm`) or a security enclave, which follows the same
/// rules: absolute, no trailing `/` except for the root, at most 245 bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Namespace(String);

impl Namespace {
    /// Validates `name`.
    pub fn new(name: &str) -> Result<Self, KeyError> {
        validate(NameKind::Namespace, name)?;
        Ok(Self(name.to_owned()))
    }

    /// The root namespace `/` (also rcl's default enclave).
    pub fn root() -> Self {
        Self("/".to_owned())
    }

    /// The namespace, with its leading `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Namespace {
    fn default() -> Self {
        Self::root()
    }
}

impl FromStr for Namespace {
    type Err = KeyError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::new(name)
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A ROS 2 node name such as `rivet_bridge`: non-empty, `A-Z a-z 0-9 _`, not starting with a
/// digit, at most 255 bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeName(String);

impl NodeName {
    /// Validates `name`.
    pub fn new(name: &str) -> Result<Self, KeyError> {
        validate(NameKind::Node, name)?;
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for NodeName {
    type Err = KeyError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::new(name)
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A zenoh session id as it appears in liveliness tokens: the session's id in lowercase hex
/// (what zenoh's `ZenohId` prints), 1 to 32 digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Zid(String);

impl Zid {
    /// Validates `hex`.
    pub fn new(hex: &str) -> Result<Self, KeyError> {
        let valid = (1..=32).contains(&hex.len())
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid {
            return Err(KeyError::InvalidZid {
                input: hex.to_owned(),
            });
        }
        Ok(Self(hex.to_owned()))
    }

    /// The id's hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Zid {
    type Err = KeyError;

    fn from_str(hex: &str) -> Result<Self, Self::Err> {
        Self::new(hex)
    }
}

impl fmt::Display for Zid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
