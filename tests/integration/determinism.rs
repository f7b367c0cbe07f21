//! Determinism of the simulator.
//!
//! Guards: the same scene and seed give a bitwise-identical state digest (every body's pose and
//! velocity and every joint coordinate, see `World::state_digest`) across runs, across 1 and 2
//! solver threads, and against the golden digest committed below. A change of physics
//! behaviour (solver settings, actuator model, scene defaults, rapier version) changes the
//! golden digest: update it only when that change is intended, and say so in the commit.

use std::sync::Arc;

use rivet_sim::{PackagePaths, Scene, SimWorld, World, WorldOptions, headless_app};

/// Digest of scenes/brick_wall.toml after 500 steps (1 s) with seed 0.
const GOLDEN_BRICK_WALL_500: &str =
    "3cfa201292a99bb8eee4b7d7970776bf6e29ea9c91b0ff23568b02e3995ea678";

fn brick_scene() -> Arc<Scene> {
    Arc::new(
        Scene::load(
            &crate::repo().join("scenes/brick_wall.toml"),
            &PackagePaths::default(),
        )
        .unwrap(),
    )
}

fn digest_after(scene: &Arc<Scene>, threads: usize, steps: usize) -> String {
    let mut world = World::new(
        scene.clone(),
        WorldOptions {
            seed: 0,
            threads: Some(threads),
        },
    )
    .unwrap();
    for _ in 0..steps {
        world.step();
    }
    world.state_digest()
}

#[test]
fn same_scene_same_digest_across_runs_and_thread_counts() {
    let _cpu = crate::not_real_time();
    let scene = brick_scene();
    let one = digest_after(&scene, 1, 500);
    assert_eq!(one, digest_after(&scene, 1, 500), "two runs differ");
    assert_eq!(one, digest_after(&scene, 2, 500), "1 and 2 threads differ");
}

#[test]
fn golden_digest_of_the_brick_scene() {
    let _cpu = crate::not_real_time();
    let scene = brick_scene();
    assert_eq!(digest_after(&scene, 1, 500), GOLDEN_BRICK_WALL_500);
}

/// The bevy app steps exactly like calling the stages directly.
#[test]
fn bevy_app_steps_like_the_world() {
    let _cpu = crate::not_real_time();
    let scene = brick_scene();
    let direct = digest_after(&scene, 1, 200);
    let world = World::new(scene, WorldOptions::default()).unwrap();
    let mut app = headless_app(world);
    for _ in 0..200 {
        app.update();
    }
    let via_app = app.world().resource::<SimWorld>().0.state_digest();
    assert_eq!(direct, via_app);
}
