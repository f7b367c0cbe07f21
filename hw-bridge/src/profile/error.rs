//! [`ProfileError`]: what is wrong with a robot profile, where (file and TOML key path).

use std::fmt;
use std::path::{Path, PathBuf};

use rivet_control::ModelError;
use rivet_control::safety::SafetyError;

use crate::keys::KeyError;

/// A robot profile that cannot be used. Every variant that comes from a profile file names the
/// file and the TOML key path (`robot.joints[2]`, `command.kind`,
/// `session.tls.root_ca_certificate`); [`ProfileError::Session`] comes from
/// [`SessionSettings::zenoh_config`](super::SessionSettings::zenoh_config) on settings built in
/// code, which have no file.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The profile file could not be read.
    #[error("{}: cannot read the robot profile: {source}", file.display())]
    Read {
        /// The profile file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax error, a value of the wrong type, a missing required key or an unknown key
    /// (unknown keys are errors, so a typo does not silently fall back to a default).
    #[error(
        "{}{}{}: {message}",
        file.display(),
        Position(*line, *column),
        KeySuffix(key.as_deref())
    )]
    Toml {
        /// The profile file.
        file: PathBuf,
        /// 1-based line of the error, when the parser reports one.
        line: Option<usize>,
        /// 1-based column (in characters) of the error, when the parser reports one.
        column: Option<usize>,
        /// The TOML key path at the error's position, when one could be found (for a missing
        /// key: the table it is missing from).
        key: Option<String>,
        /// The parser's message.
        message: String,
    },
    /// A value that parses but is not acceptable (out of range, unknown joint, duplicate, ...).
    #[error("{}: `{key}`: {message}", file.display())]
    Invalid {
        /// The profile file.
        file: PathBuf,
        /// TOML key path of the value.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A ROS name, distribution or type hash that does not follow the ROS 2 / rmw_zenoh rules.
    #[error("{}: `{key}`: {source}", file.display())]
    Name {
        /// The profile file.
        file: PathBuf,
        /// TOML key path of the value.
        key: String,
        /// The validation error.
        source: KeyError,
    },
    /// A file the profile refers to (URDF, TLS certificate or key, user/password dictionary)
    /// does not exist or is not a regular file.
    #[error(
        "{}: `{key}`: {} does not exist or is not a file{}",
        file.display(),
        path.display(),
        IoSuffix(reason.as_deref())
    )]
    MissingFile {
        /// The profile file.
        file: PathBuf,
        /// TOML key path of the value.
        key: String,
        /// The path looked for (relative paths resolved against the profile's directory).
        path: PathBuf,
        /// The operating system's reason, when there is one.
        reason: Option<String>,
    },
    /// The URDF exists but cannot be loaded as a robot tree.
    #[error("{}: `{key}`: cannot load the URDF: {source}", file.display())]
    Urdf {
        /// The profile file.
        file: PathBuf,
        /// Always `robot.urdf`.
        key: String,
        /// The model error (names the URDF file and element).
        source: ModelError,
    },
    /// The safety overrides cannot be applied to the URDF's limits (for example they would
    /// widen a limit, or name a frame the robot does not have).
    #[error("{}: `{key}`: {source}{context}", file.display())]
    Safety {
        /// The profile file.
        file: PathBuf,
        /// TOML key path of the offending override (`safety.joints.slider.effort`,
        /// `safety.all_joints.velocity`, `safety.workspace`; `command.rate_hz` for the period).
        key: String,
        /// The safety filter's error.
        source: Box<SafetyError>,
        /// Extra context (the URDF's value of a limit an override tried to widen), or empty.
        context: String,
    },
    /// An environment variable the profile names (`session.auth.password_env`) is unset or not
    /// valid UTF-8.
    #[error("{}: `{key}`: environment variable `{var}` {problem}", file.display())]
    Env {
        /// The profile file.
        file: PathBuf,
        /// TOML key path naming the variable.
        key: String,
        /// The variable.
        var: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Session settings built in code (no profile file) are not usable, or zenoh rejected a
    /// configuration value.
    #[error("session settings: `{key}`: {message}")]
    Session {
        /// TOML key path the value would have in a profile (`session.connect[0]`).
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl ProfileError {
    /// The profile file the error is about (`None` for [`ProfileError::Session`]).
    pub fn file(&self) -> Option<&Path> {
        match self {
            ProfileError::Read { file, .. }
            | ProfileError::Toml { file, .. }
            | ProfileError::Invalid { file, .. }
            | ProfileError::Name { file, .. }
            | ProfileError::MissingFile { file, .. }
            | ProfileError::Urdf { file, .. }
            | ProfileError::Safety { file, .. }
            | ProfileError::Env { file, .. } => Some(file),
            ProfileError::Session { .. } => None,
        }
    }

    /// The TOML key path the error is about, when known.
    pub fn key(&self) -> Option<&str> {
        match self {
            ProfileError::Read { .. } => None,
            ProfileError::Toml { key, .. } => key.as_deref(),
            ProfileError::Invalid { key, .. }
            | ProfileError::Name { key, .. }
            | ProfileError::MissingFile { key, .. }
            | ProfileError::Urdf { key, .. }
            | ProfileError::Safety { key, .. }
            | ProfileError::Env { key, .. }
            | ProfileError::Session { key, .. } => Some(key),
        }
    }
}

/// `:<line>:<column>` when known.
struct Position(Option<usize>, Option<usize>);

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (Some(line), Some(column)) => write!(f, ":{line}:{column}"),
            (Some(line), None) => write!(f, ":{line}"),
            _ => Ok(()),
        }
    }
}

/// `: `key`` when known.
struct KeySuffix<'a>(Option<&'a str>);

impl fmt::Display for KeySuffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(key) => write!(f, ": `{key}`"),
            None => Ok(()),
        }
    }
}

/// ` (<reason>)` when known.
struct IoSuffix<'a>(Option<&'a str>);

impl fmt::Display for IoSuffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(reason) => write!(f, " ({reason})"),
            None => Ok(()),
        }
    }
}

/// Writes a TOML key segment: bare when it is a bare key (`A-Z a-z 0-9 _ -`), quoted otherwise
/// (`"sensor_msgs/msg/JointState"`).
pub(super) fn toml_key(segment: &str) -> String {
    let bare = !segment.is_empty()
        && segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        segment.to_owned()
    } else {
        let mut quoted = String::with_capacity(segment.len() + 2);
        quoted.push('"');
        for c in segment.chars() {
            match c {
                '"' => quoted.push_str("\\\""),
                '\\' => quoted.push_str("\\\\"),
                c if c.is_control() => quoted.push_str(&format!("\\u{:04X}", c as u32)),
                c => quoted.push(c),
            }
        }
        quoted.push('"');
        quoted
    }
}

/// Converts a TOML deserialisation error into [`ProfileError::Toml`], with line, column and the
/// key path at the error's position.
pub(super) fn toml_error(file: &Path, text: &str, error: &toml::de::Error) -> ProfileError {
    let (line, column, key) = match error.span() {
        Some(span) => {
            let (line, column) = line_column(text, span.start);
            (Some(line), Some(column), key_path_at(text, span))
        }
        None => (None, None, None),
    };
    ProfileError::Toml {
        file: file.to_path_buf(),
        line,
        column,
        key,
        message: error.message().trim_end().to_owned(),
    }
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// The dotted key path of the most specific key or value whose span contains `span` (for an
/// error inside `[robot]` at `urdf = 5`: `robot.urdf`; in an array: `robot.joints[1]`).
fn key_path_at(text: &str, span: std::ops::Range<usize>) -> Option<String> {
    // An empty span at the start is how the parser places errors about the document root (a
    // missing top-level table): no key.
    if span.is_empty() {
        return None;
    }
    let document = toml::de::DeTable::parse(text).ok()?;
    let mut best: Option<(usize, usize, String)> = None;
    search_table(document.get_ref(), &span, "", &mut best);
    best.map(|(_, _, path)| path)
}

type Best = Option<(usize, usize, String)>;

/// Records `path` as the best match when `candidate` contains `target` and is narrower than the
/// best so far (ties go to the deeper path).
fn consider(
    candidate: std::ops::Range<usize>,
    target: &std::ops::Range<usize>,
    path: &str,
    depth: usize,
    best: &mut Best,
) {
    if !(candidate.start <= target.start && target.end <= candidate.end) {
        return;
    }
    let width = candidate.end - candidate.start;
    let better = match best {
        None => true,
        Some((best_width, best_depth, _)) => {
            width < *best_width || (width == *best_width && depth > *best_depth)
        }
    };
    if better {
        *best = Some((width, depth, path.to_owned()));
    }
}

fn search_table(
    table: &toml::de::DeTable<'_>,
    target: &std::ops::Range<usize>,
    prefix: &str,
    best: &mut Best,
) {
    for (key, value) in table.iter() {
        let path = if prefix.is_empty() {
            toml_key(key.get_ref())
        } else {
            format!("{prefix}.{}", toml_key(key.get_ref()))
        };
        let depth = path.len();
        consider(key.span(), target, &path, depth, best);
        consider(value.span(), target, &path, depth, best);
        search_value(value.get_ref(), target, &path, best);
    }
}

fn search_value(
    value: &toml::de::DeValue<'_>,
    target: &std::ops::Range<usize>,
    path: &str,
    best: &mut Best,
) {
    match value {
        toml::de::DeValue::Table(table) => search_table(table, target, path, best),
        toml::de::DeValue::Array(array) => {
            for (index, item) in array.iter().enumerate() {
                let item_path = format!("{path}[{index}]");
                consider(item.span(), target, &item_path, item_path.len(), best);
                search_value(item.get_ref(), target, &item_path, best);
            }
        }
        _ => {}
    }
}
