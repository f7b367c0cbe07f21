//! Trapezoidal velocity profiles: constant acceleration, cruise, constant deceleration.

use super::{JointTrajectory, TrajectoryError, check_duration, check_finite, check_limits};

/// A 1-D rest-to-rest move with a trapezoidal velocity profile.
///
/// It accelerates at a constant rate for [`accel_secs`](Self::accel_secs), cruises at constant
/// velocity, then decelerates at the same rate for the same time. When the distance is too short
/// to reach the cruise velocity the cruise phase vanishes and the profile is triangular.
/// Position and velocity are continuous; acceleration steps at the phase boundaries.
/// Implements [`JointTrajectory`] with one joint.
#[derive(Clone, Debug, PartialEq)]
pub struct Trapezoid {
    start: f64,
    end: f64,
    /// Acceleration (and deceleration) phase length (s).
    accel_secs: f64,
    duration: f64,
    /// Signed cruise (peak) velocity.
    velocity: f64,
    /// Signed acceleration during the first phase.
    acceleration: f64,
}

impl Trapezoid {
    /// The time-optimal profile from `start` to `end` with `|v| <= vmax` and `|a| <= amax`.
    ///
    /// It accelerates at `amax` up to `vmax` (or, when the distance is shorter than
    /// `vmax² / amax`, up to the peak `√(distance · amax)` and straight into deceleration).
    pub fn new(start: f64, end: f64, vmax: f64, amax: f64) -> Result<Self, TrajectoryError> {
        check_inputs(start, end, vmax, amax)?;
        let distance = (end - start).abs();
        if distance == 0.0 {
            return Ok(Self::from_timing(start, end, 0.0, 0.0));
        }
        let peak = vmax.min((distance * amax).sqrt());
        let accel_secs = peak / amax;
        let duration = distance / peak + accel_secs;
        if !duration.is_finite() {
            return Err(TrajectoryError::Duration {
                duration_secs: duration,
            });
        }
        let sign = (end - start).signum();
        Ok(Self {
            start,
            end,
            accel_secs,
            duration,
            velocity: sign * peak,
            acceleration: sign * amax,
        })
    }

    /// The time-optimal profile ([`new`](Self::new)) uniformly slowed down to last
    /// `duration_secs`.
    ///
    /// Time is stretched by `k = duration_secs / minimum`: the phase fractions stay the same,
    /// the peak velocity divides by `k` and the acceleration by `k²`, so both stay within the
    /// limits. Fails with [`TrajectoryError::DurationTooShort`] when `duration_secs` is shorter
    /// than the time-optimal duration. A zero-distance move accepts any duration `>= 0`.
    pub fn with_duration(
        start: f64,
        end: f64,
        vmax: f64,
        amax: f64,
        duration_secs: f64,
    ) -> Result<Self, TrajectoryError> {
        let fastest = Self::new(start, end, vmax, amax)?;
        if !(duration_secs.is_finite() && duration_secs >= 0.0) {
            return Err(TrajectoryError::Duration { duration_secs });
        }
        if start == end {
            return Ok(Self::from_timing(start, end, 0.0, duration_secs));
        }
        if duration_secs < fastest.duration {
            return Err(TrajectoryError::DurationTooShort {
                duration_secs,
                minimum_secs: fastest.duration,
            });
        }
        let k = duration_secs / fastest.duration;
        Ok(Self::from_timing(
            start,
            end,
            fastest.accel_secs * k,
            duration_secs,
        ))
    }

    /// The profile from `start` to `end` with the given phase timing and no limits: it
    /// accelerates for `accel_secs`, cruises, and decelerates for `accel_secs`, finishing at
    /// `duration_secs`. The cruise velocity is `distance / (duration - accel_secs)` and the
    /// acceleration `cruise velocity / accel_secs`.
    ///
    /// Requires `0 < accel_secs <= duration_secs / 2` (equality: triangular), except for a
    /// zero-distance move, which only needs `duration_secs >= 0`.
    pub fn with_timing(
        start: f64,
        end: f64,
        accel_secs: f64,
        duration_secs: f64,
    ) -> Result<Self, TrajectoryError> {
        check_finite("start position", &[start])?;
        check_finite("end position", &[end])?;
        if start == end {
            if !(duration_secs.is_finite() && duration_secs >= 0.0) {
                return Err(TrajectoryError::Duration { duration_secs });
            }
            return Ok(Self::from_timing(start, end, 0.0, duration_secs));
        }
        check_duration(duration_secs)?;
        if !(accel_secs > 0.0 && accel_secs <= 0.5 * duration_secs) {
            return Err(TrajectoryError::Timing {
                accel_secs,
                duration_secs,
            });
        }
        let profile = Self::from_timing(start, end, accel_secs, duration_secs);
        if !profile.acceleration.is_finite() {
            return Err(TrajectoryError::Timing {
                accel_secs,
                duration_secs,
            });
        }
        Ok(profile)
    }

    /// Builds a profile from validated phase timing; `accel_secs` is clamped to half the
    /// duration to absorb rounding.
    pub(super) fn from_timing(start: f64, end: f64, accel_secs: f64, duration: f64) -> Self {
        let h = end - start;
        let accel_secs = accel_secs.min(0.5 * duration);
        let (velocity, acceleration) = if h == 0.0 || accel_secs <= 0.0 {
            (0.0, 0.0)
        } else {
            let v = h / (duration - accel_secs);
            (v, v / accel_secs)
        };
        Self {
            start,
            end,
            accel_secs,
            duration,
            velocity,
            acceleration,
        }
    }

    /// Start position.
    pub fn start(&self) -> f64 {
        self.start
    }

    /// End position.
    pub fn end(&self) -> f64 {
        self.end
    }

    /// Duration of the move (s).
    pub fn duration_secs(&self) -> f64 {
        self.duration
    }

    /// Length of the acceleration phase, equal to that of the deceleration phase (s).
    pub fn accel_secs(&self) -> f64 {
        self.accel_secs
    }

    /// Length of the constant-velocity phase (s); 0 for a triangular profile.
    pub fn cruise_secs(&self) -> f64 {
        (self.duration - 2.0 * self.accel_secs).max(0.0)
    }

    /// Peak velocity, signed like the displacement.
    pub fn peak_velocity(&self) -> f64 {
        self.velocity
    }

    /// Acceleration during the first phase, signed like the displacement (the deceleration
    /// phase uses its negative).
    pub fn acceleration(&self) -> f64 {
        self.acceleration
    }

    /// Position, velocity and acceleration at time `t` (s).
    ///
    /// Before 0 it holds the start and from the duration on the end, at rest.
    pub fn eval(&self, t: f64) -> (f64, f64, f64) {
        if t.is_nan() || t <= 0.0 {
            return (self.start, 0.0, 0.0);
        }
        if t >= self.duration {
            return (self.end, 0.0, 0.0);
        }
        let (ta, v, a) = (self.accel_secs, self.velocity, self.acceleration);
        if t < ta {
            (self.start + 0.5 * a * t * t, a * t, a)
        } else if t <= self.duration - ta {
            (self.start + v * (t - 0.5 * ta), v, 0.0)
        } else {
            let tau = self.duration - t;
            (self.end - 0.5 * a * tau * tau, a * tau, -a)
        }
    }
}

fn check_inputs(start: f64, end: f64, vmax: f64, amax: f64) -> Result<(), TrajectoryError> {
    check_finite("start position", &[start])?;
    check_finite("end position", &[end])?;
    check_limits("velocity limit", &[vmax])?;
    check_limits("acceleration limit", &[amax])
}

impl JointTrajectory for Trapezoid {
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

#[cfg(test)]
mod tests {
    use super::super::test_support::{
        assert_clamped_ends, assert_continuous_at, assert_derivatives, sampled_peaks,
    };
    use super::*;
    use proptest::prelude::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + b.abs())
    }

    /// Boundary conditions, limits, continuity of position and velocity at the phase
    /// boundaries, and velocity/acceleration against finite differences.
    fn check_profile(p: &Trapezoid, vmax: f64, amax: f64) {
        assert_clamped_ends(p, &[p.start()], &[p.end()], 1e-12 * (1.0 + p.end().abs()));
        let (vp, ap) = sampled_peaks(p, 1000);
        assert!(vp[0] <= vmax * (1.0 + 1e-9), "peak v {} > {vmax}", vp[0]);
        assert!(ap[0] <= amax * (1.0 + 1e-12), "peak a {} > {amax}", ap[0]);
        let tol = 1e-7 * (1.0 + vmax + (p.end() - p.start()).abs());
        for t in [p.accel_secs(), p.duration_secs() - p.accel_secs()] {
            assert_continuous_at(p, t, false, tol);
        }
        let scale = vmax + amax;
        assert_derivatives(p, 20, false, scale);
    }

    #[test]
    fn trapezoid_reaches_vmax_on_long_moves() {
        let p = Trapezoid::new(1.0, 5.0, 2.0, 4.0).unwrap();
        // 0.5 s to reach 2 m/s (covering 0.5 m), 1.5 s cruise, 0.5 s down.
        assert!(close(p.accel_secs(), 0.5, 1e-15));
        assert!(close(p.cruise_secs(), 1.5, 1e-15));
        assert!(close(p.duration_secs(), 2.5, 1e-15));
        assert_eq!(p.peak_velocity(), 2.0);
        assert_eq!(p.acceleration(), 4.0);
        assert_eq!(p.eval(1.25), (3.0, 2.0, 0.0));
        check_profile(&p, 2.0, 4.0);
    }

    #[test]
    fn trapezoid_is_triangular_on_short_moves() {
        let p = Trapezoid::new(0.0, 1.0, 10.0, 4.0).unwrap();
        // √(d/a) = 0.5 s up to √(d·a) = 2 m/s, then straight down.
        assert!(close(p.accel_secs(), 0.5, 1e-15));
        assert_eq!(p.cruise_secs(), 0.0);
        assert!(close(p.duration_secs(), 1.0, 1e-15));
        assert!(close(p.peak_velocity(), 2.0, 1e-15));
        let (x, v, _) = p.eval(0.5);
        assert!(close(x, 0.5, 1e-15) && close(v, 2.0, 1e-15));
        check_profile(&p, 10.0, 4.0);
    }

    #[test]
    fn trapezoid_negative_and_zero_distance() {
        let p = Trapezoid::new(2.0, -1.0, 1.5, 3.0).unwrap();
        assert_eq!(p.peak_velocity(), -1.5);
        assert_eq!(p.acceleration(), -3.0);
        check_profile(&p, 1.5, 3.0);

        let z = Trapezoid::new(0.7, 0.7, 1.0, 1.0).unwrap();
        assert_eq!(z.duration_secs(), 0.0);
        assert_eq!(z.eval(0.0), (0.7, 0.0, 0.0));
        assert_eq!(z.eval(1.0), (0.7, 0.0, 0.0));
    }

    #[test]
    fn trapezoid_with_duration_stretches_within_limits() {
        let fastest = Trapezoid::new(0.0, 3.0, 2.0, 1.0).unwrap();
        let p =
            Trapezoid::with_duration(0.0, 3.0, 2.0, 1.0, 2.0 * fastest.duration_secs()).unwrap();
        assert!(close(
            p.duration_secs(),
            2.0 * fastest.duration_secs(),
            1e-15
        ));
        assert!(close(p.accel_secs(), 2.0 * fastest.accel_secs(), 1e-15));
        assert!(close(
            p.peak_velocity(),
            0.5 * fastest.peak_velocity(),
            1e-12
        ));
        assert!(close(p.acceleration(), 0.25, 1e-12));
        check_profile(&p, 2.0, 1.0);
        // Exactly the minimum is accepted and equals the fastest profile.
        let same = Trapezoid::with_duration(0.0, 3.0, 2.0, 1.0, fastest.duration_secs()).unwrap();
        assert!(close(same.peak_velocity(), fastest.peak_velocity(), 1e-12));
        // Zero distance: any duration.
        let z = Trapezoid::with_duration(1.0, 1.0, 2.0, 1.0, 3.0).unwrap();
        assert_eq!((z.duration_secs(), z.eval(1.5)), (3.0, (1.0, 0.0, 0.0)));
    }

    #[test]
    fn trapezoid_with_timing_sets_the_phases() {
        let p = Trapezoid::with_timing(0.0, -2.0, 0.5, 2.5).unwrap();
        assert!(close(p.peak_velocity(), -1.0, 1e-15));
        assert!(close(p.acceleration(), -2.0, 1e-15));
        assert!(close(p.cruise_secs(), 1.5, 1e-15));
        check_profile(&p, 1.0, 2.0);
    }

    #[test]
    fn trapezoid_rejects_bad_input() {
        assert!(matches!(
            Trapezoid::new(f64::NAN, 1.0, 1.0, 1.0),
            Err(TrajectoryError::NonFiniteValue {
                what: "start position",
                ..
            })
        ));
        assert!(matches!(
            Trapezoid::new(0.0, f64::INFINITY, 1.0, 1.0),
            Err(TrajectoryError::NonFiniteValue {
                what: "end position",
                ..
            })
        ));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                Trapezoid::new(0.0, 1.0, bad, 1.0),
                Err(TrajectoryError::Limit {
                    what: "velocity limit",
                    ..
                })
            ));
            assert!(matches!(
                Trapezoid::new(0.0, 1.0, 1.0, bad),
                Err(TrajectoryError::Limit {
                    what: "acceleration limit",
                    ..
                })
            ));
        }
        assert_eq!(
            Trapezoid::with_duration(0.0, 1.0, 1.0, 1.0, 1.5),
            Err(TrajectoryError::DurationTooShort {
                duration_secs: 1.5,
                minimum_secs: 2.0
            })
        );
        assert!(matches!(
            Trapezoid::with_duration(0.0, 1.0, 1.0, 1.0, f64::NAN),
            Err(TrajectoryError::Duration { .. })
        ));
        for (ta, t) in [(0.0, 1.0), (0.6, 1.0), (-0.1, 1.0), (f64::NAN, 1.0)] {
            assert!(matches!(
                Trapezoid::with_timing(0.0, 1.0, ta, t),
                Err(TrajectoryError::Timing { .. })
            ));
        }
        assert!(matches!(
            Trapezoid::with_timing(0.0, 1.0, 0.1, 0.0),
            Err(TrajectoryError::Duration { .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn trapezoid_respects_random_limits(
            start in -10.0..10.0f64,
            distance in -20.0..20.0f64,
            vmax in 0.01..20.0f64,
            amax in 0.01..50.0f64,
            stretch in 1.0..4.0f64,
        ) {
            let end = start + distance;
            let p = Trapezoid::new(start, end, vmax, amax).unwrap();
            // Time-optimal: it saturates the acceleration limit, and the velocity limit too
            // unless the move is triangular.
            if distance != 0.0 {
                prop_assert!(close(p.acceleration().abs(), amax, 1e-15));
                if (distance.abs() * amax).sqrt() >= vmax {
                    prop_assert_eq!(p.peak_velocity().abs(), vmax);
                } else {
                    prop_assert!(p.cruise_secs() < 1e-12 * p.duration_secs());
                }
            }
            check_profile(&p, vmax, amax);
            let slow = Trapezoid::with_duration(start, end, vmax, amax,
                p.duration_secs() * stretch).unwrap();
            check_profile(&slow, vmax, amax);
        }
    }
}
