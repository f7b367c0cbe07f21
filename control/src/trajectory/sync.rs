//! Synchronised multi-joint rest-to-rest moves under per-joint velocity and acceleration limits.

use super::{JointTrajectory, TrajectoryError, Trapezoid, check_finite, check_len, check_limits};

/// A multi-joint rest-to-rest move in which every joint follows a trapezoidal velocity profile
/// within its own velocity and acceleration limits, and all joints start and finish together.
///
/// # Synchronisation scheme
///
/// All joints share one phase timing: they accelerate for the same
/// [`accel_secs`](Self::accel_secs) `tₐ`, cruise, and decelerate for `tₐ`, finishing at the same
/// duration `T`. Joint `i` moving a distance `dᵢ` then cruises at `vᵢ = dᵢ / (T - tₐ)` with
/// acceleration `aᵢ = vᵢ / tₐ`, so every joint is the same normalised profile `s(t)` from 0 to 1
/// scaled by its displacement: `qᵢ(t) = startᵢ + (endᵢ - startᵢ)·s(t)`, and the move is a
/// straight line in joint space.
///
/// The shared timing is the fastest one that keeps every joint within its limits:
/// `T - tₐ >= Y = maxᵢ dᵢ / vmaxᵢ` and `tₐ·(T - tₐ) >= P = maxᵢ dᵢ / amaxᵢ`. That is the
/// time-optimal trapezoid of the normalised profile, triangular (`tₐ = √P`, `T = 2√P`) when
/// `√P >= Y`, otherwise `tₐ = P / Y`, `T = Y + P / Y`.
///
/// The duration is never shorter than the slowest joint's own time-optimal duration, and equals
/// it when the same joint sets both `Y` and `P` (the slowest joint then moves exactly as its
/// time-optimal [`Trapezoid`] and the others are slowed-down copies of its phase timing). When
/// one joint binds the velocity constraint and another the acceleration constraint, copying the
/// slowest joint's phase timing would push some other joint past a limit, so the shared timing
/// is slightly longer than either joint alone would need.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncMove {
    joints: Vec<Trapezoid>,
    accel_secs: f64,
    duration: f64,
}

impl SyncMove {
    /// The fastest synchronised move from `start` to `end` with `|vᵢ| <= vmax[i]` and
    /// `|aᵢ| <= amax[i]` (see the scheme above). All slices have one value per joint.
    pub fn new(
        start: &[f64],
        end: &[f64],
        vmax: &[f64],
        amax: &[f64],
    ) -> Result<Self, TrajectoryError> {
        let (accel_secs, duration) = fastest_timing(start, end, vmax, amax)?;
        Ok(Self::from_timing(start, end, accel_secs, duration))
    }

    /// The fastest synchronised move ([`new`](Self::new)) uniformly slowed down to last
    /// `duration_secs`: the shared phase timing is stretched by `duration_secs / minimum`, so
    /// velocities drop by that factor and accelerations by its square. Fails with
    /// [`TrajectoryError::DurationTooShort`] when `duration_secs` is below the minimum.
    pub fn with_duration(
        start: &[f64],
        end: &[f64],
        vmax: &[f64],
        amax: &[f64],
        duration_secs: f64,
    ) -> Result<Self, TrajectoryError> {
        let (accel_secs, minimum) = fastest_timing(start, end, vmax, amax)?;
        if !(duration_secs.is_finite() && duration_secs >= 0.0) {
            return Err(TrajectoryError::Duration { duration_secs });
        }
        if duration_secs < minimum {
            return Err(TrajectoryError::DurationTooShort {
                duration_secs,
                minimum_secs: minimum,
            });
        }
        let accel_secs = if minimum > 0.0 {
            accel_secs * (duration_secs / minimum)
        } else {
            0.0
        };
        Ok(Self::from_timing(start, end, accel_secs, duration_secs))
    }

    fn from_timing(start: &[f64], end: &[f64], accel_secs: f64, duration: f64) -> Self {
        let joints: Vec<_> = start
            .iter()
            .zip(end)
            .map(|(&s, &e)| Trapezoid::from_timing(s, e, accel_secs, duration))
            .collect();
        Self {
            accel_secs: joints.first().map_or(0.0, Trapezoid::accel_secs),
            joints,
            duration,
        }
    }

    /// The per-joint profiles; they all share [`accel_secs`](Self::accel_secs) and the duration.
    pub fn joints(&self) -> &[Trapezoid] {
        &self.joints
    }

    /// Length of the shared acceleration (and deceleration) phase (s).
    pub fn accel_secs(&self) -> f64 {
        self.accel_secs
    }
}

/// Validates the inputs and returns the fastest shared `(accel_secs, duration)`.
fn fastest_timing(
    start: &[f64],
    end: &[f64],
    vmax: &[f64],
    amax: &[f64],
) -> Result<(f64, f64), TrajectoryError> {
    let n = start.len();
    check_len("end positions", end, n)?;
    check_len("velocity limits", vmax, n)?;
    check_len("acceleration limits", amax, n)?;
    check_finite("start position", start)?;
    check_finite("end position", end)?;
    check_limits("velocity limit", vmax)?;
    check_limits("acceleration limit", amax)?;
    let (mut y, mut p) = (0.0_f64, 0.0_f64);
    for i in 0..n {
        let d = (end[i] - start[i]).abs();
        y = y.max(d / vmax[i]);
        p = p.max(d / amax[i]);
    }
    if p == 0.0 {
        return Ok((0.0, 0.0));
    }
    let root = p.sqrt();
    let (accel_secs, duration) = if root >= y {
        (root, 2.0 * root)
    } else {
        (p / y, y + p / y)
    };
    if !duration.is_finite() {
        return Err(TrajectoryError::Duration {
            duration_secs: duration,
        });
    }
    Ok((accel_secs, duration))
}

impl JointTrajectory for SyncMove {
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
    use super::super::test_support::{
        Buffers, assert_clamped_ends, assert_continuous_at, assert_derivatives, sampled_peaks,
    };
    use super::*;
    use proptest::prelude::*;

    /// Limits, boundary conditions, a common finish, a straight line in joint space, continuity
    /// and finite differences.
    fn check_move(m: &SyncMove, start: &[f64], end: &[f64], vmax: &[f64], amax: &[f64]) {
        let n = start.len();
        let t_end = m.duration_secs();
        let scale: f64 = end.iter().map(|e| e.abs()).fold(1.0, f64::max);
        assert_clamped_ends(m, start, end, 1e-12 * scale);
        let (vp, ap) = sampled_peaks(m, 500);
        for j in 0..n {
            assert!(
                vp[j] <= vmax[j] * (1.0 + 1e-9),
                "joint {j}: v {} > {}",
                vp[j],
                vmax[j]
            );
            assert!(
                ap[j] <= amax[j] * (1.0 + 1e-9),
                "joint {j}: a {} > {}",
                ap[j],
                amax[j]
            );
            // Every profile has the same timing.
            let q = &m.joints()[j];
            assert_eq!(q.duration_secs(), t_end);
            assert_eq!(q.accel_secs(), m.accel_secs());
        }
        if t_end == 0.0 {
            return;
        }
        // Just before the end every moving joint is still moving: they finish together.
        let mut b = Buffers::new(n);
        b.sample(m, t_end * (1.0 - 1e-6));
        for j in 0..n {
            if end[j] != start[j] {
                assert!(b.vel[j] != 0.0, "joint {j} already stopped");
            }
        }
        // Same normalised progress for every moving joint at all times.
        for k in 1..20 {
            b.sample(m, t_end * k as f64 / 20.0);
            let progress: Vec<f64> = (0..n)
                .filter(|&j| (end[j] - start[j]).abs() > 1e-6 * scale)
                .map(|j| (b.pos[j] - start[j]) / (end[j] - start[j]))
                .collect();
            for s in &progress {
                assert!((s - progress[0]).abs() < 1e-6, "{progress:?}");
            }
        }
        let vtop = vmax.iter().fold(0.0_f64, |a, &b| a.max(b));
        let atop = amax.iter().fold(0.0_f64, |a, &b| a.max(b));
        for t in [m.accel_secs(), t_end - m.accel_secs()] {
            assert_continuous_at(m, t, false, 1e-7 * (1.0 + vtop + scale));
        }
        assert_derivatives(m, 15, false, vtop + atop);
    }

    #[test]
    fn sync_joints_finish_together_and_respect_limits() {
        let start = [0.0, 1.0, -0.5, 2.0];
        let end = [2.0, -1.0, 0.5, 2.0];
        let vmax = [1.0, 3.0, 0.2, 1.0];
        let amax = [2.0, 1.0, 5.0, 1.0];
        let m = SyncMove::new(&start, &end, &vmax, &amax).unwrap();
        check_move(&m, &start, &end, &vmax, &amax);
        let slowest = (0..4)
            .map(|j| {
                Trapezoid::new(start[j], end[j], vmax[j], amax[j])
                    .unwrap()
                    .duration_secs()
            })
            .fold(0.0, f64::max);
        assert!(m.duration_secs() >= slowest * (1.0 - 1e-12));
    }

    #[test]
    fn sync_duration_is_the_slowest_joints_when_it_binds_both_limits() {
        // Joint 0 is the slowest in both velocity and acceleration: it keeps its time-optimal
        // profile and joint 1 is slowed down to match.
        let (start, end) = ([0.0, 0.0], [4.0, 1.0]);
        let (vmax, amax) = ([1.0, 1.0], [2.0, 2.0]);
        let m = SyncMove::new(&start, &end, &vmax, &amax).unwrap();
        let own = Trapezoid::new(0.0, 4.0, 1.0, 2.0).unwrap();
        assert!((m.duration_secs() - own.duration_secs()).abs() < 1e-12);
        assert!((m.joints()[0].peak_velocity() - 1.0).abs() < 1e-12);
        assert!((m.joints()[1].peak_velocity() - 0.25).abs() < 1e-12);
        check_move(&m, &start, &end, &vmax, &amax);
    }

    #[test]
    fn sync_stays_within_limits_when_different_joints_bind() {
        // Joint 0 (long, fast-accelerating) binds velocity; joint 1 (short, weak actuator)
        // binds acceleration. Copying joint 0's short acceleration phase to joint 1 would need
        // 50x its acceleration limit; the shared timing is longer than either joint alone.
        let (start, end) = ([0.0, 0.0], [10.0, 0.5]);
        let (vmax, amax) = ([1.0, 10.0], [100.0, 0.1]);
        let m = SyncMove::new(&start, &end, &vmax, &amax).unwrap();
        let t0 = Trapezoid::new(0.0, 10.0, 1.0, 100.0)
            .unwrap()
            .duration_secs();
        let t1 = Trapezoid::new(0.0, 0.5, 10.0, 0.1).unwrap().duration_secs();
        // Y = 10, P = 5: tₐ = 0.5, T = 10.5.
        assert!((m.accel_secs() - 0.5).abs() < 1e-12);
        assert!((m.duration_secs() - 10.5).abs() < 1e-12);
        assert!(m.duration_secs() > t0.max(t1));
        check_move(&m, &start, &end, &vmax, &amax);
    }

    #[test]
    fn sync_with_duration_and_degenerate_moves() {
        let (start, end) = ([0.0, 1.0], [1.0, 3.0]);
        let (vmax, amax) = ([1.0, 1.0], [1.0, 1.0]);
        let fastest = SyncMove::new(&start, &end, &vmax, &amax).unwrap();
        let m = SyncMove::with_duration(&start, &end, &vmax, &amax, 7.0).unwrap();
        assert_eq!(m.duration_secs(), 7.0);
        check_move(&m, &start, &end, &vmax, &amax);
        assert!(matches!(
            SyncMove::with_duration(&start, &end, &vmax, &amax, 0.5 * fastest.duration_secs()),
            Err(TrajectoryError::DurationTooShort { .. })
        ));

        // Nothing moves: zero duration, clamped at the start.
        let still = SyncMove::new(&[1.0, 2.0], &[1.0, 2.0], &vmax, &amax).unwrap();
        assert_eq!(still.duration_secs(), 0.0);
        check_move(&still, &[1.0, 2.0], &[1.0, 2.0], &vmax, &amax);
        let empty = SyncMove::new(&[], &[], &[], &[]).unwrap();
        assert_eq!((empty.dof(), empty.duration_secs()), (0, 0.0));
    }

    #[test]
    fn sync_rejects_bad_input() {
        let ok = [1.0, 1.0];
        assert_eq!(
            SyncMove::new(&[0.0, 0.0], &ok, &[1.0], &ok),
            Err(TrajectoryError::DofMismatch {
                what: "velocity limits",
                found: 1,
                expected: 2
            })
        );
        assert!(matches!(
            SyncMove::new(&[0.0, 0.0], &ok, &ok, &[1.0, 1.0, 1.0]),
            Err(TrajectoryError::DofMismatch {
                what: "acceleration limits",
                ..
            })
        ));
        assert!(matches!(
            SyncMove::new(&[0.0, f64::NAN], &ok, &ok, &ok),
            Err(TrajectoryError::NonFiniteValue {
                what: "start position",
                joint: 1,
                ..
            })
        ));
        assert!(matches!(
            SyncMove::new(&[0.0, 0.0], &ok, &ok, &[1.0, 0.0]),
            Err(TrajectoryError::Limit {
                what: "acceleration limit",
                joint: 1,
                ..
            })
        ));
        assert!(matches!(
            SyncMove::new(&[0.0, 0.0], &ok, &[-1.0, 1.0], &ok),
            Err(TrajectoryError::Limit {
                what: "velocity limit",
                joint: 0,
                ..
            })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        #[test]
        fn sync_respects_random_limits(
            joints in proptest::collection::vec(
                (-5.0..5.0f64, -10.0..10.0f64, 0.05..10.0f64, 0.05..20.0f64),
                1..7,
            ),
        ) {
            let start: Vec<f64> = joints.iter().map(|j| j.0).collect();
            let end: Vec<f64> = joints.iter().map(|j| j.0 + j.1).collect();
            let vmax: Vec<f64> = joints.iter().map(|j| j.2).collect();
            let amax: Vec<f64> = joints.iter().map(|j| j.3).collect();
            let m = SyncMove::new(&start, &end, &vmax, &amax).unwrap();
            check_move(&m, &start, &end, &vmax, &amax);
            // Never faster than any joint alone could go.
            for j in 0..start.len() {
                let own = Trapezoid::new(start[j], end[j], vmax[j], amax[j]).unwrap();
                prop_assert!(m.duration_secs() >= own.duration_secs() * (1.0 - 1e-12));
            }
        }
    }
}
