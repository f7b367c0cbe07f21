//! Joint-space trajectory following.

use std::sync::Arc;

use super::{ControllerError, assert_state_len, check_gains, check_len, invalid};
use crate::command::{CommandMode, Controller, JointStateView, Target};
use crate::model::{RobotTree, TreeData};
use crate::trajectory::JointTrajectory;

#[derive(Clone, Debug)]
enum Output {
    Position,
    Torque(Box<TorqueOutput>),
}

#[derive(Clone, Debug)]
struct TorqueOutput {
    tree: Arc<RobotTree>,
    data: TreeData,
    stiffness: Vec<f64>,
    damping: Vec<f64>,
}

/// Plays a [`JointTrajectory`] against the passed-in clock.
///
/// The trajectory's `t = 0` is the start time given with
/// [`TrajectoryFollower::with_start_time`], or else the time of the first update (again after
/// [`Controller::reset`]). Each update samples `(q_r, q̇_r, q̈_r)` at `time − start` (clamped by
/// the trajectory to its start before 0 and to its end after its duration) and writes
///
/// - [`TrajectoryFollower::position`]: the sampled positions `q_r` ([`CommandMode::Position`]);
/// - [`TrajectoryFollower::torque`]: `τ = K (q_r − q) + D (q̇_r − q̇) + M(q) q̈_r + h(q, q̇)`
///   (PD plus inverse-dynamics feed-forward by RNEA at the measured state, gravity included;
///   [`CommandMode::Torque`]).
///
/// The follower follows its own reference: the [`Target`] passed to `update` is ignored.
pub struct TrajectoryFollower {
    trajectory: Box<dyn JointTrajectory>,
    output: Output,
    fixed_start: Option<f64>,
    start: Option<f64>,
    elapsed: f64,
    position: Vec<f64>,
    velocity: Vec<f64>,
    acceleration: Vec<f64>,
}

impl std::fmt::Debug for TrajectoryFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrajectoryFollower")
            .field("dof", &self.trajectory.dof())
            .field("duration_secs", &self.trajectory.duration_secs())
            .field("mode", &self.mode())
            .field("start", &self.start)
            .finish_non_exhaustive()
    }
}

impl TrajectoryFollower {
    /// A follower writing the sampled positions.
    pub fn position(trajectory: Box<dyn JointTrajectory>) -> Self {
        Self::with_output(trajectory, Output::Position)
    }

    /// A follower writing torques: PD with diagonal `stiffness` (N·m/rad or N/m) and `damping`
    /// (N·m·s/rad or N·s/m), one value per coordinate of `tree`, plus inverse-dynamics
    /// feed-forward. The trajectory must have [`RobotTree::dof_count`] joints.
    pub fn torque(
        trajectory: Box<dyn JointTrajectory>,
        tree: Arc<RobotTree>,
        stiffness: Vec<f64>,
        damping: Vec<f64>,
    ) -> Result<Self, ControllerError> {
        let n = tree.dof_count();
        if trajectory.dof() != n {
            return Err(invalid(
                "trajectory",
                format!("has {} joints, the robot {n}", trajectory.dof()),
            ));
        }
        check_len("stiffness", stiffness.len(), n)?;
        check_len("damping", damping.len(), n)?;
        check_gains("stiffness", &stiffness)?;
        check_gains("damping", &damping)?;
        let data = tree.data();
        Ok(Self::with_output(
            trajectory,
            Output::Torque(Box::new(TorqueOutput {
                tree,
                data,
                stiffness,
                damping,
            })),
        ))
    }

    fn with_output(trajectory: Box<dyn JointTrajectory>, output: Output) -> Self {
        let n = trajectory.dof();
        Self {
            trajectory,
            output,
            fixed_start: None,
            start: None,
            elapsed: 0.0,
            position: vec![0.0; n],
            velocity: vec![0.0; n],
            acceleration: vec![0.0; n],
        }
    }

    /// Starts the trajectory at `time_secs` (on the clock passed to `update`) instead of at the
    /// first update; before it, the start of the trajectory is held.
    pub fn with_start_time(mut self, time_secs: f64) -> Self {
        self.fixed_start = Some(time_secs);
        self.start = Some(time_secs);
        self
    }

    /// The trajectory followed.
    pub fn trajectory(&self) -> &dyn JointTrajectory {
        self.trajectory.as_ref()
    }

    /// The time (s) the trajectory starts at, once known.
    pub fn start_time(&self) -> Option<f64> {
        self.start
    }

    /// Time into the trajectory at the last update (s; negative before the start time).
    pub fn elapsed_secs(&self) -> f64 {
        self.elapsed
    }

    /// True once an update has sampled at or after the end of the trajectory.
    pub fn is_finished(&self) -> bool {
        self.start.is_some() && self.elapsed >= self.trajectory.duration_secs()
    }

    /// The reference `(position, velocity, acceleration)` sampled on the last update.
    pub fn reference(&self) -> (&[f64], &[f64], &[f64]) {
        (&self.position, &self.velocity, &self.acceleration)
    }
}

impl Controller for TrajectoryFollower {
    fn mode(&self) -> CommandMode {
        match self.output {
            Output::Position => CommandMode::Position,
            Output::Torque(_) => CommandMode::Torque,
        }
    }

    fn update(
        &mut self,
        state: &JointStateView<'_>,
        _target: &Target<'_>,
        time_secs: f64,
        command_out: &mut [f64],
    ) {
        let n = self.trajectory.dof();
        assert_state_len(state, command_out, n);
        // A non-finite time (a broken clock) re-samples the last reference.
        if time_secs.is_finite() {
            let start = *self.start.get_or_insert(time_secs);
            self.elapsed = time_secs - start;
        }
        self.trajectory.sample(
            self.elapsed,
            &mut self.position,
            &mut self.velocity,
            &mut self.acceleration,
        );
        match &mut self.output {
            Output::Position => command_out.copy_from_slice(&self.position),
            Output::Torque(t) => {
                let (q, qd) = (state.position, state.velocity);
                let ff = t
                    .tree
                    .inverse_dynamics(q, qd, &self.acceleration, &mut t.data);
                for i in 0..n {
                    command_out[i] = t.stiffness[i] * (self.position[i] - q[i])
                        + t.damping[i] * (self.velocity[i] - qd[i])
                        + ff[i];
                }
            }
        }
    }

    fn reset(&mut self) {
        self.start = self.fixed_start;
        self.elapsed = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::testing::{Sim, allocations_in, max_abs, three_link_arm, ur5};
    use crate::trajectory::QuinticMove;

    fn quintic(start: &[f64], end: &[f64], secs: f64) -> Box<dyn JointTrajectory> {
        Box::new(QuinticMove::rest_to_rest(start, end, secs).unwrap())
    }

    fn view<'a>(q: &'a [f64], qd: &'a [f64]) -> JointStateView<'a> {
        JointStateView {
            position: q,
            velocity: qd,
            effort: qd,
        }
    }

    #[test]
    fn position_output_plays_the_trajectory_from_the_first_update() {
        let (start, end) = ([0.0, 1.0], [1.0, -1.0]);
        let reference = QuinticMove::rest_to_rest(&start, &end, 2.0).unwrap();
        let mut f = TrajectoryFollower::position(Box::new(reference.clone()));
        assert_eq!(f.mode(), CommandMode::Position);
        let z = [0.0; 2];
        let mut out = [0.0; 2];
        f.update(&view(&z, &z), &Target::None, 10.0, &mut out);
        assert_eq!(f.start_time(), Some(10.0));
        assert_eq!(out, start);
        let (mut p, mut v, mut a) = ([0.0; 2], [0.0; 2], [0.0; 2]);
        for t in [0.3, 1.0, 1.7] {
            f.update(&view(&z, &z), &Target::None, 10.0 + t, &mut out);
            reference.sample(t, &mut p, &mut v, &mut a);
            assert!(max_abs(out.iter().zip(&p).map(|(x, y)| x - y)) < 1e-9);
            assert!(!f.is_finished());
        }
        f.update(&view(&z, &z), &Target::None, 12.5, &mut out);
        assert_eq!(out, end);
        assert!(f.is_finished());
        // Reset restarts at the next update.
        f.reset();
        f.update(&view(&z, &z), &Target::None, 20.0, &mut out);
        assert_eq!(out, start);
        assert!(!f.is_finished());
    }

    #[test]
    fn a_given_start_time_holds_the_start_until_then() {
        let mut f = TrajectoryFollower::position(quintic(&[0.5], &[1.5], 1.0)).with_start_time(2.0);
        let z = [0.0];
        let mut out = [0.0];
        f.update(&view(&z, &z), &Target::None, 0.0, &mut out);
        assert_eq!(out, [0.5]);
        assert_eq!(f.elapsed_secs(), -2.0);
        f.update(&view(&z, &z), &Target::None, 2.5, &mut out);
        assert!((out[0] - 1.0).abs() < 1e-12, "{out:?}");
        f.update(&view(&z, &z), &Target::None, 3.0, &mut out);
        assert_eq!(out, [1.5]);
        f.reset();
        assert_eq!(f.start_time(), Some(2.0));
    }

    #[test]
    fn torque_output_tracks_a_trajectory_under_gravity() {
        let tree = three_link_arm();
        let (start, end) = ([0.0, 0.3, -0.2], [-1.0, 1.2, 0.8]);
        let reference = QuinticMove::rest_to_rest(&start, &end, 2.0).unwrap();
        let mut f = TrajectoryFollower::torque(
            Box::new(reference.clone()),
            tree.clone(),
            // Soft enough for the 1 ms explicit integration of the light distal link.
            vec![100.0, 50.0, 20.0],
            vec![10.0, 5.0, 2.0],
        )
        .unwrap();
        let mut sim = Sim::new(tree, &start);
        let (mut p, mut v, mut a) = (
            vec![0.0; start.len()],
            vec![0.0; start.len()],
            vec![0.0; start.len()],
        );
        let mut worst: f64 = 0.0;
        for _ in 0..3000 {
            sim.step(&mut f, &Target::None);
            // Compare with the reference at the time the state is now at.
            reference.sample(sim.time, &mut p, &mut v, &mut a);
            worst = worst.max(max_abs(sim.q.iter().zip(&p).map(|(a, b)| a - b)));
        }
        let err = max_abs(sim.q.iter().zip(&end).map(|(a, b)| a - b));
        eprintln!("planar tracking error {worst} rad, final {err} rad");
        assert!(worst < 5e-4, "tracking error {worst} rad");
        assert!(err < 1e-6, "final error {err} rad");
        assert!(f.is_finished());
    }

    #[test]
    fn ur5_torque_follower_tracks_a_trajectory() {
        // Reads ../shared/example-robot-data (skips with a message when absent, unless CI).
        let Some(tree) = ur5() else { return };
        let start = [0.0, -1.2, 1.5, -1.9, -1.57, 0.0];
        let end = [0.8, -0.8, 1.0, -1.2, -1.0, 1.0];
        let reference = QuinticMove::rest_to_rest(&start, &end, 2.0).unwrap();
        let mut f = TrajectoryFollower::torque(
            Box::new(reference.clone()),
            tree.clone(),
            vec![200.0; 6],
            vec![20.0; 6],
        )
        .unwrap();
        let mut sim = Sim::new(tree, &start);
        let (mut p, mut v, mut a) = (
            vec![0.0; start.len()],
            vec![0.0; start.len()],
            vec![0.0; start.len()],
        );
        let mut worst: f64 = 0.0;
        for _ in 0..2500 {
            sim.step(&mut f, &Target::None);
            // Compare with the reference at the time the state is now at.
            reference.sample(sim.time, &mut p, &mut v, &mut a);
            worst = worst.max(max_abs(sim.q.iter().zip(&p).map(|(a, b)| a - b)));
        }
        eprintln!("UR5 tracking error {worst} rad");
        assert!(worst < 5e-4, "tracking error {worst} rad");
    }

    #[test]
    fn torque_output_needs_a_matching_robot() {
        let tree = three_link_arm();
        let e = TrajectoryFollower::torque(
            quintic(&[0.0], &[1.0], 1.0),
            tree.clone(),
            vec![1.0],
            vec![1.0],
        )
        .unwrap_err();
        assert!(e.to_string().contains("1 joints, the robot 3"), "{e}");
        assert!(
            TrajectoryFollower::torque(
                quintic(&[0.0; 3], &[1.0; 3], 1.0),
                tree,
                vec![1.0; 2],
                vec![1.0; 3]
            )
            .is_err()
        );
    }

    #[test]
    fn update_does_not_allocate() {
        let tree = three_link_arm();
        let mut followers = [
            TrajectoryFollower::position(quintic(&[0.0; 3], &[1.0; 3], 1.0)),
            TrajectoryFollower::torque(
                quintic(&[0.0; 3], &[1.0; 3], 1.0),
                tree,
                vec![1.0; 3],
                vec![1.0; 3],
            )
            .unwrap(),
        ];
        let (q, qd) = ([0.1; 3], [0.2; 3]);
        let mut out = [0.0; 3];
        for f in &mut followers {
            let n = allocations_in(|| {
                for k in 0..100 {
                    f.update(&view(&q, &qd), &Target::None, k as f64 * 0.02, &mut out);
                }
            });
            assert_eq!(n, 0, "{f:?}");
        }
    }
}
