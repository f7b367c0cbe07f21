//! `rivet train` and `rivet eval`: scene tasks (rivet-sim) as vectorised environments for the
//! learning crate (rivet-policies), PPO or behaviour cloning from the task's scripted expert,
//! checkpoints, learning curves (CSV and rerun scalars) and seeded evaluation.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use rivet_policies::{
    BcConfig, BoxSpace, Control, Demonstrations, LoadedPolicy, Policy, Ppo, PpoConfig, SceneRef,
    StepResult, VecEnv, load_checkpoint, train_bc,
};
use rivet_sim::Scene;
use rivet_sim::env::{ActionSource, StepBuffers, TaskRunner, VecTaskEnv};
use rivet_sim::record::Recorder;
use rivet_sim::{World, WorldOptions};
use serde::Deserialize;
use serde_json::json;

use crate::PackageArgs;

/// A scene's task as a [`VecEnv`] for the learning crate.
pub struct SceneEnv {
    env: VecTaskEnv,
    observation: BoxSpace,
    action: BoxSpace,
    actions: Vec<f32>,
}

/// The observation and action spaces of a scene's task.
pub fn task_spaces(scene: &Scene) -> anyhow::Result<(BoxSpace, BoxSpace)> {
    let task = scene.task.as_ref().with_context(|| {
        format!(
            "{}: the scene has no [task] section (see docs/learning.md)",
            scene.source.display()
        )
    })?;
    let o = &task.observation_space;
    let a = &task.action_space;
    Ok((
        BoxSpace::new(o.names.clone(), o.low.clone(), o.high.clone())?,
        BoxSpace::new(a.names.clone(), a.low.clone(), a.high.clone())?,
    ))
}

impl SceneEnv {
    /// `num_envs` worlds of `scene` on `threads` workers.
    pub fn new(scene: Arc<Scene>, num_envs: usize, threads: usize) -> anyhow::Result<Self> {
        let (observation, action) = task_spaces(&scene)?;
        let env = VecTaskEnv::new(scene, num_envs, threads)?;
        Ok(Self {
            actions: vec![0.0; num_envs * action.dim()],
            env,
            observation,
            action,
        })
    }
}

impl VecEnv for SceneEnv {
    fn num_envs(&self) -> usize {
        self.env.num_envs()
    }
    fn observation_space(&self) -> &BoxSpace {
        &self.observation
    }
    fn action_space(&self) -> &BoxSpace {
        &self.action
    }
    fn reset(&mut self, seed: u64, observations: &mut [f32]) {
        self.env.reset(seed, observations);
    }
    fn step(&mut self, actions: &[f32], out: &mut StepResult) {
        self.actions.copy_from_slice(actions);
        self.env.step(
            ActionSource::Given,
            &mut self.actions,
            StepBuffers {
                observations: &mut out.observations,
                rewards: &mut out.rewards,
                terminated: &mut out.terminated,
                truncated: &mut out.truncated,
                success: &mut out.success,
                final_observations: &mut out.final_observations,
            },
        );
    }
}

/// The `[task.train]` table of a scene.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSettings {
    /// `ppo` or `bc`. Default: `ppo`.
    #[serde(default)]
    pub algorithm: Algorithm,
    /// Parallel worlds. Default: 16.
    #[serde(default = "default_envs")]
    pub envs: usize,
    /// Env steps of PPO (over all worlds). Default: 200000.
    #[serde(default = "default_steps")]
    pub steps: u64,
    /// Stop once a deterministic evaluation reaches this success rate. Default: none.
    pub target_success: Option<f64>,
    /// Episodes of the evaluations during and after training. Default: 50.
    #[serde(default = "default_eval_episodes")]
    pub eval_episodes: usize,
    /// Demonstration episodes recorded from the task's expert (BC). Default: 200.
    #[serde(default = "default_demos")]
    pub demonstrations: usize,
    /// Exploration noise on the expert's executed actions while recording demonstrations, as
    /// a fraction of each action bound (labels stay clean). Default: 0.1.
    #[serde(default = "default_demo_noise")]
    pub demonstration_noise: f32,
    /// PPO hyper-parameters (rivet-policies `PpoConfig`).
    #[serde(default)]
    pub ppo: PpoConfig,
    /// Behaviour-cloning hyper-parameters (rivet-policies `BcConfig`).
    #[serde(default)]
    pub bc: BcConfig,
}

/// Learning algorithm.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Proximal policy optimisation.
    #[default]
    Ppo,
    /// Behaviour cloning from the task's scripted expert.
    Bc,
}

fn default_envs() -> usize {
    16
}
fn default_steps() -> u64 {
    200_000
}
fn default_eval_episodes() -> usize {
    50
}
fn default_demos() -> usize {
    200
}
fn default_demo_noise() -> f32 {
    0.1
}

/// Reads a scene's `[task.train]` table.
pub fn train_settings(scene: &Scene) -> anyhow::Result<TrainSettings> {
    let task = scene.task.as_ref().with_context(|| {
        format!(
            "{}: the scene has no [task] section",
            scene.source.display()
        )
    })?;
    toml::Value::Table(task.train.clone())
        .try_into()
        .map_err(|e: toml::de::Error| {
            anyhow::anyhow!("{}: task.train: {}", scene.source.display(), e.message())
        })
}

/// Arguments of `rivet train`.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// The scene file with a [task] section.
    pub scene: PathBuf,
    /// Scene overlay(s) applied in order (e.g. the parameters `rivet sysid` fitted).
    #[arg(long, value_name = "FILE")]
    pub overlay: Vec<PathBuf>,
    /// Directory for the checkpoint, learning curve and recording (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Parallel worlds. Default: the scene's task.train.envs.
    #[arg(long, value_name = "N")]
    pub envs: Option<usize>,
    /// Env steps (PPO, over all worlds). Default: the scene's task.train.steps.
    #[arg(long, value_name = "N")]
    pub steps: Option<u64>,
    /// Seed of the network, the environments and the sampling.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub seed: u64,
    /// Worker threads stepping the worlds. Default: the machine's cores.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Stop once a deterministic evaluation reaches this success rate (0..1). Default: the
    /// scene's task.train.target_success, else train for all steps.
    #[arg(long, value_name = "RATE")]
    pub target_success: Option<f64>,
    /// Print one JSON object on stdout instead of the summary.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub packages: PackageArgs,
}

/// Arguments of `rivet eval`.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// The scene file with a [task] section.
    pub scene: PathBuf,
    /// Scene overlay(s) applied in order (e.g. the parameters `rivet sysid` fitted).
    #[arg(long, value_name = "FILE")]
    pub overlay: Vec<PathBuf>,
    /// The checkpoint (its .json, its .safetensors, or their common stem).
    #[arg(long, value_name = "CHECKPOINT")]
    pub policy: PathBuf,
    /// Episodes to run.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub episodes: usize,
    /// Seed: episode k starts from the task's randomisation stream (seed, k).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub seed: u64,
    /// Worker threads. Default: the machine's cores.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Record the first episode to this rerun file.
    #[arg(long, value_name = "OUT.rrd")]
    pub record: Option<PathBuf>,
    /// Accept a checkpoint trained on a different version of the scene file (the spaces must
    /// still match).
    #[arg(long)]
    pub allow_scene_change: bool,
    /// Print one JSON object on stdout instead of the summary.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub packages: PackageArgs,
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn progress_bar(len: u64, hidden: bool, template: &str) -> indicatif::ProgressBar {
    if hidden {
        return indicatif::ProgressBar::hidden();
    }
    indicatif::ProgressBar::new(len).with_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    )
}

/// Results of an evaluation.
#[derive(Clone, Debug, Default)]
pub struct EvalStats {
    /// Per episode: success.
    pub success: Vec<bool>,
    /// Per episode: undiscounted return.
    pub returns: Vec<f64>,
    /// Per episode: actions taken.
    pub lengths: Vec<u32>,
}

impl EvalStats {
    /// Fraction of successful episodes.
    pub fn success_rate(&self) -> f64 {
        self.success.iter().filter(|s| **s).count() as f64 / self.success.len().max(1) as f64
    }

    /// Mean return.
    pub fn mean_return(&self) -> f64 {
        self.returns.iter().sum::<f64>() / self.returns.len().max(1) as f64
    }

    /// 95% Wilson score interval of the success rate.
    pub fn success_interval(&self) -> [f64; 2] {
        let n = self.success.len() as f64;
        if n == 0.0 {
            return [0.0, 1.0];
        }
        let p = self.success_rate();
        let z = 1.959_964f64;
        let denom = 1.0 + z * z / n;
        let centre = (p + z * z / (2.0 * n)) / denom;
        let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
        [(centre - half).max(0.0), (centre + half).min(1.0)]
    }

    /// 95% normal-approximation interval of the mean return.
    pub fn return_interval(&self) -> [f64; 2] {
        let n = self.returns.len() as f64;
        let m = self.mean_return();
        if n < 2.0 {
            return [m, m];
        }
        let var = self.returns.iter().map(|r| (r - m).powi(2)).sum::<f64>() / (n - 1.0);
        let half = 1.959_964 * (var / n).sqrt();
        [m - half, m + half]
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "episodes": self.success.len(),
            "success_rate": self.success_rate(),
            "success_rate_ci95": self.success_interval(),
            "mean_return": self.mean_return(),
            "mean_return_ci95": self.return_interval(),
            "mean_episode_length": self.lengths.iter().map(|&l| f64::from(l)).sum::<f64>() / self.lengths.len().max(1) as f64,
        })
    }
}

/// One evaluation episode: success, undiscounted return, actions taken.
type EpisodeResult = (bool, f64, u32);

/// Runs one episode of `scene`'s task with `policy` acting deterministically, from the
/// randomisation stream `(seed, episode)`, in a fresh world (so results do not depend on
/// which thread ran which episode). Records every physics step when `recorder` is given.
fn run_episode(
    scene: &Arc<Scene>,
    policy: &mut LoadedPolicy,
    seed: u64,
    episode: u64,
    mut recorder: Option<&mut Recorder>,
) -> anyhow::Result<EpisodeResult> {
    let mut world = World::new(
        scene.clone(),
        WorldOptions {
            seed: episode,
            threads: None,
        },
    )?;
    let mut runner = TaskRunner::new(&world)?;
    runner.seed(seed, episode);
    let mut obs = vec![0.0; runner.observation_dim()];
    let mut action = vec![0.0; runner.action_dim()];
    runner.reset(&mut world, &mut obs);
    if let Some(r) = recorder.as_deref_mut() {
        r.record_step(&world)?;
    }
    let substeps = runner.task().substeps;
    loop {
        policy.act(&obs, &mut action);
        runner.apply_action(&world, &action);
        for _ in 0..substeps {
            runner.before_physics(&mut world);
            world.step();
            if let Some(r) = recorder.as_deref_mut() {
                r.record_step(&world)?;
            }
        }
        let o = runner.finish_step(&world, &mut obs);
        if o.done() {
            return Ok((o.success, runner.episode_return(), runner.episode_steps()));
        }
    }
}

/// Evaluates `policy` over `episodes` episodes on `threads` workers (each a one-thread rayon
/// pool so rapier runs inline on it). Episode k always starts from stream `(seed, k)`.
pub fn evaluate(
    scene: &Arc<Scene>,
    policy: &LoadedPolicy,
    episodes: usize,
    seed: u64,
    threads: usize,
    record: Option<&Path>,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<(EvalStats, Option<PathBuf>)> {
    let mut results: Vec<Option<EpisodeResult>> = vec![None; episodes];
    let mut first = 0;
    let mut recording = None;
    if let (Some(path), true) = (record, episodes > 0) {
        let world = World::new(scene.clone(), WorldOptions::default())?;
        let mut recorder = Recorder::create(path, &world, 50.0)
            .with_context(|| format!("cannot record to {}", path.display()))?;
        let mut p = policy.clone();
        results[0] = Some(run_episode(scene, &mut p, seed, 0, Some(&mut recorder))?);
        recording = Some(recorder.finish()?);
        progress.inc(1);
        first = 1;
    }
    let threads = threads.clamp(1, episodes.max(1));
    let pools: Vec<rayon::ThreadPool> = (0..threads)
        .map(|_| rayon::ThreadPoolBuilder::new().num_threads(1).build())
        .collect::<Result<_, _>>()?;
    let chunks: Vec<anyhow::Result<Vec<(usize, EpisodeResult)>>> = std::thread::scope(|s| {
        let handles: Vec<_> = pools
            .iter()
            .enumerate()
            .map(|(k, pool)| {
                let mut p = policy.clone();
                s.spawn(move || {
                    pool.install(|| {
                        let mut out = Vec::new();
                        for e in (first..episodes).filter(|e| e % threads == k) {
                            out.push((e, run_episode(scene, &mut p, seed, e as u64, None)?));
                            progress.inc(1);
                        }
                        Ok(out)
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("an evaluation worker panicked")))
            })
            .collect()
    });
    for chunk in chunks {
        for (e, r) in chunk? {
            results[e] = Some(r);
        }
    }
    let mut stats = EvalStats::default();
    for r in results.into_iter().flatten() {
        stats.success.push(r.0);
        stats.returns.push(r.1);
        stats.lengths.push(r.2);
    }
    Ok((stats, recording))
}

/// `rivet eval`.
pub fn eval(args: EvalArgs) -> anyhow::Result<()> {
    let scene = Arc::new(Scene::load_with_overlays(
        &args.scene,
        &args.overlay,
        &args.packages.resolve(),
    )?);
    let (observation, action) = task_spaces(&scene)?;
    let checkpoint = load_checkpoint(&args.policy)?;
    if args.allow_scene_change {
        checkpoint.check_spaces(&observation, &action)?;
    } else {
        checkpoint.check_compatible(&observation, &action, &scene.content_hash)?;
    }
    anyhow::ensure!(args.episodes >= 1, "--episodes must be >= 1");
    let threads = args.threads.unwrap_or_else(default_threads).max(1);
    let progress = progress_bar(
        args.episodes as u64,
        args.json,
        "{spinner} eval [{bar:30}] {pos}/{len} episodes ({per_sec}, eta {eta})",
    );
    let started = Instant::now();
    let (stats, recording) = evaluate(
        &scene,
        &checkpoint.policy(),
        args.episodes,
        args.seed,
        threads,
        args.record.as_deref(),
        &progress,
    )?;
    progress.finish_and_clear();
    let wall_secs = started.elapsed().as_secs_f64();
    let mut summary = stats.json();
    summary["scene"] = json!(scene.name);
    summary["policy"] = json!(checkpoint.paths.json);
    summary["seed"] = json!(args.seed);
    summary["wall_secs"] = json!(wall_secs);
    summary["recording"] = json!(recording);
    if args.json {
        crate::print_json(&summary)?;
    } else {
        let [lo, hi] = stats.success_interval();
        let [rlo, rhi] = stats.return_interval();
        eprintln!("scene        {} ({})", scene.name, scene.source.display());
        eprintln!("policy       {}", checkpoint.paths.json.display());
        eprintln!("episodes     {} (seed {})", args.episodes, args.seed);
        eprintln!(
            "success      {:.1}% (95% CI {:.1}-{:.1}%)",
            100.0 * stats.success_rate(),
            100.0 * lo,
            100.0 * hi
        );
        eprintln!(
            "return       {:.3} (95% CI {rlo:.3} to {rhi:.3})",
            stats.mean_return()
        );
        eprintln!("wall time    {wall_secs:.2} s");
        if let Some(r) = recording {
            eprintln!("recording    {}", r.display());
        }
    }
    Ok(())
}

/// The learning curve: one CSV row and one set of rerun scalars per update or epoch.
struct Curve {
    csv: std::io::BufWriter<std::fs::File>,
    rec: rerun::RecordingStream,
    columns: &'static [&'static str],
}

impl Curve {
    fn create(out: &Path, columns: &'static [&'static str]) -> anyhow::Result<Self> {
        let csv_path = out.join("learning_curve.csv");
        let mut csv = std::io::BufWriter::new(
            std::fs::File::create(&csv_path)
                .with_context(|| format!("cannot write {}", csv_path.display()))?,
        );
        writeln!(csv, "{}", columns.join(","))?;
        let rec = rerun::RecordingStreamBuilder::new("rivet_train")
            .save(out.join("training.rrd"))
            .context("cannot create the training recording")?;
        Ok(Self { csv, rec, columns })
    }

    fn row(&mut self, step: u64, values: &[Option<f64>]) -> anyhow::Result<()> {
        let text: Vec<String> = values
            .iter()
            .map(|v| v.map(|x| format!("{x}")).unwrap_or_default())
            .collect();
        writeln!(self.csv, "{}", text.join(","))?;
        // Rows are few (one per update or epoch): keep the file current while training runs.
        self.csv.flush()?;
        self.rec.set_time_sequence("env_steps", step as i64);
        for (name, v) in self.columns.iter().zip(values).skip(1) {
            if let Some(v) = v {
                self.rec
                    .log(format!("train/{name}"), &rerun::Scalars::single(*v))?;
            }
        }
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<()> {
        self.csv.flush()?;
        self.rec.flush_blocking()?;
        Ok(())
    }
}

/// `rivet train`.
pub fn train(args: TrainArgs) -> anyhow::Result<()> {
    let scene = Arc::new(Scene::load_with_overlays(
        &args.scene,
        &args.overlay,
        &args.packages.resolve(),
    )?);
    let settings = train_settings(&scene)?;
    let envs = args.envs.unwrap_or(settings.envs);
    let steps = args.steps.unwrap_or(settings.steps);
    let threads = args.threads.unwrap_or_else(default_threads).max(1);
    let target = args.target_success.or(settings.target_success);
    anyhow::ensure!(envs >= 1, "--envs must be >= 1");
    if let Some(t) = target {
        anyhow::ensure!(
            (0.0..=1.0).contains(&t),
            "--target-success {t}: must be in [0, 1]"
        );
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let scene_ref = SceneRef {
        name: scene.name.clone(),
        content_hash: scene.content_hash.clone(),
    };
    let started = Instant::now();
    let summary = match settings.algorithm {
        Algorithm::Ppo => train_ppo(
            &args, &scene, &settings, envs, steps, threads, target, scene_ref,
        )?,
        Algorithm::Bc => {
            train_behaviour_cloning(&args, &scene, &settings, envs, threads, scene_ref)?
        }
    };
    let mut summary = summary;
    summary["wall_secs"] = json!(started.elapsed().as_secs_f64());
    summary["scene"] = json!(scene.name);
    summary["out"] = json!(args.out);
    summary["seed"] = json!(args.seed);
    summary["envs"] = json!(envs);
    summary["threads"] = json!(threads);
    summary["algorithm"] = json!(settings.algorithm);
    if args.json {
        crate::print_json(&summary)?;
    } else {
        let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
        eprintln!("scene        {} ({})", scene.name, scene.source.display());
        eprintln!(
            "trained      {}, {} env steps in {:.1} s ({envs} worlds, {threads} threads)",
            match settings.algorithm {
                Algorithm::Ppo => "PPO",
                Algorithm::Bc => "behaviour cloning",
            },
            summary["env_steps"],
            f(&summary["wall_secs"])
        );
        if let Some(t) = target {
            eprintln!(
                "target       success {t}: {}",
                if summary["reached_target"] == true {
                    format!(
                        "reached after {} env steps, {:.1} s",
                        summary["steps_to_target"],
                        f(&summary["secs_to_target"])
                    )
                } else {
                    "not reached".into()
                }
            );
        }
        let last = &summary["final"];
        eprintln!(
            "evaluation   {} episodes: success {:.1}%, mean return {:.3}",
            last["episodes"],
            100.0 * f(&last["success_rate"]),
            f(&last["mean_return"])
        );
        eprintln!(
            "checkpoint   {}",
            summary["checkpoint"].as_str().unwrap_or_default()
        );
        eprintln!(
            "curves       {} and {}",
            args.out.join("learning_curve.csv").display(),
            args.out.join("training.rrd").display()
        );
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)] // reason: one call site; the pieces are distinct settings
fn train_ppo(
    args: &TrainArgs,
    scene: &Arc<Scene>,
    settings: &TrainSettings,
    envs: usize,
    steps: u64,
    threads: usize,
    target: Option<f64>,
    scene_ref: SceneRef,
) -> anyhow::Result<serde_json::Value> {
    let mut env = SceneEnv::new(scene.clone(), envs, threads)?;
    let mut config = settings.ppo.clone();
    config.seed = args.seed;
    let mut ppo = Ppo::new(&env.observation, &env.action, config.clone())?;
    const COLUMNS: &[&str] = &[
        "env_steps",
        "wall_secs",
        "mean_return",
        "success_rate",
        "mean_episode_length",
        "policy_loss",
        "value_loss",
        "entropy",
        "approx_kl",
        "clip_fraction",
        "explained_variance",
        "learning_rate",
        "samples_per_sec",
        "eval_success_rate",
    ];
    let mut curve = Curve::create(&args.out, COLUMNS)?;
    let progress = progress_bar(
        steps,
        args.json,
        "{spinner} train [{bar:30}] {pos}/{len} steps {msg} (eta {eta})",
    );
    let started = Instant::now();
    let mut reached: Option<(u64, f64, f64)> = None;
    let mut curve_error: Option<anyhow::Error> = None;
    let mut remaining = steps;
    let mut done_steps = 0u64;
    let mut updates = 0u32;
    let mut last_eval: Option<f64> = None;
    let eval_episodes = settings.eval_episodes.max(1);
    let hidden = indicatif::ProgressBar::hidden();
    while remaining > 0 {
        let base = done_steps;
        let summary = ppo.train(&mut env, remaining, |p| {
            let at = base + p.env_steps;
            progress.set_position(at);
            progress.set_message(format!(
                "return {} success {} {:.0} samples/s",
                p.mean_return.map_or("-".into(), |r| format!("{r:.2}")),
                p.success_rate
                    .map_or("-".into(), |r| format!("{:.0}%", 100.0 * r)),
                p.samples_per_sec
            ));
            if let Err(e) = curve.row(
                at,
                &[
                    Some(at as f64),
                    Some(started.elapsed().as_secs_f64()),
                    p.mean_return.map(f64::from),
                    p.success_rate.map(f64::from),
                    p.mean_episode_length.map(f64::from),
                    Some(f64::from(p.policy_loss)),
                    Some(f64::from(p.value_loss)),
                    Some(f64::from(p.entropy)),
                    Some(f64::from(p.approx_kl)),
                    Some(f64::from(p.clip_fraction)),
                    Some(f64::from(p.explained_variance)),
                    Some(p.learning_rate),
                    Some(p.samples_per_sec),
                    None,
                ],
            ) {
                curve_error = Some(e);
                return Control::Stop;
            }
            // The stochastic rollout reached the target: stop to confirm it with the
            // deterministic policy.
            match target {
                Some(t) if p.success_rate.is_some_and(|r| f64::from(r) >= t) => Control::Stop,
                _ => Control::Continue,
            }
        })?;
        if let Some(e) = curve_error.take() {
            return Err(e);
        }
        updates += summary.updates;
        done_steps += summary.env_steps;
        remaining = remaining.saturating_sub(summary.env_steps);
        if summary.env_steps == 0 {
            break;
        }
        if let (Some(t), true) = (target, summary.stopped_early) {
            let (stats, _) = evaluate(
                scene,
                &ppo.policy()?,
                eval_episodes,
                args.seed.wrapping_add(1_000_000),
                threads,
                None,
                &hidden,
            )?;
            let rate = stats.success_rate();
            last_eval = Some(rate);
            curve.row(
                done_steps,
                &[
                    Some(done_steps as f64),
                    Some(started.elapsed().as_secs_f64()),
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    Some(rate),
                ],
            )?;
            if rate >= t {
                reached = Some((done_steps, started.elapsed().as_secs_f64(), rate));
                break;
            }
        }
    }
    progress.finish_and_clear();
    curve.finish()?;
    let train_secs = started.elapsed().as_secs_f64();
    let eval_bar = progress_bar(
        eval_episodes as u64,
        args.json,
        "{spinner} eval [{bar:30}] {pos}/{len} episodes",
    );
    let (stats, _) = evaluate(
        scene,
        &ppo.policy()?,
        eval_episodes,
        args.seed.wrapping_add(2_000_000),
        threads,
        None,
        &eval_bar,
    )?;
    eval_bar.finish_and_clear();
    let results = json!({
        "env_steps": done_steps,
        "updates": updates,
        "train_secs": train_secs,
        "target_success": target,
        "reached_target": reached.is_some(),
        "steps_to_target": reached.map(|r| r.0),
        "secs_to_target": reached.map(|r| r.1),
        "last_eval_success_rate": last_eval,
        "final": stats.json(),
        "ppo": config,
        "scene_path": scene_path(&args.scene),
        "overlays": args.overlay.iter().map(|p| scene_path(p)).collect::<Vec<_>>(),
    });
    let checkpoint = ppo.save(args.out.join("policy"), scene_ref, results.clone())?;
    let mut out = results;
    out["checkpoint"] = json!(checkpoint);
    out["curve_csv"] = json!(args.out.join("learning_curve.csv"));
    Ok(out)
}

/// The scene file as an absolute path, so `rivet deploy` finds it from the checkpoint alone.
fn scene_path(path: &std::path::Path) -> std::path::PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn train_behaviour_cloning(
    args: &TrainArgs,
    scene: &Arc<Scene>,
    settings: &TrainSettings,
    envs: usize,
    threads: usize,
    scene_ref: SceneRef,
) -> anyhow::Result<serde_json::Value> {
    let (observation, action) = task_spaces(scene)?;
    let (obs_dim, act_dim) = (observation.dim(), action.dim());
    let wanted = settings.demonstrations;
    anyhow::ensure!(wanted >= 1, "task.train.demonstrations must be >= 1");
    // Record demonstrations: every world runs the expert (with exploration noise on the
    // executed actions, clean labels); successful episodes are kept.
    let mut env = VecTaskEnv::new(scene.clone(), envs, threads)?;
    let n = envs;
    let mut obs = vec![0.0; n * obs_dim];
    let mut next = vec![0.0; n * obs_dim];
    let mut fin = vec![0.0; n * obs_dim];
    let mut actions = vec![0.0; n * act_dim];
    let (mut rew, mut term, mut trunc, mut succ) =
        (vec![0.0; n], vec![false; n], vec![false; n], vec![false; n]);
    let mut episode_obs: Vec<Vec<f32>> = vec![Vec::new(); n];
    let mut episode_act: Vec<Vec<f32>> = vec![Vec::new(); n];
    let mut demos = Demonstrations::new(obs_dim, act_dim);
    let (mut finished, mut kept) = (0usize, 0usize);
    let progress = progress_bar(
        wanted as u64,
        args.json,
        "{spinner} demonstrations [{bar:30}] {pos}/{len} episodes kept {msg}",
    );
    let demo_started = Instant::now();
    env.reset(args.seed, &mut obs);
    let mut demo_steps = 0u64;
    while kept < wanted {
        env.step(
            ActionSource::Expert {
                noise_std: settings.demonstration_noise,
            },
            &mut actions,
            StepBuffers {
                observations: &mut next,
                rewards: &mut rew,
                terminated: &mut term,
                truncated: &mut trunc,
                success: &mut succ,
                final_observations: &mut fin,
            },
        );
        demo_steps += n as u64;
        for i in 0..n {
            episode_obs[i].extend_from_slice(&obs[i * obs_dim..(i + 1) * obs_dim]);
            episode_act[i].extend_from_slice(&actions[i * act_dim..(i + 1) * act_dim]);
            if term[i] || trunc[i] {
                finished += 1;
                if succ[i] && kept < wanted {
                    demos.push_episode(&episode_obs[i], &episode_act[i])?;
                    kept += 1;
                    progress.set_position(kept as u64);
                }
                progress.set_message(format!("of {finished} finished"));
                episode_obs[i].clear();
                episode_act[i].clear();
            }
        }
        std::mem::swap(&mut obs, &mut next);
        anyhow::ensure!(
            finished < 20 * wanted + 100,
            "the expert succeeded in only {kept} of {finished} episodes; check the task"
        );
    }
    progress.finish_and_clear();
    let demo_secs = demo_started.elapsed().as_secs_f64();
    let demo_path = args.out.join("demonstrations.safetensors");
    demos.save_with_spaces(&demo_path, &observation, &action)?;

    let mut config = settings.bc.clone();
    config.seed = args.seed;
    let epochs = progress_bar(
        config.epochs as u64,
        args.json,
        "{spinner} behaviour cloning [{bar:30}] {pos}/{len} epochs {msg}",
    );
    const COLUMNS: &[&str] = &["epoch", "wall_secs", "train_loss", "val_loss"];
    let mut curve = Curve::create(&args.out, COLUMNS)?;
    let mut curve_error = None;
    let result = train_bc(&demos, &observation, &action, &config, |p| {
        epochs.set_position(p.epoch as u64);
        epochs.set_message(format!(
            "loss {:.4} val {}",
            p.train_loss,
            p.val_loss.map_or("-".into(), |v| format!("{v:.4}"))
        ));
        if let Err(e) = curve.row(
            p.epoch as u64,
            &[
                Some(p.epoch as f64),
                Some(p.wall_secs),
                Some(f64::from(p.train_loss)),
                p.val_loss.map(f64::from),
            ],
        ) {
            curve_error = Some(e);
        }
    })?;
    epochs.finish_and_clear();
    if let Some(e) = curve_error {
        return Err(e);
    }
    curve.finish()?;
    let policy = result.policy()?;
    let eval_bar = progress_bar(
        settings.eval_episodes as u64,
        args.json,
        "{spinner} eval [{bar:30}] {pos}/{len} episodes",
    );
    let (stats, _) = evaluate(
        scene,
        &policy,
        settings.eval_episodes,
        args.seed.wrapping_add(1_000_000),
        threads,
        None,
        &eval_bar,
    )?;
    eval_bar.finish_and_clear();
    let results = json!({
        "demonstrations": kept,
        "demonstration_episodes_run": finished,
        "demonstration_env_steps": demo_steps,
        "demonstration_secs": demo_secs,
        "train_loss": result.train_loss,
        "val_loss": result.val_loss,
        "final": stats.json(),
        "scene_path": scene_path(&args.scene),
        "overlays": args.overlay.iter().map(|p| scene_path(p)).collect::<Vec<_>>(),
    });
    let checkpoint = result.save(args.out.join("policy"), scene_ref, results.clone())?;
    let mut out = results;
    out["checkpoint"] = json!(checkpoint);
    out["env_steps"] = json!(demo_steps);
    out["curve_csv"] = json!(args.out.join("learning_curve.csv"));
    Ok(out)
}
