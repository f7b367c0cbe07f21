//! `rivet-perception` turns geometry, poses and body motion into sensor data: noisy, delayed,
//! quantised scalar channels ([`noise`]), joint encoders ([`encoder`]), IMUs ([`imu`]) and depth
//! images to point clouds ([`cloud`]). It works on plain numbers and nalgebra types handed in by
//! the caller; it does not know about rapier's world, the bevy app, policies or the hardware
//! bridge, and it needs no renderer.
//!
//! Every model splits an immutable, validated config (serde + JSON Schema, documented defaults)
//! from the per-step state, which allocates at construction (point-cloud buffers: when a frame is
//! larger than any before) and never on the per-step path after that. Randomness comes from
//! seeded ChaCha8 streams, so the same seed always gives the same bytes.

pub mod cloud;
pub mod encoder;
mod error;
pub mod imu;
pub mod noise;
pub mod render;

pub use cloud::{PinholeIntrinsics, VoxelGrid, VoxelGridConfig, depth_to_points};
pub use encoder::{Encoder, EncoderConfig, EncoderReading, EncoderResolution};
pub use error::PerceptionError;
pub use imu::{Imu, ImuInput, ImuReading, quaternion_from_xyzw};
pub use noise::{NoiseConfig, SensorChannel, derive_seed};
