//! Joint commands and the controller interface shared by simulation and hardware.

use serde::{Deserialize, Serialize};

/// How a joint command value is interpreted by an actuator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CommandMode {
    /// Target joint position (rad for revolute joints, m for prismatic joints), tracked by a PD
    /// law with the actuator's gains.
    Position,
    /// Target joint velocity (rad/s or m/s), tracked with the actuator's derivative gain.
    Velocity,
    /// Joint effort (N·m or N) applied directly, clamped to the effort limit.
    Torque,
}

/// A read-only view of a robot's joint state, in the robot's joint order.
///
/// All slices have the same length (the number of actuated joints).
#[derive(Clone, Copy, Debug)]
pub struct JointStateView<'a> {
    /// Joint positions (rad or m).
    pub position: &'a [f64],
    /// Joint velocities (rad/s or m/s).
    pub velocity: &'a [f64],
    /// Joint efforts measured or applied on the last step (N·m or N).
    pub effort: &'a [f64],
}

/// What a controller is asked to reach on one [`Controller::update`].
///
/// Borrowed, so passing a target never allocates. Controllers document which variants they
/// use; a variant a controller does not use is ignored (it keeps its previous reference).
#[derive(Clone, Copy, Debug, Default)]
pub enum Target<'a> {
    /// No new target: the controller follows its own reference (a trajectory it owns, or the
    /// last target it was given, or the state it captured on its first update).
    #[default]
    None,
    /// A joint-space target, in the robot's joint order (each slice has one value per joint).
    Joint {
        /// Desired joint positions (rad or m).
        position: &'a [f64],
        /// Desired joint velocities (rad/s or m/s); `None` means zero / not given.
        velocity: Option<&'a [f64]>,
        /// Desired joint accelerations (rad/s² or m/s²), for feed-forward; `None` means not
        /// given (no acceleration feed-forward).
        acceleration: Option<&'a [f64]>,
    },
    /// A desired pose of the controller's tool frame, in the robot's root frame (m, rad).
    Pose(&'a nalgebra::Isometry3<f64>),
}

/// A joint-space controller: given the robot state, a target and the current time, it writes one
/// command per joint.
///
/// The clock is passed in (`time_secs`), so the same controller runs against the simulator's
/// fixed-step clock and a robot's monotonic clock. Implementations must not allocate in
/// [`Controller::update`]: it runs on the per-step path.
pub trait Controller: Send {
    /// The mode of the commands this controller writes.
    fn mode(&self) -> CommandMode;

    /// Computes one command per joint into `command_out` (same length as the state slices),
    /// towards `target` ([`Target::None`]: the controller's own reference).
    fn update(
        &mut self,
        state: &JointStateView<'_>,
        target: &Target<'_>,
        time_secs: f64,
        command_out: &mut [f64],
    );

    /// Resets internal state (integrators, trajectory progress) at the start of an episode.
    fn reset(&mut self) {}
}
