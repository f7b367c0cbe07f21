use std::path::PathBuf;
use std::sync::Arc;

use rivet_control::CommandMode;

use super::*;
use crate::robot::PackagePaths;

fn reach(overlays: &[&str]) -> Arc<Scene> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenes/reach.toml");
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = overlays
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let p = dir.path().join(format!("o{i}.toml"));
            std::fs::write(&p, text).unwrap();
            p
        })
        .collect();
    Arc::new(Scene::load_with_overlays(&path, &files, &PackagePaths::default()).unwrap())
}

const ARM: [&str; 3] = ["shoulder_pan", "shoulder_lift", "elbow"];

/// Records an episode from a simulated "robot": position commands every 2 physics steps (a
/// sine per joint), states (with efforts) every physics step, from the scene's initial state.
fn record(scene: Arc<Scene>, secs: f64) -> Episode {
    let world = World::new(scene.clone(), WorldOptions::default()).unwrap();
    record_from(&scene, world, secs)
}

/// As [`record`], from `world` as it is, with efforts.
fn record_from(scene: &Arc<Scene>, mut world: World, secs: f64) -> Episode {
    let robot = &scene.robots[0];
    let names: Vec<String> = (0..robot.actuators.len())
        .map(|d| robot.model.dof_joint(DofId(d as u32)).name.clone())
        .collect();
    let dofs: Vec<usize> = ARM
        .iter()
        .map(|j| names.iter().position(|n| n == j).unwrap())
        .collect();
    let start: Vec<f64> = dofs.iter().map(|&d| world.robots[0].position[d]).collect();
    let dt = scene.world.dt_secs;
    let mut episode = Episode {
        state_joints: names.clone(),
        command_joints: ARM.iter().map(|s| s.to_string()).collect(),
        command_mode: Some(CommandMode::Position),
        ..Default::default()
    };
    let steps = (secs / dt).round() as usize;
    for k in 0..=steps {
        let t = k as f64 * dt;
        let s = &world.robots[0];
        episode.states.push(StateSample {
            time_secs: t,
            position: s.position.clone(),
            velocity: s.velocity.clone(),
            effort: s.effort.clone(),
        });
        if k == steps {
            break;
        }
        if k % 2 == 0 {
            let values: Vec<f64> = start
                .iter()
                .enumerate()
                .map(|(j, x)| x + 0.3 * (std::f64::consts::TAU * t / 1.5 + j as f64).sin())
                .collect();
            for (&d, &v) in dofs.iter().zip(&values) {
                world.robots[0].command[d] = v;
            }
            episode.commands.push(CommandSample {
                time_secs: t,
                value: CommandValue::Hold(values),
            });
        }
        world.step();
    }
    episode
}

#[test]
fn replaying_a_simulated_episode_in_the_same_scene_has_no_gap() {
    let scene = reach(&[]);
    let episode = record(scene.clone(), 2.0);
    let replay = Replay::new(&scene, 0, &episode).unwrap();
    let sim = replay.run(scene.clone(), &episode).unwrap();
    assert_eq!(sim.position.len(), episode.states.len());
    let gap = gap(&scene, &replay, &episode, &sim, None).unwrap();
    assert!(gap.position_rmse < 1e-5, "{gap:?}");
    assert!(gap.score < 1e-4, "{gap:?}");
    assert_eq!(gap.tool_frame.as_deref(), Some("tool0"));
    assert!(gap.tool_position_rmse.unwrap() < 1e-5, "{gap:?}");
    assert!(gap.time_lag_secs.abs() < 0.005, "{gap:?}");
    // reach.toml's success needs the task's target, which this episode does not carry.
    assert!(gap.task.is_none());
    assert!(
        gap.task_note.as_deref().unwrap().contains("target"),
        "{gap:?}"
    );
}

#[test]
fn a_robot_with_other_parameters_shows_a_gap_and_its_latency_as_lag() {
    let plain = reach(&[]);
    // The "real" robot: more friction and damping on the shoulder, a payload, and commands
    // acting 5 steps (50 ms) late.
    let real = reach(&[
        "[robot.arm]\ncommand_latency_secs = 0.05\npayload = { link = \"gripper_base\", mass = 1.0 }\n\
         [robot.arm.joints.shoulder_pan]\nfriction = 4.0\ndamping = 4.0\n",
    ]);
    let episode = record(real.clone(), 3.0);
    let replay = Replay::new(&plain, 0, &episode).unwrap();
    let sim = replay.run(plain.clone(), &episode).unwrap();
    let g = gap(&plain, &replay, &episode, &sim, None).unwrap();
    assert!(g.position_rmse > 1e-3, "{g:?}");
    assert!(
        (g.time_lag_secs - 0.05).abs() <= 0.015,
        "lag {} s, expected about 0.05 s",
        g.time_lag_secs
    );
    // Replaying in the robot's own scene closes it.
    let own = replay.run(real.clone(), &episode).unwrap();
    let g_own = gap(&real, &replay, &episode, &own, None).unwrap();
    assert!(g_own.position_rmse < 1e-5, "{g_own:?}");
    assert!(position_rmse(&replay, &episode, &own, 1.0) < 1e-5);
}

#[test]
fn a_latency_between_whole_steps_acts_exactly() {
    // Commands sent 16 ms before the (10 ms) step they acted in: a robot whose latency is
    // 1.6 steps. Rounded to whole steps (as `World` does) they would act a step late or early.
    let plain = reach(&[]);
    let mut episode = record(plain.clone(), 1.0);
    for c in &mut episode.commands {
        c.time_secs -= 0.016;
    }
    let late = reach(&["[robot.arm]\ncommand_latency_secs = 0.016\n"]);
    let replay = Replay::new(&late, 0, &episode).unwrap();
    let sim = replay.run(late.clone(), &episode).unwrap();
    assert!(position_rmse(&replay, &episode, &sim, 1.0) < 1e-5);
    let sim = replay.run(plain.clone(), &episode).unwrap();
    assert!(position_rmse(&replay, &episode, &sim, 1.0) > 1e-4);
}

#[test]
fn a_loaded_servo_starts_from_the_target_its_effort_reveals() {
    // A robot with a payload, settled for 1 s under its initial targets (so it sits below
    // them), then recorded with efforts: the replay must start it holding those targets.
    let scene = reach(&["[robot.arm]\npayload = { link = \"gripper_base\", mass = 1.0 }\n"]);
    let mut world = World::new(scene.clone(), WorldOptions::default()).unwrap();
    let dt = scene.world.dt_secs;
    for _ in 0..(1.0 / dt).round() as usize {
        world.step();
    }
    let mut episode = record_from(&scene, world, 1.0);
    let replay = Replay::new(&scene, 0, &episode).unwrap();
    let sim = replay.run(scene.clone(), &episode).unwrap();
    assert!(position_rmse(&replay, &episode, &sim, 1.0) < 1e-5);
    // Without the efforts the start is a guess (the measured position), and the arm sags.
    for s in &mut episode.states {
        s.effort.clear();
    }
    let sim = replay.run(scene.clone(), &episode).unwrap();
    assert!(position_rmse(&replay, &episode, &sim, 1.0) > 1e-4);
}

#[test]
fn trajectories_are_followed_by_linear_interpolation_from_the_current_targets() {
    let mut player = CommandPlayer::new(&[0.0, 1.0]);
    assert_eq!(player.targets(0.0), &[0.0, 1.0]);
    player.apply(
        &CommandValue::Trajectory(vec![(1.0, vec![1.0, 1.0]), (3.0, vec![1.0, 3.0])]),
        10.0,
    );
    assert_eq!(player.targets(10.5), &[0.5, 1.0]);
    assert_eq!(player.targets(12.0), &[1.0, 2.0]);
    assert_eq!(player.targets(20.0), &[1.0, 3.0]);
    player.apply(&CommandValue::Hold(vec![-1.0, -2.0]), 21.0);
    assert_eq!(player.targets(21.0), &[-1.0, -2.0]);
    // Wrong lengths are ignored.
    player.apply(&CommandValue::Hold(vec![5.0]), 22.0);
    assert_eq!(player.targets(22.0), &[-1.0, -2.0]);
}

#[test]
fn bad_episodes_are_refused_with_the_reason() {
    let scene = reach(&[]);
    let mut episode = record(scene.clone(), 0.1);
    let mut unordered = episode.clone();
    unordered.states.swap(1, 2);
    let e = Replay::new(&scene, 0, &unordered).unwrap_err();
    assert!(e.contains("state 2") && e.contains("out of order"), "{e}");
    let mut short = episode.clone();
    short.states[3].position.pop();
    assert!(
        Replay::new(&scene, 0, &short)
            .unwrap_err()
            .contains("state 3")
    );
    episode.command_joints[0] = "nope".into();
    let e = Replay::new(&scene, 0, &episode).unwrap_err();
    assert!(e.contains("`nope`"), "{e}");
    let mut torque = record(scene.clone(), 0.1);
    torque.command_mode = Some(CommandMode::Torque);
    let e = Replay::new(&scene, 0, &torque).unwrap_err();
    assert!(e.contains("Torque") && e.contains("Position"), "{e}");
}
