//! `rivet-policies` owns learning: the vectorised environment interface that simulated worlds
//! implement, observation and action spaces with names and bounds, and the [`Policy`] interface
//! that a loaded checkpoint exposes to the hardware bridge.
//!
//! It learns from anything that implements [`VecEnv`]; it must not depend on `rivet-sim`
//! internals, `rivet-hw-bridge` or any transport. The hardware bridge depends only on
//! [`Policy`] and [`BoxSpace`], never on training internals.

pub mod bc;
pub mod checkpoint;
pub mod env;
pub mod error;
pub mod nn;
pub mod normalize;
mod optim;
pub mod ppo;
pub mod space;
#[cfg(test)]
mod testenv;

pub use bc::{BcConfig, BcProgress, BcResult, Demonstrations, train_bc};
pub use checkpoint::{
    Checkpoint, CheckpointError, CheckpointPaths, CheckpointSpec, LoadedPolicy, SceneRef,
    TensorInfo, load_checkpoint, save_checkpoint,
};
pub use env::{Policy, StepResult, VecEnv};
pub use error::LearnError;
pub use nn::{
    Activation, ActorCritic, ConvLayer, ImageEncoderSpec, NetworkSpec, PolicyOutput, scale_action,
    unscale_action,
};
pub use normalize::{NormStats, RunningNorm};
pub use ppo::{Control, LrSchedule, Ppo, PpoConfig, PpoProgress, PpoSummary};
pub use space::{BoxSpace, SpaceError};
