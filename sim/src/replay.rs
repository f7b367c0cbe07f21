//! Recorded robot episodes replayed in simulation, and the gap between the two.
//!
//! An [`Episode`] is what a robot recorded, as plain numbers: measured joint states at their
//! times, and the commands its controller sent at theirs. [`Replay`] maps it onto a scene's
//! robot; [`Replay::run`] puts the simulated robot in the recorded initial state and plays the
//! recorded commands at their recorded times through the scene's actuators (command latency,
//! limits, gains, friction: everything the scene and its overlays set), sampling the simulated
//! joints at the recorded state times. [`gap`] compares the two.
//!
//! Times are seconds from the episode's first state. A command applies from the first physics
//! step that starts at or after its time plus the robot's `command_latency_secs`. The replay
//! applies that latency exactly, not rounded to whole steps as `World` does: a robot's latency
//! is rarely a multiple of the simulator's step, and identification (`rivet sysid`) needs the
//! gap to change smoothly with it. Nothing here touches files or the wire: the CLI decodes MCAP into an `Episode`.

use std::sync::Arc;

use rivet_control::{CommandMode, RobotTree};

use crate::env::{SuccessModel, TerminationModel};
use crate::robot::DofId;
use crate::{Scene, World, WorldOptions};

/// What one command tells the actuators.
#[derive(Clone, Debug, PartialEq)]
pub enum CommandValue {
    /// One value per command joint, held until the next command (ros2_control's forward
    /// command controllers).
    Hold(Vec<f64>),
    /// Waypoints `(time from start (s), positions)`, followed by linear interpolation from the
    /// current targets, starting when the command applies (a joint trajectory controller).
    Trajectory(Vec<(f64, Vec<f64>)>),
}

/// Turns commands into per-step targets: holds forward commands, interpolates trajectories.
/// Used by `rivet robot serve` and by replays, so both treat commands alike.
#[derive(Clone, Debug)]
pub struct CommandPlayer {
    held: Vec<f64>,
    following: Option<Following>,
}

/// A trajectory being followed: its waypoints, when it started, the targets it started from.
#[derive(Clone, Debug)]
struct Following {
    points: Vec<(f64, Vec<f64>)>,
    start: f64,
    from: Vec<f64>,
}

impl CommandPlayer {
    /// Starts holding `initial` (one value per command joint).
    pub fn new(initial: &[f64]) -> Self {
        Self {
            held: initial.to_vec(),
            following: None,
        }
    }

    /// Applies `command` at time `t` (s). Values of the wrong length are the caller's error
    /// to reject before; here they are ignored.
    pub fn apply(&mut self, command: &CommandValue, t: f64) {
        match command {
            CommandValue::Hold(values) => {
                if values.len() == self.held.len() {
                    self.held.copy_from_slice(values);
                    self.following = None;
                }
            }
            CommandValue::Trajectory(points) => {
                if points.iter().all(|(_, p)| p.len() == self.held.len()) {
                    self.following = Some(Following {
                        points: points.clone(),
                        start: t,
                        from: self.held.clone(),
                    });
                }
            }
        }
    }

    /// The targets at time `t` (s), one per command joint.
    pub fn targets(&mut self, t: f64) -> &[f64] {
        if let Some(Following {
            points,
            start,
            from,
        }) = &self.following
        {
            let tau = t - start;
            let (mut prev_t, mut prev): (f64, &[f64]) = (0.0, from);
            let mut done = true;
            for (pt, positions) in points {
                if tau <= *pt {
                    let s = if *pt > prev_t {
                        ((tau - prev_t) / (pt - prev_t)).clamp(0.0, 1.0)
                    } else {
                        1.0
                    };
                    for (j, h) in self.held.iter_mut().enumerate() {
                        *h = prev[j] + s * (positions[j] - prev[j]);
                    }
                    done = false;
                    break;
                }
                prev_t = *pt;
                prev = positions;
            }
            if done {
                self.held.copy_from_slice(prev);
            }
        }
        &self.held
    }
}

/// A measured joint state.
#[derive(Clone, Debug, PartialEq)]
pub struct StateSample {
    /// Time (s from the episode's first state).
    pub time_secs: f64,
    /// Positions, one per state joint (rad or m).
    pub position: Vec<f64>,
    /// Velocities (rad/s or m/s); empty when not recorded.
    pub velocity: Vec<f64>,
    /// Efforts (N·m or N); empty when not recorded.
    pub effort: Vec<f64>,
}

/// A command the controller sent.
#[derive(Clone, Debug, PartialEq)]
pub struct CommandSample {
    /// Time (s from the episode's first state).
    pub time_secs: f64,
    /// The command.
    pub value: CommandValue,
}

/// A recorded episode as plain numbers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Episode {
    /// Joint names of the state samples, in order.
    pub state_joints: Vec<String>,
    /// Measured states, in time order, the first at time 0.
    pub states: Vec<StateSample>,
    /// Joint names the commands address, in order.
    pub command_joints: Vec<String>,
    /// What the command values are (position, velocity or effort).
    pub command_mode: Option<CommandMode>,
    /// Commands, in time order.
    pub commands: Vec<CommandSample>,
    /// The task's target position in the robot's root frame (m), when the episode had one.
    pub target_in_root: Option<[f64; 3]>,
}

impl Episode {
    /// Duration from the first to the last state (s).
    pub fn duration_secs(&self) -> f64 {
        self.states.last().map_or(0.0, |s| s.time_secs)
    }

    /// Checks shapes and ordering; says what is wrong and where.
    pub fn validate(&self) -> Result<(), String> {
        if self.states.len() < 2 {
            return Err(format!(
                "{} valid joint states: a replay needs at least 2",
                self.states.len()
            ));
        }
        let n = self.state_joints.len();
        for (i, s) in self.states.iter().enumerate() {
            if s.position.len() != n
                || (!s.velocity.is_empty() && s.velocity.len() != n)
                || (!s.effort.is_empty() && s.effort.len() != n)
            {
                return Err(format!("state {i}: {n} joints named, lengths differ"));
            }
            if !s.time_secs.is_finite() || (i > 0 && s.time_secs < self.states[i - 1].time_secs) {
                return Err(format!("state {i}: time {} is out of order", s.time_secs));
            }
        }
        let m = self.command_joints.len();
        for (i, c) in self.commands.iter().enumerate() {
            let ok = match &c.value {
                CommandValue::Hold(v) => v.len() == m,
                CommandValue::Trajectory(points) => points.iter().all(|(_, p)| p.len() == m),
            };
            if !ok {
                return Err(format!("command {i}: {m} joints named, lengths differ"));
            }
            if !c.time_secs.is_finite() || (i > 0 && c.time_secs < self.commands[i - 1].time_secs) {
                return Err(format!("command {i}: time {} is out of order", c.time_secs));
            }
        }
        Ok(())
    }
}

/// An episode mapped onto a scene's robot.
#[derive(Clone, Debug)]
pub struct Replay {
    /// The robot (scene index).
    pub robot: usize,
    /// Scene DoF of each state joint (`None`: the scene's robot has no such joint).
    pub state_dofs: Vec<Option<usize>>,
    /// Scene DoF of each command joint.
    pub command_dofs: Vec<usize>,
    /// Tree DoF of each scene DoF, for forward kinematics (URDF robots).
    tree_dofs: Vec<Option<usize>>,
}

/// The simulated side of a replay, sampled at the recorded state times.
#[derive(Clone, Debug, Default)]
pub struct Replayed {
    /// Per state sample, per state joint: simulated position (NaN for unmapped joints).
    pub position: Vec<Vec<f64>>,
    /// Simulated velocities, likewise.
    pub velocity: Vec<Vec<f64>>,
    /// Simulated actuator efforts, likewise.
    pub effort: Vec<Vec<f64>>,
    /// Physics steps taken.
    pub steps: u64,
    /// The simulation became non-finite at this time (s); later samples are NaN.
    pub diverged_at_secs: Option<f64>,
}

impl Replay {
    /// Maps `episode` onto robot `robot` of `scene`: joints by name; the command mode must be
    /// the actuators' mode of every command joint.
    pub fn new(scene: &Scene, robot: usize, episode: &Episode) -> Result<Self, String> {
        episode.validate()?;
        let instance = scene
            .robots
            .get(robot)
            .ok_or_else(|| format!("the scene has no robot {robot}"))?;
        let model = &instance.model;
        let dof_names: Vec<&str> = (0..instance.actuators.len())
            .map(|d| model.dof_joint(DofId(d as u32)).name.as_str())
            .collect();
        let state_dofs: Vec<Option<usize>> = episode
            .state_joints
            .iter()
            .map(|j| dof_names.iter().position(|n| n == j))
            .collect();
        if state_dofs.iter().all(Option::is_none) {
            return Err(format!(
                "none of the recorded joints {:?} is a joint of robot `{}` ({dof_names:?})",
                episode.state_joints, instance.name
            ));
        }
        let command_dofs = episode
            .command_joints
            .iter()
            .map(|j| {
                dof_names.iter().position(|n| n == j).ok_or_else(|| {
                    format!(
                        "command joint `{j}` is not a joint of robot `{}` ({dof_names:?})",
                        instance.name
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(mode) = episode.command_mode {
            for &d in &command_dofs {
                if instance.actuators[d].mode != mode {
                    return Err(format!(
                        "the episode commands `{}` in {mode:?} mode, the scene's actuator is in \
                         {:?} mode",
                        dof_names[d], instance.actuators[d].mode
                    ));
                }
            }
        }
        let tree_dofs = match &model.tree {
            Some(tree) => (0..instance.actuators.len())
                .map(|d| (0..tree.dof_count()).find(|&t| tree.dof_joint(t).name == dof_names[d]))
                .collect(),
            None => vec![None; instance.actuators.len()],
        };
        Ok(Self {
            robot,
            state_dofs,
            command_dofs,
            tree_dofs,
        })
    }

    /// Replays `episode` in a new world of `scene` (which may differ from the one given to
    /// [`Replay::new`] only in physical parameters: same robots, same joints).
    pub fn run(
        &self,
        mut scene: Arc<Scene>,
        episode: &Episode,
    ) -> Result<Replayed, crate::SimError> {
        let dt = scene.world.dt_secs;
        // The latency acts here, on the command times, instead of in the world's whole-step
        // delay line.
        let latency = scene.robots[self.robot].command_latency_secs;
        if scene.robots[self.robot].command_latency_steps != 0 {
            Arc::make_mut(&mut scene).robots[self.robot].command_latency_steps = 0;
        }
        let initial = scene.robots[self.robot].initial_positions.clone();
        // One thread: a replay is a small multibody, where rapier's parallel solver costs more
        // than it gains, and callers (system identification) run replays in parallel.
        let mut world = World::new(
            scene,
            WorldOptions {
                seed: 0,
                threads: Some(1),
            },
        )?;
        let first = &episode.states[0];
        let mut position = initial;
        let mut velocity = vec![0.0; position.len()];
        for (j, d) in self.state_dofs.iter().enumerate() {
            if let Some(d) = *d {
                position[d] = first.position[j];
                velocity[d] = first.velocity.get(j).copied().unwrap_or(0.0);
            }
        }
        world.reset_robot_joints(self.robot, &position, &velocity);
        // Before its first command the robot holds a target the episode does not record. A
        // position servo at that target pushes with effort = kp (target - position) - kd
        // velocity, so the recorded effort gives the target back (in this scene's gains); a
        // servo under load sits below its target, and holding the measured position instead
        // would let the replayed joint sag at the start.
        let mut held = position.clone();
        {
            let scene = world.scene().clone();
            let actuators = &scene.robots[self.robot].actuators;
            let state = &mut world.robots[self.robot];
            for (j, d) in self.state_dofs.iter().enumerate() {
                let (Some(d), Some(&effort)) = (*d, first.effort.get(j)) else {
                    continue;
                };
                if actuators[d].mode == CommandMode::Position
                    && effort.is_finite()
                    && state.kp[d] > 0.0
                {
                    held[d] = position[d] + (effort + state.kd[d] * velocity[d]) / state.kp[d];
                    state.target[d] = held[d];
                    state.command[d] = held[d];
                }
            }
        }
        let mode = episode.command_mode.unwrap_or(CommandMode::Position);
        let initial_commands: Vec<f64> = self
            .command_dofs
            .iter()
            .map(|&d| match mode {
                CommandMode::Position => held[d],
                _ => 0.0,
            })
            .collect();
        let mut player = CommandPlayer::new(&initial_commands);
        let n = self.state_dofs.len();
        let samples = episode.states.len();
        let mut out = Replayed {
            position: Vec::with_capacity(samples),
            velocity: Vec::with_capacity(samples),
            effort: Vec::with_capacity(samples),
            ..Default::default()
        };
        let read = |world: &World, buf: &mut [Vec<f64>; 3]| {
            let state = &world.robots[self.robot];
            for (j, d) in self.state_dofs.iter().enumerate() {
                let (p, v, e) = d.map_or((f64::NAN, f64::NAN, f64::NAN), |d| {
                    (state.position[d], state.velocity[d], state.effort[d])
                });
                buf[0][j] = p;
                buf[1][j] = v;
                buf[2][j] = e;
            }
        };
        let mut before = [vec![0.0; n], vec![0.0; n], vec![0.0; n]];
        let mut after = before.clone();
        read(&world, &mut before);
        let mut next_sample = 0;
        let mut next_command = 0;
        let mut k: u64 = 0;
        while next_sample < samples {
            let t0 = k as f64 * dt;
            let t1 = t0 + dt;
            // Samples at or before this step's start (the first: the initial state itself).
            while next_sample < samples && episode.states[next_sample].time_secs <= t0 + 1e-12 {
                out.position.push(before[0].clone());
                out.velocity.push(before[1].clone());
                out.effort.push(before[2].clone());
                next_sample += 1;
            }
            if next_sample >= samples {
                break;
            }
            if world.termination().is_some() {
                out.diverged_at_secs = Some(t0);
                let nan = vec![f64::NAN; n];
                while out.position.len() < samples {
                    out.position.push(nan.clone());
                    out.velocity.push(nan.clone());
                    out.effort.push(nan.clone());
                }
                break;
            }
            while next_command < episode.commands.len()
                && episode.commands[next_command].time_secs + latency <= t0 + 1e-12
            {
                player.apply(&episode.commands[next_command].value, t0);
                next_command += 1;
            }
            let targets = player.targets(t0);
            let state = &mut world.robots[self.robot];
            for (&d, &c) in self.command_dofs.iter().zip(targets) {
                state.command[d] = c;
            }
            world.step();
            k += 1;
            read(&world, &mut after);
            // Samples inside this step: linear interpolation between its two ends.
            while next_sample < samples && episode.states[next_sample].time_secs <= t1 + 1e-12 {
                let s = ((episode.states[next_sample].time_secs - t0) / dt).clamp(0.0, 1.0);
                let lerp = |a: &[f64], b: &[f64]| -> Vec<f64> {
                    a.iter().zip(b).map(|(a, b)| a + s * (b - a)).collect()
                };
                out.position.push(lerp(&before[0], &after[0]));
                out.velocity.push(lerp(&before[1], &after[1]));
                out.effort.push(lerp(&before[2], &after[2]));
                next_sample += 1;
            }
            std::mem::swap(&mut before, &mut after);
        }
        out.steps = k;
        Ok(out)
    }
}

/// The gap of one joint.
#[derive(Clone, Debug, serde::Serialize)]
pub struct JointGap {
    /// Joint name.
    pub joint: String,
    /// Position RMSE (rad or m).
    pub position_rmse: f64,
    /// Largest absolute position error (rad or m).
    pub position_max_error: f64,
    /// Velocity RMSE (rad/s or m/s), when velocities were recorded.
    pub velocity_rmse: Option<f64>,
    /// Effort RMSE (N·m or N), when efforts were recorded.
    pub effort_rmse: Option<f64>,
    /// Range of the recorded positions (max - min; rad or m).
    pub position_range: f64,
}

/// The task outcome judged from a joint trajectory.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TaskOutcome {
    /// The success criterion.
    pub criterion: &'static str,
    /// Success on the recorded trajectory.
    pub real_success: bool,
    /// Success on the simulated one.
    pub sim_success: bool,
    /// When a termination fired on the recorded trajectory (s).
    pub real_terminated_at_secs: Option<f64>,
    /// When one fired on the simulated trajectory (s).
    pub sim_terminated_at_secs: Option<f64>,
}

/// The gap between an episode and its replay.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Gap {
    /// The gap score: the mean over compared joints of position RMSE divided by the larger of
    /// the joint's recorded range and 0.1 (rad or m). 0 is a perfect match; 1 is an error as
    /// large as the motion.
    pub score: f64,
    /// Per compared joint (recorded and in the scene), in the episode's order.
    pub joints: Vec<JointGap>,
    /// Position RMSE over all compared joints (rad or m).
    pub position_rmse: f64,
    /// The frame whose position is compared (the tree's deepest frame, or the task's frame).
    pub tool_frame: Option<String>,
    /// Its position RMSE (m), by forward kinematics of both trajectories.
    pub tool_position_rmse: Option<f64>,
    /// Estimated time lag (s) by cross-correlation of the joint positions: positive when the
    /// recorded motion lags the simulated one.
    pub time_lag_secs: f64,
    /// The task outcome on both sides, where it can be judged from joint trajectories.
    pub task: Option<TaskOutcome>,
    /// Why the task outcome is not judged, when the scene has a task.
    pub task_note: Option<String>,
    /// State samples compared.
    pub samples: usize,
    /// Episode duration (s).
    pub duration_secs: f64,
    /// The simulation diverged at this time (s).
    pub diverged_at_secs: Option<f64>,
}

/// Range floor in the gap score (rad or m): joints that barely move are scored against it.
pub const SCORE_RANGE_FLOOR: f64 = 0.1;

fn rms(sum_sq: f64, n: usize) -> f64 {
    if n == 0 {
        f64::NAN
    } else {
        (sum_sq / n as f64).sqrt()
    }
}

/// Joint-position RMSE over the compared joints: the cheap figure system identification
/// minimises (NaN samples, after a divergence, count as errors of `penalty`).
pub fn position_rmse(replay: &Replay, episode: &Episode, sim: &Replayed, penalty: f64) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for (i, s) in episode.states.iter().enumerate().skip(1) {
        for (j, d) in replay.state_dofs.iter().enumerate() {
            if d.is_some() {
                let e = s.position[j] - sim.position[i][j];
                sum += if e.is_finite() {
                    e * e
                } else {
                    penalty * penalty
                };
                n += 1;
            }
        }
    }
    rms(sum, n)
}

/// Compares an episode with its replay. `scene` supplies the tree and the task; the tool frame
/// is `tool_frame`, else the task's frame, else the deepest frame of the tree.
pub fn gap(
    scene: &Scene,
    replay: &Replay,
    episode: &Episode,
    sim: &Replayed,
    tool_frame: Option<&str>,
) -> Result<Gap, String> {
    let samples = episode.states.len();
    let mut joints = Vec::new();
    let (mut all_sq, mut all_n) = (0.0, 0usize);
    for (j, d) in replay.state_dofs.iter().enumerate() {
        if d.is_none() {
            continue;
        }
        let (mut p_sq, mut v_sq, mut e_sq, mut max_err) = (0.0, 0.0, 0.0, 0.0f64);
        let (mut n, mut nv, mut ne) = (0usize, 0usize, 0usize);
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for (i, s) in episode.states.iter().enumerate() {
            lo = lo.min(s.position[j]);
            hi = hi.max(s.position[j]);
            if i == 0 {
                continue;
            }
            let e = s.position[j] - sim.position[i][j];
            if !e.is_finite() {
                continue;
            }
            p_sq += e * e;
            max_err = max_err.max(e.abs());
            n += 1;
            if let Some(v) = s.velocity.get(j) {
                let e = v - sim.velocity[i][j];
                if e.is_finite() {
                    v_sq += e * e;
                    nv += 1;
                }
            }
            if let Some(f) = s.effort.get(j) {
                let e = f - sim.effort[i][j];
                if e.is_finite() {
                    e_sq += e * e;
                    ne += 1;
                }
            }
        }
        all_sq += p_sq;
        all_n += n;
        joints.push(JointGap {
            joint: episode.state_joints[j].clone(),
            position_rmse: rms(p_sq, n),
            position_max_error: max_err,
            velocity_rmse: (nv > 0).then(|| rms(v_sq, nv)),
            effort_rmse: (ne > 0).then(|| rms(e_sq, ne)),
            position_range: hi - lo,
        });
    }
    let score = joints
        .iter()
        .map(|j| j.position_rmse / j.position_range.max(SCORE_RANGE_FLOOR))
        .sum::<f64>()
        / joints.len().max(1) as f64;

    // Tool frame by forward kinematics of both trajectories.
    let instance = &scene.robots[replay.robot];
    let task = scene.task.as_ref().filter(|t| t.robot == replay.robot);
    let tree: Option<&Arc<RobotTree>> = instance.model.tree.as_ref();
    let (mut tool_name, mut tool_rmse, mut tool_paths) = (None, None, None);
    if let Some(tree) = tree {
        let frame = match (tool_frame, task.map(|t| &t.success)) {
            (Some(name), _) => Some(
                tree.frame_by_name(name)
                    .ok_or_else(|| format!("robot `{}` has no frame `{name}`", instance.name))?,
            ),
            (None, Some(SuccessModel::FrameAtTarget { frame, .. })) => Some(*frame),
            _ => deepest_frame(tree),
        };
        if let Some(frame) = frame {
            let real = frame_path(tree, replay, instance, episode, None, frame);
            let simulated = frame_path(tree, replay, instance, episode, Some(sim), frame);
            let (mut sq, mut n) = (0.0, 0usize);
            for (a, b) in real.iter().zip(&simulated).skip(1) {
                let e = (a - b).norm_squared();
                if e.is_finite() {
                    sq += e;
                    n += 1;
                }
            }
            tool_name = Some(tree.frames[frame.0 as usize].name.clone());
            tool_rmse = Some(rms(sq, n));
            tool_paths = Some((real, simulated));
        }
    }

    // Task outcome from joint trajectories.
    let (mut outcome, mut task_note) = (None, None);
    if let Some(task) = task {
        let judge = |positions: &dyn Fn(usize) -> Vec<f64>,
                     tool: Option<&Vec<nalgebra::Vector3<f64>>>|
         -> Result<(bool, Option<f64>), String> {
            let mut hold = 0u32;
            let mut hold_since = None::<f64>;
            for (i, s) in episode.states.iter().enumerate() {
                let q = positions(i);
                for term in &task.terminations {
                    match term {
                        TerminationModel::JointOutOfRange { dof, min, max } => {
                            if let Some(j) = replay.state_dofs.iter().position(|d| *d == Some(*dof))
                                && !(*min..=*max).contains(&q[j])
                            {
                                return Ok((false, Some(s.time_secs)));
                            }
                        }
                        TerminationModel::ObjectOutOfBounds { .. } => {}
                    }
                }
                if let SuccessModel::FrameAtTarget {
                    tolerance,
                    hold_steps,
                    ..
                } = &task.success
                {
                    let target = episode
                        .target_in_root
                        .ok_or("the episode does not record the task's target")?;
                    let tool = tool.ok_or("the robot has no kinematic tree")?;
                    let p = tool[i];
                    let d = (p - nalgebra::Vector3::from(target)).norm();
                    if d <= *tolerance {
                        hold += 1;
                        let since = *hold_since.get_or_insert(s.time_secs);
                        let hold_secs = f64::from(*hold_steps) * task.control_period_secs;
                        if hold > 1 && s.time_secs - since >= hold_secs {
                            return Ok((true, None));
                        }
                    } else {
                        hold = 0;
                        hold_since = None;
                    }
                }
            }
            Ok((matches!(task.success, SuccessModel::Survive), None))
        };
        let objects = task
            .terminations
            .iter()
            .any(|t| matches!(t, TerminationModel::ObjectOutOfBounds { .. }));
        match &task.success {
            SuccessModel::ObjectAtTarget { .. } => {
                task_note = Some(
                    "the task's success is about a prop, which joint states do not show".into(),
                );
            }
            _ if objects => {
                task_note = Some(
                    "the task terminates on a prop's pose, which joint states do not show".into(),
                );
            }
            success => {
                let real = judge(
                    &|i| episode.states[i].position.clone(),
                    tool_paths.as_ref().map(|p| &p.0),
                );
                let simulated = judge(
                    &|i| sim.position[i].clone(),
                    tool_paths.as_ref().map(|p| &p.1),
                );
                match (real, simulated) {
                    (Ok(r), Ok(s)) => {
                        outcome = Some(TaskOutcome {
                            criterion: match success {
                                SuccessModel::Survive => "survive",
                                _ => "frame_at_target",
                            },
                            real_success: r.0,
                            sim_success: s.0,
                            real_terminated_at_secs: r.1,
                            sim_terminated_at_secs: s.1,
                        })
                    }
                    (Err(e), _) | (_, Err(e)) => task_note = Some(e),
                }
            }
        }
    }

    Ok(Gap {
        score,
        position_rmse: rms(all_sq, all_n),
        joints,
        tool_frame: tool_name,
        tool_position_rmse: tool_rmse,
        time_lag_secs: time_lag(replay, episode, sim),
        task: outcome,
        task_note,
        samples,
        duration_secs: episode.duration_secs(),
        diverged_at_secs: sim.diverged_at_secs,
    })
}

/// The frame deepest in the tree (the last frame among those farthest from the root, in file
/// order): the tool frame of a serial arm.
pub fn deepest_frame(tree: &RobotTree) -> Option<rivet_control::FrameId> {
    let depth = |mut link: rivet_control::LinkId| {
        let mut d = 0;
        while let Some(j) = tree.links[link.0 as usize].parent_joint {
            link = tree.joints[j.0 as usize].parent;
            d += 1;
        }
        d
    };
    let mut best = None;
    let mut best_depth = 0;
    for (f, frame) in tree.frames.iter().enumerate() {
        let d = depth(frame.link) + usize::from(f >= tree.links.len());
        if best.is_none() || d >= best_depth {
            best = Some(rivet_control::FrameId(f as u32));
            best_depth = d;
        }
    }
    best
}

/// Positions of `frame` (robot root frame) along the recorded (`sim: None`) or simulated
/// trajectory. Joints not recorded stay at the scene's initial positions.
pub fn frame_path(
    tree: &RobotTree,
    replay: &Replay,
    instance: &crate::scene::RobotInstance,
    episode: &Episode,
    sim: Option<&Replayed>,
    frame: rivet_control::FrameId,
) -> Vec<nalgebra::Vector3<f64>> {
    let mut data = tree.data();
    let mut q = vec![0.0; tree.dof_count()];
    for (d, t) in replay.tree_dofs.iter().enumerate() {
        if let Some(t) = t {
            q[*t] = instance.initial_positions[d];
        }
    }
    let mut out = Vec::with_capacity(episode.states.len());
    for (i, s) in episode.states.iter().enumerate() {
        let row = sim.map_or(&s.position, |sim| &sim.position[i]);
        for (j, d) in replay.state_dofs.iter().enumerate() {
            if let Some(t) = d.and_then(|d| replay.tree_dofs[d]) {
                q[t] = row[j];
            }
        }
        if q.iter().all(|x| x.is_finite()) {
            tree.forward_kinematics(&q, &mut data);
            out.push(tree.frame_pose(frame, &data).translation.vector);
        } else {
            out.push(nalgebra::Vector3::repeat(f64::NAN));
        }
    }
    out
}

/// Lag (s) maximising the cross-correlation of the mean-removed recorded and simulated joint
/// positions, resampled on a uniform grid at the median state interval, searched within
/// ±min(0.25 s, duration / 4) and refined by a parabola through the peak. Positive: the
/// recorded motion lags the simulated one.
pub fn time_lag(replay: &Replay, episode: &Episode, sim: &Replayed) -> f64 {
    let states = &episode.states;
    let mut intervals: Vec<f64> = states
        .windows(2)
        .map(|w| w[1].time_secs - w[0].time_secs)
        .filter(|d| *d > 0.0)
        .collect();
    if intervals.is_empty() {
        return 0.0;
    }
    intervals.sort_by(f64::total_cmp);
    let h = intervals[intervals.len() / 2];
    let duration = episode.duration_secs();
    let m = (duration / h).floor() as usize + 1;
    let max_lag = ((0.25f64.min(duration / 4.0)) / h).floor() as isize;
    if m < 4 || max_lag < 1 {
        return 0.0;
    }
    // Uniform resampling by linear interpolation.
    let resample = |value: &dyn Fn(usize) -> f64| -> Vec<f64> {
        let mut out = Vec::with_capacity(m);
        let mut i = 0;
        for g in 0..m {
            let t = g as f64 * h;
            while i + 1 < states.len() - 1 && states[i + 1].time_secs < t {
                i += 1;
            }
            let (t0, t1) = (states[i].time_secs, states[i + 1].time_secs);
            let s = if t1 > t0 {
                ((t - t0) / (t1 - t0)).clamp(0.0, 1.0)
            } else {
                0.0
            };
            out.push(value(i) + s * (value(i + 1) - value(i)));
        }
        let mean = out.iter().sum::<f64>() / out.len() as f64;
        out.iter_mut().for_each(|x| *x -= mean);
        out
    };
    let mut pairs = Vec::new();
    for (j, d) in replay.state_dofs.iter().enumerate() {
        if d.is_none() || sim.position.iter().any(|p| !p[j].is_finite()) {
            continue;
        }
        let real = resample(&|i| states[i].position[j]);
        let simulated = resample(&|i| sim.position[i][j]);
        pairs.push((real, simulated));
    }
    if pairs.is_empty() {
        return 0.0;
    }
    // Normalised correlation over the overlap, all joints pooled:
    // c(L) = Σ real[g]·sim[g - L] / sqrt(Σ real[g]² · Σ sim[g - L]²); positive L shifts the
    // simulated motion later.
    let correlation = |lag: isize| -> f64 {
        let (mut c, mut rr, mut ss) = (0.0, 0.0, 0.0);
        for (real, simulated) in &pairs {
            for g in 0..m as isize {
                let k = g - lag;
                if k >= 0 && (k as usize) < m {
                    let (r, s) = (real[g as usize], simulated[k as usize]);
                    c += r * s;
                    rr += r * r;
                    ss += s * s;
                }
            }
        }
        let norm = (rr * ss).sqrt();
        if norm > 0.0 { c / norm } else { 0.0 }
    };
    let values: Vec<f64> = (-max_lag..=max_lag).map(correlation).collect();
    let (best, _) = values
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .expect("at least three lags");
    let mut offset = 0.0;
    if best > 0 && best + 1 < values.len() {
        let (a, b, c) = (values[best - 1], values[best], values[best + 1]);
        let denom = a - 2.0 * b + c;
        if denom.abs() > 1e-300 {
            offset = (0.5 * (a - c) / denom).clamp(-0.5, 0.5);
        }
    }
    ((best as isize - max_lag) as f64 + offset) * h
}

#[cfg(test)]
mod tests;
