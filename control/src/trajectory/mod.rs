//! Joint-space trajectory generation.
//!
//! - [`Quintic`] / [`QuinticMove`]: quintic point-to-point moves (rest-to-rest, or with given
//!   boundary velocities and accelerations) over a given duration.
//! - [`Trapezoid`]: a 1-D trapezoidal velocity profile under velocity and acceleration limits
//!   (triangular when the distance is too short to reach the velocity limit), time-optimal or
//!   stretched to a given duration.
//! - [`SyncMove`]: a synchronised multi-joint rest-to-rest move in which every joint obeys its
//!   own limits and all joints start and finish together.
//! - [`Spline`]: a C2 cubic spline through timed waypoints (zero velocity at both ends), with
//!   [`time_waypoints`] to time untimed waypoints from per-joint limits and [`PeakRates`] to
//!   report and check peak velocities and accelerations.
//! - [`WaypointTrajectory`]: timed waypoints joined by minimum-jerk segments, played back as a
//!   [`Controller`](crate::Controller) by scripted scenes.
//!
//! All but the last implement [`JointTrajectory`], whose sampling is allocation-free.

mod cartesian;
mod quintic;
mod spline;
mod sync;
mod trapezoid;
mod waypoints;

pub use cartesian::CartesianLine;
pub use quintic::{BoundaryState, Quintic, QuinticMove};
pub use spline::{PeakRates, Spline, time_waypoints};
pub use sync::SyncMove;
pub use trapezoid::Trapezoid;
pub use waypoints::{JointWaypoint, WaypointTrajectory, min_jerk};

/// Errors building a trajectory.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TrajectoryError {
    /// No waypoint was given.
    #[error("a trajectory needs at least one waypoint")]
    Empty,
    /// A waypoint's joint count differs from the first waypoint's.
    #[error("waypoint {index} has {found} joint values, expected {expected}")]
    JointCount {
        /// Index of the offending waypoint.
        index: usize,
        /// Joint values it has.
        found: usize,
        /// Joint values the first waypoint has.
        expected: usize,
    },
    /// Waypoint times are not strictly increasing, a time is negative or not finite, or a looping
    /// trajectory's first waypoint is at time 0 (the loop needs a lead time to blend back).
    #[error(
        "waypoint {index} has time {time_secs} s; times must be finite, >= 0 and strictly increasing (> 0 for the first waypoint of a looping trajectory)"
    )]
    Time {
        /// Index of the offending waypoint.
        index: usize,
        /// Its time in seconds.
        time_secs: f64,
    },
    /// A joint value is not finite.
    #[error("waypoint {index}, joint {joint}: value {value} is not finite")]
    NonFinite {
        /// Index of the offending waypoint.
        index: usize,
        /// Joint index within the waypoint.
        joint: usize,
        /// The value.
        value: f64,
    },
    /// A per-joint input other than a waypoint (start or end position, boundary velocity or
    /// acceleration) is not finite.
    #[error("{what} of joint {joint} is {value}; it must be finite")]
    NonFiniteValue {
        /// Which input, e.g. `"start position"`.
        what: &'static str,
        /// Joint index (0 for a 1-D profile).
        joint: usize,
        /// The value.
        value: f64,
    },
    /// A velocity or acceleration limit is not finite and strictly positive.
    #[error("{what} of joint {joint} is {value}; limits must be finite and > 0")]
    Limit {
        /// Which limit, `"velocity limit"` or `"acceleration limit"`.
        what: &'static str,
        /// Joint index (0 for a 1-D profile).
        joint: usize,
        /// The value.
        value: f64,
    },
    /// A per-joint input has a different joint count from the start positions.
    #[error("{what}: {found} joint values given, expected {expected}")]
    DofMismatch {
        /// Which input, e.g. `"velocity limits"`.
        what: &'static str,
        /// Joint values it has.
        found: usize,
        /// Joint values expected.
        expected: usize,
    },
    /// A requested duration is not finite or not strictly positive.
    #[error("duration {duration_secs} s must be finite and > 0")]
    Duration {
        /// The requested duration (s).
        duration_secs: f64,
    },
    /// A requested duration is shorter than the limits allow.
    #[error(
        "duration {duration_secs} s is shorter than the {minimum_secs} s the velocity and acceleration limits allow"
    )]
    DurationTooShort {
        /// The requested duration (s).
        duration_secs: f64,
        /// The shortest duration the limits allow (s).
        minimum_secs: f64,
    },
    /// The phase timing given to [`Trapezoid::with_timing`] is not realisable.
    #[error(
        "acceleration phase {accel_secs} s must be > 0 and at most half the duration {duration_secs} s"
    )]
    Timing {
        /// Requested acceleration (and deceleration) phase length (s).
        accel_secs: f64,
        /// Requested total duration (s).
        duration_secs: f64,
    },
    /// Two consecutive untimed waypoints are identical, so the segment between them has no
    /// length to derive a duration from.
    #[error(
        "waypoints {} and {index} are identical; remove the repeat or give the waypoints times", index - 1
    )]
    RepeatedWaypoint {
        /// Index of the second of the two identical waypoints.
        index: usize,
    },
    /// A time-scale factor is not finite or not strictly positive.
    #[error("time-scale factor {factor} must be finite and > 0")]
    TimeScale {
        /// The factor.
        factor: f64,
    },
    /// A trajectory's peak velocity or acceleration exceeds a joint's limit.
    #[error("joint {joint}: peak {what} {peak} exceeds the limit {limit}")]
    LimitExceeded {
        /// Joint index.
        joint: usize,
        /// `"velocity"` or `"acceleration"`.
        what: &'static str,
        /// Peak magnitude of the trajectory.
        peak: f64,
        /// The limit.
        limit: f64,
    },
}

/// A joint-space trajectory with a finite duration that can be sampled at any time.
///
/// Sampling is clamped: before `t = 0` it reports the start position and after
/// [`duration_secs`](Self::duration_secs) the end position, both with zero velocity and
/// acceleration (a trajectory that ends moving, e.g. a [`Quintic`] with a non-zero end
/// velocity, stops dead there). Implementations do not allocate in [`sample`](Self::sample), so
/// it can run on the per-step control path.
pub trait JointTrajectory: Send + Sync {
    /// Number of joints (1 for the 1-D profiles).
    fn dof(&self) -> usize;

    /// Duration of the motion (s); the trajectory starts at `t = 0`.
    fn duration_secs(&self) -> f64;

    /// Writes position, velocity and acceleration at time `t` (s) into the output slices.
    ///
    /// # Panics
    /// If a slice is shorter than [`dof`](Self::dof).
    fn sample(&self, t: f64, pos: &mut [f64], vel: &mut [f64], acc: &mut [f64]);
}

/// Checks that every value is finite.
fn check_finite(what: &'static str, values: &[f64]) -> Result<(), TrajectoryError> {
    match values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        Some((joint, &value)) => Err(TrajectoryError::NonFiniteValue { what, joint, value }),
        None => Ok(()),
    }
}

/// Checks that every limit is finite and strictly positive.
fn check_limits(what: &'static str, values: &[f64]) -> Result<(), TrajectoryError> {
    match values
        .iter()
        .enumerate()
        .find(|(_, v)| !(v.is_finite() && **v > 0.0))
    {
        Some((joint, &value)) => Err(TrajectoryError::Limit { what, joint, value }),
        None => Ok(()),
    }
}

/// Checks that `values` has `expected` entries.
fn check_len(what: &'static str, values: &[f64], expected: usize) -> Result<(), TrajectoryError> {
    if values.len() == expected {
        Ok(())
    } else {
        Err(TrajectoryError::DofMismatch {
            what,
            found: values.len(),
            expected,
        })
    }
}

/// Checks that a duration is finite and strictly positive.
fn check_duration(duration_secs: f64) -> Result<(), TrajectoryError> {
    if duration_secs.is_finite() && duration_secs > 0.0 {
        Ok(())
    } else {
        Err(TrajectoryError::Duration { duration_secs })
    }
}

/// Helpers shared by the trajectory tests.
#[cfg(test)]
mod test_support {
    use super::JointTrajectory;

    /// Per-joint output buffers for sampling.
    pub(super) struct Buffers {
        pub pos: Vec<f64>,
        pub vel: Vec<f64>,
        pub acc: Vec<f64>,
    }

    impl Buffers {
        pub fn new(dof: usize) -> Self {
            Self {
                pos: vec![0.0; dof],
                vel: vec![0.0; dof],
                acc: vec![0.0; dof],
            }
        }

        pub fn sample(&mut self, traj: &dyn JointTrajectory, t: f64) -> &mut Self {
            traj.sample(t, &mut self.pos, &mut self.vel, &mut self.acc);
            self
        }
    }

    /// Peak |velocity| and |acceleration| per joint over `n + 1` evenly spaced samples
    /// (including both ends).
    pub(super) fn sampled_peaks(traj: &dyn JointTrajectory, n: usize) -> (Vec<f64>, Vec<f64>) {
        let dof = traj.dof();
        let mut b = Buffers::new(dof);
        let (mut vp, mut ap) = (vec![0.0_f64; dof], vec![0.0_f64; dof]);
        let d = traj.duration_secs();
        for k in 0..=n {
            b.sample(traj, d * k as f64 / n as f64);
            for j in 0..dof {
                vp[j] = vp[j].max(b.vel[j].abs());
                ap[j] = ap[j].max(b.acc[j].abs());
            }
        }
        (vp, ap)
    }

    /// Asserts that the central finite difference of position matches velocity (and of velocity
    /// matches acceleration when `check_acc`) at `n` interior times, to a tolerance relative to
    /// `scale` (a typical magnitude of the derivative).
    pub(super) fn assert_derivatives(
        traj: &dyn JointTrajectory,
        n: usize,
        check_acc: bool,
        scale: f64,
    ) {
        let dof = traj.dof();
        let (mut lo, mut hi, mut mid) = (Buffers::new(dof), Buffers::new(dof), Buffers::new(dof));
        let d = traj.duration_secs();
        let h = 1e-6 * d.max(1e-3);
        for k in 1..n {
            // An odd offset keeps the samples off phase boundaries.
            let t = d * (k as f64 + 0.3137) / (n as f64 + 1.0);
            lo.sample(traj, t - h);
            hi.sample(traj, t + h);
            mid.sample(traj, t);
            for j in 0..dof {
                let fd_v = (hi.pos[j] - lo.pos[j]) / (2.0 * h);
                assert!(
                    (fd_v - mid.vel[j]).abs() <= 1e-5 * scale.max(1.0),
                    "t={t} joint {j}: finite difference {fd_v}, velocity {}",
                    mid.vel[j]
                );
                if check_acc {
                    let fd_a = (hi.vel[j] - lo.vel[j]) / (2.0 * h);
                    assert!(
                        (fd_a - mid.acc[j]).abs() <= 1e-4 * scale.max(1.0),
                        "t={t} joint {j}: finite difference {fd_a}, acceleration {}",
                        mid.acc[j]
                    );
                }
            }
        }
    }

    /// Asserts that position and velocity (and acceleration when `check_acc`) just before and
    /// just after `t` agree to within `tol`, plus what the next derivative can change them by
    /// over the sampling gap (position by velocity, velocity by acceleration).
    pub(super) fn assert_continuous_at(
        traj: &dyn JointTrajectory,
        t: f64,
        check_acc: bool,
        tol: f64,
    ) {
        let dof = traj.dof();
        let (mut lo, mut hi) = (Buffers::new(dof), Buffers::new(dof));
        let eps = 1e-10 * t.abs().max(1.0);
        lo.sample(traj, t - eps);
        hi.sample(traj, t + eps);
        for j in 0..dof {
            let drift = |a: f64, b: f64| tol + 2.0 * eps * a.abs().max(b.abs());
            assert!(
                (lo.pos[j] - hi.pos[j]).abs() <= drift(lo.vel[j], hi.vel[j]),
                "position jumps at t={t}, joint {j}: {} -> {}",
                lo.pos[j],
                hi.pos[j]
            );
            assert!(
                (lo.vel[j] - hi.vel[j]).abs() <= drift(lo.acc[j], hi.acc[j]),
                "velocity jumps at t={t}, joint {j}: {} -> {}",
                lo.vel[j],
                hi.vel[j]
            );
            if check_acc {
                assert!(
                    (lo.acc[j] - hi.acc[j]).abs() <= tol,
                    "acceleration jumps at t={t}, joint {j}: {} -> {}",
                    lo.acc[j],
                    hi.acc[j]
                );
            }
        }
    }

    /// Asserts that the trajectory is at `start` at and before 0 and at `end` at and after its
    /// duration, at rest (exactly zero velocity and acceleration outside the interval, zero
    /// velocity to `tol` on its boundaries).
    pub(super) fn assert_clamped_ends(
        traj: &dyn JointTrajectory,
        start: &[f64],
        end: &[f64],
        tol: f64,
    ) {
        let mut b = Buffers::new(traj.dof());
        let d = traj.duration_secs();
        for (t, expected, outside) in [
            (-1.0, start, true),
            (0.0, start, false),
            (d, end, false),
            (d + 1.0, end, true),
        ] {
            b.sample(traj, t);
            assert_eq!(expected.len(), traj.dof());
            for (j, &e) in expected.iter().enumerate() {
                assert!(
                    (b.pos[j] - e).abs() <= tol,
                    "t={t} joint {j}: position {} expected {e}",
                    b.pos[j],
                );
                if outside {
                    assert_eq!(b.pos[j], e, "t={t} joint {j}: position");
                    assert_eq!(b.vel[j], 0.0, "t={t} joint {j}: velocity");
                    assert_eq!(b.acc[j], 0.0, "t={t} joint {j}: acceleration");
                } else {
                    assert!(
                        b.vel[j].abs() <= tol,
                        "t={t} joint {j}: velocity {}",
                        b.vel[j]
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{Buffers, assert_clamped_ends};
    use super::*;

    #[test]
    fn every_kind_is_a_boxed_joint_trajectory_clamped_at_both_ends() {
        let wps = vec![
            JointWaypoint {
                time_secs: 0.0,
                positions: vec![0.0, 1.0],
            },
            JointWaypoint {
                time_secs: 1.0,
                positions: vec![1.0, 0.0],
            },
            JointWaypoint {
                time_secs: 2.5,
                positions: vec![2.0, 2.0],
            },
        ];
        type Case = (Box<dyn JointTrajectory>, Vec<f64>, Vec<f64>);
        let all: Vec<Case> = vec![
            (
                Box::new(Quintic::rest_to_rest(1.0, -2.0, 1.5).unwrap()),
                vec![1.0],
                vec![-2.0],
            ),
            (
                Box::new(QuinticMove::rest_to_rest(&[0.0, 1.0], &[1.0, 3.0], 2.0).unwrap()),
                vec![0.0, 1.0],
                vec![1.0, 3.0],
            ),
            (
                Box::new(Trapezoid::new(0.5, 3.0, 1.0, 2.0).unwrap()),
                vec![0.5],
                vec![3.0],
            ),
            (
                Box::new(
                    SyncMove::new(&[0.0, 1.0], &[1.0, -1.0], &[1.0, 2.0], &[3.0, 1.0]).unwrap(),
                ),
                vec![0.0, 1.0],
                vec![1.0, -1.0],
            ),
            (
                Box::new(Spline::new(&wps).unwrap()),
                vec![0.0, 1.0],
                vec![2.0, 2.0],
            ),
        ];
        for (traj, start, end) in &all {
            assert!(traj.duration_secs() > 0.0);
            assert_clamped_ends(traj.as_ref(), start, end, 1e-12);
            // Halfway through, something is moving.
            let mut b = Buffers::new(traj.dof());
            b.sample(traj.as_ref(), 0.5 * traj.duration_secs());
            assert!(b.vel.iter().any(|v| v.abs() > 1e-3));
        }
    }

    #[test]
    fn error_messages_name_the_problem() {
        let e = Trapezoid::new(0.0, 1.0, -1.0, 1.0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "velocity limit of joint 0 is -1; limits must be finite and > 0"
        );
        let e = SyncMove::new(&[0.0, 0.0], &[1.0], &[1.0, 1.0], &[1.0, 1.0]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "end positions: 1 joint values given, expected 2"
        );
        let e = Quintic::rest_to_rest(f64::NAN, 1.0, 1.0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "start position of joint 0 is NaN; it must be finite"
        );
        let e = time_waypoints(&[[0.0], [0.0]], &[1.0], &[1.0]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "waypoints 0 and 1 are identical; remove the repeat or give the waypoints times"
        );
    }
}
