//! `rivet deploy`: run a trained policy or a controller on a robot over zenoh (ROS 2's rmw_zenoh
//! wire format), through the safety filter, recording the episode.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rivet_control::{CommandMode, JointStateView};
use rivet_hw_bridge::deploy::{self, CommandSource, DeployConfig, DeployReport, Stopper, Trigger};
use rivet_hw_bridge::node::{NodeSettings, RosNode};
use rivet_hw_bridge::profile::RobotProfile;
use rivet_policies::{LoadedPolicy, Policy};
use rivet_sim::Scene;
use rivet_sim::env::agent::PolicyAgent;
use serde_json::json;

use crate::PackageArgs;
use crate::episode::EpisodeRecorder;

/// Arguments of `rivet deploy`.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["policy", "controller"])))]
pub struct DeployArgs {
    /// The robot profile (joints, topics, limits, safety, session).
    #[arg(long, value_name = "PROFILE.toml")]
    pub robot: PathBuf,
    /// A checkpoint from `rivet train`.
    #[arg(long, value_name = "CHECKPOINT")]
    pub policy: Option<PathBuf>,
    /// A controller: `hold` (hold the start position), or
    /// `sine:amplitude=<A>,period=<T>[,joints=<a+b>]` (each command joint follows
    /// start + A·sin(2πt/T + phase), phases spread over the joints, the amplitude ramping in
    /// over the first period; efforts and velocities oscillate around 0).
    #[arg(long, value_name = "SPEC")]
    pub controller: Option<String>,
    /// The scene the policy was trained in. Default: the one the checkpoint names.
    #[arg(long, value_name = "SCENE.toml")]
    pub scene: Option<PathBuf>,
    /// Scene overlay(s) the policy was trained with.
    #[arg(long, value_name = "FILE")]
    pub overlay: Vec<PathBuf>,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Record the episode to this MCAP file (and an .rrd beside it). Default:
    /// runs/deploy-<unix time>.mcap.
    #[arg(long, value_name = "EPISODE.mcap")]
    pub record: Option<PathBuf>,
    /// Compute and print the commands, publish nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Cycle trigger: a fixed-rate `clock` (default) or each new `state`.
    #[arg(long, default_value = "clock", value_name = "clock|state")]
    pub trigger: String,
    /// Target position (world frame, m) for tasks with a target: `x,y,z`. Default: the one the
    /// task draws for --seed.
    #[arg(long, value_name = "X,Y,Z")]
    pub target: Option<String>,
    /// Seed (the task's target draw).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub seed: u64,
    /// Endpoint to connect to (repeatable), replacing the profile's.
    #[arg(long, value_name = "ENDPOINT")]
    pub connect: Vec<String>,
    /// Seconds to wait for the robot's first state.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub startup_timeout: f64,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub packages: PackageArgs,
}

/// A trained policy acting through the task's observation and action mapping.
struct PolicySource {
    policy: LoadedPolicy,
    agent: PolicyAgent,
    /// Per agent DoF, the profile tree's DoF; `None` for a DoF the robot does not report and
    /// the policy does not need (it stays at the scene's initial position).
    map: Vec<Option<usize>>,
    q: Vec<f64>,
    qd: Vec<f64>,
    observation: Vec<f32>,
    action: Vec<f32>,
    /// Deploy cycles per policy step, and the count within the current step.
    decimation: u32,
    phase: u32,
    /// The command of the current policy step, per agent DoF.
    held: Vec<f64>,
}

impl PolicySource {
    fn gather(&mut self, state: &JointStateView<'_>) {
        for (a, p) in self.map.iter().enumerate() {
            if let Some(p) = *p {
                self.q[a] = state.position[p];
                self.qd[a] = state.velocity[p];
            }
        }
    }
}

impl CommandSource for PolicySource {
    fn start(&mut self, state: &JointStateView<'_>) -> Result<(), String> {
        self.gather(state);
        self.agent.start(&self.q, &self.qd);
        self.phase = 0;
        Ok(())
    }

    fn command(&mut self, _time_secs: f64, state: &JointStateView<'_>, command: &mut [f64]) {
        if self.phase == 0 {
            self.gather(state);
            self.agent.observe(&self.q, &self.qd, &mut self.observation);
            self.policy.act(&self.observation, &mut self.action);
            self.held.copy_from_slice(self.agent.act(&self.action));
        }
        self.phase = (self.phase + 1) % self.decimation;
        for (a, p) in self.map.iter().enumerate() {
            if let Some(p) = *p {
                command[p] = self.held[a];
            }
        }
    }
}

/// `hold` and `sine` controllers.
struct ScriptedSource {
    mode: CommandMode,
    /// (tree DoF, amplitude, phase) per oscillating joint.
    joints: Vec<(usize, f64, f64)>,
    period: f64,
    start: Vec<f64>,
}

impl CommandSource for ScriptedSource {
    fn start(&mut self, state: &JointStateView<'_>) -> Result<(), String> {
        self.start.clear();
        self.start.extend_from_slice(state.position);
        Ok(())
    }

    fn command(&mut self, time_secs: f64, _state: &JointStateView<'_>, command: &mut [f64]) {
        for (d, c) in command.iter_mut().enumerate() {
            *c = match self.mode {
                CommandMode::Position => self.start[d],
                _ => 0.0,
            };
        }
        // The amplitude ramps in over the first period (smoothstep), so the command starts at
        // the measured position with zero velocity instead of jumping by A·sin(phase).
        let s = (time_secs / self.period).clamp(0.0, 1.0);
        let envelope = s * s * (3.0 - 2.0 * s);
        for &(d, amplitude, phase) in &self.joints {
            command[d] += envelope
                * amplitude
                * (std::f64::consts::TAU * time_secs / self.period + phase).sin();
        }
    }
}

fn parse_controller(spec: &str, profile: &RobotProfile) -> anyhow::Result<ScriptedSource> {
    let mode = profile.command.kind.mode();
    let (name, params) = spec.split_once(':').unwrap_or((spec, ""));
    match name {
        "hold" => {
            anyhow::ensure!(params.is_empty(), "--controller hold takes no parameters");
            Ok(ScriptedSource {
                mode,
                joints: Vec::new(),
                period: 1.0,
                start: Vec::new(),
            })
        }
        "sine" => {
            let (mut amplitude, mut period, mut joints) = (None, None, None::<Vec<String>>);
            for part in params.split(',').filter(|p| !p.is_empty()) {
                let (key, value) = part
                    .split_once('=')
                    .with_context(|| format!("--controller sine: `{part}` is not key=value"))?;
                let number = || -> anyhow::Result<f64> {
                    let v: f64 = value.parse().with_context(|| {
                        format!("--controller sine: {key} = `{value}` is not a number")
                    })?;
                    anyhow::ensure!(v.is_finite(), "--controller sine: {key} must be finite");
                    Ok(v)
                };
                match key {
                    "amplitude" => amplitude = Some(number()?),
                    "period" => period = Some(number()?),
                    "joints" => joints = Some(value.split('+').map(str::to_owned).collect()),
                    other => anyhow::bail!(
                        "--controller sine: unknown parameter `{other}` (amplitude, period, joints)"
                    ),
                }
            }
            let amplitude = amplitude.context("--controller sine needs amplitude=<A>")?;
            let period = period.context("--controller sine needs period=<T> (s)")?;
            anyhow::ensure!(period > 0.0, "--controller sine: period must be > 0");
            let names = joints.unwrap_or_else(|| profile.command.joints.clone());
            let mut list = Vec::new();
            for (i, n) in names.iter().enumerate() {
                let k = profile
                    .command
                    .joints
                    .iter()
                    .position(|j| j == n)
                    .with_context(|| {
                        format!(
                            "--controller sine: `{n}` is not a command joint of the profile ({:?})",
                            profile.command.joints
                        )
                    })?;
                let phase = std::f64::consts::TAU * i as f64 / names.len().max(1) as f64;
                list.push((profile.command.dofs[k], amplitude, phase));
            }
            Ok(ScriptedSource {
                mode,
                joints: list,
                period,
                start: Vec::new(),
            })
        }
        other => anyhow::bail!("--controller `{other}`: known controllers are hold and sine"),
    }
}

fn policy_source(
    args: &DeployArgs,
    profile: &RobotProfile,
) -> anyhow::Result<(PolicySource, serde_json::Value)> {
    let path = args.policy.as_ref().context("no --policy")?;
    let checkpoint = rivet_policies::load_checkpoint(path)?;
    let scene_path = match &args.scene {
        Some(p) => p.clone(),
        None => checkpoint
            .spec
            .training
            .get("scene_path")
            .or_else(|| checkpoint.spec.training.pointer("/results/scene_path"))
            .and_then(|v| v.as_str())
            .map(PathBuf::from)
            .with_context(|| {
                format!(
                    "the checkpoint {} does not name its scene file: pass --scene",
                    path.display()
                )
            })?,
    };
    let scene = Arc::new(
        Scene::load_with_overlays(&scene_path, &args.overlay, &args.packages.resolve())
            .with_context(|| format!("cannot load the policy's scene {}", scene_path.display()))?,
    );
    let (observation_space, action_space) = crate::learn::task_spaces(&scene)?;
    checkpoint.check_compatible(&observation_space, &action_space, &scene.content_hash)?;
    let mut agent = PolicyAgent::new(scene.clone(), args.seed)?;
    let task = scene.task.as_ref().context("the scene has no task")?;
    anyhow::ensure!(
        agent.command_mode() == profile.command.kind.mode(),
        "the policy commands in {:?} mode but the profile's controller takes `{}` commands",
        agent.command_mode(),
        profile.command.kind.as_str()
    );
    let policy_rate = 1.0 / task.control_period_secs;
    let ratio = profile.command.rate_hz / policy_rate;
    let decimation = ratio.round();
    anyhow::ensure!(
        decimation >= 1.0 && (ratio - decimation).abs() < 1e-6,
        "the profile's rate {} Hz is not a whole multiple of the policy's {policy_rate} Hz",
        profile.command.rate_hz
    );
    let names = agent.dof_names();
    let tree_names = profile.dof_names();
    let map = names
        .iter()
        .map(|n| {
            tree_names.iter().position(|t| t == n).with_context(|| {
                format!("the policy's joint `{n}` is not in the robot profile's URDF")
            })
        })
        .collect::<anyhow::Result<Vec<usize>>>()?;
    // DoFs the robot does not report: an error when the policy reads them, else they stay
    // at the scene's initial positions (a reach policy never looks at the fingers).
    let needed = agent.needed_dofs();
    let map: Vec<Option<usize>> = map
        .into_iter()
        .zip(&needed)
        .map(|(d, &need)| {
            if profile.joint_dofs.contains(&d) {
                Ok(Some(d))
            } else if need {
                Err(anyhow::anyhow!(
                    "the policy observes joint `{}`, which the profile's state does not carry",
                    tree_names[d]
                ))
            } else {
                Ok(None)
            }
        })
        .collect::<anyhow::Result<_>>()?;
    if let Some(text) = &args.target {
        let v: Vec<f64> = text
            .split(',')
            .map(|s| s.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .with_context(|| format!("--target `{text}`: expected x,y,z"))?;
        anyhow::ensure!(v.len() == 3, "--target `{text}`: expected x,y,z");
        // The mirror's root is where the scene puts the robot.
        let root = rivet_sim::math::isometry(&scene.robots[task.robot].world_from_base);
        let p = root.inverse() * nalgebra::Point3::new(v[0], v[1], v[2]);
        agent.set_target_in_root([p.x, p.y, p.z]);
    }
    let info = json!({
        "checkpoint": path,
        "scene": scene_path,
        "policy_rate_hz": policy_rate,
        "decimation": decimation,
        "target": agent.target_in_world(),
    });
    let n = names.len();
    let q = agent.initial_positions().to_vec();
    let policy = checkpoint.policy();
    let source = PolicySource {
        observation: vec![0.0; agent.observation_dim()],
        action: vec![0.0; policy.action_space().dim()],
        policy,
        agent,
        map,
        q,
        qd: vec![0.0; n],
        decimation: decimation as u32,
        phase: 0,
        held: vec![0.0; n],
    };
    Ok((source, info))
}

/// Runs `rivet deploy`.
pub fn deploy(args: DeployArgs) -> anyhow::Result<()> {
    let mut profile = RobotProfile::load(&args.robot)?;
    if !args.connect.is_empty() {
        profile.session.connect = args.connect.clone();
    }
    let trigger = match args.trigger.as_str() {
        "clock" => Trigger::Clock,
        "state" => Trigger::State,
        other => anyhow::bail!("--trigger `{other}`: clock or state"),
    };
    if let Some(d) = args.duration {
        anyhow::ensure!(d.is_finite() && d > 0.0, "--duration {d}: must be > 0");
    }
    anyhow::ensure!(
        args.startup_timeout.is_finite() && args.startup_timeout > 0.0,
        "--startup-timeout must be > 0"
    );
    let (mut source, source_info): (Box<dyn CommandSource>, serde_json::Value) =
        match (&args.policy, &args.controller) {
            (Some(_), _) => {
                let (s, info) = policy_source(&args, &profile)?;
                (Box::new(s), info)
            }
            (None, Some(spec)) => (
                Box::new(parse_controller(spec, &profile)?),
                json!({ "controller": spec }),
            ),
            (None, None) => anyhow::bail!("pass --policy or --controller"),
        };
    let safety = profile.safety_config()?;
    let config = DeployConfig {
        state_joints: profile
            .joints
            .iter()
            .cloned()
            .zip(profile.joint_dofs.iter().copied())
            .collect(),
        command_joints: profile
            .command
            .joints
            .iter()
            .cloned()
            .zip(profile.command.dofs.iter().copied())
            .collect(),
        dof_count: profile.tree.dof_count(),
        kind: profile.command.kind,
        rate_hz: profile.command.rate_hz,
        stale_cycles: profile.state.stale_cycles,
        hold_cycles: profile.command.hold_cycles,
        trigger,
        startup_timeout: Duration::from_secs_f64(args.startup_timeout),
        duration: args.duration.map(Duration::from_secs_f64),
        dry_run: args.dry_run,
        spin: Duration::from_micros(if profile.command.rate_hz >= 500.0 {
            200
        } else {
            100
        }),
        state_topic: profile.state.topic.clone(),
        command_topic: profile.command.topic.clone(),
        estop_topic: profile.estop.clone(),
    };
    let record_path = match &args.record {
        Some(p) => p.clone(),
        None => {
            let stamp = rivet_hw_bridge::node::unix_time_ns() / 1_000_000_000;
            PathBuf::from(format!("runs/deploy-{stamp}.mcap"))
        }
    };
    if let Some(dir) = record_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut recorder = EpisodeRecorder::start(&record_path, &profile, &source_info)?;
    let mut node = RosNode::open(
        profile.session.zenoh_config()?,
        NodeSettings {
            domain: profile.ros.domain,
            namespace: profile.ros.namespace.clone(),
            name: profile.ros.node.clone(),
            hashes: profile.ros.hashes.clone(),
        },
    )?;
    let stopper = Stopper::default();
    {
        let stopper = stopper.clone();
        // A second Ctrl-C while stopping is ignored; the loop ends within one cycle.
        let _ = ctrlc::set_handler(move || stopper.stop());
    }
    if !args.json {
        eprintln!(
            "deploying on `{}` ({} at {} Hz, {}){}",
            profile.name,
            profile.command.kind.as_str(),
            profile.command.rate_hz,
            profile.command.topic,
            if args.dry_run {
                ": dry run, nothing is published"
            } else {
                ""
            }
        );
    }
    let report = deploy::run(
        &mut node,
        &config,
        safety,
        Some(profile.tree.clone()),
        source.as_mut(),
        &mut recorder,
        &stopper,
    );
    node.close();
    let recording = recorder.finish()?;
    let report = report?;
    let rrd = record_path.with_extension("rrd");
    crate::episode::mcap_to_rrd(&record_path, &rrd, &profile)
        .with_context(|| format!("cannot write {}", rrd.display()))?;
    print_report(
        &args,
        &profile,
        &report,
        &source_info,
        &record_path,
        &rrd,
        &recording,
    )?;
    anyhow::ensure!(report.exit.is_clean(), "{}", report.message);
    Ok(())
}

fn print_report(
    args: &DeployArgs,
    profile: &RobotProfile,
    report: &DeployReport,
    source: &serde_json::Value,
    mcap: &Path,
    rrd: &Path,
    recording: &serde_json::Value,
) -> anyhow::Result<()> {
    if args.json {
        return crate::print_json(&json!({
            "robot": profile.name,
            "source": source,
            "report": report,
            "mcap": mcap,
            "rrd": rrd,
            "recording": recording,
        }));
    }
    if args.dry_run {
        for (t, values) in &report.dry_run_commands {
            println!("{t:9.4} {}", join(values));
        }
    }
    let r = report;
    eprintln!(
        "{}: {} cycles in {:.2} s, {} commands{}, {} deadline misses, jitter p50 {:.1} µs p99 \
         {:.1} µs max {:.1} µs",
        if r.exit.is_clean() { "done" } else { "STOPPED" },
        r.cycles,
        r.elapsed_secs,
        r.commands_sent,
        if args.dry_run { " (not sent)" } else { "" },
        r.deadline_misses,
        r.jitter.p50_us,
        r.jitter.p99_us,
        r.jitter.max_us
    );
    eprintln!(
        "states: {} used, {} rejected ({} malformed, {} wrong size, {} missing joint, {} \
         non-finite); {} hold cycles; safety filter limited {} cycles",
        r.states_accepted,
        r.states_rejected.total(),
        r.states_rejected.malformed,
        r.states_rejected.wrong_size,
        r.states_rejected.missing_joint,
        r.states_rejected.non_finite,
        r.hold_cycles,
        r.safety_limited_cycles
    );
    for s in &r.stops {
        eprintln!("  {} at {:.3} s: {}", s.kind, s.time_secs, s.reason);
    }
    eprintln!("recorded {} and {}", mcap.display(), rrd.display());
    Ok(())
}

fn join(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.6}"))
        .collect::<Vec<_>>()
        .join(" ")
}
