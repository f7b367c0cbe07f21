//! `rivet robot serve`: the simulator as a ros2_control-like robot on the ROS 2 over zenoh wire.
//!
//! The scene runs in real time (one physics step per `timestep_secs` of wall time). It publishes
//! `sensor_msgs/JointState` on the state topic at the state rate and takes the command topic of
//! one controller: forward position, velocity or effort commands (`std_msgs/Float64MultiArray`,
//! one value per command joint; like ros2_control's forward_command_controller it holds the
//! last command and has no timeout) or joint trajectories (`trajectory_msgs/JointTrajectory`,
//! followed by linear interpolation from the current target, starting when the message is
//! applied). Commands pass through the scene's actuators, as in `rivet run`.
//!
//! Realism knobs make it a stand-in for hardware that differs from the training simulation:
//! transport latency and jitter (both directions: a state is published, and a command applied,
//! `latency + U(0, jitter)` after it was produced or sent, in order; `--latency-from arrival`
//! counts a command's latency from its arrival instead), Gaussian noise on
//! the published positions and velocities, and `--perturb` overlays that change physical
//! parameters (friction, damping, armature, gains, masses: anything the scene file sets).
//! Malformed commands (undecodable, wrong length, wrong joint names, non-finite values) are
//! rejected and counted, and the robot holds its last valid command.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rivet_control::CommandMode;
use rivet_hw_bridge::RosMessage;
use rivet_hw_bridge::deploy::sleep_until;
use rivet_hw_bridge::keys::{DomainId, Namespace, NodeName, RosDistro, TopicName, TypeHashProfile};
use rivet_hw_bridge::msgs::builtin_interfaces::Time;
use rivet_hw_bridge::msgs::sensor_msgs::JointState;
use rivet_hw_bridge::msgs::std_msgs::Float64MultiArray;
use rivet_hw_bridge::msgs::trajectory_msgs::JointTrajectory;
use rivet_hw_bridge::node::{LatestSubscriber, NodeSettings, RosNode, unix_time_ns};
use rivet_hw_bridge::profile::{CommandKind, RobotProfile, SessionSettings};
use rivet_sim::replay::{CommandPlayer, CommandValue};
use rivet_sim::robot::DofId;
use rivet_sim::{Scene, World, WorldOptions};
use serde_json::json;

use crate::PackageArgs;

/// Arguments of `rivet robot`.
#[derive(clap::Args, Debug)]
pub struct RobotArgs {
    #[command(subcommand)]
    pub what: RobotWhat,
}

/// Robot commands.
#[derive(clap::Subcommand, Debug)]
pub enum RobotWhat {
    /// Run a scene as a ros2_control-like robot over zenoh (ROS 2's rmw_zenoh wire format).
    Serve(ServeArgs),
}

/// Arguments of `rivet robot serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// The scene file.
    pub scene: PathBuf,
    /// Endpoint to listen on (repeatable). Default: the profile's, else `tcp/127.0.0.1:7447`.
    #[arg(long, value_name = "ENDPOINT")]
    pub listen: Vec<String>,
    /// Endpoint to connect to (repeatable), e.g. a zenoh router.
    #[arg(long, value_name = "ENDPOINT")]
    pub connect: Vec<String>,
    /// A robot profile: topics, command kind and joints, domain, and the session (TLS,
    /// credentials accepted) are taken from it.
    #[arg(long, value_name = "PROFILE.toml")]
    pub profile: Option<PathBuf>,
    /// Which robot of the scene (by name). Default: the task's robot, else the first.
    #[arg(long, value_name = "NAME")]
    pub robot: Option<String>,
    /// Transport latency added to states going out and commands coming in (ms).
    #[arg(long, default_value_t = 0.0, value_name = "MS")]
    pub latency_ms: f64,
    /// Uniform extra latency in [0, jitter] (ms), per message.
    #[arg(long, default_value_t = 0.0, value_name = "MS")]
    pub jitter_ms: f64,
    /// Where a command's latency counts from: `send`, the controller's send time (the
    /// rmw_zenoh attachment's source timestamp: controller and robot share a clock, as on one
    /// host or with PTP; a command that arrives later than that still acts no earlier than its
    /// arrival), or `arrival`, when it arrived here (a controller on an unsynchronised host).
    #[arg(long, value_enum, default_value_t = LatencyFrom::Send)]
    pub latency_from: LatencyFrom,
    /// Sensor noise on the published state: `position=<std>,velocity=<std>` (rad, rad/s).
    #[arg(long, value_name = "SPEC")]
    pub noise: Option<String>,
    /// Scene overlay(s) with the physical parameters this robot has instead of the scene's
    /// (repeatable; same format as `--overlay`).
    #[arg(long, value_name = "OVERRIDES.toml")]
    pub perturb: Vec<PathBuf>,
    /// State publishing rate (Hz). Default: the profile's command rate, else 100.
    #[arg(long, value_name = "HZ")]
    pub state_rate: Option<f64>,
    /// Stop after this many seconds (default: run until killed).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Seed for noise and jitter.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub seed: u64,
    /// Print one JSON object on stdout when it stops.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub packages: PackageArgs,
}

/// Where command latency counts from (`--latency-from`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LatencyFrom {
    /// The controller's send time (the sample attachment's source timestamp).
    Send,
    /// When the sample arrived at the robot.
    Arrival,
}

/// The instant on this process's monotonic clock of UNIX time `ns`, given one instant and the
/// UNIX time read together with it.
fn instant_of_unix_ns(anchor: Instant, anchor_ns: u64, ns: i64) -> Option<Instant> {
    let ns = u64::try_from(ns).ok()?;
    if ns >= anchor_ns {
        anchor.checked_add(Duration::from_nanos(ns - anchor_ns))
    } else {
        anchor.checked_sub(Duration::from_nanos(anchor_ns - ns))
    }
}

/// Runs a robot command.
pub fn robot(args: RobotArgs) -> anyhow::Result<()> {
    match args.what {
        RobotWhat::Serve(a) => serve(a),
    }
}

/// Parses `position=0.001,velocity=0.01`.
fn parse_noise(spec: &str) -> anyhow::Result<[f64; 2]> {
    let mut noise = [0.0; 2];
    for part in spec.split(',').filter(|p| !p.is_empty()) {
        let (key, value) = part
            .split_once('=')
            .with_context(|| format!("--noise `{part}`: expected key=value"))?;
        let value: f64 = value
            .trim()
            .parse()
            .with_context(|| format!("--noise `{part}`: `{value}` is not a number"))?;
        anyhow::ensure!(
            value.is_finite() && value >= 0.0,
            "--noise `{part}`: must be >= 0"
        );
        match key.trim() {
            "position" => noise[0] = value,
            "velocity" => noise[1] = value,
            other => anyhow::bail!("--noise: unknown key `{other}` (position, velocity)"),
        }
    }
    Ok(noise)
}

/// A message waiting out its transport delay.
struct Delayed<T> {
    due: Instant,
    item: T,
}

/// A FIFO whose items come out `latency + U(0, jitter)` after they go in, in order.
struct DelayLine<T> {
    queue: VecDeque<Delayed<T>>,
    latency: Duration,
    jitter: Duration,
}

impl<T> DelayLine<T> {
    fn push(&mut self, item: T, now: Instant, rng: &mut ChaCha8Rng) {
        let extra = if self.jitter.is_zero() {
            Duration::ZERO
        } else {
            self.jitter.mul_f64(rng.random::<f64>())
        };
        let mut due = now + self.latency + extra;
        if let Some(last) = self.queue.back() {
            due = due.max(last.due);
        }
        self.queue.push_back(Delayed { due, item });
    }

    fn pop_due(&mut self, now: Instant) -> Option<T> {
        if self.queue.front().is_some_and(|d| d.due <= now) {
            self.queue.pop_front().map(|d| d.item)
        } else {
            None
        }
    }

    fn next_due(&self) -> Option<Instant> {
        self.queue.front().map(|d| d.due)
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let packages = args.packages.resolve();
    let scene = Arc::new(
        Scene::load_with_overlays(&args.scene, &args.perturb, &packages)
            .with_context(|| format!("cannot load {}", args.scene.display()))?,
    );
    let profile = match &args.profile {
        Some(p) => Some(RobotProfile::load(p)?),
        None => None,
    };
    let robot_index = match &args.robot {
        Some(name) => scene
            .robots
            .iter()
            .position(|r| &r.name == name)
            .with_context(|| format!("--robot {name}: the scene has no robot named so"))?,
        None => scene.task.as_ref().map_or(0, |t| t.robot),
    };
    let instance = scene
        .robots
        .get(robot_index)
        .context("the scene has no robot to serve")?;
    let dof_names: Vec<String> = (0..instance.actuators.len())
        .map(|d| instance.model.dof_joint(DofId(d as u32)).name.clone())
        .collect();
    let noise = match &args.noise {
        Some(spec) => parse_noise(spec)?,
        None => [0.0; 2],
    };
    for (flag, v) in [
        ("--latency-ms", args.latency_ms),
        ("--jitter-ms", args.jitter_ms),
    ] {
        anyhow::ensure!(v.is_finite() && v >= 0.0, "{flag} {v}: must be >= 0");
    }

    // Topics, command joints and kind: from the profile, else the actuators' mode.
    let mode = instance.actuators.first().map(|a| a.mode);
    anyhow::ensure!(
        instance.actuators.iter().all(|a| Some(a.mode) == mode),
        "robot `{}`: its joints have different actuator modes; serve needs one controller mode",
        instance.name
    );
    let mode = mode.context("the robot has no actuated joints")?;
    let (kind, command_topic, command_joints, state_topic, state_rate, node_settings, session) =
        match &profile {
            Some(p) => {
                anyhow::ensure!(
                    p.command.kind.mode() == mode,
                    "profile {}: command kind `{}` does not match the scene's actuator mode \
                     {mode:?}",
                    p.source.display(),
                    p.command.kind.as_str()
                );
                let mut session = p.session.clone();
                if !args.listen.is_empty() {
                    session.listen = args.listen.clone();
                }
                if !args.connect.is_empty() {
                    session.connect = args.connect.clone();
                }
                // The robot side listens; it does not dial the deploy side's endpoints.
                if args.connect.is_empty() {
                    session.connect.clear();
                }
                if session.listen.is_empty() {
                    session.listen = vec!["tcp/127.0.0.1:7447".into()];
                }
                (
                    p.command.kind,
                    p.command.topic.clone(),
                    p.command.joints.clone(),
                    p.state.topic.clone(),
                    args.state_rate.unwrap_or(p.command.rate_hz),
                    NodeSettings {
                        domain: p.ros.domain,
                        namespace: p.ros.namespace.clone(),
                        name: NodeName::new("rivet_robot")?,
                        hashes: p.ros.hashes.clone(),
                    },
                    session,
                )
            }
            None => {
                let (kind, topic) = match mode {
                    CommandMode::Position => (
                        CommandKind::ForwardPosition,
                        "/forward_position_controller/commands",
                    ),
                    CommandMode::Velocity => (
                        CommandKind::ForwardVelocity,
                        "/forward_velocity_controller/commands",
                    ),
                    CommandMode::Torque => (
                        CommandKind::ForwardEffort,
                        "/forward_effort_controller/commands",
                    ),
                };
                let listen = if args.listen.is_empty() {
                    vec!["tcp/127.0.0.1:7447".to_owned()]
                } else {
                    args.listen.clone()
                };
                (
                    kind,
                    TopicName::new(topic)?,
                    dof_names.clone(),
                    TopicName::new("/joint_states")?,
                    args.state_rate.unwrap_or(100.0),
                    NodeSettings {
                        domain: DomainId::new(0)?,
                        namespace: Namespace::root(),
                        name: NodeName::new("rivet_robot")?,
                        hashes: TypeHashProfile::new(RosDistro::Jazzy),
                    },
                    SessionSettings::with_endpoints(args.connect.clone(), listen),
                )
            }
        };
    anyhow::ensure!(
        state_rate.is_finite() && state_rate > 0.0,
        "state rate {state_rate} Hz must be > 0"
    );
    let command_dofs: Vec<usize> = command_joints
        .iter()
        .map(|j| {
            dof_names.iter().position(|n| n == j).with_context(|| {
                format!(
                    "command joint `{j}` is not a joint of robot `{}` ({dof_names:?})",
                    instance.name
                )
            })
        })
        .collect::<anyhow::Result<_>>()?;

    let mut world = World::new(
        scene.clone(),
        WorldOptions {
            seed: args.seed,
            threads: Some(1),
        },
    )?;
    let config = session.zenoh_config()?;
    let mut node = RosNode::open(config, node_settings)?;
    let mut state_pub = node.publisher::<JointState>(&state_topic)?;
    let command_sub: LatestSubscriber = match kind {
        CommandKind::JointTrajectory => node.subscribe_latest::<JointTrajectory>(&command_topic)?,
        _ => node.subscribe_latest::<Float64MultiArray>(&command_topic)?,
    };
    eprintln!(
        "serving robot `{}` of {} on {:?}: state {} at {state_rate} Hz, commands ({}) on {} for \
         {command_joints:?}",
        instance.name,
        args.scene.display(),
        session.listen,
        state_pub.key_expr(),
        kind.as_str(),
        command_sub.key_expr(),
    );

    // Ctrl-C ends the run with a summary.
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst));
    }
    let dt = scene.world.dt_secs;
    let steps_per_state = ((1.0 / state_rate) / dt).round().max(1.0) as u64;
    let latency = Duration::from_secs_f64(args.latency_ms * 1e-3);
    let jitter = Duration::from_secs_f64(args.jitter_ms * 1e-3);
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let normal = |rng: &mut ChaCha8Rng| -> f64 {
        // Box-Muller: two uniforms, one normal.
        let u1: f64 = rng.random::<f64>().max(1e-300);
        let u2: f64 = rng.random();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    };
    let mut out_line: DelayLine<Vec<u8>> = DelayLine {
        queue: VecDeque::new(),
        latency,
        jitter,
    };
    let mut in_line: DelayLine<CommandValue> = DelayLine {
        queue: VecDeque::new(),
        latency,
        jitter,
    };
    let mut msg = JointState {
        name: dof_names.clone(),
        position: vec![0.0; dof_names.len()],
        velocity: vec![0.0; dof_names.len()],
        effort: vec![0.0; dof_names.len()],
        ..Default::default()
    };
    let initial: Vec<f64> = command_dofs
        .iter()
        .map(|&d| match mode {
            CommandMode::Position => world.robots[robot_index].position[d],
            _ => 0.0,
        })
        .collect();
    let mut player = CommandPlayer::new(&initial);
    let (mut accepted, mut rejected, mut states) = (0u64, 0u64, 0u64);
    let mut timed_from_send = 0u64;
    let mut reasons: std::collections::BTreeMap<&'static str, u64> = Default::default();
    let mut buf = Vec::new();
    let mut last = 0;
    let mut traj_msg = JointTrajectory::default();
    let mut array_msg = Float64MultiArray::default();
    let start = Instant::now();
    let start_ns = unix_time_ns();
    let step_period = Duration::from_secs_f64(dt);
    let max_steps = args.duration.map(|d| (d / dt).round() as u64);
    let mut k: u64 = 0;
    while !stop.load(Ordering::SeqCst) && max_steps.is_none_or(|m| k < m) {
        let deadline = start + step_period.mul_f64(k as f64);
        // Publish states whose delay is over while waiting for the step.
        loop {
            let now = Instant::now();
            while let Some(bytes) = out_line.pop_due(now) {
                state_pub.publish_raw(&bytes)?;
            }
            let wake = out_line.next_due().map_or(deadline, |d| d.min(deadline));
            if now >= deadline {
                break;
            }
            sleep_until(wake, Duration::from_micros(50));
        }
        let now = Instant::now();
        // Commands received: validate, then delay.
        if let Some(info) = command_sub.slot().take_newer(last, &mut buf) {
            last = info.counter;
            let parsed = match kind {
                CommandKind::JointTrajectory => match traj_msg.decode_into(&buf) {
                    Err(_) => Err("undecodable"),
                    Ok(()) if traj_msg.joint_names != command_joints => Err("joint names"),
                    Ok(()) if traj_msg.points.is_empty() => Err("no points"),
                    Ok(())
                        if traj_msg.points.iter().any(|p| {
                            p.positions.len() != command_joints.len()
                                || p.positions.iter().any(|x| !x.is_finite())
                        }) =>
                    {
                        Err("wrong length or non-finite")
                    }
                    Ok(()) => Ok(CommandValue::Trajectory(
                        traj_msg
                            .points
                            .iter()
                            .map(|p| {
                                let t = f64::from(p.time_from_start.sec)
                                    + f64::from(p.time_from_start.nanosec) * 1e-9;
                                (t, p.positions.clone())
                            })
                            .collect(),
                    )),
                },
                _ => match array_msg.decode_into(&buf) {
                    Err(_) => Err("undecodable"),
                    Ok(()) if array_msg.data.len() != command_joints.len() => Err("wrong length"),
                    Ok(()) if array_msg.data.iter().any(|x| !x.is_finite()) => Err("non-finite"),
                    Ok(()) => Ok(CommandValue::Hold(array_msg.data.clone())),
                },
            };
            match parsed {
                Ok(command) => {
                    accepted += 1;
                    // Delayed from when it was sent, or from when it arrived (not from when this
                    // loop noticed it), and never acting before it arrived.
                    let arrived = info.arrived.min(now);
                    let sent = match (args.latency_from, info.sent_ns) {
                        (LatencyFrom::Send, Some(ns)) => instant_of_unix_ns(start, start_ns, ns),
                        _ => None,
                    };
                    let from = match sent {
                        Some(sent) => {
                            timed_from_send += 1;
                            // A clock ahead of ours cannot make a command later than its
                            // arrival; a slow transport makes it act on arrival.
                            let earliest = arrived.checked_sub(latency).unwrap_or(arrived);
                            sent.min(arrived).max(earliest)
                        }
                        None => arrived,
                    };
                    in_line.push(command, from, &mut rng);
                }
                Err(reason) => {
                    rejected += 1;
                    *reasons.entry(reason).or_default() += 1;
                }
            }
        }
        let t = world.time_secs();
        // Commands due by this step's scheduled time act in it: when the loop runs late (a
        // busy machine), steps catch up in simulated time and commands still act at the
        // simulated time they would have on a hard real-time controller.
        while let Some(command) = in_line.pop_due(deadline) {
            player.apply(&command, t);
        }
        let state = &mut world.robots[robot_index];
        for (&d, &c) in command_dofs.iter().zip(player.targets(t)) {
            state.command[d] = c;
        }
        world.step();
        if let Some(termination) = world.termination() {
            anyhow::bail!("the simulation stopped: {termination:?}");
        }
        k += 1;
        if k.is_multiple_of(steps_per_state) {
            let state = &world.robots[robot_index];
            for d in 0..dof_names.len() {
                msg.position[d] = state.position[d] + noise[0] * normal(&mut rng);
                msg.velocity[d] = state.velocity[d] + noise[1] * normal(&mut rng);
                msg.effort[d] = state.effort[d];
            }
            // The robot's clock: when the state was true (start + simulated time), as a
            // driver stamps its hardware read, whatever the loop's own lateness.
            let stamp = start_ns + (world.time_secs() * 1e9).round() as u64;
            msg.header.stamp = Time {
                sec: (stamp / 1_000_000_000) as i32,
                nanosec: (stamp % 1_000_000_000) as u32,
            };
            let mut bytes = Vec::new();
            msg.encode_into(&mut bytes);
            // Its delay counts from now, one step before its stamp: the loop computes each step
            // at the start of its period, so a controller that answers a state within the period
            // acts on the next step, the timing a policy trained without latency expects (see
            // the cartpole deploy test). `rivet gap` sees this as a state delay one step short
            // of `latency`.
            out_line.push(bytes, Instant::now(), &mut rng);
            states += 1;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    node.close();
    let summary = json!({
        "robot": instance.name,
        "scene": args.scene,
        "steps": k,
        "sim_secs": world.time_secs(),
        "wall_secs": elapsed,
        "real_time_factor": world.time_secs() / elapsed.max(1e-9),
        "states_published": states,
        "commands_accepted": accepted,
        "commands_timed_from_send": timed_from_send,
        "commands_rejected": rejected,
        "rejected_by_reason": reasons,
        "final_positions": world.robots[robot_index].position,
        "joints": dof_names,
    });
    if args.json {
        crate::print_json(&summary)?;
    } else {
        eprintln!(
            "served {:.2} s ({:.2}x real time): {states} states published, {accepted} commands \
             accepted, {rejected} rejected",
            world.time_secs(),
            world.time_secs() / elapsed.max(1e-9)
        );
    }
    Ok(())
}
