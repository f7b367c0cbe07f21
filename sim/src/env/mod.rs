//! Learning tasks on simulated worlds: the scene's `[task]` section (observations, actions,
//! rewards, terminations, success, domain randomisation), a [`TaskRunner`] that turns one
//! [`World`] into an episodic environment, and [`VecTaskEnv`], N worlds stepped in parallel.
//!
//! One environment step: the action is clamped to its bounds and turned into actuator commands
//! (joint targets, increments, efforts, or a tool increment through inverse kinematics, plus a
//! gripper); the world takes `substeps` physics steps, the commands reaching the actuators
//! after the episode's control latency and through the robot's safety filter; then the
//! observation, reward, termination and success are computed. Ended episodes reset
//! automatically with freshly sampled randomisation. Nothing allocates per step; the same seed
//! gives the same rollouts for any thread count (each world has its own random stream).

pub mod agent;
pub mod file;
pub mod model;

use std::sync::Arc;

use nalgebra::{Isometry3, Translation3, UnitQuaternion, Vector3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rapier3d::prelude::ColliderHandle;
use rivet_control::ik::{IkOptions, IkSolver, IkTarget};
use rivet_control::safety::{SafetyConfig, SafetyFilter};
use rivet_control::{CommandMode, JointStateView, RobotTree, TreeData};

use crate::error::SimError;
use crate::math::{isometry, pose_to_transform};
use crate::scene::Scene;
use crate::world::{World, WorldOptions};
pub use model::{
    ActionKind, ExpertModel, FrameRef, ObservationTerm, RewardModel, SpaceLayout, SuccessModel,
    TaskModel, TerminationModel,
};

/// What one environment step reports for one world.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepOutcome {
    /// Reward of the step.
    pub reward: f32,
    /// The episode reached a terminal state (success or failure).
    pub terminated: bool,
    /// The episode hit its time limit.
    pub truncated: bool,
    /// The success criterion was met (set on the step the episode ends).
    pub success: bool,
}

impl StepOutcome {
    /// The episode ended on this step.
    pub fn done(&self) -> bool {
        self.terminated || self.truncated
    }
}

/// Expert phases of the pick-and-place demonstrator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ExpertPhase {
    Approach,
    Descend,
    Close,
    Lift,
    Carry,
    Lower,
    Open,
    Retreat,
}

/// Episode state of the task of one world: randomisation, action buffers, latency queue,
/// kinematics buffers and the episode's counters.
pub struct TaskRunner {
    task: Arc<TaskModel>,
    scene: Arc<Scene>,
    rng: ChaCha8Rng,
    data: TreeData,
    ik: Option<IkSolver>,
    ik_q: Vec<f64>,
    filter: Option<(SafetyFilter, CommandMode)>,
    /// The action of this step (clamped) and of the previous one.
    action: Vec<f32>,
    previous_action: Vec<f32>,
    /// Scratch for exploration noise.
    noisy_action: Vec<f32>,
    /// Joint targets held between actions (delta and IK actions accumulate on them).
    joint_targets: Vec<f64>,
    /// The command the agent asks for now, one per DoF.
    command_now: Vec<f64>,
    /// Latency queue: the last `capacity` per-physics-step commands, flat.
    queue: Vec<f64>,
    queue_head: usize,
    latency_steps: usize,
    /// Observation delay: the joint positions and velocities at the start of each of the last
    /// `observation_latency_steps` physics steps (ring, flat, `2n` per step; empty without a
    /// delay).
    seen: Vec<f64>,
    seen_head: usize,
    /// Commanded tool position (root frame) and held orientation, for tool-delta actions.
    tool_cmd: Vector3<f64>,
    tool_rotation: UnitQuaternion<f64>,
    target_in_root: Vector3<f64>,
    noise_scale: f64,
    steps: u32,
    hold: u32,
    episode_return: f64,
    /// Randomisation bases: (collider, friction) of the robot's links and the props;
    /// (collider, mass) of the props; joint damping and gains per DoF.
    base_friction: Vec<(ColliderHandle, f32)>,
    /// The friction and mass scales the colliders have now.
    applied_scales: (f64, f64),
    /// (body, URDF mass properties) of the robot's links, and the scale applied now.
    base_link_mass: Vec<(
        rapier3d::prelude::RigidBodyHandle,
        rapier3d::prelude::MassProperties,
    )>,
    applied_link_scale: f64,
    base_mass: Vec<(ColliderHandle, f32)>,
    base_damping: Vec<f64>,
    base_kp: Vec<f64>,
    base_kd: Vec<f64>,
    initial_q: Vec<f64>,
    initial_qd: Vec<f64>,
    expert_phase: ExpertPhase,
    expert_timer: u32,
    expert_goal: Vector3<f64>,
}

impl TaskRunner {
    /// The task runner of `world`'s scene task.
    pub fn new(world: &World) -> Result<Self, SimError> {
        let scene = world.scene().clone();
        let task = scene.task.clone().ok_or_else(|| {
            SimError::scene(&scene.source, "task", "the scene has no [task] section")
        })?;
        let tree: &RobotTree = &task.tree;
        let n = tree.dof_count();
        let robot = &scene.robots[task.robot];
        let ik = match &task.action {
            ActionKind::ToolDelta { frame, .. } => Some(IkSolver::new(
                tree,
                *frame,
                IkOptions {
                    restarts: 0,
                    max_iterations: 30,
                    position_tolerance: 2e-4,
                    orientation_tolerance: 2e-3,
                    ..IkOptions::default()
                },
            )),
            _ => None,
        };
        let mode = robot.actuators.first().map(|a| a.mode);
        let filter = match mode {
            Some(mode) if robot.actuators.iter().all(|a| a.mode == mode) => {
                let config = SafetyConfig::from_tree(tree, scene.world.dt_secs);
                let filter = SafetyFilter::new(config, None).map_err(|e| {
                    SimError::scene(&scene.source, "task.robot", format!("safety filter: {e}"))
                })?;
                Some((filter, mode))
            }
            _ => None,
        };
        let physics = world.physics();
        let mut base_friction = Vec::new();
        for body in world.robots[task.robot].link_bodies.iter().flatten() {
            if let Some(rb) = physics.bodies.get(*body) {
                for &c in rb.colliders() {
                    base_friction.push((c, physics.colliders[c].friction()));
                }
            }
        }
        let base_link_mass = world.robots[task.robot]
            .link_bodies
            .iter()
            .flatten()
            .filter_map(|&b| {
                physics
                    .bodies
                    .get(b)
                    .map(|rb| (b, rb.mass_properties().local_mprops))
            })
            .collect();
        let mut base_mass = Vec::new();
        for (p, &body) in world.props.iter().enumerate() {
            if !scene.props[p].dynamic {
                continue;
            }
            for &c in physics.bodies[body].colliders() {
                base_friction.push((c, physics.colliders[c].friction()));
                base_mass.push((c, physics.colliders[c].mass()));
            }
        }
        let state = &world.robots[task.robot];
        let act_dim = task.action_space.dim();
        let capacity = task.randomize.latency_steps[1] as usize + 1;
        Ok(Self {
            rng: ChaCha8Rng::seed_from_u64(world.seed()),
            data: tree.data(),
            ik,
            ik_q: vec![0.0; n],
            filter,
            action: vec![0.0; act_dim],
            previous_action: vec![0.0; act_dim],
            noisy_action: vec![0.0; act_dim],
            joint_targets: state.position.clone(),
            command_now: state.position.clone(),
            queue: vec![0.0; capacity * n],
            queue_head: 0,
            latency_steps: 0,
            seen: vec![0.0; robot.observation_latency_steps * 2 * n],
            seen_head: 0,
            tool_cmd: Vector3::zeros(),
            tool_rotation: UnitQuaternion::identity(),
            target_in_root: Vector3::zeros(),
            noise_scale: 1.0,
            steps: 0,
            hold: 0,
            episode_return: 0.0,
            base_friction,
            applied_scales: (1.0, 1.0),
            base_link_mass,
            applied_link_scale: 1.0,
            base_mass,
            base_damping: robot.actuators.iter().map(|a| a.damping).collect(),
            base_kp: state.kp.clone(),
            base_kd: state.kd.clone(),
            initial_q: robot.initial_positions.clone(),
            initial_qd: vec![0.0; n],
            expert_phase: ExpertPhase::Approach,
            expert_timer: 0,
            expert_goal: Vector3::zeros(),
            task,
            scene,
        })
    }

    /// The task model.
    pub fn task(&self) -> &Arc<TaskModel> {
        &self.task
    }

    /// Observation dimension.
    pub fn observation_dim(&self) -> usize {
        self.task.observation_space.dim()
    }

    /// Action dimension.
    pub fn action_dim(&self) -> usize {
        self.task.action_space.dim()
    }

    /// Return accumulated in the current episode.
    pub fn episode_return(&self) -> f64 {
        self.episode_return
    }

    /// Actions taken in the current episode.
    pub fn episode_steps(&self) -> u32 {
        self.steps
    }

    /// The episode's target in the world frame (m), if the task has one.
    pub fn target_in_world(&self, world: &World) -> Option<[f64; 3]> {
        self.task.target.as_ref()?;
        let p = self.world_from_root(world) * nalgebra::Point3::from(self.target_in_root);
        Some([p.x, p.y, p.z])
    }

    /// Reseeds the episode random stream (`seed`, stream `stream`): worlds of a vectorised
    /// environment share the seed and differ by stream.
    pub fn seed(&mut self, seed: u64, stream: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(seed);
        self.rng.set_stream(stream);
    }

    fn uniform(&mut self, [lo, hi]: [f64; 2]) -> f64 {
        if hi > lo {
            self.rng.random_range(lo..=hi)
        } else {
            lo
        }
    }

    fn gaussian(&mut self) -> f64 {
        // Box-Muller; u1 in (0, 1] keeps the logarithm finite.
        let u1: f64 = 1.0 - self.rng.random::<f64>();
        let u2: f64 = self.rng.random::<f64>();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Starts a new episode: samples the randomisation, the initial state and the target,
    /// resets the world and writes the first observation.
    pub fn reset(&mut self, world: &mut World, observation: &mut [f32]) {
        let task = self.task.clone();
        let scene = self.scene.clone();
        let r = &task.randomize;
        let robot_index = task.robot;
        let robot = &scene.robots[robot_index];
        // Physical parameters.
        let friction = self.uniform(r.friction_scale);
        let mass = self.uniform(r.object_mass_scale);
        // Only touch colliders when the scale changes: rapier records every modified
        // collider (and its first record after a step allocates).
        if (friction, mass) != self.applied_scales {
            self.applied_scales = (friction, mass);
            let physics = world.physics_mut();
            for &(c, mu) in &self.base_friction {
                if let Some(collider) = physics.colliders.get_mut(c) {
                    collider.set_friction(mu * friction as f32);
                }
            }
            for &(c, m) in &self.base_mass {
                if let Some(collider) = physics.colliders.get_mut(c) {
                    collider.set_mass(m * mass as f32);
                }
            }
        }
        let link_scale = self.uniform(r.link_mass_scale);
        if link_scale != self.applied_link_scale {
            self.applied_link_scale = link_scale;
            let s = link_scale as f32;
            let physics = world.physics_mut();
            for (body, base) in &self.base_link_mass {
                if let Some(rb) = physics.bodies.get_mut(*body) {
                    let mut props = *base;
                    props.inv_mass = base.inv_mass / s;
                    props.inv_principal_inertia = base.inv_principal_inertia / s;
                    rb.set_additional_mass_properties(props, true);
                    // Effective now, not only from the next step on.
                    rb.recompute_mass_properties_from_colliders(&physics.colliders);
                }
            }
        }
        let damping = self.uniform(r.joint_damping_scale);
        let gain = self.uniform(r.actuator_gain_scale);
        for d in 0..self.base_damping.len() {
            world.set_joint_damping(robot_index, d, self.base_damping[d] * damping);
            world.robots[robot_index].kp[d] = self.base_kp[d] * gain;
            world.robots[robot_index].kd[d] = self.base_kd[d] * gain;
        }
        let [lo, hi] = r.latency_steps;
        self.latency_steps = if hi > lo {
            self.rng.random_range(lo..=hi) as usize
        } else {
            lo as usize
        };
        self.noise_scale = self.uniform(r.observation_noise_scale);
        // Initial joints.
        for d in 0..self.initial_q.len() {
            let offset = self.uniform([-r.initial_joint_offset, r.initial_joint_offset]);
            let mut q = robot.initial_positions[d] + offset;
            if let Some([lo, hi]) = task.tree.dof_joint(d).limits {
                q = q.clamp(lo, hi);
            }
            self.initial_q[d] = q;
            self.initial_qd[d] =
                self.uniform([-r.initial_joint_velocity, r.initial_joint_velocity]);
        }
        world.reset_robot_joints(robot_index, &self.initial_q, &self.initial_qd);
        // Props: every dynamic prop back to its start, placed ones offset.
        for (p, prop) in scene.props.iter().enumerate() {
            if !prop.dynamic {
                continue;
            }
            let mut pose = isometry(&prop.world_from_prop);
            if let Some(place) = r.placements.iter().find(|pl| pl.prop == p) {
                let mut offset = Vector3::zeros();
                for k in 0..3 {
                    offset[k] = self.uniform([place.offset_min[k], place.offset_max[k]]);
                }
                let yaw = self.uniform([-place.yaw, place.yaw]);
                pose = Isometry3::from_parts(
                    Translation3::from(pose.translation.vector + offset),
                    UnitQuaternion::from_euler_angles(0.0, 0.0, yaw) * pose.rotation,
                );
            }
            world.reset_prop(p, &crate::math::transform_from_isometry(&pose));
        }
        world.reset_clock();
        // Target, in the root frame.
        if let Some(t) = &task.target {
            let root_from_world = self.world_from_root(world).inverse();
            for attempt in 0..100 {
                for k in 0..3 {
                    self.target_in_root[k] = self.uniform([t.min[k], t.max[k]]);
                }
                let far = t.keep_away_from.iter().all(|&p| {
                    let prop = root_from_world * prop_translation(world, p);
                    let d = prop - self.target_in_root;
                    d.x.hypot(d.y) >= t.min_distance
                });
                if far || attempt == 99 {
                    break;
                }
            }
        }
        // Agent state.
        self.joint_targets.copy_from_slice(&self.initial_q);
        for d in 0..self.command_now.len() {
            self.command_now[d] = match robot.actuators[d].mode {
                CommandMode::Position => self.initial_q[d],
                CommandMode::Velocity | CommandMode::Torque => 0.0,
            };
        }
        let n = self.command_now.len();
        for chunk in self.queue.chunks_exact_mut(n.max(1)) {
            chunk.copy_from_slice(&self.command_now);
        }
        self.queue_head = 0;
        task.tree
            .forward_kinematics(&world.robots[robot_index].position, &mut self.data);
        if let ActionKind::ToolDelta { frame, .. } = &task.action {
            let pose = task.tree.frame_pose(*frame, &self.data);
            self.tool_cmd = pose.translation.vector;
            self.tool_rotation = pose.rotation;
        }
        self.action.fill(0.0);
        self.previous_action.fill(0.0);
        self.steps = 0;
        self.hold = 0;
        self.episode_return = 0.0;
        self.expert_phase = ExpertPhase::Approach;
        self.expert_timer = 0;
        if let Some((filter, _)) = self.filter.as_mut() {
            let state = &world.robots[robot_index];
            let view = JointStateView {
                position: &state.position,
                velocity: &state.velocity,
                effort: &state.effort,
            };
            // The state is finite right after a reset.
            let _ = filter.reset(&view);
        }
        // Until the delay has passed, the policy sees the reset state.
        let n = self.command_now.len();
        if !self.seen.is_empty() {
            let state = &world.robots[robot_index];
            for row in self.seen.chunks_exact_mut(2 * n) {
                row[..n].copy_from_slice(&state.position);
                row[n..].copy_from_slice(&state.velocity);
            }
        }
        // `self.data` holds the kinematics of the reset state (computed above).
        self.write_observation(world, observation, None);
    }

    fn world_from_root(&self, world: &World) -> Isometry3<f64> {
        let state = &world.robots[self.task.robot];
        isometry(&world.body_pose(state.base_body))
    }

    /// Turns an action (in the action space's units; clamped to its bounds) into the command
    /// the actuators will receive.
    pub fn apply_action(&mut self, world: &World, action: &[f32]) {
        let task = self.task.clone();
        let space = &task.action_space;
        self.previous_action.copy_from_slice(&self.action);
        for (k, a) in action.iter().enumerate().take(self.action.len()) {
            let a = if a.is_finite() { *a } else { 0.0 };
            self.action[k] = a.clamp(space.low[k], space.high[k]);
        }
        let state = &world.robots[task.robot];
        match &task.action {
            ActionKind::JointPosition { dofs } => {
                for (k, &d) in dofs.iter().enumerate() {
                    self.joint_targets[d] = f64::from(self.action[k]);
                    self.command_now[d] = self.joint_targets[d];
                }
            }
            ActionKind::JointPositionDelta { dofs } => {
                for (k, &d) in dofs.iter().enumerate() {
                    let mut t = self.joint_targets[d] + f64::from(self.action[k]);
                    if let Some([lo, hi]) = task.tree.dof_joint(d).limits {
                        t = t.clamp(lo, hi);
                    }
                    self.joint_targets[d] = t;
                    self.command_now[d] = t;
                }
            }
            ActionKind::JointTorque { dofs } => {
                for (k, &d) in dofs.iter().enumerate() {
                    self.command_now[d] = f64::from(self.action[k]);
                }
            }
            ActionKind::ToolDelta {
                frame,
                workspace_min,
                workspace_max,
                dofs,
            } => {
                task.tree
                    .forward_kinematics(&state.position, &mut self.data);
                let measured = task.tree.frame_pose(*frame, &self.data).translation.vector;
                let max_step = f64::from(space.high[0]);
                for k in 0..3 {
                    let next = self.tool_cmd[k] + f64::from(self.action[k]);
                    // The command leads the measured tool by at most a few steps (no wind-up
                    // against an obstacle).
                    let lead = 3.0 * max_step;
                    self.tool_cmd[k] = next
                        .clamp(measured[k] - lead, measured[k] + lead)
                        .clamp(workspace_min[k], workspace_max[k]);
                }
                let target = IkTarget::Pose(Isometry3::from_parts(
                    Translation3::from(self.tool_cmd),
                    self.tool_rotation,
                ));
                if let Some(ik) = self.ik.as_mut() {
                    // An unreachable target still writes the best configuration found.
                    let _ = ik.solve(&task.tree, &target, &self.joint_targets, &mut self.ik_q);
                    if self.ik_q.iter().all(|q| q.is_finite()) {
                        for &d in dofs {
                            self.joint_targets[d] = self.ik_q[d];
                            self.command_now[d] = self.ik_q[d];
                        }
                    }
                }
            }
        }
        if let Some(&g) = self.action.get(space.dim().wrapping_sub(1))
            && !task.gripper.is_empty()
        {
            for finger in &task.gripper {
                self.command_now[finger.dof] =
                    finger.open + f64::from(g) * (finger.closed - finger.open);
            }
        }
    }

    /// Writes the command due at this physics step (after the control latency, through the
    /// safety filter) into the world. Call before each physics step.
    pub fn before_physics(&mut self, world: &mut World) {
        let n = self.command_now.len();
        if n == 0 {
            return;
        }
        if !self.seen.is_empty() {
            let capacity = self.seen.len() / (2 * n);
            self.seen_head = (self.seen_head + 1) % capacity;
            let state = &world.robots[self.task.robot];
            let row = &mut self.seen[self.seen_head * 2 * n..(self.seen_head + 1) * 2 * n];
            row[..n].copy_from_slice(&state.position);
            row[n..].copy_from_slice(&state.velocity);
        }
        let capacity = self.queue.len() / n;
        self.queue_head = (self.queue_head + 1) % capacity;
        let head = self.queue_head;
        self.queue[head * n..(head + 1) * n].copy_from_slice(&self.command_now);
        let due = (head + capacity - self.latency_steps.min(capacity - 1)) % capacity;
        let state = &mut world.robots[self.task.robot];
        state
            .command
            .copy_from_slice(&self.queue[due * n..(due + 1) * n]);
        if let Some((filter, mode)) = self.filter.as_mut() {
            let view = JointStateView {
                position: &state.position,
                velocity: &state.velocity,
                effort: &state.effort,
            };
            filter.apply(*mode, &view, &mut state.command);
        }
    }

    /// Advances the world by one control period: applies `action`, takes the physics
    /// substeps, and writes the observation. Does not reset; see [`TaskRunner::step_auto`].
    pub fn step(
        &mut self,
        world: &mut World,
        action: &[f32],
        observation: &mut [f32],
    ) -> StepOutcome {
        self.apply_action(world, action);
        for _ in 0..self.task.substeps {
            self.before_physics(world);
            world.step();
        }
        self.finish_step(world, observation)
    }

    /// Scores the step that just ran (reward, termination, success) and writes the
    /// observation. Call once after the control period's physics steps.
    pub fn finish_step(&mut self, world: &World, observation: &mut [f32]) -> StepOutcome {
        let task = self.task.clone();
        self.steps += 1;
        let state = &world.robots[task.robot];
        task.tree
            .forward_kinematics(&state.position, &mut self.data);
        let root_from_world = self.world_from_root(world).inverse();
        let mut failed = world.termination().is_some();
        for t in &task.terminations {
            failed |= match *t {
                TerminationModel::JointOutOfRange { dof, min, max } => {
                    let q = state.position[dof];
                    !(min..=max).contains(&q)
                }
                TerminationModel::ObjectOutOfBounds {
                    prop,
                    min_z,
                    max_radius,
                } => {
                    let p_world = prop_translation(world, prop);
                    let p = root_from_world * p_world;
                    p_world.z < min_z || p.x.hypot(p.y) > max_radius
                }
            };
        }
        let met = match &task.success {
            SuccessModel::Survive => false,
            SuccessModel::FrameAtTarget {
                frame, tolerance, ..
            } => {
                let p = task.tree.frame_pose(*frame, &self.data).translation.vector;
                (p - self.target_in_root).norm() <= *tolerance
            }
            SuccessModel::ObjectAtTarget {
                prop,
                tolerance_xy,
                tolerance_z,
                clear_of,
                ..
            } => {
                let p = (root_from_world * prop_translation(world, *prop)).coords;
                let e = p - self.target_in_root;
                let clear = clear_of.is_none_or(|(frame, clearance)| {
                    let f = task.tree.frame_pose(frame, &self.data).translation.vector;
                    (f - p).norm() >= clearance
                });
                e.x.hypot(e.y) <= *tolerance_xy && e.z.abs() <= *tolerance_z && clear
            }
        };
        let hold_steps = match &task.success {
            SuccessModel::Survive => 0,
            SuccessModel::FrameAtTarget { hold_steps, .. }
            | SuccessModel::ObjectAtTarget { hold_steps, .. } => *hold_steps,
        };
        self.hold = if met { self.hold + 1 } else { 0 };
        let reached = met && self.hold > hold_steps;
        let truncated = !failed && !reached && self.steps >= task.episode_steps;
        let success = reached || (truncated && matches!(task.success, SuccessModel::Survive));
        let terminated = failed || reached;

        let mut reward = 0.0;
        for (weight, term) in &task.rewards {
            let kernel = |d: f64, s: &Option<f64>| match s {
                Some(s) => 1.0 - (d / s).tanh(),
                None => d,
            };
            let value = match term {
                RewardModel::Alive => 1.0,
                RewardModel::Success => f64::from(u8::from(reached)),
                RewardModel::FrameTargetDistance(frame, s) => {
                    let p = task.tree.frame_pose(*frame, &self.data).translation.vector;
                    kernel((p - self.target_in_root).norm(), s)
                }
                RewardModel::ObjectTargetDistance(prop, s) => {
                    let p = (root_from_world * prop_translation(world, *prop)).coords;
                    kernel((p - self.target_in_root).norm(), s)
                }
                RewardModel::FrameObjectDistance(frame, prop, s) => {
                    let f = task.tree.frame_pose(*frame, &self.data).translation.vector;
                    let p = (root_from_world * prop_translation(world, *prop)).coords;
                    kernel((p - f).norm(), s)
                }
                RewardModel::JointPositionSquared(dof) => state.position[*dof].powi(2),
                RewardModel::JointVelocitySquared => action_dofs(&task.action)
                    .iter()
                    .map(|&d| state.velocity[d].powi(2))
                    .sum(),
                RewardModel::ActionSquared => (0..self.action.len())
                    .map(|k| {
                        let b = bound(&task.action_space, k);
                        (f64::from(self.action[k]) / b).powi(2)
                    })
                    .sum(),
                RewardModel::ActionRateSquared => (0..self.action.len())
                    .map(|k| {
                        let b = bound(&task.action_space, k);
                        (f64::from(self.action[k] - self.previous_action[k]) / b).powi(2)
                    })
                    .sum(),
            };
            reward += weight * value;
        }
        if !reward.is_finite() {
            reward = 0.0;
        }
        self.episode_return += reward;
        if self.seen.is_empty() {
            // `self.data` holds the kinematics of the state after the step (computed above).
            self.write_observation(world, observation, None);
        } else {
            // The policy sees the joints as they were `observation_latency_steps` ago: the
            // oldest row of the ring (lent out of `self` while the observation is written).
            let n = self.command_now.len();
            let seen = std::mem::take(&mut self.seen);
            let capacity = seen.len() / (2 * n);
            let oldest = (self.seen_head + 1) % capacity;
            let (q, qd) = seen[oldest * 2 * n..(oldest + 1) * 2 * n].split_at(n);
            task.tree.forward_kinematics(q, &mut self.data);
            self.write_observation(world, observation, Some((q, qd)));
            self.seen = seen;
        }
        StepOutcome {
            reward: reward as f32,
            terminated,
            truncated,
            success,
        }
    }

    /// Steps and, when the episode ends, copies the final observation into
    /// `final_observation` and resets (the new episode's first observation goes into
    /// `observation`).
    pub fn step_auto(
        &mut self,
        world: &mut World,
        action: &[f32],
        observation: &mut [f32],
        final_observation: &mut [f32],
    ) -> StepOutcome {
        let outcome = self.step(world, action, observation);
        if outcome.done() {
            final_observation.copy_from_slice(observation);
            self.reset(world, observation);
        }
        outcome
    }

    /// Like [`TaskRunner::step_auto`], executing `action` plus Gaussian noise of `noise_std`
    /// action-bound fractions per dimension (clamped to the bounds); `action` is left as
    /// given.
    pub fn step_with_exploration(
        &mut self,
        world: &mut World,
        action: &[f32],
        noise_std: f32,
        observation: &mut [f32],
        final_observation: &mut [f32],
    ) -> StepOutcome {
        if noise_std <= 0.0 {
            return self.step_auto(world, action, observation, final_observation);
        }
        let mut noisy = std::mem::take(&mut self.noisy_action);
        for (k, a) in action.iter().enumerate().take(noisy.len()) {
            let b = bound(&self.task.action_space, k) as f32;
            noisy[k] = a + noise_std * b * self.gaussian() as f32;
        }
        self.apply_action(world, &noisy);
        self.noisy_action = noisy;
        for _ in 0..self.task.substeps {
            self.before_physics(world);
            world.step();
        }
        let outcome = self.finish_step(world, observation);
        if outcome.done() {
            final_observation.copy_from_slice(observation);
            self.reset(world, observation);
        }
        outcome
    }

    /// The command the last action asks for, one value per DoF of the task robot, before the
    /// control latency and the safety filter (what a deploy loop sends to hardware).
    pub fn command(&self) -> &[f64] {
        &self.command_now
    }

    /// Makes the agent's state start from the robot's measured joints (as a reset does, without
    /// randomising anything): joint targets and commands at the measured positions, the tool
    /// command and held orientation at the measured tool pose, actions zero.
    pub fn sync_to_measured(&mut self, world: &World) {
        let task = self.task.clone();
        let state = &world.robots[task.robot];
        self.joint_targets.copy_from_slice(&state.position);
        for d in 0..self.command_now.len() {
            self.command_now[d] = match self.scene.robots[task.robot].actuators[d].mode {
                CommandMode::Position => state.position[d],
                CommandMode::Velocity | CommandMode::Torque => 0.0,
            };
        }
        task.tree
            .forward_kinematics(&state.position, &mut self.data);
        if let ActionKind::ToolDelta { frame, .. } = &task.action {
            let pose = task.tree.frame_pose(*frame, &self.data);
            self.tool_cmd = pose.translation.vector;
            self.tool_rotation = pose.rotation;
        }
        self.action.fill(0.0);
        self.previous_action.fill(0.0);
    }

    /// Sets the episode's target (in the robot's root frame), as a deploy does instead of
    /// drawing it.
    pub fn set_target_in_root(&mut self, target: [f64; 3]) {
        self.target_in_root = Vector3::from(target);
    }

    /// Writes the current observation.
    pub fn observe(&mut self, world: &World, observation: &mut [f32]) {
        let state = &world.robots[self.task.robot];
        self.task
            .tree
            .forward_kinematics(&state.position, &mut self.data);
        self.write_observation(world, observation, None);
    }

    /// Writes the observation from the kinematics already in `self.data`: forward kinematics
    /// of the observed joint positions, which are `observed` (delayed positions and
    /// velocities) when given, else the current joint state.
    fn write_observation(
        &mut self,
        world: &World,
        observation: &mut [f32],
        observed: Option<(&[f64], &[f64])>,
    ) {
        let task = self.task.clone();
        let current = &world.robots[task.robot];
        let (position, velocity) =
            observed.unwrap_or((&current.position[..], &current.velocity[..]));
        let world_from_root = self.world_from_root(world);
        let root_from_world = world_from_root.inverse();
        let mut i = 0;
        let mut put = |value: f64, noise: f64, rng: &mut Self| {
            let noisy = if noise > 0.0 {
                value + noise * rng.noise_scale * rng.gaussian()
            } else {
                value
            };
            observation[i] = noisy as f32;
            i += 1;
        };
        // Positions of frames in a chosen frame.
        let in_frame = |rel: FrameRef, p_root: Vector3<f64>, data: &TreeData| -> Vector3<f64> {
            match rel {
                FrameRef::World => (world_from_root * nalgebra::Point3::from(p_root)).coords,
                FrameRef::Robot(f) => {
                    (task.tree.frame_pose(f, data).inverse() * nalgebra::Point3::from(p_root))
                        .coords
                }
            }
        };
        for term in &task.observations {
            match term {
                ObservationTerm::JointPosition { dofs, noise_std } => {
                    for &d in dofs {
                        put(position[d], *noise_std, self);
                    }
                }
                ObservationTerm::JointVelocity { dofs, noise_std } => {
                    for &d in dofs {
                        put(velocity[d], *noise_std, self);
                    }
                }
                ObservationTerm::FramePosition {
                    frame,
                    relative_to,
                    noise_std,
                } => {
                    let p = task.tree.frame_pose(*frame, &self.data).translation.vector;
                    let p = in_frame(*relative_to, p, &self.data);
                    for k in 0..3 {
                        put(p[k], *noise_std, self);
                    }
                }
                ObservationTerm::ObjectPosition {
                    prop,
                    relative_to,
                    noise_std,
                } => {
                    let p = (root_from_world * prop_translation(world, *prop)).coords;
                    let p = in_frame(*relative_to, p, &self.data);
                    for k in 0..3 {
                        put(p[k], *noise_std, self);
                    }
                }
                ObservationTerm::ObjectRotation { prop, relative_to } => {
                    let world_from_prop = isometry(&world.body_pose(world.props[*prop]));
                    let frame_from_world = match relative_to {
                        FrameRef::World => Isometry3::identity(),
                        FrameRef::Robot(f) => {
                            task.tree.frame_pose(*f, &self.data).inverse() * root_from_world
                        }
                    };
                    let r =
                        (frame_from_world.rotation * world_from_prop.rotation).to_rotation_matrix();
                    let m = r.matrix();
                    for v in [
                        m[(0, 0)],
                        m[(1, 0)],
                        m[(2, 0)],
                        m[(0, 1)],
                        m[(1, 1)],
                        m[(2, 1)],
                    ] {
                        put(v, 0.0, self);
                    }
                }
                ObservationTerm::TargetPosition { relative_to } => {
                    let p = in_frame(*relative_to, self.target_in_root, &self.data);
                    for k in 0..3 {
                        put(p[k], 0.0, self);
                    }
                }
                ObservationTerm::TargetError { frame } => {
                    let p = task.tree.frame_pose(*frame, &self.data).translation.vector;
                    let e = self.target_in_root - p;
                    for k in 0..3 {
                        put(e[k], 0.0, self);
                    }
                }
                ObservationTerm::ObjectTargetError { prop } => {
                    let p = (root_from_world * prop_translation(world, *prop)).coords;
                    let e = self.target_in_root - p;
                    for k in 0..3 {
                        put(e[k], 0.0, self);
                    }
                }
                ObservationTerm::ObjectFrameError { prop, frame } => {
                    let p = (root_from_world * prop_translation(world, *prop)).coords;
                    let f = task.tree.frame_pose(*frame, &self.data).translation.vector;
                    let e = p - f;
                    for k in 0..3 {
                        put(e[k], 0.0, self);
                    }
                }
                ObservationTerm::PreviousAction => {
                    for k in 0..self.action.len() {
                        put(f64::from(self.action[k]), 0.0, self);
                    }
                }
            }
        }
    }

    /// The scripted expert's action for the current state (privileged: it reads the true
    /// object pose). Returns `false` when the task has no expert.
    pub fn expert_action(&mut self, world: &World, action: &mut [f32]) -> bool {
        let task = self.task.clone();
        let Some(ExpertModel::PickPlace {
            prop,
            grasp_height,
            approach_height,
            grip_steps,
        }) = task.expert.as_ref().cloned()
        else {
            return false;
        };
        let ActionKind::ToolDelta { frame, .. } = &task.action else {
            return false;
        };
        let state = &world.robots[task.robot];
        task.tree
            .forward_kinematics(&state.position, &mut self.data);
        let tool = task.tree.frame_pose(*frame, &self.data).translation.vector;
        let root_from_world = self.world_from_root(world).inverse();
        let object = (root_from_world * prop_translation(world, prop)).coords;
        let up = Vector3::z();
        let above_object = object + up * (grasp_height + approach_height);
        let at_object = object + up * grasp_height;
        let above_target = self.target_in_root + up * (grasp_height + approach_height);
        let at_target = self.target_in_root + up * (grasp_height + 0.003);
        let near = |goal: &Vector3<f64>, tol: f64| (tool - goal).norm() <= tol;
        let mut closed = false;
        use ExpertPhase::*;
        let goal = match self.expert_phase {
            Approach => {
                if near(&above_object, 0.01) {
                    self.expert_phase = Descend;
                }
                above_object
            }
            Descend => {
                if near(&at_object, 0.004) {
                    self.expert_phase = Close;
                    self.expert_timer = 0;
                    self.expert_goal = at_object;
                }
                at_object
            }
            Close => {
                closed = true;
                self.expert_timer += 1;
                if self.expert_timer >= grip_steps {
                    self.expert_phase = Lift;
                    self.expert_goal = tool + up * approach_height;
                }
                self.expert_goal
            }
            Lift => {
                closed = true;
                if near(&self.expert_goal, 0.01) {
                    self.expert_phase = Carry;
                }
                self.expert_goal
            }
            Carry => {
                closed = true;
                if near(&above_target, 0.008) {
                    self.expert_phase = Lower;
                    self.expert_timer = 0;
                }
                above_target
            }
            Lower => {
                closed = true;
                // Set down: at the place pose, or stopped by the ground (the grasp slid).
                self.expert_timer += 1;
                if near(&at_target, 0.004) || self.expert_timer > 2 * grip_steps {
                    self.expert_phase = Open;
                    self.expert_timer = 0;
                    self.expert_goal = at_target;
                }
                at_target
            }
            Open => {
                self.expert_timer += 1;
                if self.expert_timer >= grip_steps {
                    self.expert_phase = Retreat;
                    self.expert_goal = tool + up * approach_height;
                }
                self.expert_goal
            }
            Retreat => self.expert_goal,
        };
        let max_step = f64::from(task.action_space.high[0]);
        for k in 0..3 {
            action[k] = (goal[k] - self.tool_cmd[k]).clamp(-max_step, max_step) as f32;
        }
        if let Some(last) = action.get_mut(task.action_space.dim() - 1) {
            *last = if closed { 1.0 } else { 0.0 };
        }
        true
    }
}

fn prop_translation(world: &World, prop: usize) -> nalgebra::Point3<f64> {
    let t = pose_to_transform(world.physics().bodies[world.props[prop]].position()).translation;
    nalgebra::Point3::new(f64::from(t[0]), f64::from(t[1]), f64::from(t[2]))
}

fn action_dofs(action: &ActionKind) -> &[usize] {
    match action {
        ActionKind::JointPosition { dofs }
        | ActionKind::JointPositionDelta { dofs }
        | ActionKind::JointTorque { dofs }
        | ActionKind::ToolDelta { dofs, .. } => dofs,
    }
}

fn bound(space: &SpaceLayout, k: usize) -> f64 {
    let b = f64::from(space.high[k].abs().max(space.low[k].abs()));
    if b.is_finite() && b > 0.0 { b } else { 1.0 }
}

/// Output buffers of one vectorised step, owned by the caller (the learning crate's
/// `StepResult` fields).
pub struct StepBuffers<'a> {
    /// `num_envs × observation_dim`.
    pub observations: &'a mut [f32],
    /// Per world.
    pub rewards: &'a mut [f32],
    /// Per world.
    pub terminated: &'a mut [bool],
    /// Per world.
    pub truncated: &'a mut [bool],
    /// Per world.
    pub success: &'a mut [bool],
    /// `num_envs × observation_dim`; rows of ended episodes hold their last observation.
    pub final_observations: &'a mut [f32],
}

/// Where a vectorised step's actions come from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ActionSource {
    /// The caller's actions (`num_envs × action_dim`).
    Given,
    /// The task's scripted expert; with `noise_std > 0` the executed action is the expert's
    /// plus Gaussian noise of that many action-bound fractions (DART-style demonstrations),
    /// and the clean expert action is written back into the actions buffer as the label.
    Expert {
        /// Noise standard deviation as a fraction of each action bound.
        noise_std: f32,
    },
}

/// Worlds owned by one worker, with their slices of the step's inputs and outputs.
struct Lane {
    /// (world index, world, runner).
    worlds: Vec<(usize, World, TaskRunner)>,
    actions: Vec<f32>,
    observations: Vec<f32>,
    final_observations: Vec<f32>,
    outcomes: Vec<StepOutcome>,
    command: LaneCommand,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum LaneCommand {
    Reset(u64),
    Step(ActionSource),
    Exit,
}

impl Lane {
    fn run(&mut self, obs_dim: usize, act_dim: usize) {
        let Lane {
            worlds,
            actions,
            observations,
            final_observations,
            outcomes,
            command,
        } = self;
        for (k, (index, world, runner)) in worlds.iter_mut().enumerate() {
            let obs = &mut observations[k * obs_dim..(k + 1) * obs_dim];
            match *command {
                LaneCommand::Reset(seed) => {
                    runner.seed(seed, *index as u64);
                    runner.reset(world, obs);
                }
                LaneCommand::Step(source) => {
                    let action = &mut actions[k * act_dim..(k + 1) * act_dim];
                    let fin = &mut final_observations[k * obs_dim..(k + 1) * obs_dim];
                    outcomes[k] = match source {
                        ActionSource::Given => runner.step_auto(world, action, obs, fin),
                        ActionSource::Expert { noise_std } => {
                            runner.expert_action(world, action);
                            runner.step_with_exploration(world, action, noise_std, obs, fin)
                        }
                    };
                }
                LaneCommand::Exit => {}
            }
        }
    }
}

/// N worlds of one scene's task, stepped in parallel by persistent workers.
///
/// World `i` belongs to worker `i mod threads`. Each worker is the only thread of its own
/// rayon pool, so rapier (which parallelises through the calling thread's pool) runs inline
/// on it; workers meet the caller at two barriers per step. Results do not depend on the
/// thread count, and nothing allocates per step.
pub struct VecTaskEnv {
    lanes: Vec<Arc<std::sync::Mutex<Lane>>>,
    start: Arc<std::sync::Barrier>,
    done: Arc<std::sync::Barrier>,
    _pools: Vec<rayon::ThreadPool>,
    task: Arc<TaskModel>,
    num_envs: usize,
}

impl VecTaskEnv {
    /// Builds `num_envs` worlds of `scene` (which must have a task), stepped on `threads`
    /// worker threads.
    pub fn new(scene: Arc<Scene>, num_envs: usize, threads: usize) -> Result<Self, SimError> {
        let task = scene.task.clone().ok_or_else(|| {
            SimError::scene(&scene.source, "task", "the scene has no [task] section")
        })?;
        if num_envs == 0 {
            return Err(SimError::scene(
                &scene.source,
                "task",
                "need at least one world",
            ));
        }
        let threads = threads.clamp(1, num_envs);
        let (obs_dim, act_dim) = (task.observation_space.dim(), task.action_space.dim());
        let mut lanes: Vec<Lane> = (0..threads)
            .map(|_| Lane {
                worlds: Vec::new(),
                actions: Vec::new(),
                observations: Vec::new(),
                final_observations: Vec::new(),
                outcomes: Vec::new(),
                command: LaneCommand::Exit,
            })
            .collect();
        for i in 0..num_envs {
            // No rapier pool of its own: the world runs on its worker's one-thread pool.
            let world = World::new(
                scene.clone(),
                WorldOptions {
                    seed: i as u64,
                    threads: None,
                },
            )?;
            let runner = TaskRunner::new(&world)?;
            lanes[i % threads].worlds.push((i, world, runner));
        }
        for lane in &mut lanes {
            let n = lane.worlds.len();
            lane.actions = vec![0.0; n * act_dim];
            lane.observations = vec![0.0; n * obs_dim];
            lane.final_observations = vec![0.0; n * obs_dim];
            lane.outcomes = vec![StepOutcome::default(); n];
        }
        let lanes: Vec<_> = lanes
            .into_iter()
            .map(|l| Arc::new(std::sync::Mutex::new(l)))
            .collect();
        let start = Arc::new(std::sync::Barrier::new(threads + 1));
        let done = Arc::new(std::sync::Barrier::new(threads + 1));
        let mut pools = Vec::with_capacity(threads);
        for (k, lane) in lanes.iter().enumerate() {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .thread_name(move |_| format!("rivet-env-{k}"))
                .build()
                .map_err(|e| {
                    SimError::scene(&scene.source, "task", format!("worker thread: {e}"))
                })?;
            let (lane, start, done) = (lane.clone(), start.clone(), done.clone());
            pool.spawn(move || {
                loop {
                    start.wait();
                    let exit = match lane.lock() {
                        Ok(mut l) => {
                            l.run(obs_dim, act_dim);
                            l.command == LaneCommand::Exit
                        }
                        // A panic in another worker poisoned nothing of ours: stop.
                        Err(_) => true,
                    };
                    done.wait();
                    if exit {
                        break;
                    }
                }
            });
            pools.push(pool);
        }
        Ok(Self {
            lanes,
            start,
            done,
            _pools: pools,
            task,
            num_envs,
        })
    }

    /// The task model.
    pub fn task(&self) -> &Arc<TaskModel> {
        &self.task
    }

    /// Number of worlds.
    pub fn num_envs(&self) -> usize {
        self.num_envs
    }

    fn threads(&self) -> usize {
        self.lanes.len()
    }

    fn lane(&self, k: usize) -> std::sync::MutexGuard<'_, Lane> {
        // Workers only panic on bugs; surface them here.
        self.lanes[k]
            .lock()
            .expect("an environment worker panicked")
    }

    fn dispatch(&self, command: LaneCommand) {
        for k in 0..self.threads() {
            self.lane(k).command = command;
        }
        self.start.wait();
        self.done.wait();
    }

    /// Runs `f` on world `i` and its runner (e.g. to record it).
    pub fn with_world<R>(&self, i: usize, f: impl FnOnce(&World, &TaskRunner) -> R) -> R {
        let lane = self.lane(i % self.threads());
        let (_, world, runner) = &lane.worlds[i / self.threads()];
        f(world, runner)
    }

    /// Resets every world from `seed` (world `i` uses stream `i`) and writes the first
    /// observations.
    pub fn reset(&mut self, seed: u64, observations: &mut [f32]) {
        self.dispatch(LaneCommand::Reset(seed));
        let dim = self.task.observation_space.dim();
        let t = self.threads();
        for k in 0..t {
            let lane = self.lane(k);
            for (j, (i, _, _)) in lane.worlds.iter().enumerate() {
                observations[i * dim..(i + 1) * dim]
                    .copy_from_slice(&lane.observations[j * dim..(j + 1) * dim]);
            }
        }
    }

    /// Steps every world one control period with actions from `source`, resetting ended
    /// episodes. `actions` (`num_envs × action_dim`) is read for [`ActionSource::Given`] and
    /// receives the expert's clean actions for [`ActionSource::Expert`].
    pub fn step(&mut self, source: ActionSource, actions: &mut [f32], out: StepBuffers<'_>) {
        let (dim, act) = (
            self.task.observation_space.dim(),
            self.task.action_space.dim(),
        );
        let t = self.threads();
        for k in 0..t {
            let mut lane = self.lane(k);
            let Lane {
                worlds, actions: a, ..
            } = &mut *lane;
            for (j, (i, _, _)) in worlds.iter().enumerate() {
                a[j * act..(j + 1) * act].copy_from_slice(&actions[i * act..(i + 1) * act]);
            }
        }
        self.dispatch(LaneCommand::Step(source));
        for k in 0..t {
            let lane = self.lane(k);
            for (j, (i, _, _)) in lane.worlds.iter().enumerate() {
                let i = *i;
                out.observations[i * dim..(i + 1) * dim]
                    .copy_from_slice(&lane.observations[j * dim..(j + 1) * dim]);
                out.final_observations[i * dim..(i + 1) * dim]
                    .copy_from_slice(&lane.final_observations[j * dim..(j + 1) * dim]);
                let o = lane.outcomes[j];
                out.rewards[i] = o.reward;
                out.terminated[i] = o.terminated;
                out.truncated[i] = o.truncated;
                out.success[i] = o.success;
                if source != ActionSource::Given {
                    actions[i * act..(i + 1) * act]
                        .copy_from_slice(&lane.actions[j * act..(j + 1) * act]);
                }
            }
        }
    }
}

impl Drop for VecTaskEnv {
    fn drop(&mut self) {
        for k in 0..self.threads() {
            if let Ok(mut lane) = self.lanes[k].lock() {
                lane.command = LaneCommand::Exit;
            }
        }
        self.start.wait();
        self.done.wait();
    }
}

#[cfg(test)]
mod tests;
