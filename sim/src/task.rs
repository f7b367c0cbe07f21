//! Task outcomes of a run: what the scripted or learned behaviour achieved, scored against the
//! scene's targets (for pick-and-place: objects placed within tolerance, errors, drops).

use serde::Serialize;

use crate::math::{isometry, pose_to_transform};
use crate::scene::Script;
use crate::world::World;

/// How far an object must have moved from its start to count as disturbed (m).
const MOVED_M: f64 = 0.02;

/// Outcome of one pick-and-place task.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PlacementOutcome {
    /// The prop.
    pub object: String,
    /// Within the position and angle tolerances of its target.
    pub placed: bool,
    /// Not placed, moved from where it started and not in the gripper: it fell on the way.
    pub dropped: bool,
    /// Distance from the target position (m).
    pub position_error_m: f64,
    /// Rotation angle from the target orientation (degrees).
    pub angle_error_deg: f64,
}

/// Outcome of a robot's pick-and-place script.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PickPlaceOutcome {
    /// The robot.
    pub robot: String,
    /// Tasks placed within tolerance.
    pub placed: usize,
    /// Tasks whose object was dropped.
    pub dropped: usize,
    /// Tasks in the script.
    pub tasks: usize,
    /// The sequencer's phase at the end (`done` when it finished).
    pub phase: rivet_control::pick_place::Phase,
    /// Why the sequencer stopped, if it failed (e.g. a pose out of reach).
    pub failure: Option<String>,
    /// Per task, in order.
    pub placements: Vec<PlacementOutcome>,
    /// Position tolerance (m).
    pub tolerance_position_m: f64,
    /// Angle tolerance (degrees).
    pub tolerance_angle_deg: f64,
}

impl World {
    /// The outcome of every robot's pick-and-place script, scored on the current state.
    pub fn task_outcomes(&self) -> Vec<PickPlaceOutcome> {
        let scene = self.scene();
        let mut out = Vec::new();
        for (r, robot) in scene.robots.iter().enumerate() {
            let Some(Script::PickPlace(spec)) = &robot.script else {
                continue;
            };
            let (phase, task_index, failure) = self.pick_place_status(r).unwrap_or((
                rivet_control::pick_place::Phase::Failed,
                0,
                Some("no sequencer".into()),
            ));
            let carrying = matches!(
                phase,
                rivet_control::pick_place::Phase::Close
                    | rivet_control::pick_place::Phase::Lift
                    | rivet_control::pick_place::Phase::ToPrePlace
                    | rivet_control::pick_place::Phase::Lower
            );
            let mut placements = Vec::new();
            for (k, (task, target)) in spec.tasks.iter().zip(&spec.world_targets).enumerate() {
                let prop = &scene.props[task.object];
                let now = isometry(&pose_to_transform(
                    self.physics().bodies[self.props[task.object]].position(),
                ));
                let target = isometry(target);
                let start = isometry(&prop.world_from_prop);
                let position_error_m = (now.translation.vector - target.translation.vector).norm();
                let angle = now.rotation.angle_to(&target.rotation);
                let placed = position_error_m <= spec.tolerance_position_m
                    && angle <= spec.tolerance_angle_rad;
                let moved = (now.translation.vector - start.translation.vector).norm() > MOVED_M;
                let in_hand = carrying && k == task_index;
                placements.push(PlacementOutcome {
                    object: prop.name.clone(),
                    placed,
                    dropped: !placed && moved && !in_hand,
                    position_error_m,
                    angle_error_deg: angle.to_degrees(),
                });
            }
            out.push(PickPlaceOutcome {
                robot: robot.name.clone(),
                placed: placements.iter().filter(|p| p.placed).count(),
                dropped: placements.iter().filter(|p| p.dropped).count(),
                tasks: placements.len(),
                phase,
                failure,
                placements,
                tolerance_position_m: spec.tolerance_position_m,
                tolerance_angle_deg: spec.tolerance_angle_rad.to_degrees(),
            });
        }
        out
    }
}
