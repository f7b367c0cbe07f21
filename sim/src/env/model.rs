//! The validated task model compiled from a scene's `[task]` section: resolved robot, joints,
//! frames and props, with the observation and action layouts (names, units, bounds).

use std::path::Path;

use rivet_control::{CommandMode, FrameId, RobotTree};

use super::file::{
    ActionFile, ExpertFile, ObservationFile, RandomizeFile, RewardTerm, SuccessFile, TaskFile,
    TerminationFile,
};
use crate::error::SimError;
use crate::scene::{PropModel, RobotInstance};

/// A frame positions are expressed in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FrameRef {
    /// The world frame.
    World,
    /// A frame of the task robot's tree (its root link is the default).
    Robot(FrameId),
}

/// One observation term, resolved.
#[derive(Clone, Debug)]
pub enum ObservationTerm {
    /// Joint positions of these DoFs (rad or m).
    JointPosition {
        /// DoF indices.
        dofs: Vec<usize>,
        /// Noise standard deviation.
        noise_std: f64,
    },
    /// Joint velocities (rad/s or m/s).
    JointVelocity {
        /// DoF indices.
        dofs: Vec<usize>,
        /// Noise standard deviation.
        noise_std: f64,
    },
    /// A robot frame's position (m).
    FramePosition {
        /// The frame.
        frame: FrameId,
        /// Expressed in.
        relative_to: FrameRef,
        /// Noise standard deviation (m).
        noise_std: f64,
    },
    /// A prop's position (m).
    ObjectPosition {
        /// Prop index.
        prop: usize,
        /// Expressed in.
        relative_to: FrameRef,
        /// Noise standard deviation (m).
        noise_std: f64,
    },
    /// A prop's rotation, first two matrix columns.
    ObjectRotation {
        /// Prop index.
        prop: usize,
        /// Expressed in.
        relative_to: FrameRef,
    },
    /// The target position (m).
    TargetPosition {
        /// Expressed in.
        relative_to: FrameRef,
    },
    /// Target minus a robot frame (m, root axes).
    TargetError {
        /// The frame.
        frame: FrameId,
    },
    /// Target minus a prop (m, root axes).
    ObjectTargetError {
        /// Prop index.
        prop: usize,
    },
    /// Prop minus a robot frame (m, root axes).
    ObjectFrameError {
        /// Prop index.
        prop: usize,
        /// The frame.
        frame: FrameId,
    },
    /// The previous action.
    PreviousAction,
}

/// How actions become actuator commands.
#[derive(Clone, Debug)]
pub enum ActionKind {
    /// Absolute position targets.
    JointPosition {
        /// DoF indices.
        dofs: Vec<usize>,
    },
    /// Position target increments.
    JointPositionDelta {
        /// DoF indices.
        dofs: Vec<usize>,
    },
    /// Efforts.
    JointTorque {
        /// DoF indices.
        dofs: Vec<usize>,
    },
    /// Tool position increments through IK, orientation held.
    ToolDelta {
        /// Tool frame.
        frame: FrameId,
        /// Workspace box lower corner (m, root frame).
        workspace_min: [f64; 3],
        /// Upper corner.
        workspace_max: [f64; 3],
        /// DoFs that move the tool (they receive the IK solution).
        dofs: Vec<usize>,
    },
}

/// A gripper finger: DoF, open and closed positions.
#[derive(Clone, Copy, Debug)]
pub struct GripperJoint {
    /// DoF index.
    pub dof: usize,
    /// Open position (rad or m).
    pub open: f64,
    /// Closed position (rad or m).
    pub closed: f64,
}

/// A reward term, resolved.
#[derive(Clone, Debug)]
pub enum RewardModel {
    /// 1 per step.
    Alive,
    /// 1 on success.
    Success,
    /// Frame-to-target distance.
    FrameTargetDistance(FrameId, Option<f64>),
    /// Prop-to-target distance.
    ObjectTargetDistance(usize, Option<f64>),
    /// Frame-to-prop distance.
    FrameObjectDistance(FrameId, usize, Option<f64>),
    /// Squared DoF position.
    JointPositionSquared(usize),
    /// Squared velocities of the action DoFs.
    JointVelocitySquared,
    /// Squared normalised actions.
    ActionSquared,
    /// Squared normalised action changes.
    ActionRateSquared,
}

/// A failure condition, resolved.
#[derive(Clone, Debug)]
pub enum TerminationModel {
    /// DoF outside [min, max].
    JointOutOfRange {
        /// DoF index.
        dof: usize,
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
    },
    /// Prop fell or left.
    ObjectOutOfBounds {
        /// Prop index.
        prop: usize,
        /// Lowest z (m).
        min_z: f64,
        /// Largest horizontal distance from the robot root (m).
        max_radius: f64,
    },
}

/// The success criterion, resolved.
#[derive(Clone, Debug)]
pub enum SuccessModel {
    /// Survive to the time limit.
    Survive,
    /// Frame at target.
    FrameAtTarget {
        /// Frame.
        frame: FrameId,
        /// Tolerance (m).
        tolerance: f64,
        /// Control steps the condition must hold.
        hold_steps: u32,
    },
    /// Prop at target, released.
    ObjectAtTarget {
        /// Prop index.
        prop: usize,
        /// Horizontal tolerance (m).
        tolerance_xy: f64,
        /// Vertical tolerance (m).
        tolerance_z: f64,
        /// Control steps the condition must hold.
        hold_steps: u32,
        /// Frame that must be clear, with its clearance (m).
        clear_of: Option<(FrameId, f64)>,
    },
}

/// Target sampling, resolved.
#[derive(Clone, Debug)]
pub struct TargetModel {
    /// Box lower corner (m, root frame).
    pub min: [f64; 3],
    /// Box upper corner.
    pub max: [f64; 3],
    /// Horizontal distance kept from `keep_away_from` props (m).
    pub min_distance: f64,
    /// Prop indices.
    pub keep_away_from: Vec<usize>,
}

/// A placement randomisation, resolved.
#[derive(Clone, Debug)]
pub struct PlacementModel {
    /// Prop index.
    pub prop: usize,
    /// Offset lower corner (m).
    pub offset_min: [f64; 3],
    /// Offset upper corner (m).
    pub offset_max: [f64; 3],
    /// Yaw half-range (rad).
    pub yaw: f64,
}

/// Domain randomisation, resolved.
#[derive(Clone, Debug)]
pub struct RandomizeModel {
    /// Initial joint offset half-range (rad or m).
    pub initial_joint_offset: f64,
    /// Initial joint velocity half-range.
    pub initial_joint_velocity: f64,
    /// Prop placements.
    pub placements: Vec<PlacementModel>,
    /// Prop mass scale range.
    pub object_mass_scale: [f64; 2],
    /// Robot link mass (and inertia) scale range.
    pub link_mass_scale: [f64; 2],
    /// Friction scale range.
    pub friction_scale: [f64; 2],
    /// Joint damping scale range.
    pub joint_damping_scale: [f64; 2],
    /// Actuator gain scale range.
    pub actuator_gain_scale: [f64; 2],
    /// Control latency range in physics steps.
    pub latency_steps: [u32; 2],
    /// Observation noise scale range.
    pub observation_noise_scale: [f64; 2],
}

/// The scripted expert, resolved.
#[derive(Clone, Debug)]
pub enum ExpertModel {
    /// Pick and place.
    PickPlace {
        /// Prop index.
        prop: usize,
        /// Tool height above the prop centre at the grasp (m).
        grasp_height: f64,
        /// Approach height above the grasp (m).
        approach_height: f64,
        /// Control steps given to the gripper.
        grip_steps: u32,
    },
}

/// A named, bounded space (the learning crate's `BoxSpace` is built from it).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpaceLayout {
    /// Dimension names, e.g. `arm/elbow/position`.
    pub names: Vec<String>,
    /// Lower bounds (may be -inf).
    pub low: Vec<f32>,
    /// Upper bounds (may be +inf).
    pub high: Vec<f32>,
}

impl SpaceLayout {
    fn push(&mut self, name: String, low: f64, high: f64) {
        self.names.push(name);
        self.low.push(low as f32);
        self.high.push(high as f32);
    }

    /// Number of dimensions.
    pub fn dim(&self) -> usize {
        self.names.len()
    }
}

/// The validated task of a scene.
#[derive(Clone, Debug)]
pub struct TaskModel {
    /// Index of the task robot in the scene.
    pub robot: usize,
    /// The robot's kinematic tree.
    pub tree: std::sync::Arc<RobotTree>,
    /// Physics steps per action.
    pub substeps: u32,
    /// Control period (s).
    pub control_period_secs: f64,
    /// Actions per episode before truncation.
    pub episode_steps: u32,
    /// Observation terms in order.
    pub observations: Vec<ObservationTerm>,
    /// Observation layout.
    pub observation_space: SpaceLayout,
    /// How actions drive the robot.
    pub action: ActionKind,
    /// Gripper fingers driven by the last action dimension (empty: no gripper dimension).
    pub gripper: Vec<GripperJoint>,
    /// Action layout.
    pub action_space: SpaceLayout,
    /// Reward terms with weights.
    pub rewards: Vec<(f64, RewardModel)>,
    /// Failure conditions.
    pub terminations: Vec<TerminationModel>,
    /// Success criterion.
    pub success: SuccessModel,
    /// Target sampling.
    pub target: Option<TargetModel>,
    /// Domain randomisation.
    pub randomize: RandomizeModel,
    /// Scripted expert.
    pub expert: Option<ExpertModel>,
    /// Training settings, for `rivet train`.
    pub train: toml::Table,
}

struct Ctx<'a> {
    path: &'a Path,
    robot: &'a RobotInstance,
    tree: &'a RobotTree,
    props: &'a [PropModel],
}

impl Ctx<'_> {
    fn err(&self, element: impl Into<String>, message: impl Into<String>) -> SimError {
        SimError::scene(self.path, format!("task.{}", element.into()), message)
    }

    fn dof(&self, at: &str, joint: &str) -> Result<usize, SimError> {
        let id = self
            .tree
            .joint_by_name(joint)
            .ok_or_else(|| self.err(at, format!("robot has no joint '{joint}'")))?;
        self.tree
            .dof_of_joint(id)
            .ok_or_else(|| self.err(at, format!("joint '{joint}' is not actuated")))
    }

    fn dofs(&self, at: &str, joints: &[String]) -> Result<Vec<usize>, SimError> {
        if joints.is_empty() {
            return Ok((0..self.tree.dof_count()).collect());
        }
        let mut out = Vec::new();
        for j in joints {
            let d = self.dof(at, j)?;
            if out.contains(&d) {
                return Err(self.err(at, format!("joint '{j}' is listed twice")));
            }
            out.push(d);
        }
        Ok(out)
    }

    fn frame(&self, at: &str, name: &str) -> Result<FrameId, SimError> {
        self.tree
            .frame_by_name(name)
            .ok_or_else(|| self.err(at, format!("robot has no link or frame '{name}'")))
    }

    fn relative(&self, at: &str, name: &Option<String>) -> Result<FrameRef, SimError> {
        match name.as_deref() {
            None => Ok(FrameRef::Robot(self.tree.link_frame(self.tree.root))),
            Some("world") => Ok(FrameRef::World),
            Some(n) => Ok(FrameRef::Robot(self.frame(at, n)?)),
        }
    }

    fn prop(&self, at: &str, name: &str) -> Result<usize, SimError> {
        self.props
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| self.err(at, format!("scene has no prop '{name}'")))
    }

    fn joint_name(&self, dof: usize) -> &str {
        &self.tree.dof_joint(dof).name
    }

    fn limits(&self, dof: usize) -> [f64; 2] {
        self.tree
            .dof_joint(dof)
            .limits
            .unwrap_or([f64::NEG_INFINITY, f64::INFINITY])
    }
}

fn non_negative(ctx: &Ctx, at: &str, v: f64) -> Result<(), SimError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(ctx.err(at, format!("{v} must be finite and >= 0")))
    }
}

fn range(ctx: &Ctx, at: &str, r: Option<[f64; 2]>, positive: bool) -> Result<[f64; 2], SimError> {
    let r = r.unwrap_or([1.0, 1.0]);
    if !(r[0].is_finite() && r[1].is_finite() && r[0] <= r[1]) || (positive && r[0] <= 0.0) {
        return Err(ctx.err(
            at,
            format!(
                "[{}, {}] must be finite and ordered{}",
                r[0],
                r[1],
                if positive { ", with low > 0" } else { "" }
            ),
        ));
    }
    Ok(r)
}

fn ordered_box(ctx: &Ctx, at: &str, min: [f64; 3], max: [f64; 3]) -> Result<(), SimError> {
    if min.iter().chain(&max).all(|v| v.is_finite()) && (0..3).all(|i| min[i] <= max[i]) {
        Ok(())
    } else {
        Err(ctx.err(
            at,
            format!("box {min:?}..{max:?} must be finite with min <= max"),
        ))
    }
}

fn frame_label(tree: &RobotTree, r: FrameRef) -> String {
    match r {
        FrameRef::World => "world".into(),
        FrameRef::Robot(f) => tree.frames[f.0 as usize].name.clone(),
    }
}

/// Compiles a `[task]` section against the scene's robots and props.
pub(crate) fn compile(
    path: &Path,
    file: &TaskFile,
    robots: &[RobotInstance],
    props: &[PropModel],
    dt_secs: f64,
) -> Result<TaskModel, SimError> {
    let robot_index = robots
        .iter()
        .position(|r| r.name == file.robot)
        .ok_or_else(|| {
            SimError::scene(
                path,
                "task.robot",
                format!("scene has no robot '{}'", file.robot),
            )
        })?;
    let robot = &robots[robot_index];
    let tree = robot.model.tree.clone().ok_or_else(|| {
        SimError::scene(
            path,
            "task.robot",
            format!(
                "robot '{}' must be a URDF robot (tasks use its kinematic tree)",
                robot.name
            ),
        )
    })?;
    let ctx = Ctx {
        path,
        robot,
        tree: &tree,
        props,
    };
    if robot.script.is_some() {
        return Err(ctx.err(
            "robot",
            format!(
                "robot '{}' has a script; the agent drives the task robot",
                robot.name
            ),
        ));
    }
    if !(file.control_rate_hz.is_finite() && file.control_rate_hz > 0.0) {
        return Err(ctx.err(
            "control_rate_hz",
            format!("{} Hz must be > 0", file.control_rate_hz),
        ));
    }
    let period = 1.0 / file.control_rate_hz;
    let substeps = (period / dt_secs).round();
    if substeps < 1.0 || ((substeps * dt_secs) - period).abs() > 1e-9 * period.max(1.0) + 1e-12 {
        return Err(ctx.err(
            "control_rate_hz",
            format!(
                "the control period {period} s must be a whole number of physics timesteps ({dt_secs} s)"
            ),
        ));
    }
    if !(file.episode_secs.is_finite() && file.episode_secs >= period) {
        return Err(ctx.err(
            "episode_secs",
            format!(
                "{} s must be at least one control period ({period} s)",
                file.episode_secs
            ),
        ));
    }
    let episode_steps = (file.episode_secs / period).round() as u32;
    let robot_name = &robot.name;

    // Actions first: `previous_action` observations need the layout.
    let mut action_space = SpaceLayout::default();
    let mode_of = |d: usize| robot.actuators[d].mode;
    let require_mode = |at: &str, dofs: &[usize], mode: CommandMode| -> Result<(), SimError> {
        for &d in dofs {
            if mode_of(d) != mode {
                return Err(ctx.err(
                    at,
                    format!(
                        "joint '{}' has a {:?} actuator; this action needs {:?} actuators (set robot.joints.{}.mode)",
                        ctx.joint_name(d),
                        mode_of(d),
                        mode,
                        ctx.joint_name(d)
                    ),
                ));
            }
        }
        Ok(())
    };
    let (action, gripper_file) = match &file.action {
        ActionFile::JointPosition { joints, gripper } => {
            let dofs = ctx.dofs("action.joints", joints)?;
            require_mode("action.joints", &dofs, CommandMode::Position)?;
            for &d in &dofs {
                let [lo, hi] = ctx.limits(d);
                if !(lo.is_finite() && hi.is_finite()) {
                    return Err(ctx.err("action.joints", format!("joint '{}' has no position limits; absolute position actions need them", ctx.joint_name(d))));
                }
                action_space.push(
                    format!("{robot_name}/{}/position", ctx.joint_name(d)),
                    lo,
                    hi,
                );
            }
            (ActionKind::JointPosition { dofs }, gripper.as_ref())
        }
        ActionFile::JointPositionDelta {
            joints,
            max_delta,
            gripper,
        } => {
            let dofs = ctx.dofs("action.joints", joints)?;
            require_mode("action.joints", &dofs, CommandMode::Position)?;
            if !(max_delta.is_finite() && *max_delta > 0.0) {
                return Err(ctx.err("action.max_delta", format!("{max_delta} must be > 0")));
            }
            for &d in &dofs {
                action_space.push(
                    format!("{robot_name}/{}/position_delta", ctx.joint_name(d)),
                    -max_delta,
                    *max_delta,
                );
            }
            (ActionKind::JointPositionDelta { dofs }, gripper.as_ref())
        }
        ActionFile::JointTorque { joints, max_effort } => {
            let dofs = ctx.dofs("action.joints", joints)?;
            require_mode("action.joints", &dofs, CommandMode::Torque)?;
            for &d in &dofs {
                let limit = robot.actuators[d].effort_limit;
                let bound = max_effort.unwrap_or(limit);
                if !(bound.is_finite() && bound > 0.0) {
                    return Err(ctx.err("action.max_effort", format!("joint '{}': effort bound {bound} must be finite and > 0 (set max_effort)", ctx.joint_name(d))));
                }
                action_space.push(
                    format!("{robot_name}/{}/effort", ctx.joint_name(d)),
                    -bound,
                    bound,
                );
            }
            (ActionKind::JointTorque { dofs }, None)
        }
        ActionFile::ToolDelta {
            frame,
            max_step,
            workspace_min,
            workspace_max,
            gripper,
        } => {
            let frame_id = ctx.frame("action.frame", frame)?;
            if !(max_step.is_finite() && *max_step > 0.0) {
                return Err(ctx.err("action.max_step", format!("{max_step} m must be > 0")));
            }
            ordered_box(&ctx, "action.workspace_min", *workspace_min, *workspace_max)?;
            let dofs: Vec<usize> = (0..tree.dof_count())
                .filter(|&d| tree.dof_moves_frame(d, frame_id))
                .collect();
            if dofs.is_empty() {
                return Err(ctx.err("action.frame", format!("no joint moves frame '{frame}'")));
            }
            require_mode("action.frame", &dofs, CommandMode::Position)?;
            for axis in ["x", "y", "z"] {
                action_space.push(
                    format!("{robot_name}/{frame}/delta_{axis}"),
                    -max_step,
                    *max_step,
                );
            }
            (
                ActionKind::ToolDelta {
                    frame: frame_id,
                    workspace_min: *workspace_min,
                    workspace_max: *workspace_max,
                    dofs,
                },
                gripper.as_ref(),
            )
        }
    };
    let mut gripper = Vec::new();
    if let Some(g) = gripper_file {
        if g.joints.is_empty() {
            return Err(ctx.err(
                "action.gripper.joints",
                "a gripper needs at least one joint",
            ));
        }
        let used: Vec<usize> = match &action {
            ActionKind::JointPosition { dofs }
            | ActionKind::JointPositionDelta { dofs }
            | ActionKind::JointTorque { dofs }
            | ActionKind::ToolDelta { dofs, .. } => dofs.clone(),
        };
        for (k, j) in g.joints.iter().enumerate() {
            let at = format!("action.gripper.joints[{k}]");
            let dof = ctx.dof(&at, &j.joint)?;
            if used.contains(&dof) || gripper.iter().any(|g: &GripperJoint| g.dof == dof) {
                return Err(ctx.err(
                    at,
                    format!("joint '{}' is already driven by the action", j.joint),
                ));
            }
            require_mode(&at, &[dof], CommandMode::Position)?;
            if !(j.open.is_finite() && j.closed.is_finite()) {
                return Err(ctx.err(at, "open and closed must be finite"));
            }
            gripper.push(GripperJoint {
                dof,
                open: j.open,
                closed: j.closed,
            });
        }
        action_space.push(format!("{robot_name}/gripper/close"), 0.0, 1.0);
    }

    let mut observation_space = SpaceLayout::default();
    let mut observations = Vec::new();
    for (i, o) in file.observations.iter().enumerate() {
        let at = format!("observation[{i}]");
        let xyz = |space: &mut SpaceLayout, prefix: String| {
            for axis in ["x", "y", "z"] {
                space.push(format!("{prefix}/{axis}"), f64::NEG_INFINITY, f64::INFINITY);
            }
        };
        let term = match o {
            ObservationFile::JointPosition { joints, noise_std } => {
                non_negative(&ctx, &format!("{at}.noise_std"), *noise_std)?;
                let dofs = ctx.dofs(&format!("{at}.joints"), joints)?;
                for &d in &dofs {
                    let [lo, hi] = ctx.limits(d);
                    observation_space.push(
                        format!("{robot_name}/{}/position", ctx.joint_name(d)),
                        lo,
                        hi,
                    );
                }
                ObservationTerm::JointPosition {
                    dofs,
                    noise_std: *noise_std,
                }
            }
            ObservationFile::JointVelocity { joints, noise_std } => {
                non_negative(&ctx, &format!("{at}.noise_std"), *noise_std)?;
                let dofs = ctx.dofs(&format!("{at}.joints"), joints)?;
                for &d in &dofs {
                    observation_space.push(
                        format!("{robot_name}/{}/velocity", ctx.joint_name(d)),
                        f64::NEG_INFINITY,
                        f64::INFINITY,
                    );
                }
                ObservationTerm::JointVelocity {
                    dofs,
                    noise_std: *noise_std,
                }
            }
            ObservationFile::FramePosition {
                frame,
                relative_to,
                noise_std,
            } => {
                non_negative(&ctx, &format!("{at}.noise_std"), *noise_std)?;
                let f = ctx.frame(&format!("{at}.frame"), frame)?;
                let r = ctx.relative(&format!("{at}.relative_to"), relative_to)?;
                xyz(
                    &mut observation_space,
                    format!("{robot_name}/{frame}/position_in_{}", frame_label(&tree, r)),
                );
                ObservationTerm::FramePosition {
                    frame: f,
                    relative_to: r,
                    noise_std: *noise_std,
                }
            }
            ObservationFile::ObjectPosition {
                object,
                relative_to,
                noise_std,
            } => {
                non_negative(&ctx, &format!("{at}.noise_std"), *noise_std)?;
                let p = ctx.prop(&format!("{at}.object"), object)?;
                let r = ctx.relative(&format!("{at}.relative_to"), relative_to)?;
                xyz(
                    &mut observation_space,
                    format!("{object}/position_in_{}", frame_label(&tree, r)),
                );
                ObservationTerm::ObjectPosition {
                    prop: p,
                    relative_to: r,
                    noise_std: *noise_std,
                }
            }
            ObservationFile::ObjectRotation {
                object,
                relative_to,
            } => {
                let p = ctx.prop(&format!("{at}.object"), object)?;
                let r = ctx.relative(&format!("{at}.relative_to"), relative_to)?;
                for c in ["r00", "r10", "r20", "r01", "r11", "r21"] {
                    observation_space.push(
                        format!("{object}/rotation_in_{}/{c}", frame_label(&tree, r)),
                        -1.0,
                        1.0,
                    );
                }
                ObservationTerm::ObjectRotation {
                    prop: p,
                    relative_to: r,
                }
            }
            ObservationFile::TargetPosition { relative_to } => {
                if file.target.is_none() {
                    return Err(ctx.err(at, "target_position needs a [task.target] section"));
                }
                let r = ctx.relative(&format!("{at}.relative_to"), relative_to)?;
                xyz(
                    &mut observation_space,
                    format!("target/position_in_{}", frame_label(&tree, r)),
                );
                ObservationTerm::TargetPosition { relative_to: r }
            }
            ObservationFile::TargetError { frame } => {
                if file.target.is_none() {
                    return Err(ctx.err(at, "target_error needs a [task.target] section"));
                }
                let f = ctx.frame(&format!("{at}.frame"), frame)?;
                xyz(&mut observation_space, format!("target/minus_{frame}"));
                ObservationTerm::TargetError { frame: f }
            }
            ObservationFile::ObjectTargetError { object } => {
                if file.target.is_none() {
                    return Err(ctx.err(at, "object_target_error needs a [task.target] section"));
                }
                let p = ctx.prop(&format!("{at}.object"), object)?;
                xyz(&mut observation_space, format!("target/minus_{object}"));
                ObservationTerm::ObjectTargetError { prop: p }
            }
            ObservationFile::ObjectFrameError { object, frame } => {
                let p = ctx.prop(&format!("{at}.object"), object)?;
                let f = ctx.frame(&format!("{at}.frame"), frame)?;
                xyz(&mut observation_space, format!("{object}/minus_{frame}"));
                ObservationTerm::ObjectFrameError { prop: p, frame: f }
            }
            ObservationFile::PreviousAction => {
                for k in 0..action_space.dim() {
                    observation_space.push(
                        format!("previous_action/{}", action_space.names[k]),
                        f64::from(action_space.low[k]),
                        f64::from(action_space.high[k]),
                    );
                }
                ObservationTerm::PreviousAction
            }
        };
        observations.push(term);
    }
    if observations.is_empty() {
        return Err(ctx.err("observation", "a task needs at least one observation term"));
    }
    {
        let mut sorted = observation_space.names.clone();
        sorted.sort();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(ctx.err(
                "observation",
                format!("observation '{}' appears twice", w[0]),
            ));
        }
    }

    let mut rewards = Vec::new();
    for (i, r) in file.rewards.iter().enumerate() {
        let at = format!("reward[{i}]");
        if !r.weight.is_finite() {
            return Err(ctx.err(format!("{at}.weight"), "must be finite"));
        }
        if let Some(s) = r.tanh_scale
            && !(s.is_finite() && s > 0.0)
        {
            return Err(ctx.err(format!("{at}.tanh_scale"), format!("{s} m must be > 0")));
        }
        let needs = |what: &str, v: &Option<String>| -> Result<String, SimError> {
            v.clone().ok_or_else(|| {
                ctx.err(
                    format!("{at}.{what}"),
                    format!("term '{:?}' needs `{what}`", r.term),
                )
            })
        };
        let unused = |what: &str, present: bool| -> Result<(), SimError> {
            if present {
                Err(ctx.err(
                    format!("{at}.{what}"),
                    format!("term '{:?}' does not use `{what}`", r.term),
                ))
            } else {
                Ok(())
            }
        };
        let is_distance = matches!(
            r.term,
            RewardTerm::FrameTargetDistance
                | RewardTerm::ObjectTargetDistance
                | RewardTerm::FrameObjectDistance
        );
        unused("tanh_scale", !is_distance && r.tanh_scale.is_some())?;
        let uses_frame = matches!(
            r.term,
            RewardTerm::FrameTargetDistance | RewardTerm::FrameObjectDistance
        );
        let uses_object = matches!(
            r.term,
            RewardTerm::ObjectTargetDistance | RewardTerm::FrameObjectDistance
        );
        unused("frame", !uses_frame && r.frame.is_some())?;
        unused("object", !uses_object && r.object.is_some())?;
        unused(
            "joint",
            r.term != RewardTerm::JointPositionSquared && r.joint.is_some(),
        )?;
        let needs_target = matches!(
            r.term,
            RewardTerm::FrameTargetDistance | RewardTerm::ObjectTargetDistance
        );
        if needs_target && file.target.is_none() {
            return Err(ctx.err(at, "this term needs a [task.target] section"));
        }
        let model = match r.term {
            RewardTerm::Alive => RewardModel::Alive,
            RewardTerm::Success => RewardModel::Success,
            RewardTerm::FrameTargetDistance => RewardModel::FrameTargetDistance(
                ctx.frame(&format!("{at}.frame"), &needs("frame", &r.frame)?)?,
                r.tanh_scale,
            ),
            RewardTerm::ObjectTargetDistance => RewardModel::ObjectTargetDistance(
                ctx.prop(&format!("{at}.object"), &needs("object", &r.object)?)?,
                r.tanh_scale,
            ),
            RewardTerm::FrameObjectDistance => RewardModel::FrameObjectDistance(
                ctx.frame(&format!("{at}.frame"), &needs("frame", &r.frame)?)?,
                ctx.prop(&format!("{at}.object"), &needs("object", &r.object)?)?,
                r.tanh_scale,
            ),
            RewardTerm::JointPositionSquared => RewardModel::JointPositionSquared(
                ctx.dof(&format!("{at}.joint"), &needs("joint", &r.joint)?)?,
            ),
            RewardTerm::JointVelocitySquared => RewardModel::JointVelocitySquared,
            RewardTerm::ActionSquared => RewardModel::ActionSquared,
            RewardTerm::ActionRateSquared => RewardModel::ActionRateSquared,
        };
        rewards.push((r.weight, model));
    }

    let mut terminations = Vec::new();
    for (i, t) in file.terminations.iter().enumerate() {
        let at = format!("termination[{i}]");
        terminations.push(match t {
            TerminationFile::JointOutOfRange { joint, min, max } => {
                if !(min.is_finite() && max.is_finite() && min < max) {
                    return Err(
                        ctx.err(at, format!("[{min}, {max}] must be finite with min < max"))
                    );
                }
                TerminationModel::JointOutOfRange {
                    dof: ctx.dof(&format!("{at}.joint"), joint)?,
                    min: *min,
                    max: *max,
                }
            }
            TerminationFile::ObjectOutOfBounds {
                object,
                min_z,
                max_radius,
            } => {
                if !(min_z.is_finite() && max_radius.is_finite() && *max_radius > 0.0) {
                    return Err(ctx.err(at, "min_z must be finite and max_radius > 0"));
                }
                TerminationModel::ObjectOutOfBounds {
                    prop: ctx.prop(&format!("{at}.object"), object)?,
                    min_z: *min_z,
                    max_radius: *max_radius,
                }
            }
        });
    }

    let hold = |at: &str, secs: f64| -> Result<u32, SimError> {
        non_negative(&ctx, at, secs)?;
        Ok((secs / period).round() as u32)
    };
    let success = match &file.success {
        SuccessFile::Survive => SuccessModel::Survive,
        SuccessFile::FrameAtTarget {
            frame,
            tolerance,
            hold_secs,
        } => {
            if file.target.is_none() {
                return Err(ctx.err("success", "frame_at_target needs a [task.target] section"));
            }
            if !(tolerance.is_finite() && *tolerance > 0.0) {
                return Err(ctx.err("success.tolerance", format!("{tolerance} m must be > 0")));
            }
            SuccessModel::FrameAtTarget {
                frame: ctx.frame("success.frame", frame)?,
                tolerance: *tolerance,
                hold_steps: hold("success.hold_secs", *hold_secs)?,
            }
        }
        SuccessFile::ObjectAtTarget {
            object,
            tolerance_xy,
            tolerance_z,
            hold_secs,
            clear_of,
            clearance,
        } => {
            if file.target.is_none() {
                return Err(ctx.err("success", "object_at_target needs a [task.target] section"));
            }
            for (name, v) in [("tolerance_xy", tolerance_xy), ("tolerance_z", tolerance_z)] {
                if !(v.is_finite() && *v > 0.0) {
                    return Err(ctx.err(format!("success.{name}"), format!("{v} m must be > 0")));
                }
            }
            non_negative(&ctx, "success.clearance", *clearance)?;
            SuccessModel::ObjectAtTarget {
                prop: ctx.prop("success.object", object)?,
                tolerance_xy: *tolerance_xy,
                tolerance_z: *tolerance_z,
                hold_steps: hold("success.hold_secs", *hold_secs)?,
                clear_of: match clear_of {
                    Some(f) => Some((ctx.frame("success.clear_of", f)?, *clearance)),
                    None => None,
                },
            }
        }
    };

    let target = match &file.target {
        None => None,
        Some(t) => {
            ordered_box(&ctx, "target.min", t.min, t.max)?;
            non_negative(&ctx, "target.min_distance", t.min_distance)?;
            let keep_away_from = t
                .keep_away_from
                .iter()
                .map(|o| ctx.prop("target.keep_away_from", o))
                .collect::<Result<Vec<_>, _>>()?;
            Some(TargetModel {
                min: t.min,
                max: t.max,
                min_distance: t.min_distance,
                keep_away_from,
            })
        }
    };

    let randomize = randomize_model(&ctx, &file.randomize, dt_secs)?;
    let expert = match &file.expert {
        None => None,
        Some(ExpertFile::PickPlace {
            object,
            grasp_height,
            approach_height,
            grip_secs,
        }) => {
            if !matches!(action, ActionKind::ToolDelta { .. }) || gripper.is_empty() {
                return Err(ctx.err(
                    "expert",
                    "the pick_place expert needs a tool_delta action with a gripper",
                ));
            }
            if target.is_none() {
                return Err(ctx.err(
                    "expert",
                    "the pick_place expert needs a [task.target] section",
                ));
            }
            if !grasp_height.is_finite() {
                return Err(ctx.err(
                    "expert.grasp_height",
                    format!("{grasp_height} m must be finite"),
                ));
            }
            for (name, v) in [
                ("approach_height", approach_height),
                ("grip_secs", grip_secs),
            ] {
                non_negative(&ctx, &format!("expert.{name}"), *v)?;
            }
            Some(ExpertModel::PickPlace {
                prop: ctx.prop("expert.object", object)?,
                grasp_height: *grasp_height,
                approach_height: *approach_height,
                grip_steps: hold("expert.grip_secs", *grip_secs)?.max(1),
            })
        }
    };
    for p in randomize.placements.iter().map(|p| p.prop) {
        if !props[p].dynamic {
            return Err(ctx.err(
                "randomize.object_placement",
                format!(
                    "prop '{}' is static; only dynamic props can be placed",
                    props[p].name
                ),
            ));
        }
    }

    Ok(TaskModel {
        robot: robot_index,
        tree,
        substeps: substeps as u32,
        control_period_secs: period,
        episode_steps,
        observations,
        observation_space,
        action,
        gripper,
        action_space,
        rewards,
        terminations,
        success,
        target,
        randomize,
        expert,
        train: file.train.clone(),
    })
}

fn randomize_model(ctx: &Ctx, r: &RandomizeFile, dt_secs: f64) -> Result<RandomizeModel, SimError> {
    non_negative(
        ctx,
        "randomize.initial_joint_offset",
        r.initial_joint_offset,
    )?;
    non_negative(
        ctx,
        "randomize.initial_joint_velocity",
        r.initial_joint_velocity,
    )?;
    let mut placements = Vec::new();
    for (i, p) in r.object_placement.iter().enumerate() {
        let at = format!("randomize.object_placement[{i}]");
        ordered_box(ctx, &at, p.offset_min, p.offset_max)?;
        non_negative(ctx, &format!("{at}.yaw"), p.yaw)?;
        placements.push(PlacementModel {
            prop: ctx.prop(&format!("{at}.object"), &p.object)?,
            offset_min: p.offset_min,
            offset_max: p.offset_max,
            yaw: p.yaw,
        });
    }
    let latency = match r.control_latency_secs {
        None => [0, 0],
        Some([lo, hi]) => {
            if !(lo.is_finite() && hi.is_finite() && 0.0 <= lo && lo <= hi && hi <= 1.0) {
                return Err(ctx.err(
                    "randomize.control_latency_secs",
                    format!("[{lo}, {hi}] s must be ordered within [0, 1]"),
                ));
            }
            [(lo / dt_secs).round() as u32, (hi / dt_secs).round() as u32]
        }
    };
    Ok(RandomizeModel {
        initial_joint_offset: r.initial_joint_offset,
        initial_joint_velocity: r.initial_joint_velocity,
        placements,
        object_mass_scale: range(
            ctx,
            "randomize.object_mass_scale",
            r.object_mass_scale,
            true,
        )?,
        link_mass_scale: range(ctx, "randomize.link_mass_scale", r.link_mass_scale, true)?,
        friction_scale: range(ctx, "randomize.friction_scale", r.friction_scale, false)?,
        joint_damping_scale: range(
            ctx,
            "randomize.joint_damping_scale",
            r.joint_damping_scale,
            false,
        )?,
        actuator_gain_scale: range(
            ctx,
            "randomize.actuator_gain_scale",
            r.actuator_gain_scale,
            true,
        )?,
        latency_steps: latency,
        observation_noise_scale: range(
            ctx,
            "randomize.observation_noise_scale",
            r.observation_noise_scale,
            false,
        )?,
    })
    .and_then(|m| {
        if m.friction_scale[0] < 0.0
            || m.joint_damping_scale[0] < 0.0
            || m.observation_noise_scale[0] < 0.0
        {
            Err(ctx.err("randomize", "scale ranges must be >= 0"))
        } else {
            let _ = ctx.robot;
            Ok(m)
        }
    })
}
