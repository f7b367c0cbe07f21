//! Cartesian (operational-space) impedance of a tool frame, with a null-space posture task.

use std::sync::Arc;

use nalgebra::{DMatrix, Isometry3, Matrix6, Matrix6xX, Vector6};

use super::{ControllerError, assert_state_len, check_gains, check_len, invalid};
use super::{cholesky_solve_in_place, damped_inverse_psd, factor_mass_matrix};
use crate::command::{CommandMode, Controller, JointStateView, Target};
use crate::model::{FrameId, RobotTree, TreeData};

/// How the task-space wrench is formed from the pose error `e` and the tool twist `ẋ`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CartesianLaw {
    /// Operational-space control: `F = Λ(q) (Kx e − Dx ẋ)` with the task-space inertia
    /// `Λ = (J M⁻¹ Jᵀ)⁻¹` (damped near singularities). The gains are accelerations per unit
    /// error: `Kx` in 1/s², `Dx` in 1/s (critical damping: `Dx = 2 √Kx`), so the closed loop
    /// behaves the same whatever the arm's inertia.
    OperationalSpace,
    /// Jacobian-transpose impedance: `F = Kx e − Dx ẋ`, a spring-damper on the tool. `Kx` in N/m
    /// (translation) and N·m/rad (rotation), `Dx` in N·s/m and N·m·s/rad.
    JacobianTranspose,
}

/// Configuration of a [`CartesianImpedance`].
#[derive(Clone, Debug, PartialEq)]
pub struct CartesianImpedanceConfig {
    /// How the task wrench is formed (and the units of `stiffness` and `damping`).
    pub law: CartesianLaw,
    /// Diagonal task stiffness `Kx` for `[x, y, z, rx, ry, rz]` in the root frame; units per
    /// [`CartesianLaw`].
    pub stiffness: [f64; 6],
    /// Diagonal task damping `Dx` for `[x, y, z, rx, ry, rz]`; units per [`CartesianLaw`].
    pub damping: [f64; 6],
    /// Which task directions (`x, y, z, rx, ry, rz` in the root frame) the impedance controls.
    /// Left-out directions get no task wrench and are free for the posture task (e.g.
    /// [`CartesianImpedanceConfig::POSITION`] for a position-only task).
    pub axes: [bool; 6],
    /// Posture `q_posture` (rad or m, one per coordinate) the null-space task pulls towards;
    /// `None`: the position measured on the first update.
    pub posture: Option<Vec<f64>>,
    /// Posture stiffness `Kn` per coordinate (N·m/rad or N/m).
    pub posture_stiffness: Vec<f64>,
    /// Posture damping `Dn` per coordinate (N·m·s/rad or N·s/m).
    pub posture_damping: Vec<f64>,
    /// Relative eigenvalue tolerance `ε/σ_max` below which the inverse task inertia
    /// `J M⁻¹ Jᵀ` is damped when inverted (near singularities); in `(0, 1)`.
    pub singular_tolerance: f64,
    /// Whether `g(q)` is added to the torque.
    pub gravity_compensation: bool,
}

impl CartesianImpedanceConfig {
    /// All six task directions.
    pub const ALL: [bool; 6] = [true; 6];
    /// The three translations only (the orientation is left to the null space).
    pub const POSITION: [bool; 6] = [true, true, true, false, false, false];

    /// A configuration for a robot with `dof` coordinates: all six directions, critically
    /// damped task gains (operational space: `Kx = 100 /s²`, `Dx = 20 /s`; Jacobian transpose:
    /// 1000 N/m with 60 N·s/m and 50 N·m/rad with 5 N·m·s/rad), posture gains 10 N·m/rad and
    /// 2 N·m·s/rad about the first measured position, tolerance `1e-4`, gravity compensation on.
    pub fn new(law: CartesianLaw, dof: usize) -> Self {
        let (stiffness, damping) = match law {
            CartesianLaw::OperationalSpace => ([100.0; 6], [20.0; 6]),
            CartesianLaw::JacobianTranspose => (
                [1000.0, 1000.0, 1000.0, 50.0, 50.0, 50.0],
                [60.0, 60.0, 60.0, 5.0, 5.0, 5.0],
            ),
        };
        Self {
            law,
            stiffness,
            damping,
            axes: Self::ALL,
            posture: None,
            posture_stiffness: vec![10.0; dof],
            posture_damping: vec![2.0; dof],
            singular_tolerance: 1e-4,
            gravity_compensation: true,
        }
    }
}

/// Cartesian impedance of a tool frame towards a pose, writing torques:
///
/// `τ = Jᵀ F + g(q) + Nᵀ τ_posture`
///
/// - `J` is the tool frame's geometric Jacobian in the root frame (rows of directions not in
///   [`CartesianImpedanceConfig::axes`] zeroed); the error is `e = [p_d − p, log(R_d Rᵀ)]`
///   (position, and the rotation vector of the orientation error, both in the root frame) and
///   `ẋ = J q̇`; `F` per [`CartesianLaw`].
/// - `Λ = (J M⁻¹ Jᵀ)⁻¹` is inverted through its eigen-decomposition, with eigenvalues below
///   `singular_tolerance · σ_max` damped, so it stays bounded near singularities.
/// - `N = I − J̄ J` with `J̄ = M⁻¹ Jᵀ Λ` is the dynamically consistent null-space projector:
///   `Nᵀ τ_posture` produces no tool acceleration (at rest), so the posture task
///   `τ_posture = Kn (q_posture − q) − Dn q̇` does not disturb the tool. The projector is used
///   with both laws.
///
/// Targets: [`Target::Pose`] sets the tool pose target (root frame, kept until the next one).
/// [`Target::None`] and [`Target::Joint`] hold the last target; before any, the tool pose on the
/// first update is held. The posture comes from the configuration or
/// [`CartesianImpedance::set_posture`]. Time is not used.
#[derive(Clone, Debug)]
pub struct CartesianImpedance {
    tree: Arc<RobotTree>,
    data: TreeData,
    frame: FrameId,
    law: CartesianLaw,
    stiffness: Vector6<f64>,
    damping: Vector6<f64>,
    axes: [bool; 6],
    singular_tolerance: f64,
    gravity_compensation: bool,
    posture: Vec<f64>,
    has_posture: bool,
    /// The posture was captured from the state (re-captured after a reset).
    posture_captured: bool,
    posture_stiffness: Vec<f64>,
    posture_damping: Vec<f64>,
    target: Isometry3<f64>,
    has_target: bool,
    /// Tool Jacobian (6 x n).
    jacobian: Matrix6xX<f64>,
    /// Cholesky factor of the mass matrix (n x n, lower triangle).
    mass_factor: DMatrix<f64>,
    /// `M⁻¹ Jᵀ` (n x 6).
    minv_jt: DMatrix<f64>,
    /// Task-space inertia from the last update.
    lambda: Matrix6<f64>,
    /// Pose error from the last update.
    error: Vector6<f64>,
    /// Posture torque (n).
    posture_torque: Vec<f64>,
}

impl CartesianImpedance {
    /// A Cartesian impedance controller of `frame` (e.g. a tool centre point added with
    /// [`RobotTree::add_frame`]) on `tree`.
    pub fn new(
        tree: Arc<RobotTree>,
        frame: FrameId,
        config: CartesianImpedanceConfig,
    ) -> Result<Self, ControllerError> {
        let n = tree.dof_count();
        if frame.0 as usize >= tree.frames.len() {
            return Err(invalid(
                "frame",
                format!("no frame {} (the tree has {})", frame.0, tree.frames.len()),
            ));
        }
        check_gains("stiffness", &config.stiffness)?;
        check_gains("damping", &config.damping)?;
        check_len("posture_stiffness", config.posture_stiffness.len(), n)?;
        check_len("posture_damping", config.posture_damping.len(), n)?;
        check_gains("posture_stiffness", &config.posture_stiffness)?;
        check_gains("posture_damping", &config.posture_damping)?;
        if let Some(p) = &config.posture {
            check_len("posture", p.len(), n)?;
            if p.iter().any(|x| !x.is_finite()) {
                return Err(invalid("posture", "values must be finite"));
            }
        }
        let tol = config.singular_tolerance;
        if !(tol > 0.0 && tol < 1.0) {
            return Err(invalid(
                "singular_tolerance",
                format!("{tol} must be in (0, 1)"),
            ));
        }
        Ok(Self {
            data: tree.data(),
            frame,
            law: config.law,
            stiffness: Vector6::from(config.stiffness),
            damping: Vector6::from(config.damping),
            axes: config.axes,
            singular_tolerance: tol,
            gravity_compensation: config.gravity_compensation,
            has_posture: config.posture.is_some(),
            posture_captured: false,
            posture: config.posture.unwrap_or_else(|| vec![0.0; n]),
            posture_stiffness: config.posture_stiffness,
            posture_damping: config.posture_damping,
            target: Isometry3::identity(),
            has_target: false,
            jacobian: Matrix6xX::zeros(n),
            mass_factor: DMatrix::zeros(n, n),
            minv_jt: DMatrix::zeros(n, 6),
            lambda: Matrix6::zeros(),
            error: Vector6::zeros(),
            posture_torque: vec![0.0; n],
            tree,
        })
    }

    /// The robot model.
    pub fn tree(&self) -> &Arc<RobotTree> {
        &self.tree
    }

    /// The controlled frame.
    pub fn frame(&self) -> FrameId {
        self.frame
    }

    /// Sets the tool pose target (root frame), as a [`Target::Pose`] would.
    pub fn set_target(&mut self, pose: &Isometry3<f64>) {
        self.target = *pose;
        self.has_target = true;
    }

    /// The tool pose target, if one was given or captured.
    pub fn target(&self) -> Option<&Isometry3<f64>> {
        self.has_target.then_some(&self.target)
    }

    /// Sets the null-space posture (one value per coordinate).
    pub fn set_posture(&mut self, posture: &[f64]) {
        self.posture.copy_from_slice(posture);
        self.has_posture = true;
        self.posture_captured = false;
    }

    /// Sets the null-space posture gains (one value per coordinate, finite and `>= 0`).
    pub fn set_posture_gains(
        &mut self,
        stiffness: &[f64],
        damping: &[f64],
    ) -> Result<(), ControllerError> {
        let n = self.tree.dof_count();
        check_len("posture_stiffness", stiffness.len(), n)?;
        check_len("posture_damping", damping.len(), n)?;
        check_gains("posture_stiffness", stiffness)?;
        check_gains("posture_damping", damping)?;
        self.posture_stiffness.copy_from_slice(stiffness);
        self.posture_damping.copy_from_slice(damping);
        Ok(())
    }

    /// The pose error `[p_d − p, log(R_d Rᵀ)]` (m, rad; root frame; uncontrolled directions
    /// zeroed) of the last update.
    pub fn pose_error(&self) -> [f64; 6] {
        self.error.into()
    }

    /// The task-space inertia `Λ` of the last update (damped near singularities).
    pub fn task_inertia(&self) -> &Matrix6<f64> {
        &self.lambda
    }
}

impl Controller for CartesianImpedance {
    fn mode(&self) -> CommandMode {
        CommandMode::Torque
    }

    fn update(
        &mut self,
        state: &JointStateView<'_>,
        target: &Target<'_>,
        _time_secs: f64,
        command_out: &mut [f64],
    ) {
        let n = self.tree.dof_count();
        assert_state_len(state, command_out, n);
        let (q, qd) = (state.position, state.velocity);

        self.tree.forward_kinematics(q, &mut self.data);
        let pose = self.tree.frame_pose(self.frame, &self.data);
        if let Target::Pose(p) = *target {
            self.set_target(p);
        }
        if !self.has_target {
            self.set_target(&pose);
        }
        if !self.has_posture {
            self.set_posture(q);
            self.posture_captured = true;
        }
        self.tree
            .frame_jacobian(self.frame, &self.data, &mut self.jacobian);

        // Pose error and tool twist, restricted to the controlled directions.
        let dp = self.target.translation.vector - pose.translation.vector;
        let dr = (self.target.rotation * pose.rotation.inverse()).scaled_axis();
        self.error = Vector6::new(dp.x, dp.y, dp.z, dr.x, dr.y, dr.z);
        let mut twist = Vector6::zeros();
        for r in 0..6 {
            if self.axes[r] {
                twist[r] = (0..n).map(|i| self.jacobian[(r, i)] * qd[i]).sum();
            } else {
                self.jacobian.row_mut(r).fill(0.0);
                self.error[r] = 0.0;
            }
        }
        let wrench_cmd =
            self.stiffness.component_mul(&self.error) - self.damping.component_mul(&twist);

        // M⁻¹ Jᵀ, Λ⁻¹ = J M⁻¹ Jᵀ and Λ.
        self.tree.mass_matrix(q, &mut self.data);
        let factored = factor_mass_matrix(&self.data.mass_matrix, &mut self.mass_factor);
        if factored {
            let columns = self.minv_jt.as_mut_slice().chunks_exact_mut(n.max(1));
            for (r, col) in columns.enumerate().take(6) {
                for (i, c) in col.iter_mut().enumerate() {
                    *c = self.jacobian[(r, i)];
                }
                cholesky_solve_in_place(&self.mass_factor, col);
            }
            let mut lambda_inv = Matrix6::zeros();
            for a in 0..6 {
                for b in a..6 {
                    let v: f64 = (0..n)
                        .map(|i| self.jacobian[(a, i)] * self.minv_jt[(i, b)])
                        .sum();
                    lambda_inv[(a, b)] = v;
                    lambda_inv[(b, a)] = v;
                }
            }
            self.lambda = damped_inverse_psd(&lambda_inv, self.singular_tolerance);
        } else {
            // Non-finite state: fall back to the plain Jacobian-transpose law, no posture.
            self.lambda = Matrix6::zeros();
        }
        let wrench = match self.law {
            CartesianLaw::OperationalSpace if factored => self.lambda * wrench_cmd,
            _ => wrench_cmd,
        };

        // τ = g + Jᵀ F.
        if self.gravity_compensation {
            let g = self.tree.gravity_torques(q, &mut self.data);
            command_out.copy_from_slice(g);
        } else {
            command_out.iter_mut().for_each(|t| *t = 0.0);
        }
        for (i, t) in command_out.iter_mut().enumerate() {
            *t += (0..6)
                .map(|r| self.jacobian[(r, i)] * wrench[r])
                .sum::<f64>();
        }

        // Posture in the null space: Nᵀ τ_p = τ_p − Jᵀ Λ (J M⁻¹ τ_p).
        if factored {
            for i in 0..n {
                self.posture_torque[i] = self.posture_stiffness[i] * (self.posture[i] - q[i])
                    - self.posture_damping[i] * qd[i];
            }
            let mut task_acc = Vector6::zeros();
            for r in 0..6 {
                task_acc[r] = (0..n)
                    .map(|i| self.minv_jt[(i, r)] * self.posture_torque[i])
                    .sum();
            }
            let task_force = self.lambda * task_acc;
            for (i, t) in command_out.iter_mut().enumerate() {
                let projected: f64 = (0..6).map(|r| self.jacobian[(r, i)] * task_force[r]).sum();
                *t += self.posture_torque[i] - projected;
            }
        }
    }

    fn reset(&mut self) {
        self.has_target = false;
        if self.posture_captured {
            self.has_posture = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use nalgebra::{DVector, Matrix6xX};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::controllers::testing::{Sim, allocations_in, three_link_arm, ur5};

    fn tool_pose(tree: &RobotTree, frame: FrameId, q: &[f64]) -> Isometry3<f64> {
        let mut data = tree.data();
        tree.forward_kinematics(q, &mut data);
        tree.frame_pose(frame, &data)
    }

    /// Position error (m) and rotation angle error (rad) of the tool against `target`.
    fn pose_errors(
        tree: &RobotTree,
        frame: FrameId,
        q: &[f64],
        target: &Isometry3<f64>,
    ) -> (f64, f64) {
        let pose = tool_pose(tree, frame, q);
        let dp = (target.translation.vector - pose.translation.vector).norm();
        (dp, pose.rotation.angle_to(&target.rotation))
    }

    fn tool(tree: &RobotTree) -> FrameId {
        tree.frame_by_name("tool")
            .or_else(|| tree.frame_by_name("tool0"))
            .unwrap()
    }

    /// Drives the arm from `q0` to the tool pose at `q_goal` for `secs`; returns the position
    /// and orientation errors at the end.
    fn reach(
        tree: &Arc<RobotTree>,
        config: CartesianImpedanceConfig,
        q0: &[f64],
        q_goal: &[f64],
        secs: f64,
    ) -> (f64, f64) {
        let frame = tool(tree);
        let target = tool_pose(tree, frame, q_goal);
        let mut ctrl = CartesianImpedance::new(tree.clone(), frame, config).unwrap();
        let mut sim = Sim::new(tree.clone(), q0);
        sim.run(
            &mut ctrl,
            &Target::Pose(&target),
            (secs / sim.dt).round() as usize,
        );
        assert!(sim.q.iter().all(|x| x.is_finite()));
        pose_errors(tree, frame, &sim.q, &target)
    }

    #[test]
    fn operational_space_law_brings_the_tool_to_a_pose() {
        // A planar arm controls x, z and the pitch; the other three directions have no
        // Jacobian rows and are dropped from Λ as singular.
        let tree = three_link_arm();
        let config = CartesianImpedanceConfig::new(CartesianLaw::OperationalSpace, 3);
        let (dp, dr) = reach(&tree, config, &[-0.2, 0.6, 0.3], &[-0.7, 1.1, 0.9], 4.0);
        assert!(
            dp < 1e-3 && dr < 0.01,
            "position error {dp} m, orientation error {dr} rad"
        );
    }

    #[test]
    fn jacobian_transpose_law_brings_the_tool_to_a_pose() {
        let tree = three_link_arm();
        let config = CartesianImpedanceConfig::new(CartesianLaw::JacobianTranspose, 3);
        let (dp, dr) = reach(&tree, config, &[-0.2, 0.6, 0.3], &[-0.7, 1.1, 0.9], 6.0);
        assert!(
            dp < 1e-3 && dr < 0.01,
            "position error {dp} m, orientation error {dr} rad"
        );
    }

    #[test]
    fn ur5_tool_reaches_a_pose_with_both_laws() {
        // Reads ../shared/example-robot-data (skips with a message when absent, unless CI).
        let Some(tree) = ur5() else { return };
        let q0 = [0.0, -1.2, 1.5, -1.9, -1.57, 0.0];
        let q_goal = [0.3, -1.0, 1.2, -1.7, -1.27, 0.4];
        for law in [
            CartesianLaw::OperationalSpace,
            CartesianLaw::JacobianTranspose,
        ] {
            let config = CartesianImpedanceConfig::new(law, 6);
            let (dp, dr) = reach(&tree, config, &q0, &q_goal, 6.0);
            assert!(
                dp < 1e-3 && dr < 0.01,
                "{law:?}: position error {dp} m, orientation error {dr} rad"
            );
        }
    }

    /// `J M⁻¹ Δτ` for the position rows of `frame`: the tool acceleration a torque produces
    /// from rest.
    fn tool_acceleration(tree: &RobotTree, frame: FrameId, q: &[f64], tau: &[f64]) -> (f64, f64) {
        let n = tree.dof_count();
        let mut data = tree.data();
        tree.forward_kinematics(q, &mut data);
        let mut j = Matrix6xX::zeros(n);
        tree.frame_jacobian(frame, &data, &mut j);
        let m = tree.mass_matrix(q, &mut data).clone();
        let qdd = m
            .cholesky()
            .unwrap()
            .solve(&DVector::from_column_slice(tau));
        let acc = j.fixed_rows::<3>(0) * &qdd;
        (acc.norm(), qdd.norm())
    }

    #[test]
    fn posture_torque_produces_no_tool_acceleration() {
        // Position-only tasks: the planar arm has one redundant direction, the UR5 three.
        let mut arms = vec![three_link_arm()];
        arms.extend(ur5());
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for tree in arms {
            let n = tree.dof_count();
            let frame = tool(&tree);
            for law in [
                CartesianLaw::OperationalSpace,
                CartesianLaw::JacobianTranspose,
            ] {
                let mut config = CartesianImpedanceConfig::new(law, n);
                config.axes = CartesianImpedanceConfig::POSITION;
                config.posture = Some(vec![0.0; n]);
                config.posture_stiffness = vec![30.0; n];
                config.posture_damping = vec![3.0; n];
                let mut on = CartesianImpedance::new(tree.clone(), frame, config.clone()).unwrap();
                config.posture_stiffness = vec![0.0; n];
                config.posture_damping = vec![0.0; n];
                let mut off = CartesianImpedance::new(tree.clone(), frame, config).unwrap();
                for _ in 0..20 {
                    let q: Vec<f64> = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
                    let qd: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
                    let target = Isometry3::translation(0.3, 0.1, 0.4);
                    let state = JointStateView {
                        position: &q,
                        velocity: &qd,
                        effort: &qd,
                    };
                    let (mut t_on, mut t_off) = (vec![0.0; n], vec![0.0; n]);
                    on.update(&state, &Target::Pose(&target), 0.0, &mut t_on);
                    off.update(&state, &Target::Pose(&target), 0.0, &mut t_off);
                    let posture: Vec<f64> = t_on.iter().zip(&t_off).map(|(a, b)| a - b).collect();
                    let (tool_acc, joint_acc) = tool_acceleration(&tree, frame, &q, &posture);
                    assert!(joint_acc > 1e-3, "the posture task does nothing");
                    assert!(
                        tool_acc < 1e-8 * joint_acc.max(1.0),
                        "{law:?} q={q:?}: tool acceleration {tool_acc} from the posture task (joint acceleration {joint_acc})"
                    );
                }
            }
        }
    }

    #[test]
    fn posture_moves_a_redundant_arm_without_disturbing_the_tool() {
        // The planar arm holds its tool position while the posture task pulls the joints
        // towards a different configuration along the self-motion manifold.
        let tree = three_link_arm();
        let frame = tool(&tree);
        let q0 = [-0.3, 0.9, 0.6];
        let posture = [0.2, 0.2, 0.2];
        let start = tool_pose(&tree, frame, &q0);
        let run = |posture_gain: f64| {
            let mut config = CartesianImpedanceConfig::new(CartesianLaw::OperationalSpace, 3);
            config.axes = CartesianImpedanceConfig::POSITION;
            config.stiffness = [400.0; 6];
            config.damping = [40.0; 6];
            config.posture = Some(posture.to_vec());
            config.posture_stiffness = vec![posture_gain; 3];
            config.posture_damping = vec![2.0; 3];
            let mut ctrl = CartesianImpedance::new(tree.clone(), frame, config).unwrap();
            let mut sim = Sim::new(tree.clone(), &q0);
            let mut worst: f64 = 0.0;
            for _ in 0..5000 {
                sim.step(&mut ctrl, &Target::Pose(&start));
                worst = worst.max(pose_errors(&tree, frame, &sim.q, &start).0);
            }
            let final_error = pose_errors(&tree, frame, &sim.q, &start).0;
            let moved = sim
                .q
                .iter()
                .zip(&q0)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            let to_posture: f64 = sim
                .q
                .iter()
                .zip(&posture)
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>()
                .sqrt();
            (worst, final_error, moved, to_posture)
        };
        let (worst_on, final_on, moved_on, dist_on) = run(10.0);
        let (worst_off, final_off, moved_off, dist_off) = run(0.0);
        eprintln!(
            "posture on: worst {worst_on} final {final_on} moved {moved_on} distance {dist_on}"
        );
        eprintln!(
            "posture off: worst {worst_off} final {final_off} moved {moved_off} distance {dist_off}"
        );
        assert!(
            moved_off < 1e-6,
            "nothing should move without a posture task: {moved_off}"
        );
        assert!(
            moved_on > 0.1,
            "the posture task should move the joints: {moved_on}"
        );
        assert!(
            dist_on < dist_off,
            "posture not approached: {dist_on} vs {dist_off}"
        );
        assert!(final_on < 1e-3, "final tool error {final_on}");
        assert!(worst_on < 1e-3, "tool disturbed by up to {worst_on} m");
    }

    #[test]
    fn redundant_arm_reaches_a_position_with_and_without_posture() {
        let tree = three_link_arm();
        let frame = tool(&tree);
        let q_goal = [-0.7, 1.1, 0.9];
        let target = tool_pose(&tree, frame, &q_goal);
        let mut finals = Vec::new();
        for gain in [0.0, 10.0] {
            let mut config = CartesianImpedanceConfig::new(CartesianLaw::OperationalSpace, 3);
            config.axes = CartesianImpedanceConfig::POSITION;
            config.posture_stiffness = vec![gain; 3];
            config.posture = Some(vec![0.0, 0.5, 0.5]);
            let mut ctrl = CartesianImpedance::new(tree.clone(), frame, config).unwrap();
            let mut sim = Sim::new(tree.clone(), &[-0.2, 0.6, 0.3]);
            sim.run(&mut ctrl, &Target::Pose(&target), 5000);
            let (dp, _) = pose_errors(&tree, frame, &sim.q, &target);
            assert!(dp < 1e-3, "posture gain {gain}: position error {dp} m");
            // The orientation is free: only the position error is controlled.
            let e = ctrl.pose_error();
            assert!(e[3..].iter().all(|&x| x == 0.0));
            finals.push(sim.q.clone());
        }
        // Same tool position, different joint configurations.
        let diff = finals[0]
            .iter()
            .zip(&finals[1])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(diff > 1e-2, "{finals:?}");
    }

    #[test]
    fn torques_stay_bounded_at_a_singularity() {
        // Stretched out (q = 0), the planar arm cannot move its tool along x; the target is out
        // of reach along x.
        let tree = three_link_arm();
        let frame = tool(&tree);
        let config = CartesianImpedanceConfig::new(CartesianLaw::OperationalSpace, 3);
        let mut ctrl = CartesianImpedance::new(tree.clone(), frame, config).unwrap();
        let (q, qd) = ([0.0; 3], [0.0; 3]);
        let state = JointStateView {
            position: &q,
            velocity: &qd,
            effort: &qd,
        };
        let target = Isometry3::translation(1.5, 0.0, 0.05);
        let mut out = [0.0; 3];
        ctrl.update(&state, &Target::Pose(&target), 0.0, &mut out);
        assert!(
            out.iter().all(|t| t.is_finite() && t.abs() < 1e4),
            "{out:?}"
        );
        assert!(
            ctrl.task_inertia()
                .iter()
                .all(|x| x.is_finite() && x.abs() < 1e6)
        );
    }

    #[test]
    fn holds_the_first_pose_without_a_target() {
        let tree = three_link_arm();
        let frame = tool(&tree);
        let q0 = [0.4, -0.3, 0.8];
        let mut ctrl = CartesianImpedance::new(
            tree.clone(),
            frame,
            CartesianImpedanceConfig::new(CartesianLaw::OperationalSpace, 3),
        )
        .unwrap();
        let mut sim = Sim::new(tree.clone(), &q0);
        sim.run(&mut ctrl, &Target::None, 2000);
        let start = tool_pose(&tree, frame, &q0);
        let (dp, dr) = pose_errors(&tree, frame, &sim.q, &start);
        assert!(dp < 1e-9 && dr < 1e-9, "{dp} {dr}");
        assert_eq!(ctrl.target(), Some(&start));
    }

    #[test]
    fn rejects_invalid_configurations() {
        let tree = three_link_arm();
        let frame = tool(&tree);
        let good = CartesianImpedanceConfig::new(CartesianLaw::OperationalSpace, 3);
        assert!(CartesianImpedance::new(tree.clone(), frame, good.clone()).is_ok());
        assert!(CartesianImpedance::new(tree.clone(), FrameId(99), good.clone()).is_err());
        let mut c = good.clone();
        c.posture_stiffness = vec![1.0; 2];
        assert!(CartesianImpedance::new(tree.clone(), frame, c).is_err());
        let mut c = good.clone();
        c.stiffness[4] = -1.0;
        assert!(CartesianImpedance::new(tree.clone(), frame, c).is_err());
        let mut c = good;
        c.singular_tolerance = 0.0;
        assert!(CartesianImpedance::new(tree, frame, c).is_err());
    }

    #[test]
    fn update_does_not_allocate() {
        let mut arms = vec![three_link_arm()];
        arms.extend(ur5());
        for tree in arms {
            let n = tree.dof_count();
            let frame = tool(&tree);
            for law in [
                CartesianLaw::OperationalSpace,
                CartesianLaw::JacobianTranspose,
            ] {
                let config = CartesianImpedanceConfig::new(law, n);
                let mut ctrl = CartesianImpedance::new(tree.clone(), frame, config).unwrap();
                let (q, qd) = (vec![0.3; n], vec![0.1; n]);
                let state = JointStateView {
                    position: &q,
                    velocity: &qd,
                    effort: &qd,
                };
                let target = Isometry3::translation(0.3, 0.1, 0.4);
                let mut out = vec![0.0; n];
                let count = allocations_in(|| {
                    for k in 0..50 {
                        ctrl.update(&state, &Target::Pose(&target), k as f64, &mut out);
                        ctrl.update(&state, &Target::None, k as f64, &mut out);
                    }
                });
                assert_eq!(count, 0, "{law:?} on {}", tree.name);
            }
        }
    }
}
