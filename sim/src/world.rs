//! Per-step simulation state built from a [`Scene`], and the fixed-step stages that advance it.
//!
//! A [`World`] owns the rapier sets and the robots' joint buffers. Stepping runs, in order:
//! actions (scripted controllers and actor motion write commands and kinematic targets),
//! actuators (commands become joint motors or efforts), physics (one rapier step), sensors
//! (joint state read back, non-finite state detected). Recording reads the world afterwards.
//! After construction nothing on this path allocates.

use std::sync::Arc;

use rapier3d::prelude::*;
use rivet_control::{CommandMode, Controller, DiffDrive, JointStateView, PatrolController, Pose2};

use crate::error::SimError;
use crate::math::{Transform, pose_to_transform, transform_to_pose, vec3};
use crate::robot::{Blueprint, Geometry, RobotModel};
use crate::scene::{Actuator, DEFAULT_KP_PER_INERTIA, Scene, Script, ShapeModel};

/// A rapier rigid-body handle (re-exported so callers need no rapier dependency).
pub type BodyHandle = RigidBodyHandle;

/// Default derivative gain per kilogram-metre² (N·m·s/rad per kg·m²): critical damping for
/// [`DEFAULT_KP_PER_INERTIA`].
pub const DEFAULT_KD_PER_INERTIA: f64 = 2.0 * 200.0;

#[cfg(test)]
const _: () = assert!(DEFAULT_KP_PER_INERTIA == 200.0 * 200.0);

/// Settings for building a world that are not part of the scene.
#[derive(Clone, Copy, Debug)]
pub struct WorldOptions {
    /// Seed for everything random in the world (sensor noise, randomisation).
    pub seed: u64,
    /// Threads for rapier's parallel solver; `None` uses the calling thread's rayon pool.
    pub threads: Option<usize>,
}

impl Default for WorldOptions {
    fn default() -> Self {
        Self {
            seed: 0,
            threads: Some(1),
        }
    }
}

/// Where a degree of freedom lives in rapier.
#[derive(Clone, Copy, Debug)]
struct DofSlot {
    multibody: MultibodyIndex,
    link: usize,
    axis: usize,
    child_body: RigidBodyHandle,
    parent_body: Option<RigidBodyHandle>,
    /// Joint axis in the child body's frame, for torque-mode efforts.
    axis_in_child: Vector,
    /// Joint position at rapier's coordinate 0 (see `DofModel::reference`).
    reference: f64,
}

/// The scripted controller of a robot, as runtime state.
enum ScriptState {
    Trajectory(Box<rivet_control::WaypointTrajectory>),
    PickPlace {
        sequencer: Box<rivet_control::pick_place::PickPlace>,
        /// World pose of the robot's base (the sequencer works in the base frame).
        world_from_base: nalgebra::Isometry3<f64>,
    },
    Patrol {
        controller: PatrolController,
        drive: DiffDrive,
        left: usize,
        right: usize,
    },
}

/// Runtime state of one robot.
pub struct RobotState {
    /// Root link body.
    pub base_body: RigidBodyHandle,
    /// Body of each model link (`None` for links the loader merged away).
    pub link_bodies: Vec<Option<RigidBodyHandle>>,
    dofs: Vec<DofSlot>,
    /// Joint positions after the last step (rad or m), one per DoF.
    pub position: Vec<f64>,
    /// Joint velocities after the last step (rad/s or m/s).
    pub velocity: Vec<f64>,
    /// Effort of each actuator over the last step (N·m or N).
    pub effort: Vec<f64>,
    /// Current command per DoF, interpreted in the actuator's mode.
    pub command: Vec<f64>,
    /// Position gain in use per DoF.
    pub kp: Vec<f64>,
    /// Derivative gain in use per DoF.
    pub kd: Vec<f64>,
    /// Position target actually sent last step (after rate limiting), per DoF.
    pub(crate) target: Vec<f64>,
    /// Commands waiting out the robot's command latency: `latency + 1` rows of one command per
    /// DoF, written at `delay_head`; the row after it is the one `latency` steps old.
    delay_rows: Vec<f64>,
    delay_head: usize,
    script: Option<ScriptState>,
    /// The safety filter every scripted command passes (URDF robots whose actuators share one
    /// mode), its mode, and whether it has been initialised from the measured state.
    safety: Option<(Box<rivet_control::safety::SafetyFilter>, CommandMode)>,
    safety_ready: bool,
    /// Per multibody of the robot, a displacement buffer for resetting joint coordinates.
    reset_buffers: Vec<(MultibodyIndex, Vec<f32>)>,
    /// Mimic followers: multibody, assembly offset, axis, leader DoF, multiplier, offset.
    mimic_followers: Vec<MimicFollower>,
}

impl RobotState {
    /// Fills the command delay line with the current commands (as if held forever).
    fn fill_delay_line(&mut self) {
        let n = self.command.len();
        for row in self.delay_rows.chunks_exact_mut(n.max(1)) {
            row.copy_from_slice(&self.command);
        }
        self.delay_head = 0;
    }
}

/// A mimic joint's coordinate, set from its leader's when joints are reset.
#[derive(Clone, Copy, Debug)]
struct MimicFollower {
    multibody: MultibodyIndex,
    link: usize,
    axis: usize,
    leader_dof: usize,
    multiplier: f64,
    offset: f64,
}

/// Why a run ended early.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub enum Termination {
    /// The state became non-finite.
    NonFinite {
        /// Description (time, body or joint).
        message: String,
    },
}

/// Simulation state of a scene: rapier sets, robots, props and actors.
pub struct World {
    scene: Arc<Scene>,
    physics: PhysicsWorld,
    /// Robot states, in scene order.
    pub robots: Vec<RobotState>,
    /// Prop bodies, in scene order.
    pub props: Vec<RigidBodyHandle>,
    /// Actor bodies, in scene order.
    pub actors: Vec<RigidBodyHandle>,
    time_secs: f64,
    step_index: u64,
    termination: Option<Termination>,
    seed: u64,
}

impl World {
    /// Builds the initial state of a scene.
    pub fn new(scene: Arc<Scene>, options: WorldOptions) -> Result<Self, SimError> {
        let mut physics = PhysicsWorld::new();
        let w = &scene.world;
        physics.gravity = vec3(w.gravity);
        physics.integration_parameters.dt = w.dt_secs as f32;
        physics.integration_parameters.num_solver_iterations = w.solver_iterations as usize;
        physics.integration_parameters.num_internal_pgs_iterations = w.pgs_iterations as usize;
        physics.integration_parameters.length_unit = 1.0;
        physics
            .integration_parameters
            .normalized_prediction_distance = w.contact_prediction_m as f32;
        if let Some(threads) = options.threads {
            physics
                .physics_pipeline
                .configure_thread_pool(threads.max(1))
                .map_err(|e| {
                    SimError::scene(&scene.source, "world", format!("thread pool: {e}"))
                })?;
        }
        if let Some(friction) = w.ground_friction {
            let ground = physics.bodies.insert(RigidBodyBuilder::fixed());
            let collider = ColliderBuilder::halfspace(rapier3d::na::Unit::new_unchecked(Vector::Z))
                .friction(friction as f32);
            physics
                .colliders
                .insert_with_parent(collider, ground, &mut physics.bodies);
        }
        let mut robots = Vec::with_capacity(scene.robots.len());
        for robot in &scene.robots {
            robots.push(instantiate_robot(&mut physics, robot, w.dt_secs)?);
        }
        let props = scene
            .props
            .iter()
            .map(|p| {
                let builder = if p.dynamic {
                    RigidBodyBuilder::dynamic()
                } else {
                    RigidBodyBuilder::fixed()
                };
                let body = physics
                    .bodies
                    .insert(builder.pose(transform_to_pose(&p.world_from_prop)));
                let mut collider = collider_for(&p.shape)
                    .friction(p.friction as f32)
                    .restitution(p.restitution as f32);
                collider = match p.mass_kg {
                    Some(m) => collider.mass(m as f32),
                    None => collider.density(p.density as f32),
                };
                physics
                    .colliders
                    .insert_with_parent(collider, body, &mut physics.bodies);
                body
            })
            .collect();
        let actors = scene
            .actors
            .iter()
            .map(|a| {
                let (p, heading) = a.position_at(0.0);
                let pose = crate::math::pose_from_xyz_rpy(p, [0.0, 0.0, heading]);
                let body = physics
                    .bodies
                    .insert(RigidBodyBuilder::kinematic_position_based().pose(pose));
                physics.colliders.insert_with_parent(
                    collider_for(&a.shape),
                    body,
                    &mut physics.bodies,
                );
                body
            })
            .collect();
        let mut world = Self {
            scene,
            physics,
            robots,
            props,
            actors,
            time_secs: 0.0,
            step_index: 0,
            termination: None,
            seed: options.seed,
        };
        world.read_joint_state();
        for r in &mut world.robots {
            r.target.copy_from_slice(&r.position);
            r.command.copy_from_slice(&r.position);
            r.fill_delay_line();
        }
        Ok(world)
    }

    /// The scene this world was built from.
    pub fn scene(&self) -> &Arc<Scene> {
        &self.scene
    }

    /// Simulated time (s).
    pub fn time_secs(&self) -> f64 {
        self.time_secs
    }

    /// Steps taken.
    pub fn step_index(&self) -> u64 {
        self.step_index
    }

    /// The seed the world was built with.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Why the run ended early, if it did.
    pub fn termination(&self) -> Option<&Termination> {
        self.termination.as_ref()
    }

    /// Read access to rapier's state (bodies, colliders, contacts) for sensors and recording.
    pub fn physics(&self) -> &PhysicsWorld {
        &self.physics
    }

    /// Pose of a body in the world.
    pub fn body_pose(&self, body: RigidBodyHandle) -> Transform {
        pose_to_transform(self.physics.bodies[body].position())
    }

    /// Number of touching contact pairs after the last step.
    pub fn contact_pair_count(&self) -> usize {
        self.physics
            .narrow_phase
            .contact_pairs()
            .filter(|p| p.has_any_active_contact())
            .count()
    }

    /// Visits every active contact point (world frame, m) after the last step.
    pub fn for_each_contact_point(&self, mut f: impl FnMut([f32; 3])) {
        for pair in self.physics.narrow_phase.contact_pairs() {
            let Some(collider) = self.physics.colliders.get(pair.collider1) else {
                continue;
            };
            let world_from_collider = collider.position();
            for manifold in pair.manifolds() {
                for contact in manifold.points.iter().filter(|c| c.dist <= 0.0) {
                    let p = world_from_collider * contact.local_p1;
                    f([p.x, p.y, p.z]);
                }
            }
        }
    }

    /// Visits every touching contact pair after the last step: the mean of its active contact
    /// points (world frame, m) and the force of the contact on the pair's second collider
    /// (world frame, N: the pair's total impulse over the timestep).
    pub fn for_each_contact_force(&self, mut f: impl FnMut([f32; 3], [f32; 3])) {
        let dt = self.scene.world.dt_secs as f32;
        for pair in self.physics.narrow_phase.contact_pairs() {
            let Some(collider) = self.physics.colliders.get(pair.collider1) else {
                continue;
            };
            let world_from_collider = collider.position();
            let mut sum = Vector::ZERO;
            let mut count = 0u32;
            for manifold in pair.manifolds() {
                for contact in manifold.points.iter().filter(|c| c.dist <= 0.0) {
                    sum += world_from_collider * contact.local_p1;
                    count += 1;
                }
            }
            if count == 0 {
                continue;
            }
            let p = sum / count as f32;
            let force = pair.total_impulse() / dt;
            f([p.x, p.y, p.z], [force.x, force.y, force.z]);
        }
    }

    /// Drops robot `robot`'s scripted controller, if it has one: from the next step its
    /// commands are the caller's (an interactive viewer's teleoperation), still through the
    /// robot's safety filter. Returns whether there was a script. A world built anew gets the
    /// script back.
    pub fn release_script(&mut self, robot: usize) -> bool {
        self.robots
            .get_mut(robot)
            .and_then(|r| r.script.take())
            .is_some()
    }

    /// Mutable access to rapier's state, for the task environment's randomisation.
    pub(crate) fn physics_mut(&mut self) -> &mut PhysicsWorld {
        &mut self.physics
    }

    /// Starts a new episode's clock: time and step count back to zero, no termination.
    pub fn reset_clock(&mut self) {
        self.time_secs = 0.0;
        self.step_index = 0;
        self.termination = None;
    }

    /// Puts robot `robot`'s joints at `positions` (rad or m) moving at `velocities`, one value
    /// per DoF, with mimic joints on their coupling; position targets and commands follow the
    /// new positions. Allocation-free.
    pub fn reset_robot_joints(&mut self, robot: usize, positions: &[f64], velocities: &[f64]) {
        let Some(state) = self.robots.get_mut(robot) else {
            return;
        };
        let physics = &mut self.physics;
        for (index, buffer) in &mut state.reset_buffers {
            buffer.fill(0.0);
            let Some(multibody) = physics.multibody_joints.get_multibody(*index) else {
                continue;
            };
            for (d, slot) in state.dofs.iter().enumerate() {
                if slot.multibody != *index {
                    continue;
                }
                if let Some(link) = multibody.link(slot.link)
                    && let Some(x) = buffer.get_mut(link.assembly_id())
                {
                    *x = (positions[d] - slot.reference) as f32 - link.joint.coords()[slot.axis];
                }
            }
            for m in state
                .mimic_followers
                .iter()
                .filter(|m| m.multibody == *index)
            {
                if let Some(link) = multibody.link(m.link)
                    && let Some(x) = buffer.get_mut(link.assembly_id())
                {
                    let goal = m.multiplier * positions[m.leader_dof] + m.offset;
                    *x = goal as f32 - link.joint.coords()[m.axis];
                }
            }
        }
        for (index, buffer) in &state.reset_buffers {
            let Some(multibody) = physics.multibody_joints.get_multibody_mut(*index) else {
                continue;
            };
            if multibody.ndofs() == buffer.len() {
                multibody.apply_displacements(buffer);
            }
            let mut v = multibody.generalized_velocity_mut();
            v.fill(0.0);
            for (d, slot) in state.dofs.iter().enumerate() {
                if slot.multibody != *index {
                    continue;
                }
                if let Some(offset) = multibody.link(slot.link).map(|l| l.assembly_id())
                    && offset < multibody.ndofs()
                {
                    multibody.generalized_velocity_mut()[offset] = velocities[d] as f32;
                }
            }
            for m in state
                .mimic_followers
                .iter()
                .filter(|m| m.multibody == *index)
            {
                if let Some(offset) = multibody.link(m.link).map(|l| l.assembly_id())
                    && offset < multibody.ndofs()
                {
                    multibody.generalized_velocity_mut()[offset] =
                        (m.multiplier * velocities[m.leader_dof]) as f32;
                }
            }
            multibody.forward_kinematics(&physics.bodies, true);
            multibody.update_rigid_bodies(&mut physics.bodies, true);
        }
        for body in state.link_bodies.iter().flatten() {
            if let Some(rb) = physics.bodies.get_mut(*body) {
                rb.reset_forces(false);
                rb.reset_torques(false);
                rb.wake_up(true);
            }
        }
        state.position.copy_from_slice(positions);
        state.velocity.copy_from_slice(velocities);
        state.target.copy_from_slice(positions);
        state.command.copy_from_slice(positions);
        state.fill_delay_line();
        state.effort.fill(0.0);
        state.safety_ready = false;
    }

    /// Places prop `prop` at `world_from_prop`, at rest.
    pub fn reset_prop(&mut self, prop: usize, world_from_prop: &Transform) {
        let Some(&handle) = self.props.get(prop) else {
            return;
        };
        if let Some(body) = self.physics.bodies.get_mut(handle) {
            body.set_position(transform_to_pose(world_from_prop), true);
            body.set_linvel(Vector::ZERO, true);
            body.set_angvel(Vector::ZERO, true);
            body.reset_forces(true);
            body.reset_torques(true);
        }
    }

    /// Sets the viscous damping of DoF `dof` of robot `robot` (N·m·s/rad or N·s/m).
    pub fn set_joint_damping(&mut self, robot: usize, dof: usize, damping: f64) {
        let Some(slot) = self.robots.get(robot).and_then(|r| r.dofs.get(dof)) else {
            return;
        };
        if let Some(multibody) = self
            .physics
            .multibody_joints
            .get_multibody_mut(slot.multibody)
            && let Some(offset) = multibody.link(slot.link).map(|l| l.assembly_id())
            && offset < multibody.ndofs()
        {
            multibody.damping_mut()[offset] = damping as f32;
        }
    }

    /// The position target last sent to the actuators, per DoF of robot `robot` (rad or m).
    pub fn position_targets(&self, robot: usize) -> &[f64] {
        &self.robots[robot].target
    }

    /// Stage "actions": scripted controllers write commands; actors get their next kinematic
    /// pose.
    pub fn stage_actions(&mut self) {
        self.run_scripts();
        self.move_actors();
    }

    /// Scripted controllers write their robots' commands for the coming step.
    pub fn run_scripts(&mut self) {
        let next_t = self.time_secs + self.scene.world.dt_secs;
        for state in &mut self.robots {
            match &mut state.script {
                None => {}
                Some(ScriptState::PickPlace {
                    sequencer,
                    world_from_base,
                }) => {
                    // Ground truth stands in for perception: the object's pose in the base frame.
                    if let Some(object) = sequencer.object_wanted()
                        && let Some(&body) = self.props.get(object)
                    {
                        let pose = pose_to_transform(self.physics.bodies[body].position());
                        sequencer.set_object_pose(
                            world_from_base.inverse() * crate::math::isometry(&pose),
                        );
                    }
                    let view = JointStateView {
                        position: &state.position,
                        velocity: &state.velocity,
                        effort: &state.effort,
                    };
                    sequencer.update(
                        &view,
                        &rivet_control::Target::None,
                        next_t,
                        &mut state.command,
                    );
                }
                Some(ScriptState::Trajectory(trajectory)) => {
                    let view = JointStateView {
                        position: &state.position,
                        velocity: &state.velocity,
                        effort: &state.effort,
                    };
                    trajectory.update(
                        &view,
                        &rivet_control::Target::None,
                        next_t,
                        &mut state.command,
                    );
                }
                Some(ScriptState::Patrol {
                    controller,
                    drive,
                    left,
                    right,
                }) => {
                    let pose = self.physics.bodies[state.base_body].position();
                    let heading = pose.rotation * Vector::X;
                    let (v, omega) = controller.update(Pose2 {
                        x: f64::from(pose.translation.x),
                        y: f64::from(pose.translation.y),
                        yaw: f64::from(heading.y).atan2(f64::from(heading.x)),
                    });
                    let (wl, wr) = drive.wheel_speeds(v, omega);
                    state.command[*left] = wl;
                    state.command[*right] = wr;
                }
            }
            // Every scripted command passes the safety filter before the actuators see it.
            if let Some((filter, mode)) = state.safety.as_mut() {
                let view = JointStateView {
                    position: &state.position,
                    velocity: &state.velocity,
                    effort: &state.effort,
                };
                if !state.safety_ready {
                    // The state is finite here (non-finite states end the run first).
                    state.safety_ready = filter.reset(&view).is_ok();
                }
                filter.apply(*mode, &view, &mut state.command);
            }
        }
    }

    /// Actors get their kinematic pose for the end of the coming step.
    pub fn move_actors(&mut self) {
        let next_t = self.time_secs + self.scene.world.dt_secs;
        for (actor, &body) in self.scene.actors.iter().zip(&self.actors) {
            let (p, heading) = actor.position_at(next_t);
            let pose = crate::math::pose_from_xyz_rpy(p, [0.0, 0.0, heading]);
            self.physics.bodies[body].set_next_kinematic_position(pose);
        }
    }

    /// Stage "actuators": commands become joint motors (position, velocity) or efforts
    /// (torque), clamped to the actuator's limits.
    pub fn stage_actuators(&mut self) {
        let dt = self.scene.world.dt_secs;
        let Self {
            scene,
            physics,
            robots,
            ..
        } = self;
        for (robot, state) in scene.robots.iter().zip(robots.iter_mut()) {
            // Torque-mode efforts are re-applied every step; clear last step's once per robot
            // (not per joint: a link is the child of one joint and the parent of others).
            if robot
                .actuators
                .iter()
                .any(|a| a.mode == CommandMode::Torque)
            {
                for body in state.link_bodies.iter().flatten() {
                    if let Some(body) = physics.bodies.get_mut(*body) {
                        body.reset_forces(false);
                        body.reset_torques(false);
                    }
                }
            }
            // The command latency: this step's commands go in, the ones `latency` steps old
            // come out.
            let n = state.command.len();
            let rows = state.delay_rows.len() / n.max(1);
            let due = if rows > 1 {
                let head = state.delay_head;
                state.delay_rows[head * n..(head + 1) * n].copy_from_slice(&state.command);
                state.delay_head = (head + 1) % rows;
                Some(state.delay_head * n)
            } else {
                None
            };
            for (d, slot) in state.dofs.iter().enumerate() {
                let actuator = &robot.actuators[d];
                let joint = robot.model.dof_joint(crate::robot::DofId(d as u32));
                let command = due.map_or(state.command[d], |row| state.delay_rows[row + d]);
                let axis = if slot.axis == 0 {
                    JointAxis::LinX
                } else {
                    JointAxis::AngX
                };
                let max_force = actuator.effort_limit.min(f64::from(f32::MAX)) as f32;
                let (kp, kd) = (state.kp[d], state.kd[d]);
                let mut torque = 0.0;
                let motor = match actuator.mode {
                    CommandMode::Position => {
                        let mut target = if command.is_finite() {
                            command
                        } else {
                            state.target[d]
                        };
                        if let Some([lo, hi]) = joint.limits {
                            target = target.clamp(lo, hi);
                        }
                        let step = actuator.velocity_limit * dt;
                        target = target.clamp(state.target[d] - step, state.target[d] + step);
                        state.target[d] = target;
                        Some(((target - slot.reference) as f32, 0.0, kp as f32, kd as f32))
                    }
                    CommandMode::Velocity => {
                        let v = if command.is_finite() { command } else { 0.0 };
                        let v = v.clamp(-actuator.velocity_limit, actuator.velocity_limit);
                        Some((0.0, v as f32, 0.0, kd as f32))
                    }
                    CommandMode::Torque => {
                        let t = if command.is_finite() { command } else { 0.0 };
                        torque = t.clamp(-actuator.effort_limit, actuator.effort_limit);
                        None
                    }
                };
                let Some(multibody) = physics.multibody_joints.get_multibody_mut(slot.multibody)
                else {
                    continue;
                };
                let Some(link) = multibody.link_mut(slot.link) else {
                    continue;
                };
                let data = &mut link.joint.data;
                // Torque mode leaves the joint's motor alone (none for URDF joints; MJCF springs
                // stay as the model defines them).
                if let Some((pos, vel, stiffness, damping)) = motor {
                    data.set_motor_model(axis, MotorModel::ForceBased);
                    data.set_motor(axis, pos, vel, stiffness, damping);
                    data.set_motor_max_force(axis, max_force);
                }
                if actuator.mode == CommandMode::Torque {
                    // No generalized-force API on multibodies: apply equal and opposite
                    // efforts on the two bodies the joint connects.
                    let child_rotation = physics.bodies[slot.child_body].position().rotation;
                    let axis_world = child_rotation * slot.axis_in_child;
                    let effort = axis_world * torque as f32;
                    let apply = |body: &mut RigidBody, sign: f32| {
                        if slot.axis == 0 {
                            body.add_force(effort * sign, true);
                        } else {
                            body.add_torque(effort * sign, true);
                        }
                    };
                    apply(&mut physics.bodies[slot.child_body], 1.0);
                    if let Some(parent) = slot.parent_body {
                        apply(&mut physics.bodies[parent], -1.0);
                    }
                    state.effort[d] = torque;
                }
            }
        }
    }

    /// Stage "physics": one rapier step.
    pub fn stage_physics(&mut self) {
        self.physics.step();
        self.time_secs += self.scene.world.dt_secs;
        self.step_index += 1;
    }

    /// Stage "sensors": reads joint state back and checks the state is finite.
    pub fn stage_sensors(&mut self) {
        self.read_joint_state();
        self.estimate_efforts();
        if self.termination.is_none()
            && let Some(message) = self.find_non_finite()
        {
            self.termination = Some(Termination::NonFinite {
                message: SimError::NonFinite {
                    time_secs: self.time_secs,
                    step: self.step_index,
                    what: message,
                }
                .to_string(),
            });
        }
    }

    /// Runs all stages once: actions, actuators, physics, sensors. Does nothing once the run
    /// has terminated.
    pub fn step(&mut self) {
        if self.termination.is_some() {
            return;
        }
        self.stage_actions();
        self.stage_actuators();
        self.stage_physics();
        self.stage_sensors();
    }

    fn read_joint_state(&mut self) {
        for state in &mut self.robots {
            for (d, slot) in state.dofs.iter().enumerate() {
                let Some(multibody) = self.physics.multibody_joints.get_multibody(slot.multibody)
                else {
                    continue;
                };
                let Some(link) = multibody.link(slot.link) else {
                    continue;
                };
                state.position[d] = f64::from(link.joint.coords()[slot.axis]) + slot.reference;
                let v = multibody.joint_velocity(link);
                state.velocity[d] = if v.is_empty() { 0.0 } else { f64::from(v[0]) };
            }
        }
    }

    fn estimate_efforts(&mut self) {
        for (robot, state) in self.scene.robots.iter().zip(&mut self.robots) {
            for (d, actuator) in robot.actuators.iter().enumerate() {
                let effort = match actuator.mode {
                    CommandMode::Position => {
                        state.kp[d] * (state.target[d] - state.position[d])
                            - state.kd[d] * state.velocity[d]
                    }
                    CommandMode::Velocity => {
                        let v = state.command[d]
                            .clamp(-actuator.velocity_limit, actuator.velocity_limit);
                        state.kd[d] * (v - state.velocity[d])
                    }
                    CommandMode::Torque => continue,
                };
                state.effort[d] = effort.clamp(-actuator.effort_limit, actuator.effort_limit);
            }
        }
    }

    fn find_non_finite(&self) -> Option<String> {
        if let Some(&body) = self.physics.quarantine().bodies().first() {
            return Some(format!("rapier quarantined body {body:?}"));
        }
        for (robot, state) in self.scene.robots.iter().zip(&self.robots) {
            for d in 0..state.position.len() {
                if !state.position[d].is_finite() || !state.velocity[d].is_finite() {
                    return Some(format!(
                        "robot '{}' joint '{}'",
                        robot.name,
                        robot.model.dof_joint(crate::robot::DofId(d as u32)).name
                    ));
                }
            }
        }
        for (_, body) in self.physics.bodies.iter() {
            let p = body.position().translation;
            let v = body.linvel();
            if !(p.is_finite() && v.is_finite()) {
                return Some("a rigid body's pose or velocity".into());
            }
        }
        None
    }

    /// Phase, task index and failure of robot `robot`'s pick-and-place sequencer, if it has one.
    pub fn pick_place_status(
        &self,
        robot: usize,
    ) -> Option<(rivet_control::pick_place::Phase, usize, Option<String>)> {
        match &self.robots.get(robot)?.script {
            Some(ScriptState::PickPlace { sequencer, .. }) => Some((
                sequencer.phase(),
                sequencer.task_index(),
                sequencer.failure().map(str::to_string),
            )),
            _ => None,
        }
    }

    /// A digest of the whole dynamic state (time, every body's pose and velocity, every joint
    /// coordinate), for determinism checks: identical digests mean bitwise-identical state.
    pub fn state_digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(self.step_index.to_le_bytes());
        hasher.update(self.time_secs.to_le_bytes());
        for (_, body) in self.physics.bodies.iter() {
            let p = body.position();
            for x in [
                p.translation.x,
                p.translation.y,
                p.translation.z,
                p.rotation.x,
                p.rotation.y,
                p.rotation.z,
                p.rotation.w,
            ] {
                hasher.update(x.to_le_bytes());
            }
            let (v, w) = (body.linvel(), body.angvel());
            for x in [v.x, v.y, v.z, w.x, w.y, w.z] {
                hasher.update(x.to_le_bytes());
            }
        }
        for state in &self.robots {
            for x in state.position.iter().chain(&state.velocity) {
                hasher.update(x.to_le_bytes());
            }
        }
        format!("{:x}", hasher.finalize())
    }
}

/// A collider builder for a validated shape (z-aligned cylinders and capsules).
fn collider_for(shape: &ShapeModel) -> ColliderBuilder {
    match &shape.geometry {
        Geometry::Box { half_extents: h } => ColliderBuilder::cuboid(h[0], h[1], h[2]),
        Geometry::Sphere { radius } => ColliderBuilder::ball(*radius),
        Geometry::Cylinder {
            radius,
            half_length,
        } => ColliderBuilder::cylinder(*half_length, *radius).rotation(AngVector::new(
            std::f32::consts::FRAC_PI_2,
            0.0,
            0.0,
        )),
        Geometry::Capsule {
            radius,
            half_length,
        } => ColliderBuilder::capsule_z(*half_length, *radius),
        Geometry::Mesh(mesh) => {
            let vertices: Vec<Vector> = mesh
                .positions
                .iter()
                .map(|p| Vector::new(p[0], p[1], p[2]))
                .collect();
            if shape.convex {
                ColliderBuilder::convex_hull(&vertices)
                    .unwrap_or_else(|| ColliderBuilder::ball(0.01))
            } else {
                ColliderBuilder::trimesh(vertices, mesh.triangles.clone())
                    .unwrap_or_else(|_| ColliderBuilder::ball(0.01))
            }
        }
    }
}

/// Scales the mass and inertia of `body`: its colliders' and its additional mass properties.
fn scale_body_mass(physics: &mut PhysicsWorld, body: RigidBodyHandle, scale: f32) {
    let Some(rb) = physics.bodies.get_mut(body) else {
        return;
    };
    for &c in rb.colliders() {
        if let Some(collider) = physics.colliders.get_mut(c) {
            let mut props = collider.mass_properties();
            if props.mass() > 0.0 {
                props.set_mass(props.mass() * scale, true);
                collider.set_mass_properties(props);
            }
        }
    }
    let additional = rb
        .mass_properties()
        .additional_local_mprops
        .as_deref()
        .cloned();
    match additional {
        Some(RigidBodyAdditionalMassProps::MassProps(mut props)) => {
            props.set_mass(props.mass() * scale, true);
            rb.set_additional_mass_properties(props, true);
        }
        Some(RigidBodyAdditionalMassProps::Mass(m)) => rb.set_additional_mass(m * scale, true),
        None => {}
    }
    rb.recompute_mass_properties_from_colliders(&physics.colliders);
}

/// Adds `load` (in the body's frame) to the additional mass properties of `body`.
fn add_body_mass(physics: &mut PhysicsWorld, body: RigidBodyHandle, load: MassProperties) {
    let Some(rb) = physics.bodies.get_mut(body) else {
        return;
    };
    let current = match rb
        .mass_properties()
        .additional_local_mprops
        .as_deref()
        .cloned()
    {
        Some(RigidBodyAdditionalMassProps::MassProps(props)) => props,
        Some(RigidBodyAdditionalMassProps::Mass(m)) => {
            MassProperties::new(Vector::ZERO, m, Vector::ZERO)
        }
        None => MassProperties::default(),
    };
    rb.set_additional_mass_properties(current + load, true);
    rb.recompute_mass_properties_from_colliders(&physics.colliders);
}

/// Inserts a robot into the physics world and prepares its DoF slots and actuators.
fn instantiate_robot(
    physics: &mut PhysicsWorld,
    robot: &crate::scene::RobotInstance,
    robot_scene_dt: f64,
) -> Result<RobotState, SimError> {
    let model: &RobotModel = &robot.model;
    let world_from_base = transform_to_pose(&robot.world_from_base);
    let rapier_link_bodies: Vec<RigidBodyHandle> = match &model.blueprint {
        Blueprint::Urdf(blueprint) => {
            let mut urdf = (**blueprint).clone();
            urdf.append_transform(&world_from_base);
            if robot.fixed_base
                && let Some(root) = model
                    .root_link()
                    .and_then(|l| model.link_to_rapier[l.0 as usize])
            {
                urdf.links[root]
                    .body
                    .set_body_type(RigidBodyType::Fixed, false);
            }
            for link in &mut urdf.links {
                // Motor targets do not wake sleeping bodies: robots never sleep.
                *link.body.activation_mut() = RigidBodyActivation::cannot_sleep();
            }
            for &(link, mu) in &robot.link_friction {
                if let Some(r) = model.link_to_rapier[link.0 as usize] {
                    for collider in &mut urdf.links[r].colliders {
                        collider.collider.set_friction(mu as f32);
                    }
                }
            }
            let mut options = rapier3d_urdf::UrdfMultibodyOptions::empty();
            if !robot.self_collisions {
                options |= rapier3d_urdf::UrdfMultibodyOptions::DISABLE_SELF_CONTACTS;
            }
            let handles = urdf.insert_using_multibody_joints(
                &mut physics.bodies,
                &mut physics.colliders,
                &mut physics.multibody_joints,
                options,
            );
            handles.links.iter().map(|l| l.body).collect()
        }
        Blueprint::Mjcf(blueprint) => {
            let mut mjcf = (**blueprint).clone();
            mjcf.append_transform(&world_from_base);
            for body in &mut mjcf.bodies {
                *body.body.activation_mut() = RigidBodyActivation::cannot_sleep();
            }
            for &(link, mu) in &robot.link_friction {
                if let Some(r) = model.link_to_rapier[link.0 as usize] {
                    for collider in &mut mjcf.bodies[r].colliders {
                        collider.set_friction(mu as f32);
                    }
                }
            }
            let mut options = rapier3d_mjcf::MjcfMultibodyOptions::empty();
            if !robot.self_collisions {
                options |= rapier3d_mjcf::MjcfMultibodyOptions::DISABLE_SELF_CONTACTS;
            }
            let handles = mjcf.insert_using_multibody_joints(
                &mut physics.bodies,
                &mut physics.colliders,
                &mut physics.multibody_joints,
                &mut physics.impulse_joints,
                options,
            );
            handles
                .bodies
                .iter()
                .map(|b| b.as_ref().map_or(RigidBodyHandle::invalid(), |b| b.body))
                .collect()
        }
    };
    let link_bodies: Vec<Option<RigidBodyHandle>> = model
        .link_to_rapier
        .iter()
        .map(|r| r.map(|r| rapier_link_bodies[r]))
        .collect();
    let base_body = model
        .root_link()
        .and_then(|l| link_bodies[l.0 as usize])
        .or_else(|| link_bodies.iter().flatten().next().copied())
        .ok_or_else(|| SimError::robot(&model.source, "robot", "the robot has no body"))?;

    let n = model.dofs.len();
    let mut dofs = Vec::with_capacity(n);
    for dof in &model.dofs {
        let joint = &model.joints[dof.joint.0 as usize];
        let child_body = rapier_link_bodies[dof.rapier_link];
        let Some(link_id) = physics
            .multibody_joints
            .rigid_body_link(child_body)
            .copied()
        else {
            return Err(SimError::robot(
                &model.source,
                format!("joint '{}'", joint.name),
                "the joint is not part of a multibody",
            ));
        };
        let multibody = &physics.multibody_joints[link_id.multibody];
        let link = multibody.link(link_id.id).ok_or_else(|| {
            SimError::robot(
                &model.source,
                format!("joint '{}'", joint.name),
                "missing multibody link",
            )
        })?;
        let parent_body = link
            .parent_id()
            .and_then(|p| multibody.link(p))
            .map(|p| p.rigid_body_handle());
        let frame2 = link.joint.data.local_frame2;
        // The free axis (linear or angular) is the joint frame's x axis.
        let axis_in_child = frame2.rotation * Vector::X;
        dofs.push(DofSlot {
            multibody: link_id.multibody,
            link: link_id.id,
            axis: dof.axis,
            child_body,
            parent_body,
            axis_in_child,
            reference: dof.reference,
        });
    }

    // A fixed root becomes 0-DoF only once forward kinematics has run: do that before reading
    // DoF offsets.
    let mut multibodies: Vec<MultibodyIndex> = Vec::new();
    for slot in &dofs {
        if !multibodies.contains(&slot.multibody) {
            multibodies.push(slot.multibody);
        }
    }
    for index in &multibodies {
        if let Some(multibody) = physics.multibody_joints.get_multibody_mut(*index) {
            multibody.forward_kinematics(&physics.bodies, true);
        }
    }
    // Set initial joint positions, mimic couplings and per-DoF friction, damping, armature.
    let mut displacement_by_multibody: Vec<(MultibodyIndex, Vec<f32>)> = Vec::new();
    for (d, slot) in dofs.iter().enumerate() {
        let multibody = &physics.multibody_joints[slot.multibody];
        let ndofs = multibody.ndofs();
        let Some(link) = multibody.link(slot.link) else {
            continue;
        };
        let offset = link.assembly_id();
        let current = link.joint.coords()[slot.axis];
        let entry = match displacement_by_multibody
            .iter_mut()
            .find(|(m, _)| *m == slot.multibody)
        {
            Some(e) => e,
            None => {
                displacement_by_multibody.push((slot.multibody, vec![0.0; ndofs]));
                displacement_by_multibody.last_mut().expect("just pushed")
            }
        };
        if let Some(x) = entry.1.get_mut(offset) {
            *x = (robot.initial_positions[d] - slot.reference) as f32 - current;
        }
    }
    // Mimic followers start on their coupling (otherwise the coupling constraint would yank
    // them there during the first steps).
    for joint in &model.joints {
        let Some(mimic) = joint.mimic else { continue };
        let Some(leader_dof) = model.dofs.iter().position(|d| d.joint == mimic.joint) else {
            continue;
        };
        let Some(follower) = model.link_to_rapier[joint.child.0 as usize]
            .and_then(|r| {
                physics
                    .multibody_joints
                    .rigid_body_link(rapier_link_bodies[r])
            })
            .copied()
        else {
            continue;
        };
        let multibody = &physics.multibody_joints[follower.multibody];
        let Some(link) = multibody.link(follower.id) else {
            continue;
        };
        let axis = if joint.kind == crate::robot::JointKind::Prismatic {
            0
        } else {
            3
        };
        let offset = link.assembly_id();
        let current = link.joint.coords()[axis];
        let goal = mimic.multiplier * robot.initial_positions[leader_dof] + mimic.offset;
        if let Some((_, displacement)) = displacement_by_multibody
            .iter_mut()
            .find(|(m, _)| *m == follower.multibody)
            && let Some(x) = displacement.get_mut(offset)
        {
            *x = goal as f32 - current;
        }
    }
    for (index, displacement) in &displacement_by_multibody {
        if let Some(multibody) = physics.multibody_joints.get_multibody_mut(*index) {
            if multibody.ndofs() == displacement.len() {
                multibody.apply_displacements(displacement);
            }
            multibody.forward_kinematics(&physics.bodies, true);
            multibody.update_rigid_bodies(&mut physics.bodies, true);
        }
    }
    for (d, slot) in dofs.iter().enumerate() {
        let actuator = &robot.actuators[d];
        if let Some(multibody) = physics.multibody_joints.get_multibody_mut(slot.multibody) {
            let offset = multibody.link(slot.link).map(|l| l.assembly_id());
            if let Some(offset) = offset
                && offset < multibody.ndofs()
            {
                multibody.frictions_mut()[offset] = actuator.friction as f32;
                multibody.damping_mut()[offset] = actuator.damping as f32;
                multibody.armature_mut()[offset] = actuator.armature as f32;
            }
        }
    }
    // Mimic joints: exact coordinate couplings on the multibody.
    let mut mimic_followers = Vec::new();
    for joint in &model.joints {
        let Some(mimic) = joint.mimic else { continue };
        let Some(leader_dof) = model.dofs.iter().position(|d| d.joint == mimic.joint) else {
            continue;
        };
        let leader = dofs[leader_dof];
        let follower_body =
            model.link_to_rapier[joint.child.0 as usize].map(|r| rapier_link_bodies[r]);
        let Some(follower) =
            follower_body.and_then(|b| physics.multibody_joints.rigid_body_link(b).copied())
        else {
            continue;
        };
        if follower.multibody != leader.multibody {
            return Err(SimError::robot(
                &model.source,
                format!("joint '{}'", joint.name),
                "mimics a joint of another kinematic tree",
            ));
        }
        let axis = if joint.kind == crate::robot::JointKind::Prismatic {
            0
        } else {
            3
        };
        mimic_followers.push(MimicFollower {
            multibody: follower.multibody,
            link: follower.id,
            axis,
            leader_dof,
            multiplier: mimic.multiplier,
            offset: mimic.offset,
        });
        if let Some(multibody) = physics.multibody_joints.get_multibody_mut(leader.multibody) {
            multibody.add_dof_coupling(MultibodyDofCoupling {
                link1: leader.link,
                dof1: 0,
                axis1: leader.axis,
                link2: follower.id,
                dof2: 0,
                axis2: axis,
                coeff: mimic.multiplier as f32,
                offset: mimic.offset as f32,
            });
        }
    }

    // World-frame mass properties are otherwise computed during the first step; the mass
    // matrix below needs them now.
    for &body in &rapier_link_bodies {
        if let Some(rb) = physics.bodies.get_mut(body) {
            rb.recompute_mass_properties_from_colliders(&physics.colliders);
        }
    }
    // Default gains from the apparent inertia at each DoF in the initial configuration.
    let mut kp = vec![0.0; n];
    let mut kd = vec![0.0; n];
    for (d, slot) in dofs.iter().enumerate() {
        let actuator: &Actuator = &robot.actuators[d];
        let inertia = match physics.multibody_joints.get_multibody_mut(slot.multibody) {
            Some(multibody) => {
                let inv = multibody.dof_inverse_inertia(&physics.bodies);
                let offset = multibody.link(slot.link).map_or(0, |l| l.assembly_id());
                inv.get(offset)
                    .filter(|v| v.is_finite() && **v > 0.0)
                    .map_or(1.0, |v| 1.0 / f64::from(*v))
            }
            None => 1.0,
        };
        let default_kp = DEFAULT_KP_PER_INERTIA * inertia;
        kp[d] = actuator.kp.unwrap_or(default_kp);
        kd[d] = actuator.kd.unwrap_or(if actuator.kp.is_some() {
            0.1 * kp[d]
        } else {
            DEFAULT_KD_PER_INERTIA * inertia
        });
    }

    // Load changes (link mass scales, payload) after the gains: a real robot's gains do not
    // change with what it carries.
    for &(link, scale) in &robot.link_mass_scale {
        if let Some(body) = link_bodies[link.0 as usize] {
            scale_body_mass(physics, body, scale as f32);
        }
    }
    if let Some(payload) = &robot.payload
        && let Some(body) = link_bodies[payload.link.0 as usize]
    {
        let m = payload.mass_kg as f32;
        let i = 0.4 * m * (payload.radius_m * payload.radius_m) as f32;
        let load = MassProperties::new(vec3(payload.offset), m, Vector::splat(i));
        add_body_mass(physics, body, load);
    }

    // Scripted robots get a safety filter built from their URDF's limits, when all their
    // actuators share one command mode (the filter works in one mode per robot).
    let safety = match (&robot.script, &model.tree, robot.actuators.first()) {
        (Some(_), Some(tree), Some(first))
            if robot.actuators.iter().all(|a| a.mode == first.mode) =>
        {
            let config = rivet_control::safety::SafetyConfig::from_tree(tree, robot_scene_dt);
            let filter = rivet_control::safety::SafetyFilter::new(config, None)
                .map_err(|e| SimError::robot(&model.source, "safety filter", e.to_string()))?;
            Some((Box::new(filter), first.mode))
        }
        _ => None,
    };
    let script = match &robot.script {
        None => None,
        Some(Script::JointWaypoints(trajectory)) => {
            let mut trajectory = trajectory.clone();
            trajectory.reset();
            Some(ScriptState::Trajectory(Box::new(trajectory)))
        }
        Some(Script::PickPlace(spec)) => {
            let sequencer = rivet_control::pick_place::PickPlace::new(
                spec.tree.clone(),
                spec.config.clone(),
                spec.tasks.clone(),
            )
            .map_err(|e| SimError::scene(&robot.model.source, "script", e))?;
            Some(ScriptState::PickPlace {
                sequencer: Box::new(sequencer),
                world_from_base: crate::math::isometry(&robot.world_from_base),
            })
        }
        Some(Script::Patrol {
            left,
            right,
            wheel_radius_m,
            track_width_m,
            speed_mps,
            waypoints,
        }) => Some(ScriptState::Patrol {
            controller: PatrolController::new(waypoints.clone(), *speed_mps),
            drive: DiffDrive {
                wheel_radius_m: *wheel_radius_m,
                track_width_m: *track_width_m,
            },
            left: left.0 as usize,
            right: right.0 as usize,
        }),
    };

    Ok(RobotState {
        base_body,
        link_bodies,
        dofs,
        position: vec![0.0; n],
        velocity: vec![0.0; n],
        effort: vec![0.0; n],
        command: vec![0.0; n],
        kp,
        kd,
        target: vec![0.0; n],
        delay_rows: vec![0.0; n * (robot.command_latency_steps + 1)],
        delay_head: 0,
        script,
        safety,
        safety_ready: false,
        reset_buffers: multibodies
            .iter()
            .map(|&m| {
                let ndofs = physics
                    .multibody_joints
                    .get_multibody(m)
                    .map_or(0, |mb| mb.ndofs());
                (m, vec![0.0; ndofs])
            })
            .collect(),
        mimic_followers,
    })
}
