//! Timed joint waypoints joined by minimum-jerk (quintic) segments, played back as a
//! [`Controller`] (the scripted trajectories scenes run).

use super::TrajectoryError;
use crate::command::{CommandMode, Controller, JointStateView};

/// One timed waypoint: joint positions (robot joint order) to reach at `time_secs`.
#[derive(Clone, Debug, PartialEq)]
pub struct JointWaypoint {
    /// Time at which the waypoint is reached, from the start of the trajectory (s).
    pub time_secs: f64,
    /// Joint positions (rad or m), one per joint.
    pub positions: Vec<f64>,
}

/// Minimum-jerk blend `s(u) = 10u³ - 15u⁴ + 6u⁵` for `u` in `[0, 1]` (clamped outside), with its
/// derivative `ds/du`.
///
/// The blend starts and ends with zero velocity and acceleration.
pub fn min_jerk(u: f64) -> (f64, f64) {
    let u = u.clamp(0.0, 1.0);
    let u2 = u * u;
    let u3 = u2 * u;
    let s = u3 * (10.0 - 15.0 * u + 6.0 * u2);
    let ds = 30.0 * u2 * (1.0 - 2.0 * u + u2);
    (s, ds)
}

/// Checks that there is at least one waypoint, that all have the first one's joint count and
/// finite values, and that times are finite, `>= 0` and strictly increasing. Returns the joint
/// count.
pub(super) fn validate_waypoints(waypoints: &[JointWaypoint]) -> Result<usize, TrajectoryError> {
    let first = waypoints.first().ok_or(TrajectoryError::Empty)?;
    let n = first.positions.len();
    let mut previous_time = f64::NEG_INFINITY;
    for (index, waypoint) in waypoints.iter().enumerate() {
        if waypoint.positions.len() != n {
            return Err(TrajectoryError::JointCount {
                index,
                found: waypoint.positions.len(),
                expected: n,
            });
        }
        let t = waypoint.time_secs;
        if !t.is_finite() || t < 0.0 || t <= previous_time {
            return Err(TrajectoryError::Time {
                index,
                time_secs: t,
            });
        }
        previous_time = t;
        if let Some((joint, &value)) = waypoint
            .positions
            .iter()
            .enumerate()
            .find(|(_, v)| !v.is_finite())
        {
            return Err(TrajectoryError::NonFinite {
                index,
                joint,
                value,
            });
        }
    }
    Ok(n)
}

/// A joint-space trajectory through timed waypoints with minimum-jerk segments.
///
/// Before the first waypoint's time it blends from the robot's position at the first update to
/// the first waypoint; after the last it holds the last waypoint, or starts over when looping.
#[derive(Clone, Debug)]
pub struct WaypointTrajectory {
    waypoints: Vec<JointWaypoint>,
    looping: bool,
    /// Robot position captured at the first update, used as the start of the first segment.
    start: Vec<f64>,
    started: bool,
    /// Reused buffer for the velocity that `update` does not output.
    velocity_scratch: Vec<f64>,
}

impl WaypointTrajectory {
    /// Builds a trajectory, validating waypoint sizes, times and values.
    pub fn new(waypoints: Vec<JointWaypoint>, looping: bool) -> Result<Self, TrajectoryError> {
        let n = validate_waypoints(&waypoints)?;
        let first = &waypoints[0];
        if looping && first.time_secs <= 0.0 {
            return Err(TrajectoryError::Time {
                index: 0,
                time_secs: first.time_secs,
            });
        }
        Ok(Self {
            start: vec![0.0; n],
            velocity_scratch: vec![0.0; n],
            started: false,
            waypoints,
            looping,
        })
    }

    /// Number of joints each waypoint covers.
    pub fn joint_count(&self) -> usize {
        self.start.len()
    }

    /// Duration up to the last waypoint (s).
    pub fn duration_secs(&self) -> f64 {
        self.waypoints.last().map_or(0.0, |w| w.time_secs)
    }

    /// Samples position and velocity at `time_secs` into the output slices.
    ///
    /// Before the first waypoint the trajectory departs from the position captured at the first
    /// [`Controller::update`] (zeros if sampled before any update). When looping, each cycle
    /// after the first blends from the last waypoint back to the first over the first
    /// waypoint's lead time, so the period is the last waypoint's time.
    pub fn sample(&self, time_secs: f64, position_out: &mut [f64], velocity_out: &mut [f64]) {
        let duration = self.duration_secs();
        let lead = self.waypoints[0].time_secs;
        let mut t = time_secs.max(0.0);
        if self.looping && t > duration {
            let cycle = (t - duration) % duration;
            if cycle < lead {
                let last = &self.waypoints[self.waypoints.len() - 1].positions;
                let first = &self.waypoints[0].positions;
                blend(last, first, cycle / lead, lead, position_out, velocity_out);
                return;
            }
            t = cycle;
        }
        match self.waypoints.iter().position(|w| w.time_secs >= t) {
            None => {
                let last = &self.waypoints[self.waypoints.len() - 1].positions;
                position_out.copy_from_slice(last);
                velocity_out.fill(0.0);
            }
            Some(0) => {
                let w = &self.waypoints[0];
                let u = if lead > 0.0 { t / lead } else { 1.0 };
                blend(
                    &self.start,
                    &w.positions,
                    u,
                    lead,
                    position_out,
                    velocity_out,
                );
            }
            Some(i) => {
                let (a, b) = (&self.waypoints[i - 1], &self.waypoints[i]);
                let span = b.time_secs - a.time_secs;
                let u = (t - a.time_secs) / span;
                blend(
                    &a.positions,
                    &b.positions,
                    u,
                    span,
                    position_out,
                    velocity_out,
                );
            }
        }
    }
}

fn blend(from: &[f64], to: &[f64], u: f64, span_secs: f64, pos: &mut [f64], vel: &mut [f64]) {
    let (s, ds) = min_jerk(u);
    let rate = if span_secs > 0.0 { ds / span_secs } else { 0.0 };
    for i in 0..pos.len() {
        let delta = to[i] - from[i];
        pos[i] = from[i] + s * delta;
        vel[i] = rate * delta;
    }
}

impl Controller for WaypointTrajectory {
    fn mode(&self) -> CommandMode {
        CommandMode::Position
    }

    fn update(
        &mut self,
        state: &JointStateView<'_>,
        _target: &crate::command::Target<'_>,
        time_secs: f64,
        command_out: &mut [f64],
    ) {
        if !self.started {
            self.start.copy_from_slice(state.position);
            self.started = true;
        }
        let mut velocity = std::mem::take(&mut self.velocity_scratch);
        self.sample(time_secs, command_out, &mut velocity);
        self.velocity_scratch = velocity;
    }

    fn reset(&mut self) {
        self.started = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(p: &'a [f64], z: &'a [f64]) -> JointStateView<'a> {
        JointStateView {
            position: p,
            velocity: z,
            effort: z,
        }
    }

    #[test]
    fn min_jerk_boundaries() {
        assert_eq!(min_jerk(0.0), (0.0, 0.0));
        let (s, ds) = min_jerk(1.0);
        assert!((s - 1.0).abs() < 1e-12 && ds.abs() < 1e-12);
        let (s, _) = min_jerk(0.5);
        assert!((s - 0.5).abs() < 1e-12);
    }

    #[test]
    fn reaches_each_waypoint_at_its_time() {
        let wps = vec![
            JointWaypoint {
                time_secs: 1.0,
                positions: vec![1.0, -1.0],
            },
            JointWaypoint {
                time_secs: 3.0,
                positions: vec![2.0, 0.5],
            },
        ];
        let mut traj = WaypointTrajectory::new(wps, false).unwrap();
        let zero = [0.0, 0.0];
        let mut out = [0.0; 2];
        traj.update(
            &view(&[0.5, 0.5], &zero),
            &crate::command::Target::None,
            0.0,
            &mut out,
        );
        assert_eq!(out, [0.5, 0.5]);
        traj.update(
            &view(&[0.0, 0.0], &zero),
            &crate::command::Target::None,
            1.0,
            &mut out,
        );
        assert_eq!(out, [1.0, -1.0]);
        traj.update(
            &view(&[0.0, 0.0], &zero),
            &crate::command::Target::None,
            3.0,
            &mut out,
        );
        assert_eq!(out, [2.0, 0.5]);
        traj.update(
            &view(&[0.0, 0.0], &zero),
            &crate::command::Target::None,
            10.0,
            &mut out,
        );
        assert_eq!(out, [2.0, 0.5]);
    }

    #[test]
    fn velocity_matches_finite_difference() {
        let wps = vec![
            JointWaypoint {
                time_secs: 0.0,
                positions: vec![0.0],
            },
            JointWaypoint {
                time_secs: 2.0,
                positions: vec![1.0],
            },
        ];
        let traj = WaypointTrajectory::new(wps, false).unwrap();
        let (mut p0, mut p1, mut v) = ([0.0], [0.0], [0.0]);
        let h = 1e-6;
        for &t in &[0.3, 0.9, 1.5] {
            traj.sample(t - h, &mut p0, &mut v);
            traj.sample(t + h, &mut p1, &mut v);
            let fd = (p1[0] - p0[0]) / (2.0 * h);
            traj.sample(t, &mut p0, &mut v);
            assert!((fd - v[0]).abs() < 1e-6, "t={t} fd={fd} v={}", v[0]);
        }
    }

    #[test]
    fn looping_returns_to_the_start() {
        let wps = vec![
            JointWaypoint {
                time_secs: 1.0,
                positions: vec![0.0],
            },
            JointWaypoint {
                time_secs: 2.0,
                positions: vec![1.0],
            },
        ];
        let traj = WaypointTrajectory::new(wps, true).unwrap();
        let (mut p, mut v) = ([0.0], [0.0]);
        // One period after reaching the last waypoint (2 s) plus the lead (1 s) it is back at
        // the first waypoint, then at the last again one period later.
        traj.sample(3.0, &mut p, &mut v);
        assert!(p[0].abs() < 1e-12, "{p:?}");
        traj.sample(4.0, &mut p, &mut v);
        assert!((p[0] - 1.0).abs() < 1e-12, "{p:?}");
    }

    #[test]
    fn rejects_bad_waypoints() {
        assert_eq!(
            WaypointTrajectory::new(vec![], false).unwrap_err(),
            TrajectoryError::Empty
        );
        let bad_time = vec![
            JointWaypoint {
                time_secs: 1.0,
                positions: vec![0.0],
            },
            JointWaypoint {
                time_secs: 1.0,
                positions: vec![1.0],
            },
        ];
        assert!(matches!(
            WaypointTrajectory::new(bad_time, false),
            Err(TrajectoryError::Time { index: 1, .. })
        ));
        let bad_value = vec![JointWaypoint {
            time_secs: 1.0,
            positions: vec![f64::NAN],
        }];
        assert!(matches!(
            WaypointTrajectory::new(bad_value, false),
            Err(TrajectoryError::NonFinite { index: 0, .. })
        ));
    }
}
