//! The project's worksite scenarios behave as described in their files.

use std::sync::Arc;

use rivet_sim::{PackagePaths, Scene, World, WorldOptions};

fn load(name: &str) -> Arc<Scene> {
    Arc::new(
        Scene::load(
            &crate::repo().join("scenes").join(name),
            &PackagePaths::default(),
        )
        .unwrap(),
    )
}

/// The arm lays the bricks: at least four bricks end within 1 cm and 5 degrees of their
/// targets on the wall line, no brick is dropped on the way, the sequencer finishes and the arm
/// is back home; the pre-laid bricks stay where they were.
#[test]
fn brick_wall_arm_lays_the_bricks() {
    let _cpu = crate::not_real_time();
    let scene = load("brick_wall.toml");
    let mut world = World::new(scene.clone(), WorldOptions::default()).unwrap();
    let laid: Vec<usize> = scene
        .props
        .iter()
        .enumerate()
        .filter(|(_, p)| p.name.starts_with("laid_brick"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(laid.len(), 2);
    let start: Vec<[f32; 3]> = laid
        .iter()
        .map(|&i| world.body_pose(world.props[i]).translation)
        .collect();
    let steps = (scene.duration_secs / scene.world.dt_secs).round() as usize;
    for _ in 0..steps {
        world.step();
    }
    assert_eq!(world.termination(), None);
    let outcomes = world.task_outcomes();
    assert_eq!(outcomes.len(), 1);
    let outcome = &outcomes[0];
    assert_eq!(outcome.failure, None);
    assert_eq!(outcome.phase, rivet_control::pick_place::Phase::Done);
    assert!(
        outcome.placed >= 4,
        "only {} bricks placed: {outcome:#?}",
        outcome.placed
    );
    assert_eq!(outcome.dropped, 0, "{outcome:#?}");
    for p in outcome.placements.iter().filter(|p| p.placed) {
        assert!(
            p.position_error_m <= 0.01 && p.angle_error_deg <= 5.0,
            "{p:?}"
        );
    }
    for (&i, s) in laid.iter().zip(&start) {
        let end = world.body_pose(world.props[i]).translation;
        let moved = (0..3).map(|k| (end[k] - s[k]).powi(2)).sum::<f32>().sqrt();
        assert!(moved < 0.005, "{} moved {moved} m", scene.props[i].name);
    }
    let arm = &world.robots[0];
    for (d, (&q, &q0)) in arm
        .position
        .iter()
        .zip(&scene.robots[0].initial_positions)
        .enumerate()
        .take(6)
    {
        assert!((q - q0).abs() < 0.02, "joint {d}: {q} vs home {q0}");
    }
}

/// The rover drives its patrol loop: within the scene's 30 s it comes within 0.4 m of every
/// patrol waypoint and stays upright.
#[test]
fn site_patrol_rover_visits_every_waypoint() {
    let _cpu = crate::not_real_time();
    let scene = load("site_patrol.toml");
    let waypoints = [[5.0f32, -1.5], [5.0, 1.5], [1.0, 1.5]];
    let mut closest = [f32::INFINITY; 3];
    let mut world = World::new(scene.clone(), WorldOptions::default()).unwrap();
    let steps = (scene.duration_secs / scene.world.dt_secs).round() as usize;
    let mut min_up = 1.0f32;
    for _ in 0..steps {
        world.step();
        let pose = world.body_pose(world.robots[0].base_body);
        for (c, w) in closest.iter_mut().zip(&waypoints) {
            let d = ((pose.translation[0] - w[0]).powi(2) + (pose.translation[1] - w[1]).powi(2))
                .sqrt();
            *c = c.min(d);
        }
        // z component of the body's up axis: 1 - 2(x² + y²) for quaternion [x, y, z, w].
        let [x, y, _, _] = pose.rotation;
        min_up = min_up.min(1.0 - 2.0 * (x * x + y * y));
    }
    assert_eq!(world.termination(), None);
    for (c, w) in closest.iter().zip(&waypoints) {
        assert!(*c < 0.4, "closest approach to {w:?}: {c} m");
    }
    assert!(min_up > 0.9, "the rover tipped: up-axis z fell to {min_up}");
}

/// Scripted commands pass the safety filter: a waypoint between the arm's soft limit
/// (`<safety_controller soft_upper_limit="6.1831853">`) and its hard limit (6.2831853) is held
/// at the soft limit, as ros2_control's soft limits do; the actuator alone would reach it.
#[test]
fn scripted_commands_respect_the_urdf_soft_limits() {
    let _cpu = crate::not_real_time();
    let urdf = crate::repo().join("scenes/robots/rivet_arm6.urdf");
    let text = format!(
        r#"
[scene]
name = "soft_limit"
duration_secs = 6.0

[world]
ground = false

[[robot]]
name = "arm"
urdf = "{}"
fixed_base = true

[robot.initial_joints]
shoulder_pan = 5.9
shoulder_lift = -1.1021
elbow = 1.194

[robot.script]
kind = "joint_waypoints"

[[robot.script.waypoints]]
time = 2.0
joints = {{ shoulder_pan = 6.25 }}
"#,
        urdf.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("soft_limit.toml");
    std::fs::write(&path, text).unwrap();
    let scene = Arc::new(Scene::load(&path, &PackagePaths::default()).unwrap());
    let mut world = World::new(scene.clone(), WorldOptions::default()).unwrap();
    let steps = (scene.duration_secs / scene.world.dt_secs).round() as usize;
    let mut highest: f64 = f64::NEG_INFINITY;
    for _ in 0..steps {
        world.step();
        highest = highest.max(world.robots[0].position[0]);
    }
    assert_eq!(world.termination(), None);
    // It moved up to the soft limit (from 5.9) and not beyond it.
    assert!(highest > 6.17, "shoulder_pan only reached {highest}");
    assert!(
        highest < 6.1831853 + 2e-3,
        "shoulder_pan reached {highest}, past the soft limit"
    );
}
