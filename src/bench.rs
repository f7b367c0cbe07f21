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
