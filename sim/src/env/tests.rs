use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::robot::PackagePaths;

fn scene(name: &str) -> Arc<Scene> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenes")
        .join(name);
    Arc::new(Scene::load(&path, &PackagePaths::default()).expect("scene loads"))
}

fn world(scene: &Arc<Scene>, seed: u64) -> (World, TaskRunner) {
    let world = World::new(
        scene.clone(),
        WorldOptions {
            seed,
            threads: None,
        },
    )
    .unwrap();
    let runner = TaskRunner::new(&world).unwrap();
    (world, runner)
}

fn inline_scene(text: &str) -> Result<Arc<Scene>, SimError> {
    // A scene written beside the shipped ones, so its relative robot paths resolve.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenes/inline_test.toml");
    let file = crate::scene::parse(&path, text)?;
    Scene::from_file(&path, text, file, &PackagePaths::default()).map(Arc::new)
}

const CARTPOLE_BASE: &str = r#"
[world]
timestep_secs = 0.02
ground = false
[[robot]]
name = "cp"
urdf = "robots/rivet_cartpole.urdf"
position = [0.0, 0.0, 1.0]
[robot.actuators]
mode = "torque"
"#;

fn cartpole_task(extra: &str) -> String {
    format!(
        r#"{CARTPOLE_BASE}
[task]
robot = "cp"
control_rate_hz = 25.0
episode_secs = 4.0
action = {{ kind = "joint_torque", joints = ["slider"], max_effort = 20.0 }}
success = {{ kind = "survive" }}
[[task.observation]]
kind = "joint_position"
joints = ["slider", "hinge"]
[[task.reward]]
term = "alive"
weight = 1.0
[[task.termination]]
kind = "joint_out_of_range"
joint = "hinge"
min = -0.2
max = 0.2
{extra}
"#
    )
}

fn run_steps(world: &mut World, runner: &mut TaskRunner, actions: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let mut obs = vec![0.0; runner.observation_dim()];
    actions
        .iter()
        .map(|a| {
            runner.step(world, a, &mut obs);
            obs.clone()
        })
        .collect()
}

#[test]
fn unbalanced_cartpole_falls_and_is_rewarded_per_step() {
    let s = scene("cartpole.toml");
    let (mut w, mut r) = world(&s, 3);
    let mut obs = vec![0.0; r.observation_dim()];
    r.reset(&mut w, &mut obs);
    // A small push tips the pole; with no balancing it falls past 0.2 rad.
    let mut ended = None;
    for step in 1..=1000 {
        let o = r.step(&mut w, &[5.0], &mut obs);
        assert_eq!(o.reward, 1.0);
        if o.done() {
            ended = Some((step, o));
            break;
        }
    }
    let (steps, o) = ended.expect("the pole falls");
    assert!(o.terminated && !o.truncated && !o.success, "{o:?}");
    assert!(steps < 100, "fell after {steps} steps");
    assert!(obs[1].abs() > 0.2, "pole angle {} at the end", obs[1]);
    assert_eq!(r.episode_return(), steps as f64);
}

#[test]
fn surviving_to_the_time_limit_is_success() {
    // Zero gravity: nothing falls, the episode runs to its limit and counts as survived.
    let text = cartpole_task("").replace("[world]", "[world]\ngravity = [0.0, 0.0, 0.0]");
    let s = inline_scene(&text).unwrap();
    let (mut w, mut r) = world(&s, 0);
    let mut obs = vec![0.0; r.observation_dim()];
    r.reset(&mut w, &mut obs);
    let mut last = StepOutcome::default();
    for _ in 0..100 {
        last = r.step(&mut w, &[0.0], &mut obs);
    }
    assert!(
        last.truncated && last.success && !last.terminated,
        "{last:?}"
    );
    assert_eq!(r.episode_steps(), 100);
}

#[test]
fn reach_observations_match_kinematics() {
    let s = scene("reach.toml");
    let task = s.task.clone().unwrap();
    assert_eq!(task.observation_space.dim(), 27);
    assert_eq!(task.action_space.dim(), 6);
    assert_eq!(task.action_space.names[2], "arm/elbow/position_delta");
    assert_eq!(task.substeps, 5);
    let (mut w, mut r) = world(&s, 1);
    let mut obs = vec![0.0; r.observation_dim()];
    r.reset(&mut w, &mut obs);
    let names = &task.observation_space.names;
    let at = |name: &str| {
        names
            .iter()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    let tool = at("arm/tool0/position_in_base_link/x");
    let target = at("target/position_in_base_link/x");
    let error = at("target/minus_tool0/x");
    for k in 0..3 {
        assert!((obs[error + k] - (obs[target + k] - obs[tool + k])).abs() < 1e-6);
        let t = obs[target + k] as f64;
        let (lo, hi) = ([0.25, -0.35, 0.15][k], [0.6, 0.35, 0.55][k]);
        assert!((lo..=hi).contains(&t), "target {t} outside [{lo}, {hi}]");
    }
    // Joint positions: the scene's initial pose within the randomised offset (0.1 rad).
    let initial = &s.robots[0].initial_positions;
    for k in 0..6 {
        assert!((obs[k] as f64 - initial[k]).abs() <= 0.1 + 1e-6);
    }
    // The tool position agrees with rapier's body poses (the tree's FK is checked against
    // rapier elsewhere; here the runner's frame bookkeeping): tool0 sits 0.1 m along the
    // gripper base's z axis.
    let gripper = s.robots[0]
        .model
        .links
        .iter()
        .position(|l| l.name == "gripper_base")
        .unwrap();
    let body = w.robots[0].link_bodies[gripper].unwrap();
    let pose = crate::math::isometry(&w.body_pose(body));
    let tool_world = pose * nalgebra::Point3::new(0.0, 0.0, 0.1);
    for k in 0..3 {
        assert!(
            (obs[tool + k] as f64 - tool_world[k]).abs() < 1e-3,
            "axis {k}"
        );
    }
}

#[test]
fn a_proportional_controller_reaches_and_random_actions_do_not() {
    // The task is solvable with its action space (a resolved-rate controller through the
    // Jacobian succeeds) and not trivially (random actions rarely succeed).
    let s = scene("reach.toml");
    let task = s.task.clone().unwrap();
    let tool = task.tree.frame_by_name("tool0").unwrap();
    let mut data = task.tree.data();
    let mut jac = nalgebra::Matrix6xX::zeros(task.tree.dof_count());
    let mut successes = [0, 0];
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for (mode, count) in successes.iter_mut().enumerate() {
        for episode in 0..20 {
            let (mut w, mut r) = world(&s, 0);
            r.seed(11, episode);
            let mut obs = vec![0.0; r.observation_dim()];
            r.reset(&mut w, &mut obs);
            loop {
                let mut action = [0.0f32; 6];
                if mode == 0 {
                    let q = &w.robots[0].position;
                    task.tree.forward_kinematics(q, &mut data);
                    task.tree.frame_jacobian(tool, &data, &mut jac);
                    let e = Vector3::new(obs[18] as f64, obs[19] as f64, obs[20] as f64);
                    let jp = jac.fixed_rows::<3>(0).columns(0, 6).into_owned();
                    let jjt = &jp * jp.transpose() + nalgebra::Matrix3::identity() * 1e-3;
                    let dq = jp.transpose() * jjt.try_inverse().unwrap() * (e * 0.5);
                    for k in 0..6 {
                        action[k] = dq[k] as f32;
                    }
                } else {
                    for a in &mut action {
                        *a = rng.random_range(-0.05..0.05);
                    }
                }
                let o = r.step(&mut w, &action, &mut obs);
                if o.done() {
                    *count += usize::from(o.success);
                    break;
                }
            }
        }
    }
    assert!(
        successes[0] >= 18,
        "controller reached {} of 20",
        successes[0]
    );
    assert!(
        successes[1] <= 2,
        "random actions reached {} of 20",
        successes[1]
    );
}

#[test]
fn reset_in_place_matches_a_fresh_world() {
    let s = scene("brick_pick.toml");
    let (mut used, mut r_used) = world(&s, 0);
    let mut obs = vec![0.0; r_used.observation_dim()];
    r_used.reset(&mut used, &mut obs);
    // Disturb everything: move the tool around and close the gripper.
    let actions: Vec<Vec<f32>> = (0..40)
        .map(|i| vec![0.015, -0.01, if i < 20 { -0.015 } else { 0.015 }, 1.0])
        .collect();
    run_steps(&mut used, &mut r_used, &actions);
    r_used.seed(5, 2);
    let mut obs_used = vec![0.0; r_used.observation_dim()];
    r_used.reset(&mut used, &mut obs_used);

    let (mut fresh, mut r_fresh) = world(&s, 0);
    r_fresh.seed(5, 2);
    let mut obs_fresh = vec![0.0; r_fresh.observation_dim()];
    r_fresh.reset(&mut fresh, &mut obs_fresh);
    for (a, b) in obs_used.iter().zip(&obs_fresh) {
        assert!((a - b).abs() < 1e-5, "{obs_used:?} vs {obs_fresh:?}");
    }
    assert_eq!(used.time_secs(), 0.0);
    let replay: Vec<Vec<f32>> = (0..20).map(|_| vec![0.01, 0.0, -0.01, 0.0]).collect();
    let a = run_steps(&mut used, &mut r_used, &replay);
    let b = run_steps(&mut fresh, &mut r_fresh, &replay);
    for (x, y) in a.last().unwrap().iter().zip(b.last().unwrap()) {
        assert!(
            (x - y).abs() < 1e-3,
            "after 20 steps: {:?} vs {:?}",
            a.last(),
            b.last()
        );
    }
}

#[test]
fn vectorised_rollouts_do_not_depend_on_the_thread_count() {
    let s = scene("reach.toml");
    let run = |threads: usize| {
        let mut env = VecTaskEnv::new(s.clone(), 4, threads).unwrap();
        let (n, dim) = (4, env.task().observation_space.dim());
        let mut obs = vec![0.0; n * dim];
        let (mut rew, mut term, mut trunc, mut succ) =
            (vec![0.0; n], vec![false; n], vec![false; n], vec![false; n]);
        let mut fin = vec![0.0; n * dim];
        env.reset(42, &mut obs);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut trace = Vec::new();
        for _ in 0..80 {
            let actions: Vec<f32> = (0..n * 6).map(|_| rng.random_range(-0.05..0.05)).collect();
            let mut actions = actions;
            env.step(
                ActionSource::Given,
                &mut actions,
                StepBuffers {
                    observations: &mut obs,
                    rewards: &mut rew,
                    terminated: &mut term,
                    truncated: &mut trunc,
                    success: &mut succ,
                    final_observations: &mut fin,
                },
            );
            trace.extend(obs.iter().map(|v| v.to_bits()));
            trace.extend(rew.iter().map(|v| v.to_bits()));
            trace.extend(trunc.iter().map(|&t| u32::from(t)));
        }
        trace
    };
    let one = run(1);
    assert_eq!(one, run(2));
    // Worlds differ (each has its own random stream).
    assert_ne!(one[..27], one[27..54]);
}

#[test]
fn control_latency_delays_the_actuators() {
    let fixed = |secs: f64| {
        let text = cartpole_task(&format!(
            "[task.randomize]\ncontrol_latency_secs = [{secs}, {secs}]"
        ));
        let s = inline_scene(&text).unwrap();
        let (mut w, mut r) = world(&s, 0);
        let mut obs = vec![0.0; r.observation_dim()];
        r.reset(&mut w, &mut obs);
        run_steps(&mut w, &mut r, &[vec![20.0], vec![20.0]])
    };
    let now = fixed(0.0);
    let late = fixed(0.04); // one control period = two physics steps
    assert!(now[0][0] > 1e-3, "the cart moved {}", now[0][0]);
    assert_eq!(late[0][0], 0.0, "the force arrives one period late");
    assert!(late[1][0] > 1e-3);
}

#[test]
fn tool_increments_move_the_tool_and_hold_its_orientation() {
    let s = scene("brick_pick.toml");
    let task = s.task.clone().unwrap();
    let (mut w, mut r) = world(&s, 0);
    let mut obs = vec![0.0; r.observation_dim()];
    r.reset(&mut w, &mut obs);
    let start = [obs[0], obs[1], obs[2]];
    let tool = task.tree.frame_by_name("tool0").unwrap();
    let mut data = task.tree.data();
    task.tree
        .forward_kinematics(&w.robots[0].position, &mut data);
    let r0 = task.tree.frame_pose(tool, &data).rotation;
    let steps: Vec<Vec<f32>> = (0..10).map(|_| vec![0.01, 0.0, 0.005, 0.0]).collect();
    run_steps(&mut w, &mut r, &steps);
    let settle: Vec<Vec<f32>> = (0..10).map(|_| vec![0.0; 4]).collect();
    let end = run_steps(&mut w, &mut r, &settle).pop().unwrap();
    assert!(
        (end[0] - start[0] - 0.1).abs() < 0.005,
        "x moved {}",
        end[0] - start[0]
    );
    assert!((end[1] - start[1]).abs() < 0.005);
    assert!(
        (end[2] - start[2] - 0.05).abs() < 0.005,
        "z moved {}",
        end[2] - start[2]
    );
    task.tree
        .forward_kinematics(&w.robots[0].position, &mut data);
    let angle = task.tree.frame_pose(tool, &data).rotation.angle_to(&r0);
    assert!(angle < 0.02, "orientation drifted {angle} rad");
}

#[test]
fn the_scripted_expert_picks_and_places_the_brick() {
    let s = scene("brick_pick.toml");
    let (mut w, mut r) = world(&s, 0);
    let mut obs = vec![0.0; r.observation_dim()];
    let mut act = vec![0.0; r.action_dim()];
    let mut successes = 0;
    for episode in 0..10 {
        r.seed(0, episode);
        r.reset(&mut w, &mut obs);
        loop {
            assert!(r.expert_action(&w, &mut act));
            let o = r.step(&mut w, &act, &mut obs);
            if o.done() {
                successes += usize::from(o.success);
                break;
            }
        }
    }
    assert!(successes >= 9, "expert succeeded {successes} of 10");
}

#[test]
fn randomisation_is_seeded_and_changes_parameters() {
    let text = cartpole_task(
        "[task.randomize]\nfriction_scale = [0.5, 1.5]\nlink_mass_scale = [0.5, 2.0]\nactuator_gain_scale = [0.5, 2.0]\njoint_damping_scale = [0.0, 3.0]\ninitial_joint_offset = 0.05",
    );
    let s = inline_scene(&text).unwrap();
    let sample = |seed: u64, stream: u64| {
        let (mut w, mut r) = world(&s, 0);
        r.seed(seed, stream);
        let mut obs = vec![0.0; r.observation_dim()];
        r.reset(&mut w, &mut obs);
        let friction: Vec<u32> = w
            .physics()
            .colliders
            .iter()
            .map(|(_, c)| c.friction().to_bits())
            .collect();
        let masses: Vec<u32> = w.robots[0]
            .link_bodies
            .iter()
            .flatten()
            .map(|&b| w.physics().bodies[b].mass().to_bits())
            .collect();
        (obs, friction, w.robots[0].kp.clone(), masses)
    };
    assert_eq!(sample(1, 0), sample(1, 0));
    let (a, b) = (sample(1, 0), sample(1, 1));
    assert_ne!(a.0, b.0);
    assert_ne!(a.1, b.1);
    assert_ne!(a.2, b.2);
    assert_ne!(a.3, b.3);
    // The cart weighs 1 kg in the URDF; its mass is scaled within [0.5, 2] kg.
    let (_, _, _, masses) = sample(1, 3);
    assert!(masses.iter().any(|&m| {
        let m = f32::from_bits(m);
        (0.5..=2.0).contains(&m) && m != 1.0
    }));
}

#[test]
fn bad_tasks_name_the_element() {
    let cases: Vec<(String, &str)> = vec![
        (
            cartpole_task("").replace(
                r#"joints = ["slider"], max_effort"#,
                r#"joints = ["slidr"], max_effort"#,
            ),
            "task.action.joints: robot has no joint 'slidr'",
        ),
        (
            cartpole_task("").replace("control_rate_hz = 25.0", "control_rate_hz = 30.0"),
            "task.control_rate_hz",
        ),
        (
            cartpole_task("[[task.observation]]\nkind = \"target_position\""),
            "needs a [task.target] section",
        ),
        (
            cartpole_task("").replace("robot = \"cp\"", "robot = \"arm\""),
            "task.robot: scene has no robot 'arm'",
        ),
        (
            cartpole_task("").replace(
                "kind = \"joint_torque\", joints = [\"slider\"], max_effort = 20.0",
                "kind = \"joint_position_delta\", joints = [\"slider\"], max_delta = 0.1",
            ),
            "needs Position actuators",
        ),
        (
            cartpole_task("[task.randomize]\nfriction_scale = [2.0, 1.0]"),
            "task.randomize.friction_scale",
        ),
        (
            cartpole_task("").replace("weight = 1.0", "weight = 1.0\nframe = \"pole\""),
            "task.reward[0].frame",
        ),
    ];
    for (text, expected) in cases {
        let e = inline_scene(&text)
            .map(|_| ())
            .expect_err(expected)
            .to_string();
        assert!(e.contains(expected), "expected '{expected}' in: {e}");
    }
}

#[test]
fn observation_latency_shows_the_policy_the_joints_as_they_were() {
    // arm_reach: 10 ms physics, 20 Hz control (5 substeps). A delay of 50 ms is one control
    // period, so the delayed run must observe exactly what the undelayed one observed a step
    // earlier, while the physics, rewards and success stay those of the true state.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenes/arm_reach.toml");
    let dir = tempfile::tempdir().unwrap();
    let overlay = dir.path().join("late.toml");
    std::fs::write(&overlay, "[robot.arm]\nobservation_latency_secs = 0.05\n").unwrap();
    let plain = Arc::new(Scene::load(&path, &PackagePaths::default()).unwrap());
    let late = Arc::new(
        Scene::load_with_overlays(
            &path,
            std::slice::from_ref(&overlay),
            &PackagePaths::default(),
        )
        .unwrap(),
    );
    assert_eq!(late.robots[0].observation_latency_steps, 5);
    let actions: Vec<Vec<f32>> = (0..12)
        .map(|k| {
            let s = if k < 6 { 0.05 } else { -0.03 };
            vec![s, -s, s, 0.0, s, 0.0]
        })
        .collect();
    let rollout = |scene: &Arc<Scene>| {
        let (mut w, mut r) = world(scene, 3);
        let mut first = vec![0.0; r.observation_dim()];
        r.reset(&mut w, &mut first);
        let mut obs = first.clone();
        let mut out = vec![first];
        let mut rewards = Vec::new();
        for a in &actions {
            let outcome = r.step(&mut w, a, &mut obs);
            out.push(obs.clone());
            rewards.push(outcome.reward);
        }
        (out, rewards, w.robots[0].position.clone())
    };
    let (now, now_rewards, now_q) = rollout(&plain);
    let (then, then_rewards, then_q) = rollout(&late);
    assert_eq!(
        now_q, then_q,
        "the delay changes what is seen, not the physics"
    );
    assert_eq!(now_rewards, then_rewards);
    let state_part = now[0].len() - actions[0].len(); // all but previous_action
    assert_eq!(
        then[1][..state_part],
        now[0][..state_part],
        "first step sees the reset state"
    );
    for t in 2..now.len() {
        assert_eq!(then[t][..state_part], now[t - 1][..state_part], "step {t}");
        assert_ne!(
            then[t][..6],
            now[t][..6],
            "step {t}: the arm moved within a period"
        );
        assert_eq!(
            then[t][state_part..],
            now[t][state_part..],
            "the last action is not late"
        );
    }
}
