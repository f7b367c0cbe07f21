//! Joint-space impedance with gravity compensation and inverse-dynamics feed-forward.

use std::sync::Arc;

use super::{ControllerError, assert_state_len, check_gains, check_len};
use crate::command::{CommandMode, Controller, JointStateView, Target};
use crate::model::{RobotTree, TreeData};

/// Joint-space impedance (a spring-damper per joint towards a reference) with model-based
/// compensation, writing torques:
///
/// - `τ = K (q_d − q) + D (q̇_d − q̇) + g(q)` when the target has no acceleration;
/// - `τ = K (q_d − q) + D (q̇_d − q̇) + M(q) q̈_d + h(q, q̇)` (inverse dynamics by RNEA at the
///   measured state) when [`Target::Joint`] gives an acceleration.
///
/// With gravity compensation off ([`JointImpedance::set_gravity_compensation`]) the `g(q)` term
/// is left out of both forms. `K` (N·m/rad or N/m) and `D` (N·m·s/rad or N·s/m) are diagonal.
///
/// Targets: [`Target::Joint`] sets `q_d` (kept until the next one) and, for that update only,
/// `q̇_d` (zero when not given) and `q̈_d`. [`Target::None`] and [`Target::Pose`] hold the last
/// `q_d` with `q̇_d = 0` and no acceleration feed-forward; before any target, the position
/// measured on the first update is held. Time is not used.
#[derive(Clone, Debug)]
pub struct JointImpedance {
    tree: Arc<RobotTree>,
    data: TreeData,
    stiffness: Vec<f64>,
    damping: Vec<f64>,
    gravity_compensation: bool,
    reference: Vec<f64>,
    has_reference: bool,
    feedforward: Vec<f64>,
}

impl JointImpedance {
    /// An impedance controller for `tree` with diagonal stiffness and damping, one value per
    /// coordinate ([`RobotTree::dof_count`]), finite and `>= 0`. Gravity compensation is on.
    pub fn new(
        tree: Arc<RobotTree>,
        stiffness: Vec<f64>,
        damping: Vec<f64>,
    ) -> Result<Self, ControllerError> {
        let n = tree.dof_count();
        check_len("stiffness", stiffness.len(), n)?;
        check_len("damping", damping.len(), n)?;
        check_gains("stiffness", &stiffness)?;
        check_gains("damping", &damping)?;
        Ok(Self {
            data: tree.data(),
            tree,
            stiffness,
            damping,
            gravity_compensation: true,
            reference: vec![0.0; n],
            has_reference: false,
            feedforward: vec![0.0; n],
        })
    }

    /// The robot model.
    pub fn tree(&self) -> &Arc<RobotTree> {
        &self.tree
    }

    /// Turns the `g(q)` term on or off (e.g. for a robot whose drives compensate gravity).
    pub fn set_gravity_compensation(&mut self, on: bool) {
        self.gravity_compensation = on;
    }

    /// Sets the reference position `q_d`, as a [`Target::Joint`] would.
    pub fn set_reference(&mut self, position: &[f64]) {
        self.reference.copy_from_slice(position);
        self.has_reference = true;
    }

    /// The reference position, if one was given or captured.
    pub fn reference(&self) -> Option<&[f64]> {
        self.has_reference.then_some(&self.reference[..])
    }
}

impl Controller for JointImpedance {
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
        let (mut target_velocity, mut target_acceleration) = (None, None);
        if let Target::Joint {
            position,
            velocity,
            acceleration,
        } = *target
        {
            self.set_reference(position);
            target_velocity = velocity;
            target_acceleration = acceleration;
        }
        if !self.has_reference {
            self.set_reference(q);
        }

        match target_acceleration {
            Some(qdd) => {
                assert_eq!(qdd.len(), n, "target acceleration has the wrong length");
                let tau = self.tree.inverse_dynamics(q, qd, qdd, &mut self.data);
                self.feedforward.copy_from_slice(tau);
                if !self.gravity_compensation {
                    let g = self.tree.gravity_torques(q, &mut self.data);
                    self.feedforward
                        .iter_mut()
                        .zip(g)
                        .for_each(|(f, g)| *f -= g);
                }
            }
            None if self.gravity_compensation => {
                let g = self.tree.gravity_torques(q, &mut self.data);
                self.feedforward.copy_from_slice(g);
            }
            None => self.feedforward.iter_mut().for_each(|f| *f = 0.0),
        }
        if let Some(v) = target_velocity {
            assert_eq!(v.len(), n, "target velocity has the wrong length");
        }
        for i in 0..n {
            let vd = target_velocity.map_or(0.0, |v| v[i]);
            command_out[i] = self.stiffness[i] * (self.reference[i] - q[i])
                + self.damping[i] * (vd - qd[i])
                + self.feedforward[i];
        }
    }

    fn reset(&mut self) {
        self.has_reference = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::testing::{Sim, allocations_in, max_abs, three_link_arm, two_link_arm};

    fn joint_target(q: &[f64]) -> Target<'_> {
        Target::Joint {
            position: q,
            velocity: None,
            acceleration: None,
        }
    }

    #[test]
    fn holds_a_pose_under_gravity_with_zero_steady_state_error() {
        let tree = two_link_arm();
        let q0 = [0.3, -0.5];
        let mut ctrl = JointImpedance::new(tree.clone(), vec![50.0; 2], vec![10.0; 2]).unwrap();
        let mut sim = Sim::new(tree.clone(), &q0);
        sim.run(&mut ctrl, &joint_target(&q0), 3000);
        let err = max_abs(sim.q.iter().zip(&q0).map(|(a, b)| a - b));
        assert!(err < 1e-9, "drifted {err} rad: {:?}", sim.q);

        // Without gravity compensation the same gains sag by about K⁻¹ g(q).
        ctrl.set_gravity_compensation(false);
        ctrl.reset();
        let mut sim = Sim::new(tree, &q0);
        sim.run(&mut ctrl, &joint_target(&q0), 5000);
        let err = max_abs(sim.q.iter().zip(&q0).map(|(a, b)| a - b));
        assert!(err > 0.05, "expected a sag, error {err}");
    }

    #[test]
    fn converges_to_a_target_and_holds_it_with_no_new_target() {
        let tree = three_link_arm();
        let mut ctrl = JointImpedance::new(
            tree.clone(),
            vec![200.0, 100.0, 50.0],
            vec![30.0, 15.0, 6.0],
        )
        .unwrap();
        let mut sim = Sim::new(tree, &[0.0, 0.0, 0.0]);
        let goal = [-0.8, 1.2, 0.5];
        sim.run(&mut ctrl, &joint_target(&goal), 4000);
        let err = max_abs(sim.q.iter().zip(&goal).map(|(a, b)| a - b));
        assert!(err < 1e-4, "error {err} rad: {:?}", sim.q);
        assert!(max_abs(sim.qd.iter().copied()) < 1e-3);
        // Target::None holds the last target.
        sim.run(&mut ctrl, &Target::None, 1000);
        let err = max_abs(sim.q.iter().zip(&goal).map(|(a, b)| a - b));
        assert!(err < 1e-4, "error {err} rad");
        assert_eq!(ctrl.reference(), Some(&goal[..]));
    }

    #[test]
    fn acceleration_feedforward_tracks_a_moving_reference() {
        // A 1 Hz sinusoid on both joints with soft gains: the inverse-dynamics feed-forward
        // does the work, the impedance only corrects.
        let tree = two_link_arm();
        let track = |feedforward: bool| {
            let mut ctrl = JointImpedance::new(tree.clone(), vec![20.0; 2], vec![4.0; 2]).unwrap();
            let w = 2.0 * std::f64::consts::PI;
            let reference = |t: f64| {
                let (s, c) = (w * t).sin_cos();
                (
                    [0.5 * s, 0.8 * s],
                    [0.5 * w * c, 0.8 * w * c],
                    [-0.5 * w * w * s, -0.8 * w * w * s],
                )
            };
            let mut sim = Sim::new(tree.clone(), &[0.0, 0.0]);
            let (_, v0, _) = reference(0.0);
            sim.qd.copy_from_slice(&v0);
            let mut worst: f64 = 0.0;
            for _ in 0..3000 {
                let (p, v, a) = reference(sim.time);
                let target = Target::Joint {
                    position: &p,
                    velocity: Some(&v),
                    acceleration: feedforward.then_some(&a[..]),
                };
                sim.step(&mut ctrl, &target);
                let (p, _, _) = reference(sim.time);
                worst = worst.max(max_abs(sim.q.iter().zip(&p).map(|(a, b)| a - b)));
            }
            worst
        };
        let (with, without) = (track(true), track(false));
        eprintln!("tracking error: with feed-forward {with}, without {without}");
        assert!(with < 5e-3, "tracking error with feed-forward {with}");
        assert!(without > 10.0 * with, "without {without}, with {with}");
    }

    #[test]
    fn rejects_wrong_gain_counts() {
        let tree = two_link_arm();
        assert!(matches!(
            JointImpedance::new(tree.clone(), vec![1.0], vec![1.0; 2]),
            Err(ControllerError::Length {
                expected: 2,
                got: 1,
                ..
            })
        ));
        assert!(JointImpedance::new(tree, vec![1.0; 2], vec![f64::NAN; 2]).is_err());
    }

    #[test]
    fn update_does_not_allocate() {
        let tree = three_link_arm();
        let mut ctrl = JointImpedance::new(tree, vec![10.0; 3], vec![1.0; 3]).unwrap();
        let (q, v, a) = ([0.1, 0.2, 0.3], [0.5; 3], [1.0; 3]);
        let state = JointStateView {
            position: &q,
            velocity: &v,
            effort: &v,
        };
        let mut out = [0.0; 3];
        let full = Target::Joint {
            position: &q,
            velocity: Some(&v),
            acceleration: Some(&a),
        };
        ctrl.update(&state, &full, 0.0, &mut out);
        let n = allocations_in(|| {
            for k in 0..50 {
                ctrl.update(&state, &full, k as f64, &mut out);
                ctrl.update(&state, &Target::None, k as f64, &mut out);
            }
            ctrl.set_gravity_compensation(false);
            ctrl.update(&state, &full, 0.0, &mut out);
        });
        assert_eq!(n, 0);
    }
}
