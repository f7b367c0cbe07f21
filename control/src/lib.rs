//! `rivet-control` owns the robot-side math that runs unchanged in simulation and on hardware:
//! joint commands, the [`Controller`] trait (the clock is always passed in, never read from the
//! wall), trajectory generation and mobile-base kinematics.
//!
//! It is the bottom of the workspace: it must not depend on `rivet-sim`, rapier, bevy, zenoh or
//! candle, so the same controller code can be linked into the simulator and the hardware bridge.

pub mod command;
pub mod diff_drive;
pub mod trajectory;

pub use command::{CommandMode, Controller, JointStateView};
pub use diff_drive::{DiffDrive, PatrolController, Pose2};
pub use trajectory::{JointWaypoint, TrajectoryError, WaypointTrajectory, min_jerk};
