//! The error type of learning (network construction, PPO, behaviour cloning, demonstrations).

use std::path::PathBuf;

use crate::space::SpaceError;

/// What went wrong while building a network, training, or reading demonstrations.
#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    /// A tensor operation failed (a bug in this crate, or out of memory).
    #[error("tensor computation failed: {0}")]
    Tensor(#[from] candle_core::Error),
    /// The network description does not fit the spaces (e.g. an image slice outside the
    /// observation, a convolution larger than its input).
    #[error("invalid network: {reason}")]
    InvalidNetwork {
        /// What is wrong.
        reason: String,
    },
    /// A configuration value is out of range.
    #[error("invalid config: `{field}` {reason}")]
    InvalidConfig {
        /// The config field.
        field: &'static str,
        /// Why it is rejected.
        reason: String,
    },
    /// The environment's (or data's) spaces differ from the ones the learner was built for.
    #[error("{space} space mismatch: {reason}")]
    SpaceMismatch {
        /// `"observation"` or `"action"`.
        space: &'static str,
        /// How they differ.
        reason: String,
    },
    /// A space is malformed.
    #[error(transparent)]
    Space(#[from] SpaceError),
    /// The environment produced a NaN or infinite observation.
    #[error("environment {env} returned a non-finite observation: '{dimension}' = {value}")]
    NonFiniteObservation {
        /// World index.
        env: usize,
        /// Dimension name.
        dimension: String,
        /// The value.
        value: f32,
    },
    /// The environment produced a NaN or infinite reward.
    #[error("environment {env} returned a non-finite reward {value}")]
    NonFiniteReward {
        /// World index.
        env: usize,
        /// The value.
        value: f32,
    },
    /// Training diverged: a loss or gradient became NaN or infinite.
    #[error("training diverged at update {update}: {what} is not finite")]
    Diverged {
        /// Update (PPO) or epoch (BC) number, from 1.
        update: u32,
        /// Which quantity.
        what: String,
    },
    /// Demonstration data is inconsistent (lengths, dimensions, episode ends).
    #[error("invalid demonstrations: {reason}")]
    InvalidDemonstrations {
        /// What is wrong.
        reason: String,
    },
    /// A demonstrations file cannot be read or is malformed.
    #[error("demonstrations file {}: {reason}", path.display())]
    DemonstrationsFile {
        /// The file.
        path: PathBuf,
        /// What is wrong (I/O error, corrupted data, missing tensor).
        reason: String,
    },
}
