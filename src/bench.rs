//! `rivet bench`: performance measurements (never assertions).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use rivet_sim::{Scene, World, WorldOptions};
use serde_json::json;

use crate::PackageArgs;

/// Arguments of `rivet bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

/// What to measure.
#[derive(clap::Subcommand, Debug)]
pub enum BenchWhat {
    /// Physics steps per second, one thread: the project's arm scene and each MJCF model in
    /// --mjcf-dir at the model's own timestep.
    Physics(PhysicsArgs),
    /// Kinematics, dynamics and IK per call (median and p99 in microseconds) on robot arms:
    /// forward kinematics, all frame poses, the tool frame's Jacobian, RNEA, CRBA and IK.
    Control(ControlArgs),
    /// Learning throughput: env steps/s of a scene's task for 1, 8, 32 and 64 worlds, policy
    /// inference latency (batch 1 and 64) and PPO samples/s.
    Learn(crate::bench_learn::LearnArgs),
    /// Hardware bridge latency over loopback zenoh: raw ping/pong vs the deploy loop's
    /// state-in to command-out round trip (p50/p99/p99.9), and the clock loop's jitter.
    Bridge(crate::bench_bridge::BridgeArgs),
    /// Camera frames/s (RGB + depth + segmentation) at 128x128 and 640x480 for the brick scene,
    /// one and 16 batched cameras, on the adapter present (named), and lidar rays/s;
    /// `bench/sensors_vs_pybullet.py` runs PyBullet's getCameraImage alongside.
    Sensors(crate::bench_sensors::SensorsArgs),
}

/// Arguments of `rivet bench physics`.
#[derive(clap::Args, Debug)]
pub struct PhysicsArgs {
    /// Steps per repetition.
    #[arg(long, default_value_t = 20_000, value_name = "N")]
    pub steps: u64,
    /// Repetitions per model; the median is reported.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub repeats: usize,
    /// Folder of MJCF models to measure.
    #[arg(long, default_value = "../shared/mjcf", value_name = "DIR")]
    pub mjcf_dir: PathBuf,
    /// The project's scenes measured besides the MJCF models.
    #[arg(
        long = "scene",
        default_value = "scenes/brick_wall.toml",
        value_name = "SCENE"
    )]
    pub scenes: Vec<PathBuf>,
    /// Override the solver iterations of every model (rapier `num_solver_iterations`).
    #[arg(long, value_name = "N")]
    pub solver_iterations: Option<u32>,
    /// Also write each MJCF model's trajectory (2 s from its initial state, zero control) to
    /// `<DIR>/<model>.rivet.json` (joint positions and body positions per step), for accuracy
    /// checks against MuJoCo (bench/physics_vs_mujoco.py --dump-trajectories).
    #[arg(long, value_name = "DIR")]
    pub trajectories: Option<PathBuf>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub packages: PackageArgs,
}

/// Runs a benchmark.
pub fn bench(args: BenchArgs) -> anyhow::Result<()> {
    match args.what {
        BenchWhat::Physics(a) => physics(a),
        BenchWhat::Control(a) => control(a),
        BenchWhat::Learn(a) => crate::bench_learn::learn(a),
        BenchWhat::Bridge(a) => crate::bench_bridge::bridge(a),
        BenchWhat::Sensors(a) => crate::bench_sensors::sensors(a),
    }
}

fn physics(args: PhysicsArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.steps > 0 && args.repeats > 0,
        "--steps and --repeats must be > 0"
    );
    let packages = args.packages.resolve();
    let mut jobs: Vec<(String, PathBuf, Scene)> = Vec::new();
    for path in &args.scenes {
        let scene = Scene::load(path, &packages)?;
        jobs.push((format!("{}_scene", scene.name), path.clone(), scene));
    }
    let mut mjcf: Vec<PathBuf> = std::fs::read_dir(&args.mjcf_dir)
        .map_err(|e| anyhow::anyhow!("--mjcf-dir {}: {e}", args.mjcf_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    mjcf.sort();
    for path in mjcf {
        let scene = Scene::single_robot(&path, false, &packages)?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        jobs.push((name, path, scene));
    }
    let progress = if args.json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new((jobs.len() * args.repeats) as u64)
    };
    let mut results = Vec::new();
    for (name, file, mut scene) in jobs {
        if let Some(n) = args.solver_iterations {
            scene.world.solver_iterations = n.max(1);
        }
        let scene = Arc::new(scene);
        if let Some(dir) = &args.trajectories
            && file.extension().is_some_and(|e| e == "xml")
        {
            write_trajectory(dir, &name, &scene)?;
        }
        let mut rates = Vec::with_capacity(args.repeats);
        let mut completed = true;
        let mut wall = Vec::new();
        for _ in 0..args.repeats {
            let mut world = World::new(
                scene.clone(),
                WorldOptions {
                    seed: 0,
                    threads: Some(1),
                },
            )?;
            let started = Instant::now();
            for _ in 0..args.steps {
                world.step();
            }
            let secs = started.elapsed().as_secs_f64();
            completed &= world.termination().is_none();
            wall.push(secs);
            rates.push(args.steps as f64 / secs);
            progress.inc(1);
        }
        rates.sort_by(f64::total_cmp);
        wall.sort_by(f64::total_cmp);
        let median = rates[rates.len() / 2];
        results.push(json!({
            "model": name,
            "file": std::path::absolute(&file).unwrap_or(file),
            "timestep_secs": scene.world.dt_secs,
            "solver_iterations": scene.world.solver_iterations,
            "steps": args.steps,
            "repeats": args.repeats,
            "wall_secs": wall[wall.len() / 2],
            "steps_per_sec": median,
            "stayed_finite": completed,
        }));
    }
    progress.finish_and_clear();
    if args.json {
        crate::print_json(&json!({ "bench": "physics", "threads": 1, "results": results }))?;
    } else {
        println!(
            "{:<22} {:>10} {:>6} {:>14}",
            "model", "dt (s)", "iters", "steps/s"
        );
        for r in &results {
            println!(
                "{:<22} {:>10} {:>6} {:>14.0}{}",
                r["model"].as_str().unwrap_or_default(),
                r["timestep_secs"],
                r["solver_iterations"],
                r["steps_per_sec"].as_f64().unwrap_or_default(),
                if r["stayed_finite"].as_bool() == Some(true) {
                    ""
                } else {
                    "  (state went non-finite)"
                }
            );
        }
    }
    Ok(())
}

/// Simulates 2 s of a single-robot scene and writes joint and body positions per step.
fn write_trajectory(dir: &std::path::Path, name: &str, scene: &Arc<Scene>) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut world = World::new(scene.clone(), WorldOptions::default())?;
    let robot = &scene.robots[0];
    let joint_names: Vec<String> = (0..robot.model.dofs.len())
        .map(|d| {
            robot
                .model
                .dof_joint(rivet_sim::robot::DofId(d as u32))
                .name
                .clone()
        })
        .collect();
    let bodies: Vec<(String, rivet_sim::world::BodyHandle)> = robot
        .model
        .links
        .iter()
        .zip(&world.robots[0].link_bodies)
        .filter_map(|(l, b)| b.map(|b| (l.name.clone(), b)))
        .collect();
    let steps = (2.0 / scene.world.dt_secs).round() as usize;
    let mut qpos = Vec::with_capacity(steps);
    let mut body_pos = Vec::with_capacity(steps);
    for _ in 0..steps {
        world.step();
        qpos.push(world.robots[0].position.clone());
        body_pos.push(
            bodies
                .iter()
                .map(|(_, b)| world.body_pose(*b).translation)
                .collect::<Vec<_>>(),
        );
    }
    let value = json!({
        "model": name,
        "engine": "rivet",
        "timestep_secs": scene.world.dt_secs,
        "solver_iterations": scene.world.solver_iterations,
        "steps": steps,
        "joint_names": joint_names,
        "qpos": qpos,
        "body_names": bodies.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        "body_pos": body_pos,
        "stayed_finite": world.termination().is_none(),
    });
    let path = dir.join(format!("{name}.rivet.json"));
    std::fs::write(&path, serde_json::to_vec(&value)?)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// rivet bench control
// ---------------------------------------------------------------------------------------------

/// The robots measured when no --urdf is given: name, path under `../shared`, tool frame.
const DEFAULT_ROBOTS: [(&str, &str, &str); 2] = [
    (
        "ur5",
        "example-robot-data/robots/ur_description/urdf/ur5_robot.urdf",
        "tool0",
    ),
    (
        "panda",
        "example-robot-data/robots/panda_description/urdf/panda.urdf",
        "panda_hand_tcp",
    ),
];

/// Calls timed together; the per-call figure of a block is its time divided by this.
const BLOCK: usize = 100;

/// Reference outputs written per robot by --dump-samples (for cross-checks against a peer).
const CHECKED_SAMPLES: usize = 3;

/// IK success target from the issue (median, microseconds).
const IK_TARGET_US: f64 = 50.0;

/// Arguments of `rivet bench control`.
#[derive(clap::Args, Debug)]
pub struct ControlArgs {
    /// Calls per operation for FK, frame poses, Jacobian, RNEA and CRBA, timed in blocks of 100
    /// consecutive calls (each block gives one per-call figure).
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    pub iterations: usize,
    /// IK solves per robot, each timed on its own.
    #[arg(long, default_value_t = 1_000, value_name = "N")]
    pub ik_targets: usize,
    /// Distinct random (q, qd, qdd) samples per robot, cycled through by the timed calls.
    #[arg(long, default_value_t = 1_000, value_name = "N")]
    pub samples: usize,
    /// Seed of the random configurations (ChaCha8).
    #[arg(long, default_value_t = 1, value_name = "SEED")]
    pub seed: u64,
    /// Robots to measure, as `PATH` or `PATH@FRAME` (FRAME: the tool frame for the Jacobian and
    /// IK; default `tool0`, a `*_tcp` frame, `ee_link`, or the deepest link). Repeatable.
    /// Default: UR5 (tool0) and Panda (panda_hand_tcp) from ../shared/example-robot-data.
    #[arg(long = "urdf", value_name = "PATH[@FRAME]")]
    pub urdfs: Vec<String>,
    /// Also write the random samples (and reference outputs for the first few) to this JSON file,
    /// so a peer (bench/control_vs_pinocchio.py) can time the same configurations.
    #[arg(long, value_name = "FILE")]
    pub dump_samples: Option<PathBuf>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// One robot to measure.
struct ControlRobot {
    name: String,
    path: PathBuf,
    tree: rivet_control::RobotTree,
    frame: rivet_control::FrameId,
}

/// Per-call timing of one operation (microseconds).
struct CallStats {
    median_us: f64,
    p99_us: f64,
    calls: usize,
}

impl CallStats {
    fn from_samples(mut per_call_us: Vec<f64>, calls: usize) -> Self {
        per_call_us.sort_by(f64::total_cmp);
        Self {
            median_us: median_sorted(&per_call_us),
            p99_us: percentile_sorted(&per_call_us, 0.99),
            calls,
        }
    }

    fn json(&self) -> serde_json::Value {
        json!({ "median_us": self.median_us, "p99_us": self.p99_us, "calls": self.calls })
    }
}

fn median_sorted(v: &[f64]) -> f64 {
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}

/// Nearest-rank percentile of a sorted slice.
fn percentile_sorted(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = (p * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Times `calls` calls of `op(sample_index)` in blocks of [`BLOCK`], after a warm-up of one pass
/// over the samples (at least one block). The index cycles through `0..samples`.
fn time_blocks(calls: usize, samples: usize, mut op: impl FnMut(usize)) -> CallStats {
    let block = BLOCK.min(calls).max(1);
    let blocks = calls.div_ceil(block);
    let mut i = 0;
    for _ in 0..samples.max(block) {
        op(i);
        i = (i + 1) % samples;
    }
    let mut per_call = Vec::with_capacity(blocks);
    for _ in 0..blocks {
        let started = Instant::now();
        for _ in 0..block {
            op(i);
            i += 1;
            if i == samples {
                i = 0;
            }
        }
        per_call.push(started.elapsed().as_secs_f64() * 1e6 / block as f64);
    }
    CallStats::from_samples(per_call, blocks * block)
}

/// The folder `../shared`, relative to the current directory or to the repository root.
fn shared_dir() -> anyhow::Result<PathBuf> {
    let candidates = [
        PathBuf::from("../shared"),
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"),
    ];
    for dir in &candidates {
        if dir.join("example-robot-data").is_dir() {
            return Ok(dir.clone());
        }
    }
    anyhow::bail!(
        "cannot find shared/example-robot-data for the default robots (looked in {} and {}); \
         run from the repository root next to ../shared, or pass --urdf PATH[@FRAME]",
        std::path::absolute(&candidates[0])
            .unwrap_or_else(|_| candidates[0].clone())
            .display(),
        candidates[1].display()
    )
}

/// The tool frame of a robot file without an explicit `@FRAME`.
fn default_tool_frame(tree: &rivet_control::RobotTree) -> Option<rivet_control::FrameId> {
    if let Some(f) = tree.frame_by_name("tool0") {
        return Some(f);
    }
    if let Some(i) = tree
        .frames
        .iter()
        .position(|f| f.name == "tcp" || f.name.ends_with("_tcp"))
    {
        return Some(rivet_control::FrameId(i as u32));
    }
    if let Some(f) = tree.frame_by_name("ee_link") {
        return Some(f);
    }
    // The link moved by the most coordinates (the first such in file order).
    let n = tree.dof_count();
    (0..tree.links.len())
        .map(|l| tree.link_frame(rivet_control::LinkId(l as u32)))
        .max_by_key(|&f| {
            (
                (0..n).filter(|&d| tree.dof_moves_frame(d, f)).count(),
                std::cmp::Reverse(f.0),
            )
        })
}

fn control_robots(args: &ControlArgs) -> anyhow::Result<Vec<ControlRobot>> {
    let mut specs: Vec<(String, PathBuf, Option<String>)> = Vec::new();
    if args.urdfs.is_empty() {
        let shared = shared_dir()?;
        for (name, rel, frame) in DEFAULT_ROBOTS {
            specs.push((name.to_string(), shared.join(rel), Some(frame.to_string())));
        }
    } else {
        for spec in &args.urdfs {
            let (path, frame) = match spec.rsplit_once('@') {
                Some((p, f)) if !f.is_empty() && !f.contains('/') => (p, Some(f.to_string())),
                _ => (spec.as_str(), None),
            };
            let path = PathBuf::from(path);
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| spec.clone());
            specs.push((name, path, frame));
        }
    }
    let mut robots = Vec::new();
    for (name, path, frame) in specs {
        // The error names the file.
        let tree = rivet_control::RobotTree::from_urdf_file(&path)?;
        anyhow::ensure!(
            tree.dof_count() > 0,
            "{}: the robot has no moving joints",
            path.display()
        );
        let frame = match &frame {
            Some(f) => tree.frame_by_name(f).ok_or_else(|| {
                anyhow::anyhow!("{}: no link or frame named '{f}'", path.display())
            })?,
            None => default_tool_frame(&tree)
                .ok_or_else(|| anyhow::anyhow!("{}: no tool frame", path.display()))?,
        };
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        robots.push(ControlRobot {
            name,
            path,
            tree,
            frame,
        });
    }
    Ok(robots)
}

/// Uniform random configurations within the position limits (continuous joints: [-pi, pi]).
fn random_q(limits: &[[f64; 2]], rng: &mut rand_chacha::ChaCha8Rng) -> Vec<f64> {
    use rand::Rng;
    limits
        .iter()
        .map(|&[lo, hi]| {
            let (lo, hi) = if lo.is_finite() && hi.is_finite() {
                (lo, hi)
            } else {
                (-std::f64::consts::PI, std::f64::consts::PI)
            };
            if hi > lo {
                rng.random_range(lo..hi)
            } else {
                lo
            }
        })
        .collect()
}

fn random_unit(n: usize, rng: &mut rand_chacha::ChaCha8Rng) -> Vec<f64> {
    use rand::Rng;
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

fn pose_json(p: &nalgebra::Isometry3<f64>) -> serde_json::Value {
    let r = p.rotation.to_rotation_matrix().into_inner();
    json!({
        "translation": [p.translation.x, p.translation.y, p.translation.z],
        "rotation": (0..3).map(|i| (0..3).map(|j| r[(i, j)]).collect::<Vec<_>>()).collect::<Vec<_>>(),
    })
}

fn matrix_rows(m: &nalgebra::DMatrix<f64>) -> Vec<Vec<f64>> {
    (0..m.nrows())
        .map(|i| (0..m.ncols()).map(|j| m[(i, j)]).collect())
        .collect()
}

/// Measures one robot; returns its JSON result and its samples (for --dump-samples).
fn control_robot(
    robot: &ControlRobot,
    args: &ControlArgs,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<(serde_json::Value, serde_json::Value)> {
    use rand::SeedableRng;
    use std::hint::black_box;

    let tree = &robot.tree;
    let n = tree.dof_count();
    let limits = tree.position_limits();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    let samples = args.samples.max(1);
    let qs: Vec<Vec<f64>> = (0..samples).map(|_| random_q(&limits, &mut rng)).collect();
    let qds: Vec<Vec<f64>> = (0..samples).map(|_| random_unit(n, &mut rng)).collect();
    let qdds: Vec<Vec<f64>> = (0..samples).map(|_| random_unit(n, &mut rng)).collect();
    let ik_qs: Vec<Vec<f64>> = (0..args.ik_targets)
        .map(|_| random_q(&limits, &mut rng))
        .collect();

    let mut data = tree.data();
    let mut frames = vec![nalgebra::Isometry3::identity(); tree.frames.len()];
    let mut jac = nalgebra::Matrix6xX::zeros(n);
    let calls = args.iterations;
    let mut ops = serde_json::Map::new();

    progress.set_message(format!("{} fk", robot.name));
    let fk = time_blocks(calls, samples, |i| {
        tree.forward_kinematics(black_box(&qs[i]), &mut data);
        black_box(&data);
    });
    ops.insert("fk".into(), fk.json());
    progress.inc(1);

    progress.set_message(format!("{} fk_all_frames", robot.name));
    let fk_all = time_blocks(calls, samples, |i| {
        tree.forward_kinematics(black_box(&qs[i]), &mut data);
        tree.frame_poses(&data, &mut frames);
        black_box(&frames);
    });
    ops.insert("fk_all_frames".into(), fk_all.json());
    progress.inc(1);

    progress.set_message(format!("{} jacobian", robot.name));
    let jacobian = time_blocks(calls, samples, |i| {
        tree.forward_kinematics(black_box(&qs[i]), &mut data);
        tree.frame_jacobian(robot.frame, &data, &mut jac);
        black_box(&jac);
    });
    ops.insert("jacobian".into(), jacobian.json());
    progress.inc(1);

    progress.set_message(format!("{} rnea", robot.name));
    let rnea = time_blocks(calls, samples, |i| {
        let tau = tree.inverse_dynamics(
            black_box(&qs[i]),
            black_box(&qds[i]),
            black_box(&qdds[i]),
            &mut data,
        );
        black_box(tau);
    });
    ops.insert("rnea".into(), rnea.json());
    progress.inc(1);

    progress.set_message(format!("{} mass_matrix", robot.name));
    let crba = time_blocks(calls, samples, |i| {
        let m = tree.mass_matrix(black_box(&qs[i]), &mut data);
        black_box(m);
    });
    ops.insert("mass_matrix".into(), crba.json());
    progress.inc(1);

    progress.set_message(format!("{} ik", robot.name));
    ops.insert("ik".into(), control_ik(robot, &limits, &ik_qs)?);
    progress.inc(1);

    // Reference outputs of the first samples, for cross-checks against a peer.
    let checks: Vec<serde_json::Value> = (0..CHECKED_SAMPLES.min(samples))
        .map(|i| {
            tree.forward_kinematics(&qs[i], &mut data);
            let pose = tree.frame_pose(robot.frame, &data);
            tree.frame_jacobian(robot.frame, &data, &mut jac);
            let jac_rows: Vec<Vec<f64>> = (0..6)
                .map(|r| (0..n).map(|c| jac[(r, c)]).collect())
                .collect();
            let tau = tree
                .inverse_dynamics(&qs[i], &qds[i], &qdds[i], &mut data)
                .to_vec();
            let mm = matrix_rows(tree.mass_matrix(&qs[i], &mut data));
            json!({
                "sample": i,
                "tool_pose": pose_json(&pose),
                "jacobian": jac_rows,
                "tau": tau,
                "mass_matrix": mm,
            })
        })
        .collect();

    let frame_name = tree.frames[robot.frame.0 as usize].name.clone();
    let joint_names: Vec<String> = (0..n).map(|d| tree.dof_joint(d).name.clone()).collect();
    let result = json!({
        "robot": robot.name,
        "urdf": robot.path,
        "dof": n,
        "tool_frame": frame_name,
        "frames": tree.frames.len(),
        "ops": ops,
    });
    let dump = json!({
        "robot": robot.name,
        "urdf": robot.path,
        "dof": n,
        "tool_frame": frame_name,
        "joint_names": joint_names,
        "q": qs,
        "qd": qds,
        "qdd": qdds,
        "checks": checks,
    });
    Ok((result, dump))
}

/// IK: each target is the tool pose at a random in-limit configuration; every solve starts from
/// the mid-range configuration and is timed on its own. A solve counts as a success when the
/// solver reports convergence and forward kinematics of its answer is within the tolerances.
fn control_ik(
    robot: &ControlRobot,
    limits: &[[f64; 2]],
    ik_qs: &[Vec<f64>],
) -> anyhow::Result<serde_json::Value> {
    use rivet_control::ik::{IkOptions, IkSolver, IkTarget};
    use std::hint::black_box;

    let tree = &robot.tree;
    let n = tree.dof_count();
    let mut data = tree.data();
    let mid: Vec<f64> = limits
        .iter()
        .map(|&[lo, hi]| {
            if lo.is_finite() && hi.is_finite() {
                0.5 * (lo + hi)
            } else {
                0.0
            }
        })
        .collect();
    let targets: Vec<nalgebra::Isometry3<f64>> = ik_qs
        .iter()
        .map(|q| {
            tree.forward_kinematics(q, &mut data);
            tree.frame_pose(robot.frame, &data)
        })
        .collect();
    let options = IkOptions::default();
    let (pos_tol, rot_tol) = (options.position_tolerance, options.orientation_tolerance);
    let mut solver = IkSolver::new(tree, robot.frame, options);
    let mut q_out = vec![0.0; n];
    // Warm-up (not recorded).
    for target in targets.iter().take(20) {
        let _ = solver.solve(tree, &IkTarget::Pose(*target), &mid, &mut q_out);
    }
    let mut per_call = Vec::with_capacity(targets.len());
    let (mut converged, mut verified) = (0usize, 0usize);
    let mut iterations = Vec::with_capacity(targets.len());
    let mut attempts = Vec::with_capacity(targets.len());
    for target in &targets {
        let goal = IkTarget::Pose(*target);
        let started = Instant::now();
        let result = solver.solve(tree, black_box(&goal), black_box(&mid), &mut q_out);
        let us = started.elapsed().as_secs_f64() * 1e6;
        per_call.push(us);
        if let Ok(sol) = result {
            converged += 1;
            iterations.push(sol.iterations as f64);
            attempts.push(sol.attempts as f64);
            tree.forward_kinematics(&q_out, &mut data);
            let got = tree.frame_pose(robot.frame, &data);
            let dp = (got.translation.vector - target.translation.vector).norm();
            let dr = got.rotation.angle_to(&target.rotation);
            // Small slack for the solver measuring its error before its last update.
            if dp <= pos_tol * 1.01 && dr <= rot_tol * 1.01 {
                verified += 1;
            }
        }
    }
    let count = targets.len();
    let stats = CallStats::from_samples(per_call, count);
    iterations.sort_by(f64::total_cmp);
    attempts.sort_by(f64::total_cmp);
    let rate = |k: usize| {
        if count == 0 {
            f64::NAN
        } else {
            k as f64 / count as f64
        }
    };
    Ok(json!({
        "median_us": stats.median_us,
        "p99_us": stats.p99_us,
        "calls": stats.calls,
        "success_rate": rate(verified),
        "converged_rate": rate(converged),
        "median_iterations": median_sorted(&iterations),
        "median_attempts": median_sorted(&attempts),
        "position_tolerance_m": pos_tol,
        "orientation_tolerance_rad": rot_tol,
        "target_median_us": IK_TARGET_US,
        "start": "mid-range",
    }))
}

/// The harness's own cost per timed call (an empty operation), microseconds.
fn timing_overhead_us(calls: usize, samples: usize) -> f64 {
    let q = vec![0.0f64; samples];
    time_blocks(calls, samples, |i| {
        std::hint::black_box(&q[i]);
    })
    .median_us
}

fn control(args: ControlArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.iterations > 0 && args.samples > 0 && args.ik_targets > 0,
        "--iterations, --ik-targets and --samples must be > 0"
    );
    let robots = control_robots(&args)?;
    let progress = if args.json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new((robots.len() * 6) as u64).with_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        )
    };
    let mut results = Vec::new();
    let mut dumps = Vec::new();
    for robot in &robots {
        let (result, dump) = control_robot(robot, &args, &progress)?;
        results.push(result);
        dumps.push(dump);
    }
    let overhead = timing_overhead_us(args.iterations, args.samples);
    progress.finish_and_clear();
    if let Some(path) = &args.dump_samples {
        let value = json!({ "seed": args.seed, "robots": dumps });
        std::fs::write(path, serde_json::to_vec(&value)?)
            .map_err(|e| anyhow::anyhow!("--dump-samples {}: {e}", path.display()))?;
    }
    if args.json {
        return crate::print_json(&json!({
            "bench": "control",
            "seed": args.seed,
            "samples": args.samples,
            "block": BLOCK,
            "timing_overhead_us": overhead,
            "robots": results,
        }));
    }
    println!(
        "{:<10} {:>4} {:<14} {:>12} {:>12} {:>9}",
        "robot", "dof", "op", "median (us)", "p99 (us)", "calls"
    );
    for r in &results {
        for op in [
            "fk",
            "fk_all_frames",
            "jacobian",
            "rnea",
            "mass_matrix",
            "ik",
        ] {
            let o = &r["ops"][op];
            let extra = if op == "ik" {
                format!(
                    "  success {:.1}%, target median < {IK_TARGET_US} us",
                    100.0 * o["success_rate"].as_f64().unwrap_or(f64::NAN)
                )
            } else {
                String::new()
            };
            println!(
                "{:<10} {:>4} {:<14} {:>12.3} {:>12.3} {:>9}{extra}",
                r["robot"].as_str().unwrap_or_default(),
                r["dof"].as_u64().unwrap_or_default(),
                op,
                o["median_us"].as_f64().unwrap_or(f64::NAN),
                o["p99_us"].as_f64().unwrap_or(f64::NAN),
                o["calls"].as_u64().unwrap_or_default(),
            );
        }
    }
    println!(
        "Per-call figures: blocks of {BLOCK} calls (IK: each call), median and p99 over blocks; \
         harness overhead {overhead:.4} us per call (included)."
    );
    Ok(())
}
