//! A pick-and-place sequencer: IK, joint-space and Cartesian straight-line trajectories and a
//! parallel gripper, as one position-mode [`Controller`].
//!
//! For each task the arm moves in joint space (quintic, rest to rest, timed from the joints'
//! velocity limits) to a pre-grasp pose above the object, descends in a straight line (IK at
//! every control step, warm-started from the previous solution), closes the gripper, lifts,
//! moves above the place pose, lowers, opens and retreats; after the last task it returns home.
//! The object's pose is supplied by the caller while a task runs ([`PickPlace::object_wanted`],
//! [`PickPlace::set_object_pose`]): a perception module on a robot, the simulator's ground
//! truth in simulation. The grasp is measured when the gripper has closed, so the place pose
//! compensates for where the object actually sits between the fingers.

use std::sync::Arc;

use nalgebra::{Isometry3, Translation3, UnitQuaternion, Vector3};

use crate::command::{CommandMode, Controller, JointStateView, Target};
use crate::ik::{IkError, IkOptions, IkSolver, IkTarget};
use crate::model::{FrameId, RobotTree, TreeData};
use crate::trajectory::{CartesianLine, min_jerk};

/// Sequencer settings.
#[derive(Clone, Debug)]
pub struct PickPlaceConfig {
    /// The tool frame (centre of the grasp; +z is the approach direction, the fingers close
    /// along +y).
    pub tool_frame: FrameId,
    /// Gripper coordinates, with their open and closed positions (rad or m).
    pub gripper: Vec<(usize, f64, f64)>,
    /// Height of the pre-grasp and pre-place poses above the grasp and place poses (m).
    pub approach_height: f64,
    /// Straight-line speed for approach and retreat (m/s, average).
    pub cartesian_speed: f64,
    /// Fraction of each joint's velocity limit used by joint-space moves.
    pub joint_speed_fraction: f64,
    /// Time to close or open the gripper (s).
    pub grip_secs: f64,
    /// Release height of the object above its place pose (m).
    pub release_height: f64,
    /// Home configuration (all coordinates), reached at the end.
    pub home: Vec<f64>,
}

/// One pick-and-place task: which object and where it must end up.
#[derive(Clone, Debug, PartialEq)]
pub struct PickPlaceTask {
    /// Caller's object index (handed back by [`PickPlace::object_wanted`]).
    pub object: usize,
    /// Target pose of the object in the root frame.
    pub place: Isometry3<f64>,
}

/// Where the sequencer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Joint move above the object.
    ToPreGrasp,
    /// Straight line down to the grasp.
    Descend,
    /// Closing the gripper.
    Close,
    /// Straight line up with the object.
    Lift,
    /// Joint move above the place pose.
    ToPrePlace,
    /// Straight line down to the release height.
    Lower,
    /// Opening the gripper.
    Open,
    /// Straight line up without the object.
    Retreat,
    /// Joint move home after the last task.
    Home,
    /// Finished (holds the home configuration).
    Done,
    /// Stopped because a pose was out of reach (holds the last command).
    Failed,
}

/// Motion of the current phase.
#[derive(Clone, Debug)]
enum Motion {
    /// Rest-to-rest quintic in joint space from `from` to `to`.
    Joint { from: Vec<f64>, to: Vec<f64> },
    /// Straight line of the tool, tracked through IK.
    Line(CartesianLine),
    /// Arm still at `hold`, gripper from `from` to `to` (fractions of open).
    Grip { from: f64, to: f64 },
}

/// The sequencer. Implements [`Controller`] in position mode over all coordinates.
pub struct PickPlace {
    tree: Arc<RobotTree>,
    config: PickPlaceConfig,
    tasks: Vec<PickPlaceTask>,
    ik: IkSolver,
    data: TreeData,
    task: usize,
    phase: Phase,
    motion: Motion,
    start_secs: Option<f64>,
    duration_secs: f64,
    /// Arm configuration the current phase holds or starts from.
    hold: Vec<f64>,
    /// Gripper opening as a fraction (1 = open).
    grip: f64,
    object_pose: Option<Isometry3<f64>>,
    /// Tool pose in the object frame, measured after closing.
    tool_in_object: Option<Isometry3<f64>>,
    scratch: Vec<f64>,
    /// Last IK solution along a straight line (the next step's warm start).
    line_q: Vec<f64>,
    failure: Option<String>,
    /// When the first coordinate turns the arm about the root's vertical axis: the sign of that
    /// turn and the azimuth of the tool at home (seeds for IK, see [`PickPlace::solve`]).
    base_turn: Option<(f64, f64)>,
}

impl PickPlace {
    /// A sequencer for `tasks`. Returns an error when the configuration does not fit the tree.
    pub fn new(
        tree: Arc<RobotTree>,
        config: PickPlaceConfig,
        tasks: Vec<PickPlaceTask>,
    ) -> Result<Self, String> {
        let n = tree.dof_count();
        if config.home.len() != n {
            return Err(format!(
                "home has {} values, the robot {n}",
                config.home.len()
            ));
        }
        if config.gripper.iter().any(|&(d, _, _)| d >= n) {
            return Err("a gripper coordinate is out of range".into());
        }
        for (name, v) in [
            ("approach_height", config.approach_height),
            ("cartesian_speed", config.cartesian_speed),
            ("joint_speed_fraction", config.joint_speed_fraction),
            ("grip_secs", config.grip_secs),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("{name} = {v} must be finite and > 0"));
            }
        }
        let options = IkOptions {
            position_tolerance: 1e-5,
            orientation_tolerance: 1e-4,
            ..IkOptions::default()
        };
        let ik = IkSolver::new(&tree, config.tool_frame, options);
        let mut data = tree.data();
        let first = tree.dof_joint(0);
        tree.forward_kinematics(&config.home, &mut data);
        let axis = tree
            .frame_pose(tree.link_frame(first.parent), &data)
            .rotation
            * (first.origin.rotation * first.axis);
        let base_turn = (first.kind != crate::model::JointKind::Prismatic && axis.z.abs() > 0.999)
            .then(|| {
                let tool = tree.frame_pose(config.tool_frame, &data).translation.vector;
                (
                    if first.axis.z >= 0.0 { 1.0 } else { -1.0 },
                    tool.y.atan2(tool.x),
                )
            });
        let home = config.home.clone();
        Ok(Self {
            ik,
            data,
            task: 0,
            phase: if tasks.is_empty() {
                Phase::Home
            } else {
                Phase::ToPreGrasp
            },
            motion: Motion::Joint {
                from: home.clone(),
                to: home.clone(),
            },
            start_secs: None,
            duration_secs: 0.0,
            hold: home,
            grip: 1.0,
            object_pose: None,
            tool_in_object: None,
            scratch: vec![0.0; n],
            line_q: vec![0.0; n],
            failure: None,
            base_turn,
            tree,
            config,
            tasks,
        })
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Index of the task in progress (equals the task count when all are done).
    pub fn task_index(&self) -> usize {
        self.task
    }

    /// Why the sequencer stopped, if it failed.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// The object whose pose the sequencer needs now (the current task's), if any.
    pub fn object_wanted(&self) -> Option<usize> {
        match self.phase {
            Phase::Home | Phase::Done | Phase::Failed => None,
            _ => self.tasks.get(self.task).map(|t| t.object),
        }
    }

    /// Supplies the current pose of the object returned by [`PickPlace::object_wanted`].
    pub fn set_object_pose(&mut self, pose: Isometry3<f64>) {
        self.object_pose = Some(pose);
    }

    /// Tool pose of the configuration the current phase starts from.
    fn hold_tool_pose(&mut self) -> Isometry3<f64> {
        self.tree.forward_kinematics(&self.hold, &mut self.data);
        self.tree.frame_pose(self.config.tool_frame, &self.data)
    }

    /// IK for a tool pose. Seeds: `from` (the current configuration) and the home
    /// configuration turned about the base towards the target (when the first coordinate is a
    /// revolute joint about the root's vertical axis, as on most arms), which keeps the arm in
    /// the home configuration's elbow and wrist branch. With `symmetric`, the pose turned half a
    /// turn about the approach axis is tried too (a parallel gripper is symmetric). Among the
    /// converged solutions, the one closest to `from` (sum of absolute joint changes) wins.
    fn solve(
        &mut self,
        pose: &Isometry3<f64>,
        from: &[f64],
        symmetric: bool,
    ) -> Result<Vec<f64>, IkError> {
        let n = from.len();
        let mut seeds = vec![from.to_vec()];
        if let Some((sign, home_azimuth)) = self.base_turn {
            let target = &pose.translation.vector;
            let turn = target.y.atan2(target.x) - home_azimuth;
            let limits = self.tree.dof_joint(0).limits;
            for k in [-1.0, 0.0, 1.0] {
                let mut seed = self.config.home.clone();
                seed[0] += sign * turn + k * std::f64::consts::TAU;
                if let Some([lo, hi]) = limits
                    && (seed[0] < lo || seed[0] > hi)
                {
                    continue;
                }
                seeds.push(seed);
            }
        }
        let mut best: Option<(f64, Vec<f64>)> = None;
        let mut last_err = None;
        let flips: &[f64] = if symmetric {
            &[0.0, std::f64::consts::PI]
        } else {
            &[0.0]
        };
        for seed in &seeds {
            for &flip in flips {
                let target = pose * UnitQuaternion::from_axis_angle(&Vector3::z_axis(), flip);
                let mut q = vec![0.0; n];
                let r = self
                    .ik
                    .solve(&self.tree, &IkTarget::Pose(target), seed, &mut q);
                match r {
                    Ok(_) => {
                        let dist: f64 = q.iter().zip(from).map(|(a, b)| (a - b).abs()).sum();
                        if best.as_ref().is_none_or(|(d, _)| dist < *d) {
                            best = Some((dist, q));
                        }
                    }
                    Err(e) => last_err = Some(e),
                }
            }
        }
        best.map(|(_, q)| q)
            .ok_or_else(|| last_err.expect("one attempt failed"))
    }

    fn fail(&mut self, why: String) {
        self.failure = Some(why);
        self.phase = Phase::Failed;
    }

    /// Starts `phase` at time `t` from arm configuration `self.hold`.
    fn enter(&mut self, phase: Phase, t: f64) {
        self.phase = phase;
        self.start_secs = Some(t);
        let up = Translation3::new(0.0, 0.0, self.config.approach_height);
        let result: Result<(), String> = (|| {
            match phase {
                Phase::ToPreGrasp => {
                    let Some(object) = self.object_pose else {
                        // Wait (holding still) until the caller supplies the object's pose.
                        self.start_secs = None;
                        self.motion = Motion::Joint {
                            from: self.hold.clone(),
                            to: self.hold.clone(),
                        };
                        self.duration_secs = 0.0;
                        return Ok(());
                    };
                    // Tool pointing down onto the object's top, fingers across its width.
                    let grasp = object
                        * UnitQuaternion::from_axis_angle(&Vector3::x_axis(), std::f64::consts::PI);
                    let pre = up * grasp;
                    let from = self.hold.clone();
                    let to = self
                        .solve(&pre, &from, true)
                        .map_err(|e| format!("pre-grasp: {e}"))?;
                    self.joint_move(from, to);
                }
                Phase::Descend | Phase::Lower => {
                    let from = self.hold_tool_pose();
                    let to = Translation3::new(0.0, 0.0, -self.config.approach_height) * from;
                    self.line(from, to);
                }
                Phase::Lift | Phase::Retreat => {
                    let from = self.hold_tool_pose();
                    self.line(from, up * from);
                }
                Phase::Close => {
                    let tool = self.hold_tool_pose();
                    if let Some(object) = self.object_pose {
                        self.tool_in_object = Some(object.inverse() * tool);
                    }
                    self.motion = Motion::Grip { from: 1.0, to: 0.0 };
                    self.duration_secs = self.config.grip_secs;
                }
                Phase::Open => {
                    self.motion = Motion::Grip { from: 0.0, to: 1.0 };
                    self.duration_secs = self.config.grip_secs;
                }
                Phase::ToPrePlace => {
                    let place = self.tasks[self.task].place;
                    let tool_in_object = match (self.object_pose, self.tool_in_object) {
                        // Measure the grasp now that the object is lifted and settled.
                        (Some(object), _) => object.inverse() * self.hold_tool_pose(),
                        (None, Some(t)) => t,
                        (None, None) => return Err("no grasp".into()),
                    };
                    self.tool_in_object = Some(tool_in_object);
                    let release = Translation3::new(0.0, 0.0, self.config.release_height) * place;
                    let pre = up * release * tool_in_object;
                    let from = self.hold.clone();
                    let to = self
                        .solve(&pre, &from, false)
                        .map_err(|e| format!("pre-place: {e}"))?;
                    self.joint_move(from, to);
                }
                Phase::Home => {
                    let from = self.hold.clone();
                    let to = self.config.home.clone();
                    self.joint_move(from, to);
                }
                Phase::Done | Phase::Failed => {
                    self.motion = Motion::Joint {
                        from: self.hold.clone(),
                        to: self.hold.clone(),
                    };
                    self.duration_secs = 0.0;
                }
            }
            Ok(())
        })();
        if let Err(why) = result {
            self.fail(format!("task {}: {why}", self.task));
        }
    }

    fn joint_move(&mut self, from: Vec<f64>, to: Vec<f64>) {
        // Min-jerk peaks at 1.875x the average speed.
        let mut duration: f64 = 0.2;
        for (d, (a, b)) in from.iter().zip(&to).enumerate() {
            let limit = self.tree.dof_joint(d).velocity_limit.unwrap_or(1.0)
                * self.config.joint_speed_fraction;
            duration = duration.max(1.875 * (b - a).abs() / limit);
        }
        self.duration_secs = duration;
        self.motion = Motion::Joint { from, to };
    }

    fn line(&mut self, from: Isometry3<f64>, to: Isometry3<f64>) {
        self.line_q.copy_from_slice(&self.hold);
        let line = CartesianLine::at_speed(from, to, self.config.cartesian_speed, 0.2);
        self.duration_secs = line.duration_secs();
        self.motion = Motion::Line(line);
    }

    fn next_phase(&self) -> Phase {
        match self.phase {
            Phase::ToPreGrasp => Phase::Descend,
            Phase::Descend => Phase::Close,
            Phase::Close => Phase::Lift,
            Phase::Lift => Phase::ToPrePlace,
            Phase::ToPrePlace => Phase::Lower,
            Phase::Lower => Phase::Open,
            Phase::Open => Phase::Retreat,
            Phase::Retreat => {
                // `task` has already moved on to the next task.
                if self.task < self.tasks.len() {
                    Phase::ToPreGrasp
                } else {
                    Phase::Home
                }
            }
            Phase::Home | Phase::Done => Phase::Done,
            Phase::Failed => Phase::Failed,
        }
    }

    /// Writes the arm configuration for phase progress `u` in [0, 1] into `out`.
    fn sample(&mut self, u: f64, out: &mut [f64]) {
        match &self.motion {
            Motion::Joint { from, to } => {
                let (s, _) = min_jerk(u);
                for (o, (a, b)) in out.iter_mut().zip(from.iter().zip(to)) {
                    *o = a + (b - a) * s;
                }
            }
            Motion::Grip { .. } => out.copy_from_slice(&self.hold),
            Motion::Line(line) => {
                if let Err(e) = line.track(u, &self.tree, &mut self.ik, &mut self.line_q, out) {
                    // Keep the configuration the phase started from, not IK's best guess.
                    out.copy_from_slice(&self.hold);
                    let why = format!("task {}: straight line: {e}", self.task);
                    self.fail(why);
                }
            }
        }
    }
}

impl Controller for PickPlace {
    fn mode(&self) -> CommandMode {
        CommandMode::Position
    }

    fn update(
        &mut self,
        _state: &JointStateView<'_>,
        _target: &Target<'_>,
        time_secs: f64,
        command_out: &mut [f64],
    ) {
        if self.start_secs.is_none() {
            let phase = self.phase;
            self.enter(phase, time_secs);
        }
        // Advance through finished phases (a phase entered at t may already be over).
        while let Some(start) = self.start_secs {
            if matches!(self.phase, Phase::Done | Phase::Failed)
                || time_secs < start + self.duration_secs
            {
                break;
            }
            // The phase's end configuration becomes the next phase's start.
            match self.motion {
                Motion::Grip { to, .. } => self.grip = to,
                _ => {
                    let mut end = std::mem::take(&mut self.scratch);
                    end.copy_from_slice(&self.hold);
                    self.sample(1.0, &mut end);
                    self.scratch = std::mem::replace(&mut self.hold, end);
                }
            }
            if self.phase == Phase::Retreat {
                self.task += 1;
                self.tool_in_object = None;
                self.object_pose = None;
            }
            let next = self.next_phase();
            let entered_at = start + self.duration_secs;
            self.enter(next, entered_at);
            if self.phase == Phase::Failed {
                break;
            }
        }
        let start = self.start_secs.unwrap_or(time_secs);
        let u = if self.duration_secs > 0.0 {
            ((time_secs - start) / self.duration_secs).clamp(0.0, 1.0)
        } else {
            1.0
        };
        if self.phase == Phase::Failed {
            command_out.copy_from_slice(&self.hold);
        } else {
            command_out.copy_from_slice(&self.hold);
            self.sample(u, command_out);
            if self.phase == Phase::Failed {
                command_out.copy_from_slice(&self.hold);
            }
        }
        let grip = match self.motion {
            Motion::Grip { from, to } => from + (to - from) * min_jerk(u).0,
            _ => self.grip,
        };
        for &(d, open, closed) in &self.config.gripper {
            command_out[d] = closed + (open - closed) * grip;
        }
    }

    fn reset(&mut self) {
        self.task = 0;
        self.phase = if self.tasks.is_empty() {
            Phase::Home
        } else {
            Phase::ToPreGrasp
        };
        self.start_secs = None;
        self.hold = self.config.home.clone();
        self.grip = 1.0;
        self.object_pose = None;
        self.tool_in_object = None;
        self.failure = None;
    }
}
