//! `rivet-policies` owns learning: the vectorised environment interface that simulated worlds
//! implement ([`VecEnv`]), observation and action spaces with names and bounds ([`BoxSpace`]),
//! the actor-critic network ([`ActorCritic`], candle, with an optional small CNN encoder for
//! image observations), running observation normalisation ([`RunningNorm`]), the learners
//! ([`Ppo`] from many parallel worlds, [`train_bc`] from [`Demonstrations`]), checkpoints
//! (`<name>.safetensors` + a readable `<name>.json` spec, [`save_checkpoint`] /
//! [`load_checkpoint`]) and the deployable [`LoadedPolicy`]: a plain-Rust, allocation-free
//! forward pass behind the [`Policy`] interface that the hardware bridge and `rivet run
//! --policy` use.
//!
//! It learns from anything that implements [`VecEnv`]; it must not depend on `rivet-sim`,
//! `rivet-control`, `rivet-hw-bridge` or any transport. The hardware bridge depends only on
//! [`Policy`] and [`BoxSpace`], never on training internals; candle is not used at inference.
//!
//! Everything is seeded (ChaCha8; candle's own RNG is never used): the same seed, environment
//! and thread count give bitwise-identical training.

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
