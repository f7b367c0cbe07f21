//! Differential-drive kinematics and a waypoint patrol controller for mobile bases.

/// A planar pose: position (m) and heading (rad, counter-clockwise from +x).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Pose2 {
    /// x position (m).
    pub x: f64,
    /// y position (m).
    pub y: f64,
    /// Heading (rad).
    pub yaw: f64,
}

/// Differential-drive geometry.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DiffDrive {
    /// Wheel radius (m).
    pub wheel_radius_m: f64,
    /// Distance between the two wheel contact points (m).
    pub track_width_m: f64,
}

impl DiffDrive {
    /// Wheel angular velocities `(left, right)` in rad/s for a body twist: forward speed
    /// `v_mps` (m/s) and yaw rate `omega_rps` (rad/s).
    pub fn wheel_speeds(&self, v_mps: f64, omega_rps: f64) -> (f64, f64) {
        let half = 0.5 * self.track_width_m;
        (
            (v_mps - omega_rps * half) / self.wheel_radius_m,
            (v_mps + omega_rps * half) / self.wheel_radius_m,
        )
    }

    /// Body twist `(v_mps, omega_rps)` from wheel angular velocities in rad/s.
    pub fn twist(&self, left_rps: f64, right_rps: f64) -> (f64, f64) {
        let (l, r) = (
            left_rps * self.wheel_radius_m,
            right_rps * self.wheel_radius_m,
        );
        (0.5 * (l + r), (r - l) / self.track_width_m)
    }
}

/// Follows a closed loop of planar waypoints: turns toward the current waypoint, drives at the
/// cruise speed (slowed while the heading error is large) and moves on when within tolerance.
#[derive(Clone, Debug)]
pub struct PatrolController {
    waypoints: Vec<[f64; 2]>,
    /// Cruise speed (m/s).
    pub cruise_mps: f64,
    /// Maximum yaw rate (rad/s).
    pub max_yaw_rate_rps: f64,
    /// Proportional gain from heading error (rad) to yaw rate (rad/s per rad).
    pub heading_gain: f64,
    /// Distance at which a waypoint counts as reached (m).
    pub tolerance_m: f64,
    current: usize,
    laps: u32,
}

impl PatrolController {
    /// A patrol over `waypoints` (at least one) at `cruise_mps`.
    pub fn new(waypoints: Vec<[f64; 2]>, cruise_mps: f64) -> Self {
        Self {
            waypoints,
            cruise_mps,
            max_yaw_rate_rps: 1.5,
            heading_gain: 2.5,
            tolerance_m: 0.25,
            current: 0,
            laps: 0,
        }
    }

    /// Index of the waypoint currently driven to.
    pub fn current_waypoint(&self) -> usize {
        self.current
    }

    /// Number of completed laps over all waypoints.
    pub fn laps(&self) -> u32 {
        self.laps
    }

    /// Restarts the patrol at the first waypoint.
    pub fn reset(&mut self) {
        self.current = 0;
        self.laps = 0;
    }

    /// Body twist `(v_mps, omega_rps)` toward the current waypoint from `pose`.
    pub fn update(&mut self, pose: Pose2) -> (f64, f64) {
        if self.waypoints.is_empty() {
            return (0.0, 0.0);
        }
        let mut target = self.waypoints[self.current];
        let mut dx = target[0] - pose.x;
        let mut dy = target[1] - pose.y;
        if dx.hypot(dy) < self.tolerance_m {
            self.current += 1;
            if self.current == self.waypoints.len() {
                self.current = 0;
                self.laps += 1;
            }
            target = self.waypoints[self.current];
            dx = target[0] - pose.x;
            dy = target[1] - pose.y;
        }
        let heading_error = wrap_angle(dy.atan2(dx) - pose.yaw);
        let omega = (self.heading_gain * heading_error)
            .clamp(-self.max_yaw_rate_rps, self.max_yaw_rate_rps);
        // Drive forward only while roughly facing the target; slow down near it.
        let alignment = heading_error.cos().max(0.0).powi(4);
        let distance = dx.hypot(dy);
        let v = self.cruise_mps * alignment * (distance / 0.5).min(1.0);
        (v, omega)
    }
}

/// Wraps an angle to `(-π, π]`.
pub fn wrap_angle(a: f64) -> f64 {
    let two_pi = std::f64::consts::TAU;
    let mut r = a.rem_euclid(two_pi);
    if r > std::f64::consts::PI {
        r -= two_pi;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn wheel_speeds_round_trip(v in -3.0f64..3.0, w in -3.0f64..3.0) {
            let dd = DiffDrive { wheel_radius_m: 0.1, track_width_m: 0.5 };
            let (l, r) = dd.wheel_speeds(v, w);
            let (v2, w2) = dd.twist(l, r);
            prop_assert!((v - v2).abs() < 1e-9 && (w - w2).abs() < 1e-9);
        }

        #[test]
        fn wrap_angle_in_range(a in -100.0f64..100.0) {
            let w = wrap_angle(a);
            prop_assert!(w > -std::f64::consts::PI - 1e-12 && w <= std::f64::consts::PI + 1e-12);
            prop_assert!(((a - w) / std::f64::consts::TAU).fract().abs() < 1e-9
                || (1.0 - ((a - w) / std::f64::consts::TAU).fract().abs()) < 1e-9);
        }
    }

    #[test]
    fn patrol_visits_every_waypoint_of_a_unicycle() {
        let square = vec![[4.0, 0.0], [4.0, 4.0], [0.0, 4.0], [0.0, 0.0]];
        let mut patrol = PatrolController::new(square.clone(), 1.0);
        let mut pose = Pose2::default();
        let dt = 0.01;
        let mut closest = [f64::INFINITY; 4];
        for _ in 0..6000 {
            let (v, w) = patrol.update(pose);
            pose.x += v * pose.yaw.cos() * dt;
            pose.y += v * pose.yaw.sin() * dt;
            pose.yaw += w * dt;
            for (c, wp) in closest.iter_mut().zip(&square) {
                *c = c.min((wp[0] - pose.x).hypot(wp[1] - pose.y));
            }
        }
        assert!(patrol.laps() >= 1, "laps {}", patrol.laps());
        for c in closest {
            assert!(c < patrol.tolerance_m, "closest approach {c}");
        }
    }
}
