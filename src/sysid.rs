//! `rivet sysid`: fits physical parameters of a scene's robot to recorded episodes.
//!
//! Each candidate parameter set is a copy of the scene with the values applied (joint friction,
//! damping, armature, gains, command latency, payload mass, link mass scales); the training
//! episodes are replayed in it (`rivet_sim::replay`, as `rivet gap` does) and the cost is their
//! pooled joint-position RMSE. CMA-ES (the `cmaes` crate) searches the box of bounds, scaled to
//! the unit cube, evaluating each generation's candidates in parallel on rayon's threads. The
//! cost is flat in the command latency over stretches (commands act at whole steps; a stretch
//! is a step less the spread of the commands' phases on the step grid), so with `latency` among
//! the parameters a first search over all of them is followed by a fine scan of the latency one
//! and a half steps either side, and by searches over the others with the latency held in the
//! lowest stretch of each step-wide window (around the first search's latency and either side);
//! the best of all wins, and a scan of the latency around it writes the middle of its stretch. The
//! fitted values are written as a scene overlay, the latency as fitted (replays apply it
//! exactly; simulation rounds it to whole steps), plus the observation latency measured from the
//! training episodes. The gap before and after is measured by loading the scene with
//! and without that file, so the figures are what `--overlay` gives.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use rivet_hw_bridge::profile::RobotProfile;
use rivet_sim::Scene;
use rivet_sim::replay::{Episode, Replay, position_rmse};
use rivet_sim::robot::{DofId, LinkId};
use rivet_sim::scene::Payload;
use serde_json::json;

use crate::PackageArgs;
use crate::gap::{load_episode, scene_robot};

/// Arguments of `rivet sysid`.
#[derive(clap::Args, Debug)]
pub struct SysidArgs {
    /// The scene whose robot is identified.
    #[arg(long, value_name = "SCENE.toml")]
    pub scene: PathBuf,
    /// Training episodes (MCAP).
    #[arg(long, value_name = "EPISODE.mcap", num_args = 1.., required = true)]
    pub episodes: Vec<PathBuf>,
    /// Held-out episodes, scored before and after but not fitted.
    #[arg(long, value_name = "EPISODE.mcap", num_args = 1..)]
    pub holdout: Vec<PathBuf>,
    /// Parameters to fit, comma-separated: `friction.<joint>`, `damping.<joint>`,
    /// `armature.<joint>`, `kp.<joint>`, `kd.<joint>` (`<joint>` may be `*`: every commanded
    /// joint), `latency`, `payload_mass.<link>`, `mass_scale.<link>`; each may end in
    /// `=<lo>:<hi>` to set its bounds.
    #[arg(long, value_name = "LIST", value_delimiter = ',', required = true)]
    pub params: Vec<String>,
    /// Where to write the fitted values (a scene overlay).
    #[arg(long, value_name = "CALIBRATED.toml")]
    pub out: PathBuf,
    /// The robot profile (topics, command joints). Default: the episodes' metadata.
    #[arg(long, value_name = "PROFILE.toml")]
    pub robot: Option<PathBuf>,
    /// Scene overlay(s) to start from (applied before the fitted values).
    #[arg(long, value_name = "FILE")]
    pub overlay: Vec<PathBuf>,
    /// Objective evaluations (each replays every training episode); each search stops at the
    /// end of the generation that reaches its share, so a few more may run. With `latency`
    /// among the parameters, a quarter go to the search over all of them, 131 to two scans of
    /// the latency, and the rest to three searches with the latency held (in the lowest stretch
    /// around the first search's value and in those one physics step either side).
    #[arg(long, default_value_t = 900, value_name = "N")]
    pub max_evals: usize,
    /// Seed of the optimiser.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub seed: u64,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub packages: PackageArgs,
}

/// What a parameter changes.
#[derive(Clone, Debug, PartialEq)]
enum Target {
    Friction(usize),
    Damping(usize),
    Armature(usize),
    Kp(usize),
    Kd(usize),
    Latency,
    PayloadMass(LinkId),
    MassScale(LinkId),
}

/// A parameter to fit, with its bounds and its value in the starting scene.
#[derive(Clone, Debug)]
struct Param {
    name: String,
    target: Target,
    lo: f64,
    hi: f64,
    nominal: f64,
}

fn dof_index(scene: &Scene, robot: usize, joint: &str) -> Option<usize> {
    let instance = &scene.robots[robot];
    (0..instance.actuators.len()).find(|&d| instance.model.dof_joint(DofId(d as u32)).name == joint)
}

/// Parses `--params` against the scene (with the robot's gains as built).
fn parse_params(
    specs: &[String],
    scene: &Scene,
    robot: usize,
    commanded: &[String],
) -> anyhow::Result<Vec<Param>> {
    let instance = &scene.robots[robot];
    let world = rivet_sim::World::new(
        Arc::new(scene.clone()),
        rivet_sim::WorldOptions {
            seed: 0,
            threads: Some(1),
        },
    )?;
    let gains = (&world.robots[robot].kp, &world.robots[robot].kd);
    let mut out: Vec<Param> = Vec::new();
    for spec in specs.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let (name, bounds) = match spec.split_once('=') {
            Some((n, b)) => {
                let (lo, hi) = b
                    .split_once(':')
                    .with_context(|| format!("--params `{spec}`: bounds are `=<lo>:<hi>`"))?;
                let parse = |v: &str| -> anyhow::Result<f64> {
                    let x: f64 = v
                        .trim()
                        .parse()
                        .with_context(|| format!("--params `{spec}`: `{v}` is not a number"))?;
                    anyhow::ensure!(x.is_finite(), "--params `{spec}`: bounds must be finite");
                    Ok(x)
                };
                (n, Some((parse(lo)?, parse(hi)?)))
            }
            None => (spec, None),
        };
        let (kind, arg) = name.split_once('.').unwrap_or((name, ""));
        let joints: Vec<String> = if arg == "*" {
            commanded.to_vec()
        } else {
            vec![arg.to_owned()]
        };
        let link = |arg: &str| -> anyhow::Result<LinkId> {
            instance
                .model
                .links
                .iter()
                .position(|l| l.name == arg)
                .map(|i| LinkId(i as u32))
                .with_context(|| {
                    format!(
                        "--params `{spec}`: robot `{}` has no link `{arg}`",
                        instance.name
                    )
                })
        };
        let mut push = |name: String, target: Target, nominal: f64, default: (f64, f64)| {
            let (lo, hi) = bounds.unwrap_or(default);
            out.push(Param {
                name,
                target,
                lo,
                hi,
                nominal,
            });
        };
        match kind {
            "friction" | "damping" | "armature" | "kp" | "kd" => {
                for joint in &joints {
                    let d = dof_index(scene, robot, joint).with_context(|| {
                        format!(
                            "--params `{spec}`: robot `{}` has no actuated joint `{joint}`",
                            instance.name
                        )
                    })?;
                    let a = &instance.actuators[d];
                    let (target, nominal, default) = match kind {
                        "friction" => (
                            Target::Friction(d),
                            a.friction,
                            (0.0, (4.0 * a.friction).max(2.0)),
                        ),
                        "damping" => (
                            Target::Damping(d),
                            a.damping,
                            (0.0, (4.0 * a.damping).max(5.0)),
                        ),
                        "armature" => (
                            Target::Armature(d),
                            a.armature,
                            (0.0, (4.0 * a.armature).max(0.5)),
                        ),
                        "kp" => (
                            Target::Kp(d),
                            gains.0[d],
                            (0.25 * gains.0[d], 4.0 * gains.0[d]),
                        ),
                        _ => (
                            Target::Kd(d),
                            gains.1[d],
                            (0.25 * gains.1[d], 4.0 * gains.1[d]),
                        ),
                    };
                    push(format!("{kind}.{joint}"), target, nominal, default);
                }
            }
            "latency" => {
                anyhow::ensure!(arg.is_empty(), "--params `{spec}`: `latency` takes no name");
                let nominal = instance.command_latency_secs;
                push("latency".into(), Target::Latency, nominal, (0.0, 0.1));
            }
            "payload_mass" => {
                let l = link(arg)?;
                let nominal = instance
                    .payload
                    .as_ref()
                    .filter(|p| p.link == l)
                    .map_or(0.0, |p| p.mass_kg);
                push(
                    format!("payload_mass.{arg}"),
                    Target::PayloadMass(l),
                    nominal,
                    (0.0, 5.0),
                );
            }
            "mass_scale" => {
                let l = link(arg)?;
                let nominal = instance
                    .link_mass_scale
                    .iter()
                    .find(|(k, _)| *k == l)
                    .map_or(1.0, |(_, s)| *s);
                push(
                    format!("mass_scale.{arg}"),
                    Target::MassScale(l),
                    nominal,
                    (0.5, 2.0),
                );
            }
            other => anyhow::bail!(
                "--params `{spec}`: unknown parameter `{other}` (friction, damping, armature, kp, \
                 kd, latency, payload_mass, mass_scale)"
            ),
        }
    }
    anyhow::ensure!(!out.is_empty(), "--params: nothing to fit");
    for p in &out {
        anyhow::ensure!(
            p.lo < p.hi
                && (p.target == Target::Latency
                    || p.lo >= 0.0
                    || matches!(p.target, Target::Kp(_) | Target::Kd(_))),
            "--params {}: bounds [{}, {}] must have lo < hi (and lo >= 0)",
            p.name,
            p.lo,
            p.hi
        );
        anyhow::ensure!(
            !matches!(p.target, Target::MassScale(_)) || p.lo > 0.0,
            "--params {}: a mass scale must stay > 0",
            p.name
        );
    }
    for (i, p) in out.iter().enumerate() {
        anyhow::ensure!(
            !out[..i].iter().any(|q| q.target == p.target),
            "--params: {} is listed twice",
            p.name
        );
    }
    let payload_links: Vec<&LinkId> = out
        .iter()
        .filter_map(|p| match &p.target {
            Target::PayloadMass(l) => Some(l),
            _ => None,
        })
        .collect();
    anyhow::ensure!(
        payload_links.len() <= 1,
        "--params: a robot carries one payload; fit payload_mass on one link"
    );
    Ok(out)
}

/// The scene with `values` applied to robot `robot`.
fn apply(base: &Scene, robot: usize, params: &[Param], values: &[f64]) -> Scene {
    let mut scene = base.clone();
    let r = &mut scene.robots[robot];
    for (p, &v) in params.iter().zip(values) {
        match &p.target {
            Target::Friction(d) => r.actuators[*d].friction = v,
            Target::Damping(d) => r.actuators[*d].damping = v,
            Target::Armature(d) => r.actuators[*d].armature = v,
            Target::Kp(d) => r.actuators[*d].kp = Some(v),
            Target::Kd(d) => r.actuators[*d].kd = Some(v),
            Target::Latency => {
                r.command_latency_steps = (v / base.world.dt_secs).round().max(0.0) as usize;
                r.command_latency_secs = v;
            }
            Target::PayloadMass(l) => {
                let (offset, radius_m) = match &r.payload {
                    Some(p) if p.link == *l => (p.offset, p.radius_m),
                    _ => ([0.0; 3], 0.02),
                };
                r.payload = Some(Payload {
                    link: *l,
                    mass_kg: v,
                    offset,
                    radius_m,
                });
            }
            Target::MassScale(l) => {
                r.link_mass_scale.retain(|(k, _)| k != l);
                r.link_mass_scale.push((*l, v));
            }
        }
    }
    scene
}

/// The outcome of one CMA-ES search.
#[derive(Clone, Debug)]
struct Search {
    /// Best point of the unit cube (every parameter) and its cost.
    point: Vec<f64>,
    value: f64,
    evaluations: usize,
    generations: usize,
    termination: String,
}

impl Search {
    fn json(&self, over: &str) -> serde_json::Value {
        json!({
            "over": over,
            "evaluations": self.evaluations,
            "generations": self.generations,
            "best_cost": self.value,
            "termination": self.termination,
        })
    }
}

/// CMA-ES over the coordinates `free` of the unit cube (the others held at `x0`'s), from `x0`
/// with step size `sigma`, for at most `budget` evaluations; candidates of a generation are
/// evaluated in parallel. `evals` counts evaluations across searches (the progress bar's
/// position).
#[allow(clippy::too_many_arguments)]
fn search(
    cost: &(dyn Fn(&[f64]) -> f64 + Sync),
    x0: &[f64],
    free: &[usize],
    sigma: f64,
    budget: usize,
    seed: u64,
    bar: &indicatif::ProgressBar,
    evals: &mut usize,
) -> anyhow::Result<Search> {
    let point = |y: &[f64]| {
        let mut x = x0.to_vec();
        for (&i, &v) in free.iter().zip(y) {
            x[i] = v;
        }
        x
    };
    let objective = |y: &cmaes::DVector<f64>| cost(&point(y.as_slice()));
    let y0: Vec<f64> = free.iter().map(|&i| x0[i]).collect();
    let mut state = cmaes::CMAESOptions::new(y0, sigma)
        .max_function_evals(budget.max(1))
        .tol_x(1e-4)
        .tol_fun(1e-12)
        .seed(seed)
        .build(objective)
        .map_err(|e| anyhow::anyhow!("CMA-ES options: {e:?}"))?;
    let before = *evals;
    let termination = loop {
        let done = state.next_parallel();
        *evals = before + state.function_evals();
        bar.set_position(*evals as u64);
        if let Some(best) = state.overall_best_individual() {
            bar.set_message(format!("{:.6}", best.value));
        }
        if let Some(t) = done {
            break t;
        }
    };
    let best = termination
        .overall_best
        .as_ref()
        .context("the optimiser found no valid point")?;
    Ok(Search {
        point: point(best.point.as_slice()),
        value: best.value,
        evaluations: state.function_evals(),
        generations: state.generation(),
        termination: format!("{:?}", termination.reasons),
    })
}

/// Points either side of the first search's latency in the first scan (1/32 step apart: 1.5
/// steps) and of the best's in the last (1/16 step apart: one step).
const FIRST_SCAN_HALF: i32 = 48;
const LAST_SCAN_HALF: i32 = 16;

/// The cost at `x` with its latency coordinate `li` moved by `j * fraction` physics steps
/// (`step`, in unit-cube units) for `j` in `-half..=half`, inside the cube: `(latency, cost)`
/// in increasing latency.
fn scan_latency(
    cost: &(dyn Fn(&[f64]) -> f64 + Sync),
    x: &[f64],
    li: usize,
    step: f64,
    half: i32,
    fraction: f64,
) -> Vec<(f64, f64)> {
    use rayon::prelude::*;
    let points: Vec<f64> = (-half..=half)
        .map(|j| x[li] + f64::from(j) * fraction * step)
        .filter(|u| (0.0..=1.0).contains(u))
        .collect();
    points
        .par_iter()
        .map(|&u| {
            let mut y = x.to_vec();
            y[li] = u;
            (u, cost(&y))
        })
        .collect()
}

/// Where to hold the latency, from a scan around `centre` (`step`: one physics step): in each
/// step-wide window (around `centre`, and either side), the middle of the stretch of the
/// window's lowest cost, once each. The replay is deterministic, so the same assignment of
/// commands to steps gives the same cost to the last bit: a stretch is a run of equal costs.
fn held_latencies(scan: &[(f64, f64)], centre: f64, step: f64) -> Vec<f64> {
    let mut held = Vec::new();
    for window in [-1.5001..-0.5, -0.5..0.5, 0.5..1.5001] {
        let inside = |u: f64| window.contains(&((u - centre) / step));
        let Some(at) = (0..scan.len())
            .filter(|&i| inside(scan[i].0))
            .min_by(|&a, &b| scan[a].1.total_cmp(&scan[b].1))
        else {
            continue;
        };
        let (a, b) = stretch(scan, at, |c| c == scan[at].1);
        let middle = 0.5 * (scan[a].0 + scan[b].0);
        // A stretch wider than a window is held once.
        if !held.contains(&middle) {
            held.push(middle);
        }
    }
    held
}

/// The run of scan points around `at` whose costs pass `flat`: its first and last index.
fn stretch(scan: &[(f64, f64)], at: usize, flat: impl Fn(f64) -> bool) -> (usize, usize) {
    let first = (0..=at)
        .rev()
        .take_while(|&i| flat(scan[i].1))
        .last()
        .unwrap_or(at);
    let last = (at..scan.len())
        .take_while(|&i| flat(scan[i].1))
        .last()
        .unwrap_or(at);
    (first, last)
}

/// Writes the overlay (through a `.partial` file, then renamed).
fn write_overlay(
    path: &Path,
    base: &Scene,
    robot: usize,
    params: &[Param],
    values: &[f64],
    observation_latency_secs: Option<f64>,
    header: &str,
) -> anyhow::Result<()> {
    let instance = &base.robots[robot];
    let mut robot_table = toml::Table::new();
    if let Some(v) = observation_latency_secs {
        robot_table.insert("observation_latency_secs".into(), toml::Value::Float(v));
    }
    let mut joints = toml::Table::new();
    let mut scales = toml::Table::new();
    for (p, &v) in params.iter().zip(values) {
        let joint = |d: usize| instance.model.dof_joint(DofId(d as u32)).name.clone();
        let mut set_joint = |d: usize, key: &str| {
            let entry = joints
                .entry(joint(d))
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(t) = entry {
                t.insert(key.to_owned(), toml::Value::Float(v));
            }
        };
        match &p.target {
            Target::Friction(d) => set_joint(*d, "friction"),
            Target::Damping(d) => set_joint(*d, "damping"),
            Target::Armature(d) => set_joint(*d, "armature"),
            Target::Kp(d) => set_joint(*d, "kp"),
            Target::Kd(d) => set_joint(*d, "kd"),
            Target::Latency => {
                robot_table.insert("command_latency_secs".into(), toml::Value::Float(v));
            }
            Target::PayloadMass(l) => {
                let (offset, radius) = match &instance.payload {
                    Some(p) if p.link == *l => (p.offset, p.radius_m),
                    _ => ([0.0; 3], 0.02),
                };
                let mut t = toml::Table::new();
                t.insert(
                    "link".into(),
                    toml::Value::String(instance.model.links[l.0 as usize].name.clone()),
                );
                t.insert("mass".into(), toml::Value::Float(v));
                t.insert(
                    "offset".into(),
                    toml::Value::Array(offset.iter().map(|x| toml::Value::Float(*x)).collect()),
                );
                t.insert("radius".into(), toml::Value::Float(radius));
                robot_table.insert("payload".into(), toml::Value::Table(t));
            }
            Target::MassScale(l) => {
                scales.insert(
                    instance.model.links[l.0 as usize].name.clone(),
                    toml::Value::Float(v),
                );
            }
        }
    }
    if !scales.is_empty() {
        robot_table.insert("link_mass_scale".into(), toml::Value::Table(scales));
    }
    if !joints.is_empty() {
        robot_table.insert("joints".into(), toml::Value::Table(joints));
    }
    let mut robots = toml::Table::new();
    robots.insert(instance.name.clone(), toml::Value::Table(robot_table));
    let mut root = toml::Table::new();
    root.insert("robot".into(), toml::Value::Table(robots));
    let text = format!("{header}{}", toml::to_string(&root)?);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let partial = path.with_extension("toml.partial");
    std::fs::write(&partial, text)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Replays and scores `episodes` in `scene`: (path, position RMSE, gap score) each.
fn score(
    scene: &Arc<Scene>,
    episodes: &[(PathBuf, Episode, Replay)],
) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    for (path, episode, replay) in episodes {
        let sim = replay.run(scene.clone(), episode)?;
        let gap = rivet_sim::replay::gap(scene, replay, episode, &sim, None)
            .map_err(|e| anyhow::anyhow!(e))?;
        out.push(json!({
            "episode": path,
            "position_rmse": gap.position_rmse,
            "score": gap.score,
            "tool_position_rmse": gap.tool_position_rmse,
            "time_lag_secs": gap.time_lag_secs,
        }));
    }
    Ok(out)
}

fn pooled(scores: &[serde_json::Value]) -> f64 {
    let v: Vec<f64> = scores
        .iter()
        .filter_map(|s| s["position_rmse"].as_f64())
        .collect();
    (v.iter().map(|x| x * x).sum::<f64>() / v.len().max(1) as f64).sqrt()
}

/// Runs `rivet sysid`.
pub fn sysid(args: SysidArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let packages = args.packages.resolve();
    let base = Scene::load_with_overlays(&args.scene, &args.overlay, &packages)
        .with_context(|| format!("cannot load {}", args.scene.display()))?;
    let robot = scene_robot(&base)?;
    let profile = match &args.robot {
        Some(p) => Some(RobotProfile::load(p)?),
        None => None,
    };
    let mut ages: Vec<Option<f64>> = Vec::new();
    let mut load = |paths: &[PathBuf]| -> anyhow::Result<Vec<(PathBuf, Episode, Replay)>> {
        paths
            .iter()
            .map(|p| {
                let (episode, info) = load_episode(p, &base, robot, profile.as_ref())?;
                ages.push(info.observation_age_secs.map(|a| a.median));
                let replay = Replay::new(&base, robot, &episode)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
                Ok((p.clone(), episode, replay))
            })
            .collect()
    };
    let training = load(&args.episodes)?;
    let holdout = load(&args.holdout)?;
    // Measured, not fitted (the replay places states at their stamps, so the gap does not
    // depend on it): the median over the training episodes of how old the state each command
    // acted on was. Written when every training episode has stamped states.
    let mut training_ages: Vec<f64> = ages[..training.len()].iter().flatten().copied().collect();
    training_ages.sort_by(f64::total_cmp);
    let observation_latency =
        (training_ages.len() == training.len()).then(|| training_ages[training_ages.len() / 2]);
    let commanded = training[0].1.command_joints.clone();
    let params = parse_params(&args.params, &base, robot, &commanded)?;
    anyhow::ensure!(args.max_evals >= 10, "--max-evals must be at least 10");

    // The cost: pooled joint-position RMSE over the training episodes, at a point of the unit
    // cube (clamped; the distance outside adds a penalty so the search comes back).
    let to_values = |x: &[f64]| -> (Vec<f64>, f64) {
        let mut outside = 0.0;
        let values = params
            .iter()
            .zip(x)
            .map(|(p, &u)| {
                let c = u.clamp(0.0, 1.0);
                outside += (u - c) * (u - c);
                p.lo + c * (p.hi - p.lo)
            })
            .collect();
        (values, outside)
    };
    let cost = |x: &[f64]| -> f64 {
        let (values, outside) = to_values(x);
        let scene = Arc::new(apply(&base, robot, &params, &values));
        let mut sum = 0.0;
        for (_, episode, replay) in &training {
            let rmse = match replay.run(scene.clone(), episode) {
                Ok(sim) => position_rmse(replay, episode, &sim, 10.0),
                Err(_) => 10.0,
            };
            sum += rmse * rmse;
        }
        (sum / training.len() as f64).sqrt() * (1.0 + outside) + outside
    };
    let start: Vec<f64> = params
        .iter()
        .map(|p| ((p.nominal - p.lo) / (p.hi - p.lo)).clamp(0.05, 0.95))
        .collect();
    let bar = if args.json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(args.max_evals as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "sysid {bar:30} {pos}/{len} evals  best rmse {msg}  ({elapsed})",
        )
        .expect("a valid template"),
    );
    let initial_cost = cost(&start);
    let all: Vec<usize> = (0..params.len()).collect();
    let latency = params.iter().position(|p| p.target == Target::Latency);
    let others: Vec<usize> = all
        .iter()
        .copied()
        .filter(|&i| Some(i) != latency)
        .collect();
    let profiled = latency.is_some() && !others.is_empty();
    // Search 1: every parameter, from the nominal values.
    let first_budget = if profiled {
        args.max_evals / 4
    } else {
        args.max_evals
    };
    let mut evals = 0;
    let first = search(
        &cost,
        &start,
        &all,
        0.25,
        first_budget,
        args.seed,
        &bar,
        &mut evals,
    )?;
    let mut best = first.clone();
    let mut searches = vec![first.json("all parameters")];
    if let (Some(li), true) = (latency, profiled) {
        // The replay acts on each command at the first physics step after it is due, so the
        // replay, and the cost, is the same for every latency that puts each command on the
        // same step: flat over stretches whose width is the physics step less the spread of
        // the commands' phases on the step grid (a controller on a busy machine spreads them:
        // stretches of 0.4 ms for a 2 ms step were seen). A search over all parameters lets
        // the others make up for a latency a stretch or a step off (seen: friction +20% and
        // damping +29% for 2 ms too little; in CI, +11% and +12% with the latency held at
        // whole steps from search 1's, beside a narrow stretch). So scan the latency one and a
        // half steps either side of search 1's, finely enough to land in narrow stretches, take
        // the lowest stretch in each of the three windows a step wide (the one around search
        // 1's latency and one either side), and search the others with the latency held in the
        // middle of each.
        let p = &params[li];
        let step = base.world.dt_secs / (p.hi - p.lo);
        let centre = first.point[li];
        let scan = scan_latency(
            &cost,
            &first.point,
            li,
            step,
            FIRST_SCAN_HALF,
            1.5 / f64::from(FIRST_SCAN_HALF),
        );
        evals += scan.len();
        bar.set_position(evals as u64);
        let candidates = held_latencies(&scan, centre, step);
        searches.push(json!({
            "over": "latency scan",
            "evaluations": scan.len(),
            "best_cost": scan.iter().map(|s| s.1).fold(f64::INFINITY, f64::min),
            "held_at": candidates
                .iter()
                .map(|u| p.lo + u * (p.hi - p.lo))
                .collect::<Vec<_>>(),
        }));
        // What the last scan needs: its points and the middle of the stretch.
        let reserve = 2 * LAST_SCAN_HALF as usize + 2;
        let each = args.max_evals.saturating_sub(evals + reserve) / candidates.len().max(1);
        for (k, &u) in candidates.iter().enumerate() {
            let mut x0 = first.point.clone();
            x0[li] = u;
            let s = search(
                &cost,
                &x0,
                &others,
                0.1,
                each,
                args.seed + 1 + k as u64,
                &bar,
                &mut evals,
            )?;
            searches.push(s.json("latency held"));
            if s.value < best.value {
                best = s;
            }
        }
        // The stretch the best lies in, measured again with its parameters: write its middle,
        // so that an episode whose commands fall a little later or earlier on the step grid
        // (another run's transport delay) lands in it too.
        let scan = scan_latency(
            &cost,
            &best.point,
            li,
            step,
            LAST_SCAN_HALF,
            1.0 / f64::from(LAST_SCAN_HALF),
        );
        evals += scan.len();
        bar.set_position(evals as u64);
        let lowest = scan.iter().map(|s| s.1).fold(f64::INFINITY, f64::min);
        let at = scan.iter().position(|s| s.1 == lowest).expect("a lowest");
        let (a, b) = stretch(&scan, at, |c| c <= lowest * 1.01 + 1e-12);
        let mut x = best.point.clone();
        x[li] = 0.5 * (scan[a].0 + scan[b].0);
        let value = cost(&x);
        evals += 1;
        if value <= lowest * 1.01 + 1e-12 {
            best.point = x;
            best.value = value;
        }
        searches.push(json!({
            "over": "latency scan",
            "evaluations": scan.len() + 1,
            "best_cost": best.value,
            "latency_written": p.lo + best.point[li] * (p.hi - p.lo),
        }));
    }
    bar.finish_and_clear();
    let (fitted, _) = to_values(&best.point);
    let fit_secs = started.elapsed().as_secs_f64();

    let names: Vec<String> = args
        .episodes
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let header = format!(
        "# Fitted by `rivet sysid` to {} (parameters: {}{}).\n# Use with --overlay; the scene: {}\n\n",
        names.join(", "),
        params
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        if observation_latency.is_some() {
            "; observation_latency_secs is measured: the median age of the state each command \
             acted on"
        } else {
            ""
        },
        args.scene.display()
    );
    write_overlay(
        &args.out,
        &base,
        robot,
        &params,
        &fitted,
        observation_latency,
        &header,
    )?;

    // Before and after, measured from the files.
    let before_scene = Arc::new(base.clone());
    let mut overlays = args.overlay.clone();
    overlays.push(args.out.clone());
    let after_scene = Arc::new(
        Scene::load_with_overlays(&args.scene, &overlays, &packages)
            .with_context(|| format!("cannot load the written overlay {}", args.out.display()))?,
    );
    let train_before = score(&before_scene, &training)?;
    let train_after = score(&after_scene, &training)?;
    let hold_before = score(&before_scene, &holdout)?;
    let hold_after = score(&after_scene, &holdout)?;
    let reduction = |b: f64, a: f64| if b > 0.0 { 1.0 - a / b } else { 0.0 };
    let (tb, ta) = (pooled(&train_before), pooled(&train_after));
    let (hb, ha) = (pooled(&hold_before), pooled(&hold_after));
    let params_json: Vec<serde_json::Value> = params
        .iter()
        .zip(&fitted)
        .map(|(p, &v)| {
            json!({
                "name": p.name,
                "nominal": p.nominal,
                "fitted": v,
                "lo": p.lo,
                "hi": p.hi,
            })
        })
        .collect();
    let summary = json!({
        "scene": args.scene,
        "robot": base.robots[robot].name,
        "out": args.out,
        "params": params_json,
        "observation_latency": {
            "written_secs": observation_latency,
            "median_age_per_training_episode_secs": ages[..training.len()],
        },
        "optimizer": {
            "algorithm": "CMA-ES (cmaes 0.2)",
            "evaluations": evals,
            "searches": searches,
            "initial_cost": initial_cost,
            "best_cost": best.value,
            "threads": rayon::current_num_threads(),
        },
        "training": {
            "before": train_before, "after": train_after,
            "position_rmse_before": tb, "position_rmse_after": ta,
            "reduction": reduction(tb, ta),
        },
        "holdout": {
            "before": hold_before, "after": hold_after,
            "position_rmse_before": hb, "position_rmse_after": ha,
            "reduction": reduction(hb, ha),
        },
        "fit_secs": fit_secs,
        "wall_secs": started.elapsed().as_secs_f64(),
    });
    if args.json {
        crate::print_json(&summary)?;
    } else {
        println!(
            "{:<28} {:>12} {:>12} {:>20}",
            "parameter", "nominal", "fitted", "bounds"
        );
        for p in &params_json {
            println!(
                "{:<28} {:>12.5} {:>12.5} {:>20}",
                p["name"].as_str().unwrap_or(""),
                p["nominal"].as_f64().unwrap_or(f64::NAN),
                p["fitted"].as_f64().unwrap_or(f64::NAN),
                format!(
                    "[{}, {}]",
                    p["lo"].as_f64().unwrap_or(f64::NAN),
                    p["hi"].as_f64().unwrap_or(f64::NAN)
                )
            );
        }
        if let Some(v) = observation_latency {
            println!("observation latency (measured, median state age at each command): {v:.4} s");
        }
        println!(
            "training joint-position rmse {tb:.5} -> {ta:.5} ({:.0}% lower)",
            100.0 * reduction(tb, ta)
        );
        if !holdout.is_empty() {
            println!(
                "held-out joint-position rmse {hb:.5} -> {ha:.5} ({:.0}% lower)",
                100.0 * reduction(hb, ha)
            );
        }
        println!(
            "{} evaluations in {:.1} s; wrote {}",
            evals,
            fit_secs,
            args.out.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scan like `rivet sysid`'s first: 1/32 step apart, 1.5 steps either side of `centre`.
    fn scan(centre: f64, step: f64, cost: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
        (-FIRST_SCAN_HALF..=FIRST_SCAN_HALF)
            .map(|j| {
                let offset = f64::from(j) * 1.5 / f64::from(FIRST_SCAN_HALF);
                (centre + offset * step, cost(offset))
            })
            .collect()
    }

    #[test]
    fn the_latency_is_held_in_the_lowest_stretch_of_each_window_even_a_narrow_one() {
        let (centre, step) = (0.3, 0.02);
        // Offsets in steps: a stretch 0.16 step wide beside the centre (the robot's, under a
        // controller whose commands spread on the grid), a wider one a step below, none lower
        // than the rest a step above.
        let cost = |o: f64| match o {
            o if (0.25..0.41).contains(&o) => 1.0,
            o if (-1.0..-0.74).contains(&o) => 2.0,
            o if o < -0.5 => 4.0,
            o if o < 0.5 => 3.0,
            _ => 5.0,
        };
        let held = held_latencies(&scan(centre, step, cost), centre, step);
        let offsets: Vec<f64> = held.iter().map(|u| (u - centre) / step).collect();
        let expect = [-0.875, 0.328125, 1.0];
        assert_eq!(offsets.len(), 3, "{offsets:?}");
        for (o, e) in offsets.iter().zip(expect) {
            assert!((o - e).abs() < 1e-9, "{offsets:?}, expected {expect:?}");
        }
    }

    #[test]
    fn a_stretch_across_windows_is_held_once() {
        let (centre, step) = (0.5, 0.02);
        let held = held_latencies(
            &scan(centre, step, |o| if o < 0.8 { 1.0 } else { 2.0 }),
            centre,
            step,
        );
        // One stretch from -1.5 to 0.78125 steps: its middle, for the two lower windows; the
        // upper window's lowest is the same stretch.
        assert_eq!(held.len(), 1, "{held:?}");
        assert!(
            ((held[0] - centre) / step - (-1.5 + 0.78125) / 2.0).abs() < 1e-9,
            "{held:?}"
        );
    }
}
