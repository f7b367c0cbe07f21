//! A task's observation and action mapping outside the simulator: what a deploy loop needs to
//! run a trained policy on a robot.
//!
//! [`PolicyAgent`] keeps a *kinematic mirror* of the scene: a [`World`] whose task robot is put
//! at each measured joint state (no physics step), so the observation is written by the very
//! code that wrote it in training ([`TaskRunner::observe`]) and an action becomes a command by
//! [`TaskRunner::apply_action`]: joint targets, increments, torques, or tool-frame increments
//! through the same IK. Terms that need something a robot's joint state does not carry (the
//! pose of a prop, which would need perception) are refused when the agent is built.

use std::sync::Arc;

use rivet_control::{CommandMode, FrameId};

use super::TaskRunner;
use super::model::{ActionKind, FrameRef, ObservationTerm};
use crate::error::SimError;
use crate::scene::Scene;
use crate::world::{World, WorldOptions};

/// A scene's task, driven from measured joint states.
pub struct PolicyAgent {
    world: World,
    runner: TaskRunner,
    zeros: Vec<f64>,
}

impl PolicyAgent {
    /// The agent of `scene`'s task; `seed` draws the episode's target as training did.
    pub fn new(scene: Arc<Scene>, seed: u64) -> Result<Self, SimError> {
        let task = scene.task.clone().ok_or_else(|| {
            SimError::scene(&scene.source, "task", "the scene has no [task] section")
        })?;
        for term in &task.observations {
            let name = match term {
                ObservationTerm::ObjectPosition { .. } => Some("object_position"),
                ObservationTerm::ObjectRotation { .. } => Some("object_rotation"),
                ObservationTerm::ObjectTargetError { .. } => Some("object_target_error"),
                ObservationTerm::ObjectFrameError { .. } => Some("object_frame_error"),
                _ => None,
            };
            if let Some(name) = name {
                return Err(SimError::scene(
                    &scene.source,
                    "task.observation",
                    format!(
                        "the `{name}` term needs a prop's pose, which a robot's joint state does \
                         not carry: a policy that observes props cannot be deployed from joint \
                         states alone"
                    ),
                ));
            }
        }
        let mut world = World::new(scene.clone(), WorldOptions::default())?;
        let mut runner = TaskRunner::new(&world)?;
        runner.seed(seed, 0);
        let mut observation = vec![0.0; runner.observation_dim()];
        runner.reset(&mut world, &mut observation);
        let zeros = vec![0.0; task.tree.dof_count()];
        Ok(Self {
            world,
            runner,
            zeros,
        })
    }

    /// Names of the task robot's DoFs, in the order of every per-DoF slice here.
    pub fn dof_names(&self) -> Vec<String> {
        let tree = &self.runner.task().tree;
        (0..tree.dof_count())
            .map(|d| tree.dof_joint(d).name.clone())
            .collect()
    }

    /// Per DoF (the order of [`PolicyAgent::dof_names`]), whether the observation or the
    /// action reads its measured state: observed joints, joints that move an observed frame
    /// (or a frame positions are expressed in), the action's joints and the gripper's. The
    /// others (e.g. fingers of a reach policy) may stay at the scene's initial positions when
    /// the robot does not report them.
    pub fn needed_dofs(&self) -> Vec<bool> {
        let task = self.runner.task();
        let tree = &task.tree;
        let mut needed = vec![false; tree.dof_count()];
        let mut frames = Vec::new();
        let relative = |r: &FrameRef, frames: &mut Vec<FrameId>| {
            if let FrameRef::Robot(f) = r {
                frames.push(*f);
            }
        };
        for term in &task.observations {
            match term {
                ObservationTerm::JointPosition { dofs, .. }
                | ObservationTerm::JointVelocity { dofs, .. } => {
                    for &d in dofs {
                        needed[d] = true;
                    }
                }
                ObservationTerm::FramePosition {
                    frame, relative_to, ..
                } => {
                    frames.push(*frame);
                    relative(relative_to, &mut frames);
                }
                ObservationTerm::ObjectPosition { relative_to, .. }
                | ObservationTerm::ObjectRotation { relative_to, .. }
                | ObservationTerm::TargetPosition { relative_to } => {
                    relative(relative_to, &mut frames);
                }
                ObservationTerm::TargetError { frame }
                | ObservationTerm::ObjectFrameError { frame, .. } => frames.push(*frame),
                ObservationTerm::ObjectTargetError { .. } | ObservationTerm::PreviousAction => {}
            }
        }
        match &task.action {
            ActionKind::JointPosition { dofs }
            | ActionKind::JointPositionDelta { dofs }
            | ActionKind::JointTorque { dofs } => {
                for &d in dofs {
                    needed[d] = true;
                }
            }
            ActionKind::ToolDelta { frame, dofs, .. } => {
                frames.push(*frame);
                for &d in dofs {
                    needed[d] = true;
                }
            }
        }
        for g in &task.gripper {
            needed[g.dof] = true;
        }
        for (d, n) in needed.iter_mut().enumerate() {
            *n = *n || frames.iter().any(|&f| tree.dof_moves_frame(d, f));
        }
        needed
    }

    /// The scene's initial joint positions of the task robot, per DoF.
    pub fn initial_positions(&self) -> &[f64] {
        &self.world.scene().robots[self.runner.task().robot].initial_positions
    }

    /// How the commands are meant: torque for torque actions, position otherwise.
    pub fn command_mode(&self) -> CommandMode {
        match self.runner.task().action {
            ActionKind::JointTorque { .. } => CommandMode::Torque,
            _ => CommandMode::Position,
        }
    }

    /// Observation length.
    pub fn observation_dim(&self) -> usize {
        self.runner.observation_dim()
    }

    /// Action length.
    pub fn action_dim(&self) -> usize {
        self.runner.action_dim()
    }

    /// The episode's target in the world frame, when the task has one.
    pub fn target_in_world(&self) -> Option<[f64; 3]> {
        self.runner.target_in_world(&self.world)
    }

    /// Sets the target (robot root frame).
    pub fn set_target_in_root(&mut self, target: [f64; 3]) {
        self.runner.set_target_in_root(target);
    }

    /// Starts from a measured state: joint targets and the held tool orientation follow it.
    pub fn start(&mut self, position: &[f64], velocity: &[f64]) {
        let robot = self.runner.task().robot;
        self.world.reset_robot_joints(robot, position, velocity);
        self.runner.sync_to_measured(&self.world);
    }

    /// Writes the observation of the measured state (positions and velocities per DoF).
    pub fn observe(&mut self, position: &[f64], velocity: &[f64], observation: &mut [f32]) {
        let robot = self.runner.task().robot;
        let velocity = if velocity.len() == position.len() {
            velocity
        } else {
            &self.zeros
        };
        self.world.reset_robot_joints(robot, position, velocity);
        self.runner.observe(&self.world, observation);
    }

    /// Turns an action into the command per DoF (see [`TaskRunner::command`]).
    pub fn act(&mut self, action: &[f32]) -> &[f64] {
        self.runner.apply_action(&self.world, action);
        self.runner.command()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::robot::PackagePaths;

    fn scene(name: &str) -> Arc<Scene> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scenes")
            .join(name);
        Arc::new(Scene::load(&path, &PackagePaths::default()).expect("scene loads"))
    }

    /// A reach policy reads the six arm joints (observed, acted on, moving the tool frame) and
    /// not the fingers, so a robot that does not report its fingers can run it.
    #[test]
    fn a_reach_policy_needs_the_arm_joints_not_the_fingers() {
        let agent = PolicyAgent::new(scene("reach.toml"), 0).unwrap();
        let names = agent.dof_names();
        let needed: Vec<&str> = names
            .iter()
            .zip(agent.needed_dofs())
            .filter(|(_, n)| *n)
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(
            needed,
            [
                "shoulder_pan",
                "shoulder_lift",
                "elbow",
                "wrist_1",
                "wrist_2",
                "wrist_3"
            ]
        );
        assert_eq!(names.len(), 8, "{names:?}");
        // The fingers stay where the scene starts them.
        let initial = agent.initial_positions();
        let finger = names.iter().position(|n| n == "finger_left_joint").unwrap();
        assert_eq!(initial[finger], 0.02);
    }

    /// The mirror writes, for a measured state, the observation the simulator wrote for that
    /// state in an episode, and maps actions to the same commands.
    #[test]
    fn observation_and_command_match_the_simulator() {
        let scene = scene("reach.toml");
        let mut world = World::new(scene.clone(), WorldOptions::default()).unwrap();
        let mut runner = TaskRunner::new(&world).unwrap();
        runner.seed(7, 0);
        let (od, ad) = (runner.observation_dim(), runner.action_dim());
        let mut sim_obs = vec![0.0f32; od];
        runner.reset(&mut world, &mut sim_obs);
        let mut agent = PolicyAgent::new(scene.clone(), 7).unwrap();
        assert_eq!(agent.observation_dim(), od);
        assert_eq!(agent.target_in_world(), runner.target_in_world(&world));
        let robot = scene.task.as_ref().unwrap().robot;
        let state = |world: &World| {
            (
                world.robots[robot].position.clone(),
                world.robots[robot].velocity.clone(),
            )
        };
        let (q, qd) = state(&world);
        agent.start(&q, &qd);
        let mut agent_obs = vec![0.0f32; od];
        let mut action = vec![0.0f32; ad];
        for step in 0..20 {
            for (k, a) in action.iter_mut().enumerate() {
                *a = (0.3 * ((step * 7 + k * 3) as f32).sin()) * 0.05;
            }
            let (q, qd) = state(&world);
            agent.observe(&q, &qd, &mut agent_obs);
            assert_eq!(agent_obs, sim_obs, "observation at step {step}");
            let command = agent.act(&action).to_vec();
            runner.step(&mut world, &action, &mut sim_obs);
            assert_eq!(command, runner.command(), "command at step {step}");
        }
    }

    #[test]
    fn tasks_that_observe_props_are_refused() {
        let error = PolicyAgent::new(scene("brick_pick.toml"), 0)
            .err()
            .expect("brick pick observes the brick");
        assert!(error.to_string().contains("object_"), "{error}");
    }
}
