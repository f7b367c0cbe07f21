//! `rivet-control` owns the robot-side math that runs unchanged in simulation and on hardware:
//! robot models ([`RobotTree`]: forward kinematics, Jacobians, inverse dynamics, mass matrix),
//! inverse kinematics, joint commands, the [`Controller`] trait (the clock is always passed in,
//! never read from the wall), controllers, trajectory generation, the safety filter every command
//! goes through, and mobile-base kinematics.
//!
//! It is the bottom of the workspace: it must not depend on `rivet-sim`, rapier, bevy, zenoh or
//! candle, so the same controller code can be linked into the simulator and the hardware bridge.

pub mod command;
pub mod controllers;
pub mod diff_drive;
pub mod ik;
pub mod model;
pub mod pick_place;
pub mod safety;
pub mod trajectory;

pub use command::{CommandMode, Controller, JointStateView, Target};
pub use controllers::{
    CartesianImpedance, CartesianImpedanceConfig, CartesianLaw, ControllerError, JointImpedance,
    Pid, PidGains, TrajectoryFollower,
};
pub use diff_drive::{DiffDrive, PatrolController, Pose2};
pub use model::{FrameId, JointId, JointKind, LinkId, ModelError, RobotTree, TreeData};
pub use trajectory::{JointWaypoint, TrajectoryError, WaypointTrajectory, min_jerk};
