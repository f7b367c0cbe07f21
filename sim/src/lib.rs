//! `rivet-sim` owns simulation: the scene format and its validated model, robot import (URDF
//! and MJCF), the rapier world stepped in fixed stages inside a bevy app, and rerun recordings.
//!
//! It may use `rivet-control` (controllers, trajectories) and `rivet-perception` (sensor
//! models); it must not depend on `rivet-policies` or `rivet-hw-bridge`, which build on it
//! through the CLI.
//!
//! The flow: [`scene::Scene::load`] compiles `scenes/*.toml` into an immutable model;
//! [`world::World::new`] builds per-step state from it; [`plugin::SimPlugin`] steps it in the
//! ordered [`plugin::SimSet`] stages; [`record::Recorder`] writes the .rrd.

pub mod env;
pub mod error;
pub mod math;
pub mod plugin;
pub mod record;
pub mod replay;
pub mod robot;
pub mod scene;
pub mod sensors;
pub mod task;
pub mod world;

pub use error::SimError;
pub use plugin::{SimPlugin, SimSensors, SimSet, SimWorld, headless_app};
pub use robot::{PackagePaths, RobotModel};
pub use scene::Scene;
pub use sensors::SensorSuite;
pub use world::{World, WorldOptions};
