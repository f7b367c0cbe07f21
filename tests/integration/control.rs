//! The control crate's model checked against the simulator (reads `../shared/`): forward
//! kinematics of every link against the poses rapier reports, and RNEA gravity torques holding
//! the arm still in rapier with zero PD gains.

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rivet_control::{CommandMode, RobotTree};
use rivet_sim::{PackagePaths, Scene, World, WorldOptions};

use crate::shared_dir;

const ROBOTS: [&str; 2] = [
    "example-robot-data/robots/ur_description/urdf/ur5_robot.urdf",
    "example-robot-data/robots/panda_description/urdf/panda.urdf",
];

fn random_q(tree: &RobotTree, rng: &mut ChaCha8Rng) -> Vec<f64> {
    tree.position_limits()
        .iter()
        .map(|&[lo, hi]| {
            let (lo, hi) = (lo.max(-3.0), hi.min(3.0));
            rng.random_range(lo..=hi)
        })
        .collect()
}

/// A fixed-base world of one robot at configuration `q`, every actuator in `mode`.
fn world_at(base: &Scene, q: &[f64], mode: Option<CommandMode>) -> World {
    let mut scene = base.clone();
    let robot = &mut scene.robots[0];
    robot.initial_positions = q.to_vec();
    if let Some(mode) = mode {
        for a in &mut robot.actuators {
            a.mode = mode;
        }
    }
    World::new(Arc::new(scene), WorldOptions::default()).expect("world builds")
}

#[test]
fn forward_kinematics_matches_rapier_for_every_link() {
    let _cpu = crate::not_real_time();
    let Some(shared) = shared_dir() else { return };
    let packages = PackagePaths::new([shared.clone()]);
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let own = crate::repo().join("scenes/robots/rivet_arm6.urdf");
    let paths = ROBOTS.iter().map(|r| shared.join(r)).chain([own]);
    for path in paths {
        let rel = path.display().to_string();
        let rel = rel.as_str();
        let scene = Scene::single_robot(&path, true, &packages).unwrap();
        let tree = scene.robots[0]
            .model
            .tree
            .clone()
            .expect("URDF robots have a tree");
        let mut data = tree.data();
        let mut compared = 0;
        for _ in 0..25 {
            let q = random_q(&tree, &mut rng);
            let world = world_at(&scene, &q, None);
            // The simulator reports the joint positions it was given.
            for (a, b) in world.robots[0].position.iter().zip(&q) {
                assert!((a - b).abs() < 1e-5, "{rel}: joint position {a} vs {b}");
            }
            tree.forward_kinematics(&q, &mut data);
            for (l, body) in world.robots[0].link_bodies.iter().enumerate() {
                let Some(body) = body else { continue };
                let rapier = world.body_pose(*body);
                let fk = tree.frame_pose(tree.link_frame(rivet_control::LinkId(l as u32)), &data);
                let t = rapier.translation;
                let dp = ((fk.translation.x - f64::from(t[0])).powi(2)
                    + (fk.translation.y - f64::from(t[1])).powi(2)
                    + (fk.translation.z - f64::from(t[2])).powi(2))
                .sqrt();
                let r = rapier.rotation;
                let rq = nalgebra::UnitQuaternion::from_quaternion(nalgebra::Quaternion::new(
                    f64::from(r[3]),
                    f64::from(r[0]),
                    f64::from(r[1]),
                    f64::from(r[2]),
                ));
                let dr = rq.angle_to(&fk.rotation);
                let name = &tree.links[l].name;
                assert!(
                    dp < 1e-4,
                    "{rel} link {name}: position differs by {dp} m at q = {q:?}"
                );
                assert!(
                    dr < 1e-4,
                    "{rel} link {name}: rotation differs by {dr} rad at q = {q:?}"
                );
                compared += 1;
            }
        }
        assert!(
            compared >= 25 * 8,
            "{rel}: only {compared} link poses compared"
        );
    }
}

#[test]
fn rnea_gravity_torques_hold_the_arm_in_rapier() {
    let _cpu = crate::not_real_time();
    let Some(shared) = shared_dir() else { return };
    let packages = PackagePaths::new([shared.clone()]);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for rel in ROBOTS {
        let scene = Scene::single_robot(&shared.join(rel), true, &packages).unwrap();
        let tree = scene.robots[0].model.tree.clone().unwrap();
        let mut data = tree.data();
        for _ in 0..3 {
            let q0 = random_q(&tree, &mut rng);
            // Torque mode: no PD motor at all, only the feed-forward efforts.
            let mut world = world_at(&scene, &q0, Some(CommandMode::Torque));
            let steps = (2.0 / world.scene().world.dt_secs).round() as usize;
            let mut worst: f64 = 0.0;
            for _ in 0..steps {
                let state = &mut world.robots[0];
                let g = tree.gravity_torques(&state.position, &mut data);
                state.command.copy_from_slice(g);
                world.step();
                assert!(world.termination().is_none());
                for (a, b) in world.robots[0].position.iter().zip(&q0) {
                    worst = worst.max((a - b).abs());
                }
            }
            let last = &world.robots[0].position;
            assert!(
                worst < 1e-3,
                "{rel}: drifted {worst} rad in 2 s from {q0:?} to {last:?}"
            );

            // The check has teeth: without the feed-forward the arm falls.
            let mut falling = world_at(&scene, &q0, Some(CommandMode::Torque));
            for _ in 0..steps / 4 {
                falling.step();
            }
            let fell = falling.robots[0]
                .position
                .iter()
                .zip(&q0)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(
                fell > 0.05,
                "{rel}: the arm did not fall without gravity compensation"
            );
        }
    }
}
