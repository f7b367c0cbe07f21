//! The `[task]` section of a scene file: what a learning agent observes, how it acts, what it
//! is rewarded for, when episodes end and what is randomised per episode.
//!
//! Units: metres, radians, seconds, newtons; every field says its unit and default. Positions
//! are expressed in the frame named by `relative_to` (default: the task robot's root link);
//! `"world"` is the world frame.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The task section (`[task]`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskFile {
    /// The robot the agent drives (a `[[robot]]` name). It must not have a `script`.
    pub robot: String,
    /// Rate at which the agent acts (Hz). The physics timestep must divide its period.
    pub control_rate_hz: f64,
    /// Episode length (s); an episode still running then is truncated.
    pub episode_secs: f64,
    /// Observation terms, concatenated in order.
    #[serde(rename = "observation")]
    pub observations: Vec<ObservationFile>,
    /// The action space.
    pub action: ActionFile,
    /// Reward terms; the reward of a step is the sum of `weight × value` (the value is
    /// evaluated after the step's physics).
    #[serde(default, rename = "reward")]
    pub rewards: Vec<RewardFile>,
    /// Failure conditions that end an episode early.
    #[serde(default, rename = "termination")]
    pub terminations: Vec<TerminationFile>,
    /// The success criterion.
    pub success: SuccessFile,
    /// A target point sampled per episode (for `target_*` observations and rewards).
    pub target: Option<TargetFile>,
    /// Domain randomisation, sampled per episode.
    #[serde(default)]
    pub randomize: RandomizeFile,
    /// A scripted expert for demonstrations (behaviour cloning).
    pub expert: Option<ExpertFile>,
    /// Training settings read by `rivet train` (algorithm and hyper-parameters; see
    /// docs/learning.md). Kept as a table here: the learning crate owns its schema.
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<String, serde_json::Value>")]
    pub train: toml::Table,
}

/// A frame to express positions in: a link of the task robot, or `"world"`.
pub type FrameName = String;

/// One observation term.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum ObservationFile {
    /// Joint positions (rad or m), one per joint.
    JointPosition {
        /// Joint names. Default: every actuated joint of the robot.
        #[serde(default)]
        joints: Vec<String>,
        /// Standard deviation of Gaussian noise added per step (rad or m). Default: 0.
        #[serde(default)]
        noise_std: f64,
    },
    /// Joint velocities (rad/s or m/s).
    JointVelocity {
        /// Joint names. Default: every actuated joint.
        #[serde(default)]
        joints: Vec<String>,
        /// Noise standard deviation (rad/s or m/s). Default: 0.
        #[serde(default)]
        noise_std: f64,
    },
    /// Position of a robot frame (link or URDF frame) (m), 3 values.
    FramePosition {
        /// The frame.
        frame: String,
        /// Frame the position is expressed in. Default: the robot's root link.
        relative_to: Option<FrameName>,
        /// Noise standard deviation (m). Default: 0.
        #[serde(default)]
        noise_std: f64,
    },
    /// Position of a prop (m), 3 values.
    ObjectPosition {
        /// The prop's name.
        object: String,
        /// Frame the position is expressed in. Default: the robot's root link.
        relative_to: Option<FrameName>,
        /// Noise standard deviation (m). Default: 0.
        #[serde(default)]
        noise_std: f64,
    },
    /// Orientation of a prop as the first two columns of its rotation matrix (6 values,
    /// dimensionless; continuous, unlike quaternions or angles).
    ObjectRotation {
        /// The prop's name.
        object: String,
        /// Frame the orientation is expressed in. Default: the robot's root link.
        relative_to: Option<FrameName>,
    },
    /// The episode's target position (m), 3 values.
    TargetPosition {
        /// Frame the position is expressed in. Default: the robot's root link.
        relative_to: Option<FrameName>,
    },
    /// Target minus a robot frame's position (m), 3 values, in the robot root's axes.
    TargetError {
        /// The robot frame.
        frame: String,
    },
    /// Target minus a prop's position (m), 3 values, in the robot root's axes.
    ObjectTargetError {
        /// The prop's name.
        object: String,
    },
    /// A prop's position minus a robot frame's position (m), 3 values, in the root's axes.
    ObjectFrameError {
        /// The prop's name.
        object: String,
        /// The robot frame.
        frame: String,
    },
    /// The previous action, in the action space's units.
    PreviousAction,
}

/// The action space.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum ActionFile {
    /// Absolute joint position targets (rad or m) within the joints' limits. Position-mode
    /// actuators.
    JointPosition {
        /// Joints. Default: every actuated joint.
        #[serde(default)]
        joints: Vec<String>,
        /// A gripper dimension appended to the action.
        gripper: Option<GripperFile>,
    },
    /// Joint position target increments (rad or m per action) within `±max_delta`, applied
    /// to the previous target and clamped to the limits. Position-mode actuators.
    JointPositionDelta {
        /// Joints. Default: every actuated joint.
        #[serde(default)]
        joints: Vec<String>,
        /// Largest increment per action (rad or m).
        max_delta: f64,
        /// A gripper dimension appended to the action.
        gripper: Option<GripperFile>,
    },
    /// Joint torques or forces (N·m or N) within `±max_effort` (default: the URDF effort
    /// limit). Torque-mode actuators.
    JointTorque {
        /// Joints. Default: every actuated joint.
        #[serde(default)]
        joints: Vec<String>,
        /// Effort bound (N·m or N). Default: each joint's effort limit.
        max_effort: Option<f64>,
    },
    /// Tool-frame position increments (m per action) within `±max_step`, in the robot root's
    /// axes, tracked by inverse kinematics (rivet-control) with the tool's orientation held at
    /// its initial orientation. Position-mode actuators.
    ToolDelta {
        /// The tool frame.
        frame: String,
        /// Largest increment per axis per action (m).
        max_step: f64,
        /// The commanded tool position stays inside this box (m, robot root frame).
        workspace_min: [f64; 3],
        /// Upper corner of the workspace box (m, robot root frame).
        workspace_max: [f64; 3],
        /// A gripper dimension appended to the action.
        gripper: Option<GripperFile>,
    },
}

/// A gripper driven by one action dimension in [0, 1]: 0 open, 1 closed, linear between.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GripperFile {
    /// Finger joints with their open and closed positions (rad or m).
    pub joints: Vec<GripperJointTargetFile>,
}

/// One finger joint of a gripper action.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GripperJointTargetFile {
    /// The joint.
    pub joint: String,
    /// Position when open (rad or m).
    pub open: f64,
    /// Position when closed (rad or m).
    pub closed: f64,
}

/// One reward term: `weight × value`, where the value depends on `term`. Parameters a term
/// does not use must be left out.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RewardFile {
    /// What is measured.
    pub term: RewardTerm,
    /// Multiplier (reward units per term unit).
    pub weight: f64,
    /// Robot frame, for `frame_target_distance` and `frame_object_distance`.
    pub frame: Option<String>,
    /// Prop, for `object_target_distance` and `frame_object_distance`.
    pub object: Option<String>,
    /// Joint, for `joint_position_squared`.
    pub joint: Option<String>,
    /// For distance terms: when set, the value is `1 - tanh(d / tanh_scale)` (dimensionless)
    /// instead of the distance `d` (m).
    pub tanh_scale: Option<f64>,
}

/// Reward term kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RewardTerm {
    /// 1 per step.
    Alive,
    /// 1 on the step the success criterion is met.
    Success,
    /// Distance from `frame` to the target (m).
    FrameTargetDistance,
    /// Distance from `object` to the target (m).
    ObjectTargetDistance,
    /// Distance from `frame` to `object` (m).
    FrameObjectDistance,
    /// Squared position of `joint` (rad² or m²), e.g. a cart's offset from the centre.
    JointPositionSquared,
    /// Sum of squared velocities of the action's joints (rad²/s² or m²/s²).
    JointVelocitySquared,
    /// Sum of squared actions, each divided by its bound (dimensionless).
    ActionSquared,
    /// Sum of squared action changes since the previous step, each divided by its bound.
    ActionRateSquared,
}

/// A failure condition.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum TerminationFile {
    /// A joint leaves `[min, max]` (rad or m).
    JointOutOfRange {
        /// The joint.
        joint: String,
        /// Lower bound (rad or m).
        min: f64,
        /// Upper bound (rad or m).
        max: f64,
    },
    /// A prop falls below a height (m, world z) or leaves a horizontal radius (m) around the
    /// robot's root.
    ObjectOutOfBounds {
        /// The prop.
        object: String,
        /// Lowest allowed world z of the prop's centre (m).
        min_z: f64,
        /// Largest allowed horizontal distance from the robot root (m).
        max_radius: f64,
    },
}

/// The success criterion.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum SuccessFile {
    /// Reaching the episode's time limit without a failure termination.
    Survive,
    /// A robot frame within `tolerance` (m) of the target for `hold_secs` (s); ends the episode.
    FrameAtTarget {
        /// The robot frame.
        frame: String,
        /// Distance tolerance (m).
        tolerance: f64,
        /// How long it must stay within tolerance (s). Default: 0 (one step).
        #[serde(default)]
        hold_secs: f64,
    },
    /// A prop's centre within `tolerance_xy` (m, horizontal) and `tolerance_z` (m, vertical)
    /// of the target for `hold_secs`, with no robot frame named in `clear_of` within
    /// `clearance` (m) of it (the robot let go); ends the episode.
    ObjectAtTarget {
        /// The prop.
        object: String,
        /// Horizontal tolerance (m).
        tolerance_xy: f64,
        /// Vertical tolerance (m).
        tolerance_z: f64,
        /// How long the condition must hold (s). Default: 0.
        #[serde(default)]
        hold_secs: f64,
        /// Robot frame that must be clear of the object (e.g. the tool). Default: none.
        clear_of: Option<String>,
        /// Distance the `clear_of` frame must keep from the object's centre (m). Default: 0.
        #[serde(default)]
        clearance: f64,
    },
}

/// A target position sampled uniformly per episode.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetFile {
    /// Lower corner of the sampling box (m, robot root frame).
    pub min: [f64; 3],
    /// Upper corner (m, robot root frame).
    pub max: [f64; 3],
    /// Resample until the target is at least this far from every `keep_away_from` prop (m).
    /// Default: 0.
    #[serde(default)]
    pub min_distance: f64,
    /// Props the target keeps `min_distance` from (horizontally), after their placement is
    /// randomised. Default: none.
    #[serde(default)]
    pub keep_away_from: Vec<String>,
}

/// Domain randomisation, sampled uniformly per episode. Ranges are `[low, high]`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RandomizeFile {
    /// Uniform offset added to each actuated joint's initial position (rad or m), within
    /// `±initial_joint_offset`. Default: 0.
    #[serde(default)]
    pub initial_joint_offset: f64,
    /// Uniform initial joint velocity within `±initial_joint_velocity` (rad/s or m/s).
    /// Default: 0.
    #[serde(default)]
    pub initial_joint_velocity: f64,
    /// Props whose starting position is offset per episode.
    #[serde(default)]
    pub object_placement: Vec<PlacementFile>,
    /// Scale of every prop's mass (dimensionless). Default: [1, 1].
    pub object_mass_scale: Option<[f64; 2]>,
    /// Scale of the mass and inertia of every link of the task robot (dimensionless).
    /// Default: [1, 1].
    pub link_mass_scale: Option<[f64; 2]>,
    /// Scale of every friction coefficient of the robot's links and the props. Default: [1, 1].
    pub friction_scale: Option<[f64; 2]>,
    /// Scale of every joint's viscous damping. Default: [1, 1].
    pub joint_damping_scale: Option<[f64; 2]>,
    /// Scale of the actuators' position and velocity gains. Default: [1, 1].
    pub actuator_gain_scale: Option<[f64; 2]>,
    /// Delay between the agent's action and the actuators (s), rounded to physics steps.
    /// Default: [0, 0].
    pub control_latency_secs: Option<[f64; 2]>,
    /// Scale of every observation term's `noise_std`. Default: [1, 1].
    pub observation_noise_scale: Option<[f64; 2]>,
}

/// A prop's start position offset, uniform per axis, and yaw offset.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlacementFile {
    /// The prop.
    pub object: String,
    /// Lower corner of the position offset (m, world axes).
    pub offset_min: [f64; 3],
    /// Upper corner of the position offset (m, world axes).
    pub offset_max: [f64; 3],
    /// Yaw offset within `±yaw` (rad). Default: 0.
    #[serde(default)]
    pub yaw: f64,
}

/// A scripted expert that demonstrates the task (for behaviour cloning).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum ExpertFile {
    /// Pick a prop and place it at the target with a `tool_delta` action and a gripper: move
    /// above, descend, close, lift, carry, lower, open, retreat.
    PickPlace {
        /// The prop.
        object: String,
        /// Height of the tool frame above the prop's centre when grasping (m; negative: below,
        /// e.g. fingertips below the centre for a grasp over most of the prop's height).
        grasp_height: f64,
        /// Height above the grasp pose for approach and carry (m).
        approach_height: f64,
        /// Time the gripper is given to close or open (s).
        grip_secs: f64,
    },
}
