//! Per-joint PID on position with derivative on measurement, filtering and anti-windup.

use super::{ControllerError, assert_state_len, invalid};
use crate::command::{CommandMode, Controller, JointStateView, Target};

/// Gains and limits of one joint's PID loop.
///
/// The output is in the controller's output units: rad/s or m/s in
/// [`CommandMode::Velocity`], N·m or N in [`CommandMode::Torque`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PidGains {
    /// Proportional gain (output units per rad or m of position error).
    pub kp: f64,
    /// Integral gain (output units per rad·s or m·s).
    pub ki: f64,
    /// Derivative gain (output units per rad/s or m/s), applied to the filtered rate of the
    /// measurement, not of the error.
    pub kd: f64,
    /// Bound on the magnitude of the integral term `ki ∫e dt` (output units, `>= 0`;
    /// infinite for none).
    pub integral_limit: f64,
    /// Lower output limit (output units; `-inf` for none).
    pub output_min: f64,
    /// Upper output limit (output units; `inf` for none).
    pub output_max: f64,
}

impl PidGains {
    /// Gains with no integral or output limits.
    pub fn new(kp: f64, ki: f64, kd: f64) -> Self {
        Self {
            kp,
            ki,
            kd,
            integral_limit: f64::INFINITY,
            output_min: f64::NEG_INFINITY,
            output_max: f64::INFINITY,
        }
    }

    /// The same gains with the output clamped to `[min, max]`.
    pub fn with_output_limits(mut self, min: f64, max: f64) -> Self {
        self.output_min = min;
        self.output_max = max;
        self
    }

    /// The same gains with the integral term bounded by `limit` in magnitude.
    pub fn with_integral_limit(mut self, limit: f64) -> Self {
        self.integral_limit = limit;
        self
    }

    fn validate(&self, joint: usize) -> Result<(), ControllerError> {
        let what = |field: &str| format!("gains[{joint}].{field}");
        for (field, v) in [("kp", self.kp), ("ki", self.ki), ("kd", self.kd)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(invalid(what(field), format!("{v} must be finite and >= 0")));
            }
        }
        if self.integral_limit.is_nan() || self.integral_limit < 0.0 {
            return Err(invalid(
                what("integral_limit"),
                format!("{} must be >= 0", self.integral_limit),
            ));
        }
        if self.output_min.is_nan() || self.output_max.is_nan() || self.output_min > self.output_max
        {
            return Err(invalid(
                what("output_min/output_max"),
                format!(
                    "[{}, {}] is not an interval",
                    self.output_min, self.output_max
                ),
            ));
        }
        Ok(())
    }
}

/// One PID loop per joint on joint position, writing velocities or torques.
///
/// For each joint, with error `e = r − y` (setpoint `r`, measured position `y`):
///
/// `u = clamp(kp·e + I + kd·(ṙ − ẏ_f), output_min, output_max)`
///
/// - `ẏ_f` is the rate of the *measurement* (finite difference between updates) through a
///   first-order low-pass filter with cutoff `derivative_cutoff_hz`, so a setpoint step gives no
///   derivative kick. `ṙ` is the target velocity when [`Target::Joint`] gives one, else zero.
/// - `I` integrates `ki·e·dt` (backward Euler), but only while that does not push an output that
///   is already saturated further into its limit (conditional integration), and is clamped to
///   `±integral_limit`. The integrator therefore stays bounded while the output saturates and
///   the loop leaves saturation as soon as the error reverses.
///
/// Targets: [`Target::Joint`] sets the setpoint (kept until the next one); [`Target::None`] and
/// [`Target::Pose`] keep the previous setpoint; before any setpoint, the position measured on
/// the first update is held.
///
/// Time: `dt` is the difference between consecutive `time_secs`. The first update (and the
/// first after [`Controller::reset`]) starts the measurement-rate estimate at zero and
/// integrates nothing. An update with `dt == 0` (or a non-finite time) changes no internal
/// state and re-evaluates the output with the new measurement; a clock that goes backwards
/// restarts the derivative estimate from the new time (the integral is kept).
#[derive(Clone, Debug)]
pub struct Pid {
    mode: CommandMode,
    gains: Vec<PidGains>,
    cutoff_hz: f64,
    setpoint: Vec<f64>,
    has_setpoint: bool,
    integral: Vec<f64>,
    prev_measurement: Vec<f64>,
    rate: Vec<f64>,
    last_time: Option<f64>,
}

impl Pid {
    /// A PID with one [`PidGains`] per joint, writing `mode` commands
    /// ([`CommandMode::Velocity`] or [`CommandMode::Torque`]). `derivative_cutoff_hz` is the
    /// cutoff of the low-pass filter on the measurement rate (Hz, `> 0`); `f64::INFINITY`
    /// disables the filter.
    pub fn new(
        mode: CommandMode,
        gains: Vec<PidGains>,
        derivative_cutoff_hz: f64,
    ) -> Result<Self, ControllerError> {
        if mode == CommandMode::Position {
            return Err(invalid(
                "mode",
                "a PID writes velocity or torque commands, not positions",
            ));
        }
        if gains.is_empty() {
            return Err(invalid("gains", "no joints"));
        }
        for (i, g) in gains.iter().enumerate() {
            g.validate(i)?;
        }
        if derivative_cutoff_hz.is_nan() || derivative_cutoff_hz <= 0.0 {
            return Err(invalid(
                "derivative_cutoff_hz",
                format!("{derivative_cutoff_hz} must be > 0 (infinite for no filter)"),
            ));
        }
        let n = gains.len();
        Ok(Self {
            mode,
            gains,
            cutoff_hz: derivative_cutoff_hz,
            setpoint: vec![0.0; n],
            has_setpoint: false,
            integral: vec![0.0; n],
            prev_measurement: vec![0.0; n],
            rate: vec![0.0; n],
            last_time: None,
        })
    }

    /// The same gains for every one of `joints` joints.
    pub fn uniform(
        mode: CommandMode,
        joints: usize,
        gains: PidGains,
        derivative_cutoff_hz: f64,
    ) -> Result<Self, ControllerError> {
        Self::new(mode, vec![gains; joints], derivative_cutoff_hz)
    }

    /// Number of joints.
    pub fn dof(&self) -> usize {
        self.gains.len()
    }

    /// The gains, per joint.
    pub fn gains(&self) -> &[PidGains] {
        &self.gains
    }

    /// Replaces one joint's gains (the integral term is kept, then clamped to the new limit).
    pub fn set_gains(&mut self, joint: usize, gains: PidGains) -> Result<(), ControllerError> {
        if joint >= self.dof() {
            return Err(invalid(
                "joint",
                format!("{joint} >= {} joints", self.dof()),
            ));
        }
        gains.validate(joint)?;
        self.gains[joint] = gains;
        let l = gains.integral_limit;
        self.integral[joint] = self.integral[joint].clamp(-l, l);
        Ok(())
    }

    /// Sets the position setpoint (rad or m), as a [`Target::Joint`] would.
    pub fn set_setpoint(&mut self, position: &[f64]) {
        self.setpoint.copy_from_slice(position);
        self.has_setpoint = true;
    }

    /// The current setpoint, if one was given or captured.
    pub fn setpoint(&self) -> Option<&[f64]> {
        self.has_setpoint.then_some(&self.setpoint[..])
    }

    /// The integral terms `I` (output units), per joint.
    pub fn integral(&self) -> &[f64] {
        &self.integral
    }

    /// The filtered measurement rates `ẏ_f` (rad/s or m/s), per joint.
    pub fn measurement_rate(&self) -> &[f64] {
        &self.rate
    }
}

impl Controller for Pid {
    fn mode(&self) -> CommandMode {
        self.mode
    }

    fn update(
        &mut self,
        state: &JointStateView<'_>,
        target: &Target<'_>,
        time_secs: f64,
        command_out: &mut [f64],
    ) {
        let n = self.dof();
        assert_state_len(state, command_out, n);
        let mut target_velocity = None;
        if let Target::Joint {
            position, velocity, ..
        } = *target
        {
            self.set_setpoint(position);
            if let Some(v) = velocity {
                assert_eq!(v.len(), n, "target velocity has the wrong length");
                target_velocity = Some(v);
            }
        }
        if !self.has_setpoint {
            self.setpoint.copy_from_slice(state.position);
            self.has_setpoint = true;
        }

        // Time step: `Some(dt > 0)` advances filter and integrator; otherwise they are frozen.
        let dt = if !time_secs.is_finite() {
            None
        } else {
            match self.last_time {
                Some(t0) if time_secs > t0 => {
                    self.last_time = Some(time_secs);
                    Some(time_secs - t0)
                }
                Some(t0) if time_secs == t0 => None,
                // First update, or the clock went backwards: restart the derivative estimate.
                _ => {
                    self.last_time = Some(time_secs);
                    self.prev_measurement.copy_from_slice(state.position);
                    self.rate.iter_mut().for_each(|r| *r = 0.0);
                    None
                }
            }
        };
        let alpha = match dt {
            Some(dt) if self.cutoff_hz.is_finite() => {
                let tau = 1.0 / (2.0 * std::f64::consts::PI * self.cutoff_hz);
                dt / (tau + dt)
            }
            _ => 1.0,
        };

        for i in 0..n {
            let g = &self.gains[i];
            let y = state.position[i];
            let e = self.setpoint[i] - y;
            if let Some(dt) = dt {
                let raw = (y - self.prev_measurement[i]) / dt;
                self.prev_measurement[i] = y;
                self.rate[i] += alpha * (raw - self.rate[i]);
            }
            let rate_error = target_velocity.map_or(0.0, |v| v[i]) - self.rate[i];
            let pd = g.kp * e + g.kd * rate_error;
            if let Some(dt) = dt {
                let step = g.ki * e * dt;
                let trial = pd + self.integral[i] + step;
                let winding_up =
                    (trial > g.output_max && step > 0.0) || (trial < g.output_min && step < 0.0);
                if !winding_up {
                    self.integral[i] += step;
                }
                self.integral[i] = self.integral[i].clamp(-g.integral_limit, g.integral_limit);
            }
            command_out[i] = (pd + self.integral[i]).clamp(g.output_min, g.output_max);
        }
    }

    fn reset(&mut self) {
        self.has_setpoint = false;
        self.last_time = None;
        self.integral.iter_mut().for_each(|x| *x = 0.0);
        self.rate.iter_mut().for_each(|x| *x = 0.0);
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::controllers::testing::allocations_in;

    const DT: f64 = 1e-3;

    fn pid(gains: PidGains, cutoff_hz: f64) -> Pid {
        Pid::new(CommandMode::Torque, vec![gains], cutoff_hz).unwrap()
    }

    /// One update of a single-joint PID at measurement `y` towards setpoint `r`.
    fn step(pid: &mut Pid, y: f64, r: f64, t: f64) -> f64 {
        let mut out = [0.0];
        let (p, z) = ([y], [0.0]);
        let state = JointStateView {
            position: &p,
            velocity: &z,
            effort: &z,
        };
        let setpoint = [r];
        let target = Target::Joint {
            position: &setpoint,
            velocity: None,
            acceleration: None,
        };
        pid.update(&state, &target, t, &mut out);
        out[0]
    }

    #[test]
    fn anti_windup_bounds_the_integrator_and_recovers_at_once() {
        // A blocked joint: the measurement never moves, so the output saturates.
        let gains = PidGains::new(0.5, 1.0, 0.0).with_output_limits(-1.0, 1.0);
        let mut c = pid(gains, f64::INFINITY);
        let mut t = 0.0;
        for _ in 0..10_000 {
            let u = step(&mut c, 0.0, 1.0, t);
            assert!(u <= 1.0);
            t += DT;
        }
        // 10 s at e = 1 would integrate to 10 without anti-windup; conditional integration
        // stops at the saturation boundary: kp·e + I = 1.
        assert!((c.integral()[0] - 0.5).abs() < 1e-2, "{:?}", c.integral());
        // The error reverses: the output leaves saturation on the very first update, and the
        // integral unwinds within a second instead of ten.
        let u = step(&mut c, 0.0, -0.5, t);
        assert!(u < 0.5, "still saturated: {u}");
        for _ in 0..1000 {
            t += DT;
            step(&mut c, 0.0, -0.5, t);
        }
        let u = step(&mut c, 0.0, -0.5, t + DT);
        assert!(u < -0.2 && c.integral()[0] < 0.05, "did not recover: {u}");

        // The integral limit bounds the integral term even when the output does not saturate.
        let mut c = pid(
            PidGains::new(0.0, 1.0, 0.0)
                .with_output_limits(-10.0, 10.0)
                .with_integral_limit(0.3),
            f64::INFINITY,
        );
        for k in 0..5000 {
            let u = step(&mut c, 0.0, 1.0, k as f64 * DT);
            assert!(u <= 0.3 + 1e-12);
        }
        assert!((c.integral()[0] - 0.3).abs() < 1e-12);
    }

    #[test]
    fn integral_removes_steady_state_error_in_closed_loop() {
        // Velocity mode on an integrator plant with a constant velocity bias: ẏ = u − 0.2.
        let gains = PidGains::new(4.0, 4.0, 0.0).with_output_limits(-1.0, 1.0);
        let mut c = Pid::new(CommandMode::Velocity, vec![gains], 50.0).unwrap();
        let mut y = 0.0;
        for k in 0..10_000 {
            let u = step(&mut c, y, 1.0, k as f64 * DT);
            y += DT * (u - 0.2);
        }
        assert!((y - 1.0).abs() < 1e-4, "y = {y}");
        assert!((c.integral()[0] - 0.2).abs() < 1e-3);
    }

    #[test]
    fn derivative_acts_on_the_measurement_so_a_setpoint_step_does_not_kick() {
        let mut c = pid(PidGains::new(1.0, 0.0, 10.0), f64::INFINITY);
        for k in 0..10 {
            assert_eq!(step(&mut c, 0.0, 0.0, k as f64 * DT), 0.0);
        }
        // Setpoint step 0 -> 1 with a still joint: only the proportional term responds.
        assert_eq!(step(&mut c, 0.0, 1.0, 10.0 * DT), 1.0);
        assert_eq!(step(&mut c, 0.0, 1.0, 11.0 * DT), 1.0);
        // The measurement moving at 2 rad/s is damped: u = kp e − kd ẏ.
        let mut y = 0.0;
        let mut u = 0.0;
        for k in 12..20 {
            y += 2.0 * DT;
            u = step(&mut c, y, 1.0, k as f64 * DT);
        }
        assert!((u - ((1.0 - y) - 10.0 * 2.0)).abs() < 1e-9, "u = {u}");
        assert!((c.measurement_rate()[0] - 2.0).abs() < 1e-9);
    }

    #[test]
    fn derivative_filter_attenuates_noise_and_passes_slow_motion() {
        let gains = PidGains::new(0.0, 0.0, 1.0);
        let rms = |cutoff: f64| {
            let mut c = pid(gains, cutoff);
            let mut rng = ChaCha8Rng::seed_from_u64(7);
            let mut sum = 0.0;
            for k in 0..3000 {
                let u = step(&mut c, rng.random_range(-1e-3..1e-3), 0.0, k as f64 * DT);
                if k >= 1000 {
                    sum += u * u;
                }
            }
            (sum / 2000.0).sqrt()
        };
        let (raw, filtered) = (rms(f64::INFINITY), rms(10.0));
        assert!(filtered * 5.0 < raw, "raw {raw}, filtered {filtered}");

        // A 0.5 Hz motion well below the 10 Hz cutoff keeps its derivative amplitude.
        let mut c = pid(gains, 10.0);
        let w = 2.0 * std::f64::consts::PI * 0.5;
        let mut peak: f64 = 0.0;
        for k in 0..4000 {
            let t = k as f64 * DT;
            let u = step(&mut c, (w * t).sin(), 0.0, t);
            if t >= 2.0 {
                peak = peak.max(u.abs());
            }
        }
        assert!((peak / w - 1.0).abs() < 0.01, "peak {peak}, expected {w}");
    }

    #[test]
    fn output_limits_are_respected() {
        let gains = PidGains::new(50.0, 20.0, 2.0)
            .with_output_limits(-0.5, 2.0)
            .with_integral_limit(1.0);
        let mut c = Pid::new(CommandMode::Velocity, vec![gains; 3], 30.0).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut out = [0.0; 3];
        let mut t = 0.0;
        let (mut hit_low, mut hit_high) = (false, false);
        for _ in 0..5000 {
            let y: [f64; 3] = std::array::from_fn(|_| rng.random_range(-2.0..2.0));
            let r: [f64; 3] = std::array::from_fn(|_| rng.random_range(-2.0..2.0));
            let z = [0.0; 3];
            let state = JointStateView {
                position: &y,
                velocity: &z,
                effort: &z,
            };
            let target = Target::Joint {
                position: &r,
                velocity: None,
                acceleration: None,
            };
            // Irregular time steps, including repeats.
            t += rng.random_range(0.0..2e-3);
            c.update(&state, &target, t, &mut out);
            for (u, i) in out.iter().zip(c.integral()) {
                assert!((-0.5..=2.0).contains(u), "{u}");
                assert!(i.abs() <= 1.0);
                hit_low |= *u == -0.5;
                hit_high |= *u == 2.0;
            }
        }
        assert!(hit_low && hit_high);
    }

    #[test]
    fn time_steps_of_zero_or_backwards_do_not_corrupt_the_state() {
        let mut c = pid(PidGains::new(2.0, 1.0, 1.0), 20.0);
        // First call: proportional term only, nothing integrated or differentiated.
        assert_eq!(step(&mut c, 0.0, 1.0, 5.0), 2.0);
        assert_eq!(c.integral()[0], 0.0);
        let u1 = step(&mut c, 0.1, 1.0, 5.01);
        let (i1, r1) = (c.integral()[0], c.measurement_rate()[0]);
        assert!(i1 > 0.0 && r1 > 0.0);
        // Same time again: the state is unchanged, the output uses the new measurement.
        let u2 = step(&mut c, 0.2, 1.0, 5.01);
        assert_eq!((c.integral()[0], c.measurement_rate()[0]), (i1, r1));
        assert!((u2 - (u1 - 2.0 * 0.1)).abs() < 1e-12);
        // The clock jumps back: the derivative restarts, the integral is kept, all finite.
        let u3 = step(&mut c, 0.2, 1.0, 1.0);
        assert_eq!(c.measurement_rate()[0], 0.0);
        assert_eq!(c.integral()[0], i1);
        assert!(u3.is_finite());
        assert!(step(&mut c, 0.2, 1.0, f64::NAN).is_finite());
        assert!(step(&mut c, 0.25, 1.0, 1.001).is_finite());
        // Reset: the next update initialises again.
        c.reset();
        assert_eq!(step(&mut c, 0.0, 1.0, 0.0), 2.0);
        assert_eq!(c.integral()[0], 0.0);
    }

    #[test]
    fn holds_the_first_measured_position_until_given_a_setpoint() {
        let mut c = pid(PidGains::new(1.0, 0.0, 0.0), f64::INFINITY);
        let (p, z) = ([0.3], [0.0]);
        let state = JointStateView {
            position: &p,
            velocity: &z,
            effort: &z,
        };
        let mut out = [0.0];
        c.update(&state, &Target::None, 0.0, &mut out);
        assert_eq!(c.setpoint(), Some(&[0.3][..]));
        let p = [0.1];
        let state = JointStateView {
            position: &p,
            ..state
        };
        c.update(&state, &Target::None, 0.001, &mut out);
        assert!((out[0] - 0.2).abs() < 1e-12);
    }

    #[test]
    fn rejects_invalid_configurations() {
        let g = PidGains::new(1.0, 0.0, 0.0);
        assert!(Pid::new(CommandMode::Position, vec![g], 10.0).is_err());
        assert!(Pid::new(CommandMode::Torque, vec![], 10.0).is_err());
        assert!(Pid::new(CommandMode::Torque, vec![g], 0.0).is_err());
        assert!(
            Pid::new(
                CommandMode::Torque,
                vec![PidGains::new(-1.0, 0.0, 0.0)],
                10.0
            )
            .is_err()
        );
        let inverted = g.with_output_limits(1.0, -1.0);
        let e = Pid::new(CommandMode::Torque, vec![g, inverted], 10.0).unwrap_err();
        assert!(e.to_string().contains("gains[1]"), "{e}");
        assert!(Pid::new(CommandMode::Torque, vec![g.with_integral_limit(-1.0)], 10.0).is_err());
        let mut c = Pid::new(CommandMode::Torque, vec![g], 10.0).unwrap();
        assert!(c.set_gains(1, g).is_err());
        assert!(c.set_gains(0, PidGains::new(2.0, 1.0, 0.0)).is_ok());
    }

    #[test]
    fn update_does_not_allocate() {
        let gains = PidGains::new(1.0, 1.0, 0.1).with_output_limits(-1.0, 1.0);
        let mut c = Pid::new(CommandMode::Torque, vec![gains; 6], 20.0).unwrap();
        let (p, v, r) = ([0.1; 6], [0.0; 6], [0.5; 6]);
        let state = JointStateView {
            position: &p,
            velocity: &v,
            effort: &v,
        };
        let target = Target::Joint {
            position: &r,
            velocity: Some(&v),
            acceleration: None,
        };
        let mut out = [0.0; 6];
        let n = allocations_in(|| {
            for k in 0..100 {
                c.update(&state, &target, k as f64 * DT, &mut out);
                c.update(&state, &Target::None, k as f64 * DT, &mut out);
            }
        });
        assert_eq!(n, 0);
    }
}
