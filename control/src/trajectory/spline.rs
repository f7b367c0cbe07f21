//! C2 cubic splines through timed joint waypoints, timing of untimed waypoints from per-joint
//! limits, and peak velocity/acceleration reports.

use super::waypoints::validate_waypoints;
use super::{JointTrajectory, JointWaypoint, TrajectoryError, check_len, check_limits};

/// Relative slack [`PeakRates::check`] allows over a limit, to absorb rounding in trajectories
/// timed to reach a limit exactly.
const LIMIT_SLACK: f64 = 1e-9;

/// A cubic spline through timed waypoints, independently per joint, with zero velocity at the
/// first and last waypoint ("clamped" end conditions).
///
/// Position, velocity and acceleration are continuous across the interior waypoints (C2); the
/// second derivatives at the waypoints come from one tridiagonal solve shared by all joints.
/// The acceleration at the two ends is generally not zero, so it steps to zero where the
/// trajectory starts and stops holding.
///
/// Before the first waypoint's time (and before 0) it holds the first waypoint, after the last
/// waypoint's time it holds the last one, both at rest. [`duration_secs`] is the last
/// waypoint's time. Implements [`JointTrajectory`].
///
/// [`duration_secs`]: JointTrajectory::duration_secs
#[derive(Clone, Debug, PartialEq)]
pub struct Spline {
    dof: usize,
    /// Waypoint times (s), strictly increasing.
    times: Vec<f64>,
    /// Per segment and joint (`segment * dof + joint`): `[a, b, c, d]` with
    /// `q(t) = a + bτ + cτ² + dτ³`, `τ = t - times[segment]`.
    coeffs: Vec<[f64; 4]>,
    start: Vec<f64>,
    end: Vec<f64>,
}

impl Spline {
    /// The clamped cubic spline through `waypoints`, whose times must be finite, `>= 0` and
    /// strictly increasing (the first need not be 0). A single waypoint gives a trajectory that
    /// holds it.
    pub fn new(waypoints: &[JointWaypoint]) -> Result<Self, TrajectoryError> {
        let dof = validate_waypoints(waypoints)?;
        let times: Vec<f64> = waypoints.iter().map(|w| w.time_secs).collect();
        let segments = times.len() - 1;
        let mut coeffs = vec![[0.0; 4]; segments * dof];
        if segments > 0 {
            let h: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
            let solver = Tridiagonal::clamped(&h);
            let mut rhs = vec![0.0; segments + 1];
            let mut moments = vec![0.0; segments + 1];
            for j in 0..dof {
                let y = |i: usize| waypoints[i].positions[j];
                let slope = |i: usize| (y(i + 1) - y(i)) / h[i];
                for (i, r) in rhs.iter_mut().enumerate() {
                    // Clamped ends: zero slope before the first and after the last waypoint.
                    let after = if i < segments { slope(i) } else { 0.0 };
                    let before = if i > 0 { slope(i - 1) } else { 0.0 };
                    *r = 6.0 * (after - before);
                }
                solver.solve(&rhs, &mut moments);
                for i in 0..segments {
                    let (m0, m1) = (moments[i], moments[i + 1]);
                    coeffs[i * dof + j] = [
                        y(i),
                        slope(i) - h[i] * (2.0 * m0 + m1) / 6.0,
                        0.5 * m0,
                        (m1 - m0) / (6.0 * h[i]),
                    ];
                }
            }
        }
        let spline = Self {
            dof,
            times,
            coeffs,
            start: waypoints[0].positions.clone(),
            end: waypoints[waypoints.len() - 1].positions.clone(),
        };
        spline.check_coefficients()?;
        Ok(spline)
    }

    /// The spline through untimed `points`, timed by [`time_waypoints`] from per-joint limits.
    pub fn from_limits<P: AsRef<[f64]>>(
        points: &[P],
        vmax: &[f64],
        amax: &[f64],
    ) -> Result<Self, TrajectoryError> {
        Self::new(&time_waypoints(points, vmax, amax)?)
    }

    /// The waypoint times (s).
    pub fn knot_times(&self) -> &[f64] {
        &self.times
    }

    /// The same path with time stretched by `factor` (> 1 slower, < 1 faster): waypoint times
    /// are multiplied by it, velocities divided by it and accelerations by its square.
    pub fn time_scaled(&self, factor: f64) -> Result<Self, TrajectoryError> {
        if !(factor.is_finite() && factor > 0.0) {
            return Err(TrajectoryError::TimeScale { factor });
        }
        let (k, k2) = (factor, factor * factor);
        let scaled = Self {
            dof: self.dof,
            times: self.times.iter().map(|t| t * k).collect(),
            coeffs: self
                .coeffs
                .iter()
                .map(|&[a, b, c, d]| [a, b / k, c / k2, d / (k2 * k)])
                .collect(),
            start: self.start.clone(),
            end: self.end.clone(),
        };
        let increasing = scaled.times.windows(2).all(|w| w[1] > w[0]);
        if !increasing || !scaled.times.iter().all(|t| t.is_finite()) {
            return Err(TrajectoryError::TimeScale { factor });
        }
        scaled.check_coefficients().map(|()| scaled)
    }

    /// Exact peak |velocity| and |acceleration| of each joint over the whole trajectory.
    ///
    /// Per segment the acceleration is linear, so its peak is at a waypoint; the velocity is
    /// quadratic, so its peak is at a waypoint or where the acceleration crosses zero.
    pub fn peak_rates(&self) -> PeakRates {
        let mut peaks = PeakRates {
            velocity: vec![0.0; self.dof],
            acceleration: vec![0.0; self.dof],
        };
        for (s, h) in self.times.windows(2).map(|w| w[1] - w[0]).enumerate() {
            for j in 0..self.dof {
                let [_, b, c, d] = self.coeffs[s * self.dof + j];
                let mut v = b.abs().max((b + h * (2.0 * c + 3.0 * d * h)).abs());
                if d != 0.0 {
                    let tau = -c / (3.0 * d);
                    if tau > 0.0 && tau < h {
                        v = v.max((b + tau * (2.0 * c + 3.0 * d * tau)).abs());
                    }
                }
                let a = (2.0 * c).abs().max((2.0 * c + 6.0 * d * h).abs());
                peaks.velocity[j] = peaks.velocity[j].max(v);
                peaks.acceleration[j] = peaks.acceleration[j].max(a);
            }
        }
        peaks
    }

    fn check_coefficients(&self) -> Result<(), TrajectoryError> {
        if self.coeffs.iter().flatten().all(|c| c.is_finite()) {
            Ok(())
        } else {
            // Finite inputs whose slopes overflow, e.g. a huge step over a tiny interval.
            let index = self.times.len() - 1;
            Err(TrajectoryError::Time {
                index,
                time_secs: self.times[index],
            })
        }
    }
}

impl JointTrajectory for Spline {
    fn dof(&self) -> usize {
        self.dof
    }

    fn duration_secs(&self) -> f64 {
        self.times[self.times.len() - 1]
    }

    fn sample(&self, t: f64, pos: &mut [f64], vel: &mut [f64], acc: &mut [f64]) {
        let segments = self.times.len() - 1;
        let hold = if t.is_nan() || t < self.times[0] || segments == 0 {
            Some(&self.start)
        } else if t > self.times[segments] {
            Some(&self.end)
        } else {
            None
        };
        if let Some(q) = hold {
            pos[..self.dof].copy_from_slice(q);
            vel[..self.dof].fill(0.0);
            acc[..self.dof].fill(0.0);
            return;
        }
        let s = (self.times.partition_point(|&k| k <= t) - 1).min(segments - 1);
        let tau = t - self.times[s];
        let row = &self.coeffs[s * self.dof..(s + 1) * self.dof];
        for (j, &[a, b, c, d]) in row.iter().enumerate() {
            pos[j] = a + tau * (b + tau * (c + tau * d));
            vel[j] = b + tau * (2.0 * c + tau * 3.0 * d);
            acc[j] = 2.0 * c + tau * 6.0 * d;
        }
    }
}

/// The clamped-spline moment system `A·M = r` for intervals `h`, factored once (Thomas
/// algorithm; the matrix is strictly diagonally dominant, so no pivoting is needed).
struct Tridiagonal {
    /// Sub-diagonal (`sub[0]` unused).
    sub: Vec<f64>,
    /// Modified super-diagonal `c'`.
    sup: Vec<f64>,
    /// Pivots `diag[i] - sub[i]·c'[i-1]`.
    pivot: Vec<f64>,
}

impl Tridiagonal {
    fn clamped(h: &[f64]) -> Self {
        let m = h.len() + 1;
        let mut sub = vec![0.0; m];
        let mut diag = vec![0.0; m];
        let mut sup = vec![0.0; m];
        diag[0] = 2.0 * h[0];
        sup[0] = h[0];
        for i in 1..m - 1 {
            sub[i] = h[i - 1];
            diag[i] = 2.0 * (h[i - 1] + h[i]);
            sup[i] = h[i];
        }
        sub[m - 1] = h[m - 2];
        diag[m - 1] = 2.0 * h[m - 2];
        let mut pivot = vec![0.0; m];
        pivot[0] = diag[0];
        sup[0] /= pivot[0];
        for i in 1..m {
            pivot[i] = diag[i] - sub[i] * sup[i - 1];
            sup[i] /= pivot[i];
        }
        Self { sub, sup, pivot }
    }

    fn solve(&self, rhs: &[f64], x: &mut [f64]) {
        let m = rhs.len();
        x[0] = rhs[0] / self.pivot[0];
        for i in 1..m {
            x[i] = (rhs[i] - self.sub[i] * x[i - 1]) / self.pivot[i];
        }
        for i in (0..m - 1).rev() {
            x[i] -= self.sup[i] * x[i + 1];
        }
    }
}

/// Assigns times to untimed waypoints (one position per joint each) so that the [`Spline`]
/// through them stays within per-joint velocity and acceleration limits.
///
/// The first waypoint is at time 0. Each segment first gets the time the slowest joint would
/// need to cover it as a rest-to-rest time-optimal trapezoidal move under its limits; then all
/// times are scaled by one factor so that the spline through them just reaches its tightest
/// limit ([`PeakRates::time_scale`]). The result is within every limit up to rounding, and
/// usually faster than stopping at every waypoint because the spline does not stop.
///
/// Fails on no points, a joint count that differs from the first point's or from the limits,
/// a non-finite value, a limit that is not finite and > 0, or two consecutive identical points.
pub fn time_waypoints<P: AsRef<[f64]>>(
    points: &[P],
    vmax: &[f64],
    amax: &[f64],
) -> Result<Vec<JointWaypoint>, TrajectoryError> {
    let first = points.first().ok_or(TrajectoryError::Empty)?;
    let dof = first.as_ref().len();
    check_len("velocity limits", vmax, dof)?;
    check_len("acceleration limits", amax, dof)?;
    check_limits("velocity limit", vmax)?;
    check_limits("acceleration limit", amax)?;
    let mut time = 0.0;
    let mut waypoints = Vec::with_capacity(points.len());
    for (index, point) in points.iter().enumerate() {
        let q = point.as_ref();
        if q.len() != dof {
            return Err(TrajectoryError::JointCount {
                index,
                found: q.len(),
                expected: dof,
            });
        }
        if let Some((joint, &value)) = q.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(TrajectoryError::NonFinite {
                index,
                joint,
                value,
            });
        }
        if index > 0 {
            let previous = points[index - 1].as_ref();
            let mut segment = 0.0_f64;
            for j in 0..dof {
                let d = (q[j] - previous[j]).abs();
                if d > 0.0 {
                    let peak = vmax[j].min((d * amax[j]).sqrt());
                    segment = segment.max(d / peak + peak / amax[j]);
                }
            }
            if segment == 0.0 {
                return Err(TrajectoryError::RepeatedWaypoint { index });
            }
            time += segment;
        }
        waypoints.push(JointWaypoint {
            time_secs: time,
            positions: q.to_vec(),
        });
    }
    if waypoints.len() < 2 {
        return Ok(waypoints);
    }
    let spline = Spline::new(&waypoints)?;
    let factor = spline.peak_rates().time_scale(vmax, amax)?;
    if factor > 0.0 {
        for w in &mut waypoints {
            w.time_secs *= factor;
        }
        // Rejects times that collapse or overflow when scaled.
        validate_waypoints(&waypoints)?;
    }
    Ok(waypoints)
}

/// Peak |velocity| and |acceleration| of each joint of a trajectory.
#[derive(Clone, Debug, PartialEq)]
pub struct PeakRates {
    /// Peak |velocity| per joint (rad/s or m/s).
    pub velocity: Vec<f64>,
    /// Peak |acceleration| per joint (rad/s² or m/s²).
    pub acceleration: Vec<f64>,
}

impl PeakRates {
    /// Peaks of any trajectory, estimated from `samples + 1` evenly spaced samples over its
    /// duration (both ends included). [`Spline::peak_rates`] computes a spline's exactly.
    pub fn sampled(trajectory: &dyn JointTrajectory, samples: usize) -> Self {
        let dof = trajectory.dof();
        let mut peaks = Self {
            velocity: vec![0.0; dof],
            acceleration: vec![0.0; dof],
        };
        let (mut p, mut v, mut a) = (vec![0.0; dof], vec![0.0; dof], vec![0.0; dof]);
        let samples = samples.max(1);
        let duration = trajectory.duration_secs();
        for k in 0..=samples {
            trajectory.sample(duration * k as f64 / samples as f64, &mut p, &mut v, &mut a);
            for j in 0..dof {
                peaks.velocity[j] = peaks.velocity[j].max(v[j].abs());
                peaks.acceleration[j] = peaks.acceleration[j].max(a[j].abs());
            }
        }
        peaks
    }

    /// Checks every joint's peaks against its limits, allowing a relative slack of 1e-9 for
    /// rounding. Fails with [`TrajectoryError::LimitExceeded`] on the first joint over a limit
    /// (velocity checked before acceleration), or on invalid limits.
    pub fn check(&self, vmax: &[f64], amax: &[f64]) -> Result<(), TrajectoryError> {
        self.check_inputs(vmax, amax)?;
        for (joint, (&peak, &limit)) in self.velocity.iter().zip(vmax).enumerate() {
            if peak > limit * (1.0 + LIMIT_SLACK) {
                return Err(TrajectoryError::LimitExceeded {
                    joint,
                    what: "velocity",
                    peak,
                    limit,
                });
            }
        }
        for (joint, (&peak, &limit)) in self.acceleration.iter().zip(amax).enumerate() {
            if peak > limit * (1.0 + LIMIT_SLACK) {
                return Err(TrajectoryError::LimitExceeded {
                    joint,
                    what: "acceleration",
                    peak,
                    limit,
                });
            }
        }
        Ok(())
    }

    /// The factor to stretch time by so that the tightest limit is reached exactly:
    /// `maxⱼ max(velocityⱼ / vmaxⱼ, √(accelerationⱼ / amaxⱼ))`. Above 1 the trajectory
    /// exceeds a limit and must be slowed down; below 1 it could be sped up. 0 when nothing
    /// moves.
    pub fn time_scale(&self, vmax: &[f64], amax: &[f64]) -> Result<f64, TrajectoryError> {
        self.check_inputs(vmax, amax)?;
        let v = self.velocity.iter().zip(vmax).map(|(p, l)| p / l);
        let a = self
            .acceleration
            .iter()
            .zip(amax)
            .map(|(p, l)| (p / l).sqrt());
        Ok(v.chain(a).fold(0.0, f64::max))
    }

    fn check_inputs(&self, vmax: &[f64], amax: &[f64]) -> Result<(), TrajectoryError> {
        let dof = self.velocity.len();
        check_len("velocity limits", vmax, dof)?;
        check_len("acceleration limits", amax, dof)?;
        check_limits("velocity limit", vmax)?;
        check_limits("acceleration limit", amax)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{
        Buffers, assert_clamped_ends, assert_continuous_at, assert_derivatives, sampled_peaks,
    };
    use super::*;
    use proptest::prelude::*;

    fn wp(time_secs: f64, positions: &[f64]) -> JointWaypoint {
        JointWaypoint {
            time_secs,
            positions: positions.to_vec(),
        }
    }

    fn example() -> Vec<JointWaypoint> {
        vec![
            wp(0.0, &[0.0, 1.0]),
            wp(0.7, &[1.0, 0.5]),
            wp(1.5, &[0.5, -1.0]),
            wp(2.0, &[2.0, -1.0]),
            wp(3.2, &[1.0, 0.0]),
        ]
    }

    /// Passes through every waypoint at its time and is C2 across the interior ones.
    fn check_interpolates(s: &Spline, waypoints: &[JointWaypoint]) {
        let mut b = Buffers::new(s.dof());
        let scale = waypoints
            .iter()
            .flat_map(|w| &w.positions)
            .fold(1.0_f64, |m, q| m.max(q.abs()));
        for w in waypoints {
            b.sample(s, w.time_secs);
            for (q, e) in b.pos.iter().zip(&w.positions) {
                assert!(
                    (q - e).abs() <= 1e-9 * scale,
                    "t={}: {q} vs {e}",
                    w.time_secs
                );
            }
        }
        let peaks = s.peak_rates();
        let top = peaks
            .velocity
            .iter()
            .chain(&peaks.acceleration)
            .fold(1.0_f64, |m, v| m.max(*v));
        for w in &waypoints[1..waypoints.len() - 1] {
            assert_continuous_at(s, w.time_secs, true, 1e-6 * top);
        }
    }

    #[test]
    fn spline_interpolates_with_zero_end_velocities() {
        let wps = example();
        let s = Spline::new(&wps).unwrap();
        assert_eq!(s.dof(), 2);
        assert_eq!(s.duration_secs(), 3.2);
        assert_eq!(s.knot_times(), &[0.0, 0.7, 1.5, 2.0, 3.2]);
        check_interpolates(&s, &wps);
        assert_clamped_ends(&s, &[0.0, 1.0], &[1.0, 0.0], 1e-12);
    }

    #[test]
    fn spline_is_c2_and_matches_finite_differences() {
        let s = Spline::new(&example()).unwrap();
        // Velocity is the derivative of position and acceleration that of velocity.
        assert_derivatives(&s, 60, true, 20.0);
        // Symmetric waypoints give a symmetric spline: at rest at the middle one.
        let sym = Spline::new(&[wp(0.0, &[0.0]), wp(1.0, &[1.0]), wp(2.0, &[0.0])]).unwrap();
        let mut b = Buffers::new(1);
        b.sample(&sym, 1.0);
        assert!((b.pos[0] - 1.0).abs() < 1e-15 && b.vel[0].abs() < 1e-12);
        assert_continuous_at(&sym, 1.0, true, 1e-6);
    }

    #[test]
    fn spline_of_two_points_is_the_rest_to_rest_cubic() {
        let s = Spline::new(&[wp(0.0, &[1.0]), wp(2.0, &[3.0])]).unwrap();
        // 3u² - 2u³: peak velocity 1.5·d/T, peak acceleration 6·d/T².
        let peaks = s.peak_rates();
        assert!((peaks.velocity[0] - 1.5).abs() < 1e-12);
        assert!((peaks.acceleration[0] - 3.0).abs() < 1e-12);
        let mut b = Buffers::new(1);
        b.sample(&s, 1.0);
        assert!((b.pos[0] - 2.0).abs() < 1e-15 && (b.vel[0] - 1.5).abs() < 1e-12);
    }

    #[test]
    fn spline_holds_before_a_late_first_waypoint_and_single_waypoint() {
        let s = Spline::new(&[wp(1.0, &[1.0]), wp(2.0, &[3.0])]).unwrap();
        let mut b = Buffers::new(1);
        b.sample(&s, 0.5);
        assert_eq!((b.pos[0], b.vel[0], b.acc[0]), (1.0, 0.0, 0.0));
        b.sample(&s, 1.5);
        assert!((b.pos[0] - 2.0).abs() < 1e-15);

        let one = Spline::new(&[wp(0.5, &[4.0, 5.0])]).unwrap();
        assert_eq!(one.duration_secs(), 0.5);
        assert_clamped_ends(&one, &[4.0, 5.0], &[4.0, 5.0], 0.0);
        assert_eq!(one.peak_rates().velocity, vec![0.0, 0.0]);
    }

    #[test]
    fn spline_peak_report_matches_sampling_and_scales_with_time() {
        let s = Spline::new(&example()).unwrap();
        let exact = s.peak_rates();
        let (vs, as_) = sampled_peaks(&s, 20_000);
        let generic = PeakRates::sampled(&s, 20_000);
        for j in 0..2 {
            assert!(vs[j] <= exact.velocity[j] * (1.0 + 1e-12));
            assert!(
                vs[j] >= exact.velocity[j] * (1.0 - 1e-6),
                "{vs:?} {exact:?}"
            );
            assert!(as_[j] <= exact.acceleration[j] * (1.0 + 1e-12));
            assert!(as_[j] >= exact.acceleration[j] * (1.0 - 1e-9));
            assert_eq!(generic.velocity[j], vs[j]);
        }
        let slow = s.time_scaled(2.0).unwrap();
        assert_eq!(slow.duration_secs(), 6.4);
        let slow_peaks = slow.peak_rates();
        for j in 0..2 {
            assert!((slow_peaks.velocity[j] - 0.5 * exact.velocity[j]).abs() < 1e-12);
            assert!((slow_peaks.acceleration[j] - 0.25 * exact.acceleration[j]).abs() < 1e-12);
        }
        // Time scaling gives the spline through the scaled waypoints.
        let scaled: Vec<_> = example()
            .into_iter()
            .map(|w| wp(2.0 * w.time_secs, &w.positions))
            .collect();
        let direct = Spline::new(&scaled).unwrap();
        let (mut a, mut b) = (Buffers::new(2), Buffers::new(2));
        for k in 0..50 {
            let t = 6.4 * k as f64 / 49.0;
            a.sample(&slow, t);
            b.sample(&direct, t);
            for j in 0..2 {
                assert!((a.pos[j] - b.pos[j]).abs() < 1e-12);
                assert!((a.vel[j] - b.vel[j]).abs() < 1e-12);
                assert!((a.acc[j] - b.acc[j]).abs() < 1e-11);
            }
        }
        assert!(matches!(
            s.time_scaled(0.0),
            Err(TrajectoryError::TimeScale { .. })
        ));
    }

    #[test]
    fn peak_check_reports_the_violation() {
        let s = Spline::new(&[wp(0.0, &[0.0, 0.0]), wp(1.0, &[1.0, 2.0])]).unwrap();
        let peaks = s.peak_rates(); // v = [1.5, 3], a = [6, 12]
        assert_eq!(peaks.check(&[2.0, 4.0], &[6.0, 12.0]), Ok(()));
        assert_eq!(
            peaks.check(&[2.0, 2.5], &[10.0, 20.0]),
            Err(TrajectoryError::LimitExceeded {
                joint: 1,
                what: "velocity",
                peak: 3.0,
                limit: 2.5
            })
        );
        let err = peaks.check(&[2.0, 4.0], &[5.0, 20.0]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "joint 0: peak acceleration 6 exceeds the limit 5"
        );
        assert!((peaks.time_scale(&[3.0, 3.0], &[24.0, 3.0]).unwrap() - 2.0).abs() < 1e-12);
        assert!(matches!(
            peaks.check(&[1.0], &[1.0, 1.0]),
            Err(TrajectoryError::DofMismatch { .. })
        ));
    }

    #[test]
    fn timed_from_limits_respects_and_reaches_them() {
        let points = [
            [0.0, 0.0, 1.0],
            [1.0, -0.5, 1.0],
            [1.5, 0.5, 0.0],
            [0.0, 0.0, 0.0],
        ];
        let (vmax, amax) = ([1.0, 0.5, 2.0], [2.0, 1.0, 0.5]);
        let wps = time_waypoints(&points, &vmax, &amax).unwrap();
        assert_eq!(wps[0].time_secs, 0.0);
        assert_eq!(wps[2].positions, points[2]);
        let s = Spline::new(&wps).unwrap();
        check_interpolates(&s, &wps);
        let peaks = s.peak_rates();
        assert_eq!(peaks.check(&vmax, &amax), Ok(()));
        assert!((peaks.time_scale(&vmax, &amax).unwrap() - 1.0).abs() < 1e-9);
        let (vs, as_) = sampled_peaks(&s, 5000);
        for j in 0..3 {
            assert!(vs[j] <= vmax[j] * (1.0 + 1e-9) && as_[j] <= amax[j] * (1.0 + 1e-9));
        }
        assert_eq!(Spline::from_limits(&points, &vmax, &amax).unwrap(), s);
        // A single point needs no time.
        let one = time_waypoints(&[vec![1.0]], &[1.0], &[1.0]).unwrap();
        assert_eq!(one, vec![wp(0.0, &[1.0])]);
    }

    #[test]
    fn spline_rejects_bad_waypoints() {
        assert_eq!(Spline::new(&[]), Err(TrajectoryError::Empty));
        assert!(matches!(
            Spline::new(&[wp(0.0, &[0.0]), wp(0.0, &[1.0])]),
            Err(TrajectoryError::Time { index: 1, .. })
        ));
        assert!(matches!(
            Spline::new(&[wp(0.0, &[0.0]), wp(1.0, &[1.0, 2.0])]),
            Err(TrajectoryError::JointCount { index: 1, .. })
        ));
        assert!(matches!(
            Spline::new(&[wp(0.0, &[0.0]), wp(1.0, &[f64::NAN])]),
            Err(TrajectoryError::NonFinite { index: 1, .. })
        ));
        let no_points: [[f64; 1]; 0] = [];
        assert_eq!(
            time_waypoints(&no_points, &[1.0], &[1.0]),
            Err(TrajectoryError::Empty)
        );
        assert!(matches!(
            time_waypoints(&[[0.0], [1.0]], &[1.0], &[f64::INFINITY]),
            Err(TrajectoryError::Limit {
                what: "acceleration limit",
                ..
            })
        ));
        assert!(matches!(
            time_waypoints(&[[0.0, 1.0], [1.0, 1.0]], &[1.0], &[1.0, 1.0]),
            Err(TrajectoryError::DofMismatch {
                what: "velocity limits",
                ..
            })
        ));
        assert!(matches!(
            time_waypoints(&[vec![0.0], vec![1.0, 2.0]], &[1.0], &[1.0]),
            Err(TrajectoryError::JointCount { index: 1, .. })
        ));
        assert_eq!(
            time_waypoints(&[[0.0], [1.0], [1.0]], &[1.0], &[1.0]),
            Err(TrajectoryError::RepeatedWaypoint { index: 2 })
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        #[test]
        fn spline_from_random_limits_stays_within_them(
            dof in 1usize..4,
            raw in proptest::collection::vec(
                proptest::collection::vec(-3.0..3.0f64, 3), 2..7),
            limits in proptest::collection::vec((0.05..5.0f64, 0.05..10.0f64), 3),
        ) {
            let points: Vec<Vec<f64>> = raw.iter().map(|p| p[..dof].to_vec()).collect();
            let vmax: Vec<f64> = limits[..dof].iter().map(|l| l.0).collect();
            let amax: Vec<f64> = limits[..dof].iter().map(|l| l.1).collect();
            let wps = time_waypoints(&points, &vmax, &amax).unwrap();
            let s = Spline::new(&wps).unwrap();
            check_interpolates(&s, &wps);
            let start = &points[0];
            let end = &points[points.len() - 1];
            assert_clamped_ends(&s, start, end, 1e-9);
            let (vs, as_) = sampled_peaks(&s, 400);
            for j in 0..dof {
                prop_assert!(vs[j] <= vmax[j] * (1.0 + 1e-9), "joint {}: v {} > {}", j, vs[j], vmax[j]);
                prop_assert!(as_[j] <= amax[j] * (1.0 + 1e-9), "joint {}: a {} > {}", j, as_[j], amax[j]);
            }
            // The tightest limit is reached.
            let scale = s.peak_rates().time_scale(&vmax, &amax).unwrap();
            prop_assert!((scale - 1.0).abs() < 1e-9, "{}", scale);
        }
    }
}
