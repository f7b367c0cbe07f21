//! `rivet run`: a scenario end to end, headless, recorded.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use rivet_sim::plugin::SimRecorder;
use rivet_sim::record::Recorder;
use rivet_sim::world::Termination;
use rivet_sim::{Scene, SimWorld, World, WorldOptions, headless_app};
use serde_json::json;

use crate::PackageArgs;

/// Arguments of `rivet run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The scene file (scenes/*.toml).
    pub scene: PathBuf,
    /// Scene overlay(s) applied in order (e.g. the parameters `rivet sysid` fitted).
    #[arg(long, value_name = "FILE")]
    pub overlay: Vec<PathBuf>,
    /// Simulated duration in seconds. Default: the scene's `duration_secs` (10 s if unset).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Seed for everything random in the run.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub seed: u64,
    /// Write the rerun recording here. Default: runs/<scene>-<unix time>.rrd.
    #[arg(long, value_name = "OUT.rrd")]
    pub record: Option<PathBuf>,
    /// Threads for the physics solver (results are bitwise identical for any count).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub threads: usize,
    /// Recording rate in Hz (steps between are not logged).
    #[arg(long, default_value_t = 50.0, value_name = "HZ")]
    pub record_rate: f64,
    /// Let a trained policy (checkpoint from `rivet train`) act in the scene's task for one
    /// episode (or --duration).
    #[arg(long, value_name = "CHECKPOINT")]
    pub policy: Option<PathBuf>,
    /// Print one JSON object on stdout instead of the summary.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub packages: PackageArgs,
}

/// A trained policy acting in a scene's task, one action per control period: the checkpoint,
/// the task runner and its buffers. `rivet run --policy` and `rivet view --policy` drive the
/// simulation app with it around each update.
pub struct PolicyDriver {
    policy: rivet_policies::LoadedPolicy,
    runner: rivet_sim::env::TaskRunner,
    observation: Vec<f32>,
    action: Vec<f32>,
    substep: u32,
    outcome: Option<rivet_sim::env::StepOutcome>,
}

impl PolicyDriver {
    /// Loads the checkpoint at `path`, checks it fits the scene's task and resets `world` to
    /// the task's first episode (seeded by `seed`).
    pub fn new(scene: &Scene, world: &mut World, path: &Path, seed: u64) -> anyhow::Result<Self> {
        use rivet_policies::Policy;
        let (observation_space, action_space) = crate::learn::task_spaces(scene)?;
        let checkpoint = rivet_policies::load_checkpoint(path)?;
        checkpoint.check_compatible(&observation_space, &action_space, &scene.content_hash)?;
        let mut runner = rivet_sim::env::TaskRunner::new(world)?;
        runner.seed(seed, 0);
        let mut observation = vec![0.0; runner.observation_dim()];
        runner.reset(world, &mut observation);
        let policy = checkpoint.policy();
        let action = vec![0.0; policy.action_space().dim()];
        Ok(Self {
            policy,
            runner,
            observation,
            action,
            substep: 0,
            outcome: None,
        })
    }

    /// Before an update: a new action at the start of each control period, then the task's
    /// per-physics-step work.
    pub fn before_update(&mut self, world: &mut World) {
        use rivet_policies::Policy;
        if self.substep == 0 {
            self.policy.act(&self.observation, &mut self.action);
            self.runner.apply_action(world, &self.action);
        }
        self.runner.before_physics(world);
    }

    /// After an update: at the end of a control period, the observation, reward and
    /// termination. Returns whether the episode ended.
    pub fn after_update(&mut self, world: &World) -> bool {
        self.substep += 1;
        if self.substep == self.runner.task().substeps {
            self.substep = 0;
            let outcome = self.runner.finish_step(world, &mut self.observation);
            self.outcome = Some(outcome);
            return outcome.done();
        }
        false
    }

    /// The last control period's outcome (default before the first).
    pub fn outcome(&self) -> rivet_sim::env::StepOutcome {
        self.outcome.unwrap_or_default()
    }

    /// Actions taken this episode.
    pub fn actions(&self) -> u64 {
        self.runner.episode_steps() as u64
    }

    /// The episode's return so far.
    pub fn episode_return(&self) -> f64 {
        self.runner.episode_return()
    }
}

/// Runs a scenario.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let scene = Arc::new(Scene::load_with_overlays(
        &args.scene,
        &args.overlay,
        &args.packages.resolve(),
    )?);
    let default_duration = match (&args.policy, &scene.task) {
        (Some(_), Some(task)) => f64::from(task.episode_steps) * task.control_period_secs,
        _ => scene.duration_secs,
    };
    let duration = args.duration.unwrap_or(default_duration);
    anyhow::ensure!(
        duration.is_finite() && duration > 0.0,
        "--duration {duration}: must be a positive number of seconds"
    );
    anyhow::ensure!(args.threads >= 1, "--threads must be >= 1");
    anyhow::ensure!(
        args.record_rate.is_finite() && args.record_rate > 0.0,
        "--record-rate must be > 0 Hz"
    );
    let record_path = match &args.record {
        Some(p) => p.clone(),
        None => {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            PathBuf::from("runs").join(format!(
                "{}-{stamp}.rrd",
                rivet_sim::record::entity_part(&scene.name)
            ))
        }
    };
    let mut world = World::new(
        scene.clone(),
        WorldOptions {
            seed: args.seed,
            threads: Some(args.threads),
        },
    )?;
    let mut driver = match &args.policy {
        None => None,
        Some(path) => Some(PolicyDriver::new(&scene, &mut world, path, args.seed)?),
    };
    let recorder = Recorder::create(&record_path, &world, args.record_rate)
        .with_context(|| format!("cannot record to {}", record_path.display()))?;
    let sensors = crate::sensors::suite_for(&world, args.json)?;
    let steps = (duration / scene.world.dt_secs).round() as u64;
    let mut app = headless_app(world);
    app.insert_resource(SimRecorder {
        recorder,
        error: None,
    });
    if let Some(suite) = sensors {
        app.insert_resource(rivet_sim::SimSensors { suite, error: None });
    }

    let progress = if args.json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(steps).with_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg} [{bar:30}] {pos}/{len} steps ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        )
    };
    progress.set_message(scene.name.clone());
    let started = Instant::now();
    let mut max_contacts = 0usize;
    let mut executed = 0u64;
    for _ in 0..steps {
        if let Some(d) = driver.as_mut() {
            d.before_update(&mut app.world_mut().resource_mut::<SimWorld>().0);
        }
        app.update();
        if let Some(d) = driver.as_mut()
            && d.after_update(&app.world().resource::<SimWorld>().0)
        {
            break;
        }
        let world = &app.world().resource::<SimWorld>().0;
        if world.termination().is_some() {
            break;
        }
        executed += 1;
        max_contacts = max_contacts.max(world.contact_pair_count());
        if executed.is_multiple_of(256) {
            progress.set_position(executed);
        }
    }
    progress.finish_and_clear();
    let wall_secs = started.elapsed().as_secs_f64();

    let SimRecorder { recorder, error } = app
        .world_mut()
        .remove_resource::<SimRecorder>()
        .context("the recorder resource disappeared")?;
    if let Some(e) = error {
        return Err(e.into());
    }
    let mut sensors = app.world_mut().remove_resource::<rivet_sim::SimSensors>();
    if let Some(e) = sensors.as_mut().and_then(|s| s.error.take()) {
        return Err(anyhow::Error::from(e).context("a sensor failed"));
    }
    let sensors_summary = sensors.as_ref().map(|s| crate::sensors::summary(&s.suite));
    let world = app
        .world_mut()
        .remove_resource::<SimWorld>()
        .context("the world resource disappeared")?
        .0;
    let outcome = match world.termination() {
        None => "completed".to_string(),
        Some(Termination::NonFinite { message }) => {
            recorder.log_event(&world, message)?;
            format!("stopped: {message}")
        }
    };
    let recording = recorder.finish()?;
    let simulated = world.time_secs();
    let rtf = if wall_secs > 0.0 {
        simulated / wall_secs
    } else {
        f64::INFINITY
    };
    let final_contacts = world.contact_pair_count();
    let robots: Vec<serde_json::Value> = scene
        .robots
        .iter()
        .zip(&world.robots)
        .map(|(r, s)| {
            let base = world.body_pose(s.base_body);
            json!({
                "name": r.name,
                "base_position_m": base.translation,
                "joints": r.model.dofs.iter().enumerate().map(|(d, _)| json!({
                    "name": r.model.dof_joint(rivet_sim::robot::DofId(d as u32)).name,
                    "position": s.position[d],
                    "velocity": s.velocity[d],
                    "effort": s.effort[d],
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let tasks = world.task_outcomes();
    let policy_summary = driver.as_ref().map(|d| {
        let o = d.outcome();
        json!({
            "checkpoint": args.policy,
            "actions": d.actions(),
            "return": d.episode_return(),
            "episode_ended": o.done(),
            "terminated": o.terminated,
            "truncated": o.truncated,
            "success": o.success,
        })
    });
    let summary = json!({
        "scene": scene.name,
        "scene_file": scene.source,
        "scene_hash": scene.content_hash,
        "seed": args.seed,
        "threads": args.threads,
        "timestep_secs": scene.world.dt_secs,
        "simulated_secs": simulated,
        "steps": world.step_index(),
        "wall_secs": wall_secs,
        "real_time_factor": rtf,
        "contacts": { "max_pairs": max_contacts, "final_pairs": final_contacts },
        "outcome": outcome,
        "completed": world.termination().is_none(),
        "state_digest": world.state_digest(),
        "robots": robots,
        "tasks": tasks,
        "policy": policy_summary,
        "sensors": sensors_summary,
        "recording": recording,
    });
    if args.json {
        crate::print_json(&summary)?;
    } else {
        eprintln!("scene        {} ({})", scene.name, scene.source.display());
        eprintln!(
            "simulated    {simulated:.3} s in {} steps of {} s",
            world.step_index(),
            scene.world.dt_secs
        );
        eprintln!("wall time    {wall_secs:.3} s (real-time factor {rtf:.1}x)");
        eprintln!("contacts     {max_contacts} pairs at most, {final_contacts} at the end");
        eprintln!("outcome      {outcome}");
        for task in &tasks {
            eprintln!(
                "task         {}: pick and place, {} of {} placed within {} m and {}°, {} dropped, sequencer {:?}{}",
                task.robot,
                task.placed,
                task.tasks,
                task.tolerance_position_m,
                task.tolerance_angle_deg,
                task.dropped,
                task.phase,
                task.failure
                    .as_deref()
                    .map(|f| format!(" ({f})"))
                    .unwrap_or_default()
            );
            for p in &task.placements {
                eprintln!(
                    "             {:<12} {:<8} position error {:.4} m, angle error {:.2}°",
                    p.object,
                    if p.placed {
                        "placed"
                    } else if p.dropped {
                        "dropped"
                    } else {
                        "missed"
                    },
                    p.position_error_m,
                    p.angle_error_deg
                );
            }
        }
        if let Some(d) = driver.as_ref() {
            let o = d.outcome();
            eprintln!(
                "policy       {} actions, return {:.3}, {}",
                d.actions(),
                d.episode_return(),
                if o.success {
                    "success"
                } else if o.done() {
                    "episode ended without success"
                } else {
                    "episode still running at the end of the run"
                }
            );
        }
        if let Some(s) = &sensors_summary {
            eprintln!("sensors      {}", crate::sensors::summary_line(s));
        }
        eprintln!("recording    {}", recording.display());
        eprintln!(
            "view it:     pip install rerun-sdk==0.36.3 && rerun {}",
            recording.display()
        );
    }
    if world.termination().is_some() {
        anyhow::bail!("the run ended early: {outcome}");
    }
    Ok(())
}
