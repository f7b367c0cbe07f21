//! Teleoperation of one robot from the keyboard: jog a selected joint, or jog the tool frame
//! in Cartesian space through rivet-control's IK, and open or close the gripper.
//!
//! The jog keeps its own position targets (one per DoF, rad or m) and writes them as the
//! robot's commands before each physics step; the world's safety filter still checks them.
//! Pure logic on the robot's kinematic tree: no bevy, no world.

use std::sync::Arc;

use nalgebra::{Isometry3, Translation3, Vector3};
use rivet_control::ik::{IkError, IkOptions, IkSolver, IkTarget};
use rivet_control::{CommandMode, FrameId, RobotTree, TreeData};
use rivet_sim::Scene;
use rivet_sim::scene::Script;

/// Joint jog speed while a key is held: rad/s for revolute joints, m/s for prismatic ones
/// (scaled by 0.2).
pub const JOINT_JOG_RAD_PER_SEC: f64 = 0.5;
/// Tool jog speed while a key is held (m/s).
pub const TOOL_JOG_M_PER_SEC: f64 = 0.1;

/// What the jog keys move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JogMode {
    /// The selected joint.
    Joint,
    /// The tool frame, along the robot base's axes, orientation held.
    Tool,
}

/// Teleoperation state of one robot.
pub struct Teleop {
    /// The robot (scene order).
    pub robot: usize,
    tree: Arc<RobotTree>,
    data: TreeData,
    ik: IkSolver,
    tool: FrameId,
    /// Name of the tool frame.
    pub tool_name: String,
    limits: Vec<[f64; 2]>,
    prismatic: Vec<bool>,
    /// Joint names, one per DoF.
    pub joint_names: Vec<String>,
    /// Position targets, one per DoF (rad or m): what the robot is commanded.
    pub targets: Vec<f64>,
    scratch: Vec<f64>,
    /// The selected DoF.
    pub selected: usize,
    /// What the jog keys move.
    pub mode: JogMode,
    /// Gripper DoFs with their open and closed positions.
    gripper: Vec<(usize, f64, f64)>,
    /// Whether the gripper is commanded closed.
    pub gripper_closed: bool,
}

impl Teleop {
    /// Teleoperation of robot `robot` of `scene`, starting from the joint positions
    /// `current` (one per DoF). The robot needs a kinematic tree (a URDF robot) and position
    /// actuators. The tool frame is the pick-and-place script's, else a frame named `tool0`,
    /// else the link moved by the last DoF; the gripper is the script's.
    pub fn new(scene: &Scene, robot: usize, current: &[f64]) -> Result<Self, String> {
        let instance = scene
            .robots
            .get(robot)
            .ok_or_else(|| "the scene has no robot".to_string())?;
        let tree = instance.model.tree.clone().ok_or_else(|| {
            format!(
                "robot '{}' has no kinematic tree (MJCF robots cannot be jogged yet)",
                instance.name
            )
        })?;
        let n = tree.dof_count();
        if n == 0 || n != instance.model.dofs.len() || current.len() != n {
            return Err(format!("robot '{}' has no joints to jog", instance.name));
        }
        if instance
            .actuators
            .iter()
            .any(|a| a.mode != CommandMode::Position)
        {
            return Err(format!(
                "robot '{}' has actuators not in position mode; jogging commands positions",
                instance.name
            ));
        }
        let (tool, gripper) = match &instance.script {
            Some(Script::PickPlace(spec)) => {
                (Some(spec.config.tool_frame), spec.config.gripper.clone())
            }
            _ => (None, Vec::new()),
        };
        let tool = tool
            .or_else(|| tree.frame_by_name("tool0"))
            .or_else(|| {
                let link = tree.dof_joint(n - 1).child;
                tree.frame_by_name(&tree.links[link.0 as usize].name)
            })
            .ok_or_else(|| format!("robot '{}' has no tool frame", instance.name))?;
        let tool_name = tree.frames[tool.0 as usize].name.clone();
        let ik = IkSolver::new(
            &tree,
            tool,
            IkOptions {
                restarts: 0,
                max_iterations: 30,
                position_tolerance: 2e-4,
                orientation_tolerance: 2e-3,
                ..IkOptions::default()
            },
        );
        let limits = tree.position_limits();
        let prismatic = (0..n)
            .map(|d| tree.dof_joint(d).kind == rivet_control::JointKind::Prismatic)
            .collect();
        let joint_names = (0..n).map(|d| tree.dof_joint(d).name.clone()).collect();
        let gripper_closed = gripper
            .iter()
            .all(|&(d, open, closed)| (current[d] - closed).abs() < (current[d] - open).abs());
        Ok(Self {
            robot,
            data: tree.data(),
            ik,
            tool,
            tool_name,
            limits,
            prismatic,
            joint_names,
            targets: current.to_vec(),
            scratch: vec![0.0; n],
            selected: 0,
            mode: JogMode::Joint,
            gripper,
            gripper_closed: gripper_closed && !current.is_empty(),
            tree,
        })
    }

    /// Selects the DoF `delta` places further (wrapping).
    pub fn select(&mut self, delta: i32) {
        let n = self.targets.len() as i64;
        self.selected = (self.selected as i64 + i64::from(delta)).rem_euclid(n) as usize;
    }

    /// Moves the selected joint's target by `direction` (±1) times the jog speed for `dt_secs`,
    /// within its limits.
    pub fn jog_joint(&mut self, direction: f64, dt_secs: f64) {
        let d = self.selected;
        let speed = if self.prismatic[d] {
            0.2 * JOINT_JOG_RAD_PER_SEC
        } else {
            JOINT_JOG_RAD_PER_SEC
        };
        let [lo, hi] = self.limits[d];
        self.targets[d] = (self.targets[d] + direction * speed * dt_secs).clamp(lo, hi);
    }

    /// The tool frame's pose in the robot's base frame at the current targets.
    pub fn tool_pose(&mut self) -> Isometry3<f64> {
        self.tree.forward_kinematics(&self.targets, &mut self.data);
        self.tree.frame_pose(self.tool, &self.data)
    }

    /// Moves the tool by `direction` (a unit vector in the base frame) times the jog speed for
    /// `dt_secs`, orientation held, through IK from the current targets. An unreachable
    /// step leaves the targets as they were and says why.
    pub fn jog_tool(&mut self, direction: [f64; 3], dt_secs: f64) -> Result<(), IkError> {
        let pose = self.tool_pose();
        let step = Vector3::from(direction) * (TOOL_JOG_M_PER_SEC * dt_secs);
        let target = IkTarget::Pose(Isometry3::from_parts(
            Translation3::from(pose.translation.vector + step),
            pose.rotation,
        ));
        self.ik
            .solve(&self.tree, &target, &self.targets, &mut self.scratch)?;
        // Gripper DoFs do not move the tool; keep their targets.
        for (d, q) in self.scratch.iter().enumerate() {
            if !self.gripper.iter().any(|g| g.0 == d) {
                self.targets[d] = *q;
            }
        }
        Ok(())
    }

    /// Whether the robot has a gripper to open and close.
    pub fn has_gripper(&self) -> bool {
        !self.gripper.is_empty()
    }

    /// Opens a closed gripper or closes an open one.
    pub fn toggle_gripper(&mut self) {
        self.gripper_closed = !self.gripper_closed;
        for &(d, open, closed) in &self.gripper {
            self.targets[d] = if self.gripper_closed { closed } else { open };
        }
    }

    /// Writes the targets as the robot's commands.
    pub fn write_commands(&self, command: &mut [f64]) {
        command.copy_from_slice(&self.targets);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rivet_sim::PackagePaths;

    fn brick_scene() -> Scene {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenes/brick_wall.toml");
        Scene::load(&path, &PackagePaths::default()).expect("the brick scene loads")
    }

    fn teleop() -> Teleop {
        let scene = brick_scene();
        let q = scene.robots[0].initial_positions.clone();
        Teleop::new(&scene, 0, &q).expect("the arm can be jogged")
    }

    #[test]
    fn uses_the_scripts_tool_frame_and_gripper() {
        let t = teleop();
        assert_eq!(t.tool_name, "tool0");
        assert!(t.has_gripper());
        assert!(!t.gripper_closed, "the scene starts with the fingers open");
    }

    #[test]
    fn joint_jog_moves_the_selected_joint_and_stops_at_its_limit() {
        let mut t = teleop();
        let before = t.targets.clone();
        t.select(1);
        t.jog_joint(1.0, 0.1);
        assert!((t.targets[1] - before[1] - 0.05).abs() < 1e-12);
        for (d, (a, b)) in t.targets.iter().zip(&before).enumerate() {
            if d != 1 {
                assert_eq!(a, b);
            }
        }
        t.jog_joint(1.0, 1e6);
        assert_eq!(t.targets[1], t.limits[1][1]);
        // Selection wraps both ways.
        t.select(-2);
        assert_eq!(t.selected, t.targets.len() - 1);
        t.select(1);
        assert_eq!(t.selected, 0);
    }

    #[test]
    fn tool_jog_moves_the_tool_along_the_base_axis_and_holds_its_orientation() {
        let mut t = teleop();
        let start = t.tool_pose();
        // 0.5 s of +z then 0.5 s of -x, in 50 frames of 20 ms.
        for _ in 0..25 {
            t.jog_tool([0.0, 0.0, 1.0], 0.02).unwrap();
        }
        for _ in 0..25 {
            t.jog_tool([-1.0, 0.0, 0.0], 0.02).unwrap();
        }
        let end = t.tool_pose();
        let moved = end.translation.vector - start.translation.vector;
        let expected = Vector3::new(-0.05, 0.0, 0.05);
        assert!(
            (moved - expected).norm() < 2e-3,
            "moved {moved:?}, expected {expected:?}"
        );
        assert!(start.rotation.angle_to(&end.rotation) < 5e-3);
    }

    #[test]
    fn unreachable_tool_jog_leaves_the_targets() {
        let mut t = teleop();
        let before = t.targets.clone();
        // Ten metres in one step: out of reach.
        assert!(t.jog_tool([1.0, 0.0, 0.0], 100.0).is_err());
        assert_eq!(t.targets, before);
    }

    #[test]
    fn gripper_toggles_between_its_open_and_closed_positions() {
        let mut t = teleop();
        t.toggle_gripper();
        assert!(t.gripper_closed);
        let mut command = vec![0.0; t.targets.len()];
        t.write_commands(&mut command);
        for &(d, _, closed) in &t.gripper {
            assert_eq!(command[d], closed);
        }
        t.toggle_gripper();
        t.write_commands(&mut command);
        for &(d, open, _) in &t.gripper {
            assert_eq!(command[d], open);
        }
    }
}
