//! `rivet-perception` turns geometry, poses and body motion into sensor data: camera images
//! rendered with wgpu ([`render`]: lit RGB, linear depth, instance and semantic ids, batched),
//! lidar scan patterns and per-element range noise ([`lidar`]), noisy, delayed, quantised scalar
//! channels ([`noise`]), joint encoders ([`encoder`]), IMUs ([`imu`]) and depth images to point
//! clouds ([`cloud`]). It works on meshes, plain numbers and nalgebra types handed in by the
//! caller; it does not know about rapier's world (the simulator casts the lidar's rays), the
//! bevy app, policies or the hardware bridge.
//!
//! Every model splits an immutable, validated config (serde + JSON Schema, documented defaults)
//! from the per-step state, which allocates at construction (point-cloud buffers: when a frame is
//! larger than any before) and never on the per-step path after that. Randomness comes from
//! seeded ChaCha8 streams, so the same seed always gives the same bytes.

pub mod cloud;
pub mod encoder;
mod error;
pub mod imu;
pub mod lidar;
pub mod noise;
pub mod render;

pub use cloud::{PinholeIntrinsics, VoxelGrid, VoxelGridConfig, depth_to_points};
pub use encoder::{Encoder, EncoderConfig, EncoderReading, EncoderResolution};
pub use error::PerceptionError;
pub use imu::{Imu, ImuInput, ImuReading, quaternion_from_xyzw};
pub use lidar::{ElementNoise, LidarPattern};
pub use noise::{NoiseConfig, SensorChannel, derive_seed};
