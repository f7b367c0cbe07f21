//! Quintic point-to-point moves: one fifth-order polynomial per joint, matching position,
//! velocity and acceleration at both ends over a given duration.

use super::{JointTrajectory, TrajectoryError, check_duration, check_len};

/// Position, velocity and acceleration of one joint at one end of a move.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BoundaryState {
    /// Position (rad or m).
    pub position: f64,
    /// Velocity (rad/s or m/s).
    pub velocity: f64,
    /// Acceleration (rad/s² or m/s²).
    pub acceleration: f64,
}

impl BoundaryState {
    /// A boundary state with the given position, velocity and acceleration.
    pub const fn new(position: f64, velocity: f64, acceleration: f64) -> Self {
        Self {
            position,
            velocity,
            acceleration,
        }
    }

    /// At rest at `position`.
    pub const fn at_rest(position: f64) -> Self {
        Self::new(position, 0.0, 0.0)
    }

    fn check(&self, end: bool, joint: usize) -> Result<(), TrajectoryError> {
        let fields = if end {
            ["end position", "end velocity", "end acceleration"]
        } else {
            ["start position", "start velocity", "start acceleration"]
        };
        for (what, value) in
            fields
                .into_iter()
                .zip([self.position, self.velocity, self.acceleration])
        {
            if !value.is_finite() {
                return Err(TrajectoryError::NonFiniteValue { what, joint, value });
            }
        }
        Ok(())
    }
}

/// A 1-D quintic polynomial from one [`BoundaryState`] to another over a fixed duration.
///
/// With both ends at rest it is the minimum-jerk profile `10u³ - 15u⁴ + 6u⁵` scaled to the
/// distance. Implements [`JointTrajectory`] with one joint.
#[derive(Clone, Debug, PartialEq)]
pub struct Quintic {
    /// Coefficients in normalised time `u = t / duration`: `p(u) = Σ b[k] uᵏ`.
    b: [f64; 6],
    duration: f64,
    start: f64,
    end: f64,
}

impl Quintic {
    /// The quintic that starts in state `start`, ends in state `end` and lasts `duration_secs`
    /// (finite, > 0).
    pub fn new(
        start: BoundaryState,
        end: BoundaryState,
        duration_secs: f64,
    ) -> Result<Self, TrajectoryError> {
        Self::for_joint(0, start, end, duration_secs)
    }

    /// A rest-to-rest quintic (minimum-jerk) move from `start` to `end` in `duration_secs`.
    pub fn rest_to_rest(start: f64, end: f64, duration_secs: f64) -> Result<Self, TrajectoryError> {
        Self::new(
            BoundaryState::at_rest(start),
            BoundaryState::at_rest(end),
            duration_secs,
        )
    }

    fn for_joint(
        joint: usize,
        start: BoundaryState,
        end: BoundaryState,
        duration_secs: f64,
    ) -> Result<Self, TrajectoryError> {
        start.check(false, joint)?;
        end.check(true, joint)?;
        check_duration(duration_secs)?;
        let t = duration_secs;
        let h = end.position - start.position;
        let (v0, v1) = (start.velocity * t, end.velocity * t);
        let (a0, a1) = (start.acceleration * t * t, end.acceleration * t * t);
        let b = [
            start.position,
            v0,
            0.5 * a0,
            10.0 * h - 6.0 * v0 - 4.0 * v1 - 1.5 * a0 + 0.5 * a1,
            -15.0 * h + 8.0 * v0 + 7.0 * v1 + 1.5 * a0 - a1,
            6.0 * h - 3.0 * (v0 + v1) - 0.5 * a0 + 0.5 * a1,
        ];
        if b.iter().any(|c| !c.is_finite()) {
            // Finite inputs whose products overflow.
            return Err(TrajectoryError::Duration { duration_secs });
        }
        Ok(Self {
            b,
            duration: duration_secs,
            start: start.position,
            end: end.position,
        })
    }

    /// Duration of the move (s).
    pub fn duration_secs(&self) -> f64 {
        self.duration
    }

    /// Position, velocity and acceleration at time `t` (s).
    ///
    /// Before 0 it holds the start and after the duration the end, at rest.
    pub fn eval(&self, t: f64) -> (f64, f64, f64) {
        if t.is_nan() || t < 0.0 {
            return (self.start, 0.0, 0.0);
        }
        if t > self.duration {
            return (self.end, 0.0, 0.0);
        }
        let u = t / self.duration;
        let b = &self.b;
        let p = b[0] + u * (b[1] + u * (b[2] + u * (b[3] + u * (b[4] + u * b[5]))));
        let dp = b[1] + u * (2.0 * b[2] + u * (3.0 * b[3] + u * (4.0 * b[4] + u * 5.0 * b[5])));
        let ddp = 2.0 * b[2] + u * (6.0 * b[3] + u * (12.0 * b[4] + u * 20.0 * b[5]));
        (p, dp / self.duration, ddp / (self.duration * self.duration))
    }
}

impl JointTrajectory for Quintic {
    fn dof(&self) -> usize {
        1
    }

    fn duration_secs(&self) -> f64 {
        self.duration
    }

    fn sample(&self, t: f64, pos: &mut [f64], vel: &mut [f64], acc: &mut [f64]) {
        (pos[0], vel[0], acc[0]) = self.eval(t);
    }
}

/// A multi-joint quintic move: one [`Quintic`] per joint, all with the same duration.
#[derive(Clone, Debug, PartialEq)]
pub struct QuinticMove {
    joints: Vec<Quintic>,
    duration: f64,
}

impl QuinticMove {
    /// A move from the `start` states to the `end` states (one per joint) in `duration_secs`.
    pub fn new(
        start: &[BoundaryState],
        end: &[BoundaryState],
        duration_secs: f64,
    ) -> Result<Self, TrajectoryError> {
        if end.len() != start.len() {
            return Err(TrajectoryError::DofMismatch {
                what: "end states",
                found: end.len(),
                expected: start.len(),
            });
        }
        check_duration(duration_secs)?;
        let joints = start
            .iter()
            .zip(end)
            .enumerate()
            .map(|(j, (s, e))| Quintic::for_joint(j, *s, *e, duration_secs))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            joints,
            duration: duration_secs,
        })
    }

    /// A rest-to-rest (minimum-jerk) move from `start` to `end` positions in `duration_secs`.
    pub fn rest_to_rest(
        start: &[f64],
        end: &[f64],
        duration_secs: f64,
    ) -> Result<Self, TrajectoryError> {
        check_len("end positions", end, start.len())?;
        let s: Vec<_> = start.iter().copied().map(BoundaryState::at_rest).collect();
        let e: Vec<_> = end.iter().copied().map(BoundaryState::at_rest).collect();
        Self::new(&s, &e, duration_secs)
    }

    /// The per-joint profiles.
    pub fn joints(&self) -> &[Quintic] {
        &self.joints
    }
}

impl JointTrajectory for QuinticMove {
    fn dof(&self) -> usize {
        self.joints.len()
    }

    fn duration_secs(&self) -> f64 {
        self.duration
    }

    fn sample(&self, t: f64, pos: &mut [f64], vel: &mut [f64], acc: &mut [f64]) {
        for (j, q) in self.joints.iter().enumerate() {
            (pos[j], vel[j], acc[j]) = q.eval(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_clamped_ends, assert_derivatives, sampled_peaks};
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + b.abs())
    }

    #[test]
    fn quintic_rest_to_rest_boundaries_and_peaks() {
        let q = Quintic::rest_to_rest(1.0, -2.0, 1.5).unwrap();
        let (p, v, a) = q.eval(0.0);
        assert_eq!((p, v, a), (1.0, 0.0, 0.0));
        let (p, v, a) = q.eval(1.5);
        assert!(close(p, -2.0, 1e-12) && v.abs() < 1e-12 && a.abs() < 1e-12);
        // Symmetric: halfway in position at half time, peak velocity 15/8 · d / T there.
        let (p, v, _) = q.eval(0.75);
        assert!(close(p, -0.5, 1e-12), "{p}");
        assert!(close(v, -15.0 / 8.0 * 3.0 / 1.5, 1e-12), "{v}");
        let (vp, ap) = sampled_peaks(&q, 2000);
        assert!(close(vp[0], 3.75, 1e-9));
        // Peak acceleration of the minimum-jerk profile: 10/√3 · d / T².
        assert!(
            close(ap[0], 10.0 / 3f64.sqrt() * 3.0 / 2.25, 1e-4),
            "{}",
            ap[0]
        );
        assert_clamped_ends(&q, &[1.0], &[-2.0], 1e-12);
    }

    #[test]
    fn quintic_matches_boundary_velocities_and_accelerations() {
        let s = BoundaryState::new(0.3, -1.0, 2.0);
        let e = BoundaryState::new(1.2, 0.5, -4.0);
        let q = Quintic::new(s, e, 0.8).unwrap();
        let (p, v, a) = q.eval(0.0);
        assert!(close(p, 0.3, 1e-12) && close(v, -1.0, 1e-12) && close(a, 2.0, 1e-12));
        let (p, v, a) = q.eval(0.8);
        assert!(close(p, 1.2, 1e-12), "{p}");
        assert!(close(v, 0.5, 1e-12), "{v}");
        assert!(close(a, -4.0, 1e-11), "{a}");
        // Outside the interval it holds, at rest.
        assert_eq!(q.eval(-0.1), (0.3, 0.0, 0.0));
        assert_eq!(q.eval(0.9), (1.2, 0.0, 0.0));
    }

    #[test]
    fn quintic_derivatives_match_finite_differences() {
        let q = Quintic::new(
            BoundaryState::new(-0.5, 2.0, 0.0),
            BoundaryState::new(2.0, -1.0, 3.0),
            2.0,
        )
        .unwrap();
        assert_derivatives(&q, 50, true, 5.0);
    }

    #[test]
    fn quintic_move_multi_joint() {
        let start = [
            BoundaryState::at_rest(0.0),
            BoundaryState::new(1.0, 1.0, 0.0),
        ];
        let end = [
            BoundaryState::at_rest(2.0),
            BoundaryState::new(-1.0, 0.0, 1.0),
        ];
        let m = QuinticMove::new(&start, &end, 1.25).unwrap();
        assert_eq!(m.dof(), 2);
        assert_eq!(JointTrajectory::duration_secs(&m), 1.25);
        let (mut p, mut v, mut a) = ([0.0; 2], [0.0; 2], [0.0; 2]);
        m.sample(1.25, &mut p, &mut v, &mut a);
        assert!(close(p[0], 2.0, 1e-12) && close(p[1], -1.0, 1e-12));
        assert!(v[0].abs() < 1e-12 && v[1].abs() < 1e-12);
        assert!(a[0].abs() < 1e-11 && close(a[1], 1.0, 1e-11));
        m.sample(0.0, &mut p, &mut v, &mut a);
        assert_eq!((p, v, a), ([0.0, 1.0], [0.0, 1.0], [0.0, 0.0]));
        assert_derivatives(&m, 40, true, 10.0);

        let r = QuinticMove::rest_to_rest(&[0.0, 1.0, 2.0], &[1.0, 1.0, -2.0], 3.0).unwrap();
        assert_clamped_ends(&r, &[0.0, 1.0, 2.0], &[1.0, 1.0, -2.0], 1e-12);
    }

    #[test]
    fn quintic_rejects_bad_input() {
        assert_eq!(
            Quintic::rest_to_rest(0.0, 1.0, 0.0),
            Err(TrajectoryError::Duration { duration_secs: 0.0 })
        );
        assert!(matches!(
            Quintic::rest_to_rest(0.0, 1.0, f64::INFINITY),
            Err(TrajectoryError::Duration { .. })
        ));
        assert!(matches!(
            Quintic::new(
                BoundaryState::at_rest(0.0),
                BoundaryState::new(1.0, f64::NAN, 0.0),
                1.0
            ),
            Err(TrajectoryError::NonFiniteValue {
                what: "end velocity",
                joint: 0,
                ..
            })
        ));
        assert!(matches!(
            QuinticMove::rest_to_rest(&[0.0, 0.0], &[1.0, f64::INFINITY], 1.0),
            Err(TrajectoryError::NonFiniteValue {
                what: "end position",
                joint: 1,
                ..
            })
        ));
        assert_eq!(
            QuinticMove::rest_to_rest(&[0.0, 0.0], &[1.0], 1.0),
            Err(TrajectoryError::DofMismatch {
                what: "end positions",
                found: 1,
                expected: 2
            })
        );
    }
}
