//! The deploy loop: read the robot's latest state, compute a command, pass it through the safety
//! filter, publish it, at a fixed rate (default 100 Hz; runs at 1 kHz).
//!
//! # One cycle
//! 1. Sleep until the cycle's deadline `t0 + k · period` (a coarse sleep, then a short spin for
//!    the last [`DeployConfig::spin`]), and note how late it woke (the loop jitter).
//! 2. Take the newest `/joint_states` sample, if a new one came, and validate it: CDR that
//!    decodes, every profile joint named, `position`/`velocity`/`effort` either as long as
//!    `name` or (velocity, effort) empty, finite values. A message that fails is rejected,
//!    counted by reason ([`RejectCounts`]) and ignored: the loop goes on with the last good
//!    state, which ages.
//! 3. The e-stop topic (`std_msgs/Bool`): `true`, or anything that is not a valid `false`,
//!    latches a stop for the rest of the run (the safety filter's stop: hold position, zero
//!    velocity or effort).
//! 4. Watchdog: when the last good state is older than `stale_cycles` cycles the loop holds
//!    (position commands repeat the last one sent, velocity and effort commands are zero);
//!    when it stays stale for `hold_cycles` more, the loop stops and returns
//!    [`ExitReason::StateStale`]. When every publisher of the state topic goes away (their
//!    rmw_zenoh liveliness tokens vanish: the robot's process or link died) it stops at once,
//!    without sending anything more ([`ExitReason::StatePublisherLost`]).
//! 5. Otherwise the [`CommandSource`] writes one command per robot DoF from the state; the
//!    [`SafetyFilter`] rewrites it in place; the values of the command joints are published as
//!    `std_msgs/Float64MultiArray` (forward controllers) or as a one-point
//!    `trajectory_msgs/JointTrajectory` reaching the command one period ahead. With `dry_run`
//!    nothing is published; the commands are kept for the report instead.
//!
//! Every received state, sent command and event goes to a [`DeployObserver`] (the episode
//! recorder) with its time. Nothing on the cycle path allocates once buffers have grown, except
//! zenoh's own per-sample buffers.

use std::time::{Duration, Instant};

use rivet_control::safety::{SafetyConfig, SafetyError, SafetyFilter};
use rivet_control::{CommandMode, JointStateView};
use serde::Serialize;

use crate::cdr::RosMessage;
use crate::keys::TopicName;
use crate::msgs::builtin_interfaces::{Duration as RosDuration, Time};
use crate::msgs::sensor_msgs::JointState;
use crate::msgs::std_msgs::{Bool, Float64MultiArray};
use crate::msgs::trajectory_msgs::{JointTrajectory, JointTrajectoryPoint};
use crate::node::{
    LatestSubscriber, NodeError, PublisherWatch, RosNode, RosPublisher, unix_time_ns,
};
use crate::profile::CommandKind;

/// What computes commands: a policy, a controller.
pub trait CommandSource {
    /// Called once with the first valid state, before the first command.
    fn start(&mut self, _state: &JointStateView<'_>) -> Result<(), String> {
        Ok(())
    }

    /// Writes one command per robot DoF (in the robot tree's DoF order, in the profile's
    /// command mode) for the state measured now; `time_secs` counts from the first cycle.
    /// Values of DoFs that are not command joints are ignored.
    fn command(&mut self, time_secs: f64, state: &JointStateView<'_>, command: &mut [f64]);
}

/// Receives everything the loop sees and sends, for recording. Calls happen on the loop's
/// thread: implementations must be quick and must not block (hand over to another thread).
pub trait DeployObserver {
    /// A state sample as received (raw CDR), valid or not.
    fn state(&mut self, time_ns: u64, cdr: &[u8]);
    /// A command as published (raw CDR; in a dry run, as it would have been).
    fn command(&mut self, time_ns: u64, cdr: &[u8]);
    /// Something happened: e-stop, hold, stop, rejection.
    fn event(&mut self, time_ns: u64, text: &str);
}

/// An observer that records nothing.
pub struct NoObserver;

impl DeployObserver for NoObserver {
    fn state(&mut self, _: u64, _: &[u8]) {}
    fn command(&mut self, _: u64, _: &[u8]) {}
    fn event(&mut self, _: u64, _: &str) {}
}

/// What starts a cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// A fixed-rate clock: cycle `k` starts at `t0 + k · period`, whatever the robot does.
    #[default]
    Clock,
    /// Each new state message starts a cycle at once (as a controller triggered by its
    /// hardware's read); one and a half periods without one count as a cycle with a stale
    /// state, so the watchdog works as with the clock. (The half period is grace for the
    /// robot's own jitter: with exactly one period, a state a few microseconds late would
    /// start a stale cycle that re-commands the previous state.)
    State,
}

/// Everything the loop needs to know about the robot and the run.
#[derive(Debug, Clone)]
pub struct DeployConfig {
    /// Joint names the state must carry, and the tree DoF each one is.
    pub state_joints: Vec<(String, usize)>,
    /// Joint names of the command values, in message order, and their tree DoFs.
    pub command_joints: Vec<(String, usize)>,
    /// Number of DoFs of the robot tree (length of the command and state arrays).
    pub dof_count: usize,
    /// How the controller takes commands.
    pub kind: CommandKind,
    /// Loop rate (Hz).
    pub rate_hz: f64,
    /// State older than this many cycles is stale: hold.
    pub stale_cycles: u32,
    /// Stale for this many more cycles: stop.
    pub hold_cycles: u32,
    /// What starts a cycle.
    pub trigger: Trigger,
    /// How long to wait for the first state before giving up.
    pub startup_timeout: Duration,
    /// Run length; `None` runs until stopped.
    pub duration: Option<Duration>,
    /// Compute and report commands without publishing them.
    pub dry_run: bool,
    /// The last part of each wait that spins instead of sleeping (jitter against CPU).
    pub spin: Duration,
    /// Topics, for messages.
    pub state_topic: TopicName,
    /// Command topic.
    pub command_topic: TopicName,
    /// E-stop topic.
    pub estop_topic: TopicName,
}

/// Why the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    /// The requested duration elapsed.
    Duration,
    /// The caller asked to stop ([`Stopper`]).
    Interrupted,
    /// No valid state arrived before the startup timeout: nothing was commanded.
    NoInitialState,
    /// The state stayed stale through the hold: stopped.
    StateStale,
    /// Every publisher of the state topic went away: stopped at once.
    StatePublisherLost,
    /// The command source failed to start.
    SourceFailed,
}

impl ExitReason {
    /// True for the ends a run is meant to have (duration, interrupt).
    pub fn is_clean(self) -> bool {
        matches!(self, ExitReason::Duration | ExitReason::Interrupted)
    }
}

/// Rejected state messages, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RejectCounts {
    /// Not decodable as the state type (garbage, truncated).
    pub malformed: u64,
    /// Arrays whose lengths do not match the names.
    pub wrong_size: u64,
    /// A profile joint missing from the message.
    pub missing_joint: u64,
    /// A NaN or infinite value.
    pub non_finite: u64,
}

impl RejectCounts {
    /// All rejections.
    pub fn total(&self) -> u64 {
        self.malformed + self.wrong_size + self.missing_joint + self.non_finite
    }
}

/// A stop or hold, with when and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StopEvent {
    /// Cycle index.
    pub cycle: u64,
    /// Seconds since the first cycle.
    pub time_secs: f64,
    /// `hold`, `stop` or `estop`.
    pub kind: &'static str,
    /// Why, in words.
    pub reason: String,
}

/// Percentiles of the loop's wake-up lateness (µs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct JitterStats {
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
}

impl JitterStats {
    /// Percentiles of `samples_ns` (sorted in place).
    pub fn from_samples(samples_ns: &mut [u64]) -> Self {
        if samples_ns.is_empty() {
            return Self::default();
        }
        samples_ns.sort_unstable();
        let at = |q: f64| {
            let i = ((samples_ns.len() as f64 - 1.0) * q).round() as usize;
            samples_ns[i.min(samples_ns.len() - 1)] as f64 / 1e3
        };
        Self {
            p50_us: at(0.5),
            p99_us: at(0.99),
            p999_us: at(0.999),
            max_us: at(1.0),
        }
    }
}

/// What a deploy run did.
#[derive(Debug, Clone, Serialize)]
pub struct DeployReport {
    /// Why it ended.
    pub exit: ExitReason,
    /// The same, in words.
    pub message: String,
    /// Cycles run.
    pub cycles: u64,
    /// Commands published (or, in a dry run, computed).
    pub commands_sent: u64,
    /// Cycles whose work ended after the next deadline, plus deadlines skipped.
    pub deadline_misses: u64,
    /// Wake-up lateness.
    pub jitter: JitterStats,
    /// Valid state messages used.
    pub states_accepted: u64,
    /// State messages rejected, by reason.
    pub states_rejected: RejectCounts,
    /// State messages without the rmw_zenoh attachment (accepted).
    pub states_without_attachment: u64,
    /// E-stop messages that were not a valid boolean (each latched the stop).
    pub estop_rejected: u64,
    /// Cycles spent holding because the state was stale.
    pub hold_cycles: u64,
    /// Cycles in which the safety filter changed the command.
    pub safety_limited_cycles: u64,
    /// Cycles since the last valid state when the loop ended: after a stop, how many cycles
    /// commanded from an old state before the loop noticed.
    pub stale_cycles_at_exit: u64,
    /// When the e-stop latched (s since the first cycle).
    pub estop_latched_at_secs: Option<f64>,
    /// Holds and stops, in order.
    pub stops: Vec<StopEvent>,
    /// Commands computed in a dry run: (time s, values of the command joints).
    pub dry_run_commands: Vec<(f64, Vec<f64>)>,
    /// Seconds the loop ran.
    pub elapsed_secs: f64,
}

/// Lets another thread (a signal handler, a test) end the loop cleanly.
#[derive(Clone, Default)]
pub struct Stopper(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Stopper {
    /// Asks the loop to stop at its next cycle.
    pub fn stop(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether a stop was asked for.
    pub fn is_stopped(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Errors that keep the loop from starting.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// A zenoh failure.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The safety configuration is unusable.
    #[error("safety filter: {0}")]
    Safety(#[from] SafetyError),
    /// The configuration is inconsistent.
    #[error("deploy configuration: {0}")]
    Config(String),
}

/// The command publisher, in the form the controller takes.
enum CommandOut {
    Forward(RosPublisher<Float64MultiArray>, Float64MultiArray),
    Trajectory(RosPublisher<JointTrajectory>, JointTrajectory),
    DryRun,
}

/// The loop's state between cycles.
struct Measured {
    position: Vec<f64>,
    velocity: Vec<f64>,
    effort: Vec<f64>,
    /// Per state joint: index in the last message's arrays (cached by names).
    index: Vec<usize>,
    names: Vec<String>,
}

impl Measured {
    /// Validates `msg` and copies its values in; on error leaves the old values.
    fn accept(&mut self, msg: &JointState, joints: &[(String, usize)]) -> Result<(), RejectKind> {
        let n = msg.name.len();
        if msg.position.len() != n
            || !(msg.velocity.is_empty() || msg.velocity.len() == n)
            || !(msg.effort.is_empty() || msg.effort.len() == n)
        {
            return Err(RejectKind::WrongSize);
        }
        if self.names != msg.name {
            self.names.clone_from(&msg.name);
            self.index.clear();
            for (joint, _) in joints {
                match msg.name.iter().position(|m| m == joint) {
                    Some(i) => self.index.push(i),
                    None => {
                        self.names.clear();
                        return Err(RejectKind::MissingJoint);
                    }
                }
            }
        }
        for &i in &self.index {
            let v = msg.velocity.get(i).copied().unwrap_or(0.0);
            let e = msg.effort.get(i).copied().unwrap_or(0.0);
            if !(msg.position[i].is_finite() && v.is_finite() && e.is_finite()) {
                return Err(RejectKind::NonFinite);
            }
        }
        for (&i, (_, dof)) in self.index.iter().zip(joints) {
            self.position[*dof] = msg.position[i];
            self.velocity[*dof] = msg.velocity.get(i).copied().unwrap_or(0.0);
            self.effort[*dof] = msg.effort.get(i).copied().unwrap_or(0.0);
        }
        Ok(())
    }

    fn view(&self) -> JointStateView<'_> {
        JointStateView {
            position: &self.position,
            velocity: &self.velocity,
            effort: &self.effort,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum RejectKind {
    Malformed,
    WrongSize,
    MissingJoint,
    NonFinite,
}

/// Runs the deploy loop on `node` until the duration ends, the caller stops it, or the
/// watchdog does. Returns what happened; errors only when it cannot start.
pub fn run(
    node: &mut RosNode,
    config: &DeployConfig,
    safety: SafetyConfig,
    tree: Option<rivet_control::RobotTree>,
    source: &mut dyn CommandSource,
    observer: &mut dyn DeployObserver,
    stopper: &Stopper,
) -> Result<DeployReport, DeployError> {
    if !(config.rate_hz.is_finite() && config.rate_hz > 0.0) {
        return Err(DeployError::Config(format!(
            "rate {} Hz must be finite and > 0",
            config.rate_hz
        )));
    }
    if safety.joints.len() != config.dof_count {
        return Err(DeployError::Config(format!(
            "the safety configuration has {} joints, the robot {} DoFs",
            safety.joints.len(),
            config.dof_count
        )));
    }
    let mode = config.kind.mode();
    let mut filter = SafetyFilter::new(safety, tree)?;
    let state_sub: LatestSubscriber = node.subscribe_latest::<JointState>(&config.state_topic)?;
    let estop_sub: LatestSubscriber = node.subscribe_latest::<Bool>(&config.estop_topic)?;
    let watch: PublisherWatch = node.watch_publishers::<JointState>(&config.state_topic)?;
    let names: Vec<String> = config
        .command_joints
        .iter()
        .map(|(n, _)| n.clone())
        .collect();
    let mut out = if config.dry_run {
        CommandOut::DryRun
    } else {
        match config.kind {
            CommandKind::JointTrajectory => CommandOut::Trajectory(
                node.publisher::<JointTrajectory>(&config.command_topic)?,
                JointTrajectory {
                    joint_names: names.clone(),
                    points: vec![JointTrajectoryPoint {
                        positions: vec![0.0; names.len()],
                        velocities: vec![0.0; names.len()],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ),
            _ => CommandOut::Forward(
                node.publisher::<Float64MultiArray>(&config.command_topic)?,
                Float64MultiArray {
                    data: vec![0.0; names.len()],
                    ..Default::default()
                },
            ),
        }
    };

    let n = config.dof_count;
    let mut measured = Measured {
        position: vec![0.0; n],
        velocity: vec![0.0; n],
        effort: vec![0.0; n],
        index: Vec::with_capacity(config.state_joints.len()),
        names: Vec::new(),
    };
    let mut report = DeployReport {
        exit: ExitReason::Duration,
        message: String::new(),
        cycles: 0,
        commands_sent: 0,
        deadline_misses: 0,
        jitter: JitterStats::default(),
        states_accepted: 0,
        states_rejected: RejectCounts::default(),
        states_without_attachment: 0,
        estop_rejected: 0,
        hold_cycles: 0,
        safety_limited_cycles: 0,
        stale_cycles_at_exit: 0,
        estop_latched_at_secs: None,
        stops: Vec::new(),
        dry_run_commands: Vec::new(),
        elapsed_secs: 0.0,
    };
    let mut state_buf = Vec::new();
    let mut estop_buf = Vec::new();
    let mut state_msg = JointState::default();
    let mut last_state_counter = 0;
    let mut last_estop_counter = 0;

    // Wait for the first valid state.
    let wait_start = Instant::now();
    loop {
        if stopper.is_stopped() {
            report.exit = ExitReason::Interrupted;
            report.message = "interrupted before the first state arrived".into();
            return Ok(report);
        }
        if let Some(info) = state_sub
            .slot()
            .take_newer(last_state_counter, &mut state_buf)
        {
            last_state_counter = info.counter;
            observer.state(unix_time_ns(), &state_buf);
            match decode_and_accept(&mut state_msg, &state_buf, &mut measured, config) {
                Ok(()) => break,
                Err(kind) => count_reject(&mut report.states_rejected, kind),
            }
        }
        if wait_start.elapsed() > config.startup_timeout {
            report.exit = ExitReason::NoInitialState;
            report.message = format!(
                "no valid joint state on `{}` within {:.1} s ({} received, {} rejected): is the \
                 robot running, and are the endpoints, domain and credentials right?",
                state_sub.key_expr(),
                config.startup_timeout.as_secs_f64(),
                state_sub.slot().received(),
                report.states_rejected.total()
            );
            observer.event(unix_time_ns(), &report.message);
            return Ok(report);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    report.states_accepted += 1;
    if let Err(e) = filter.reset(&measured.view()) {
        return Err(DeployError::Safety(e));
    }
    if let Err(e) = source.start(&measured.view()) {
        report.exit = ExitReason::SourceFailed;
        report.message = format!("the command source failed to start: {e}");
        return Ok(report);
    }
    observer.event(unix_time_ns(), "deploy started");

    let period = Duration::from_secs_f64(1.0 / config.rate_hz);
    let max_cycles = config
        .duration
        .map(|d| (d.as_secs_f64() * config.rate_hz).round() as u64);
    let mut lateness: Vec<u64> =
        Vec::with_capacity(max_cycles.map_or(1 << 16, |c| c.min(1 << 24) as usize));
    let mut command = vec![0.0; n];
    let mut commanded = vec![false; n];
    for (_, d) in &config.command_joints {
        if let Some(c) = commanded.get_mut(*d) {
            *c = true;
        }
    }
    let mut last_sent = vec![0.0; n];
    let mut sent_any = false;
    let mut stale = 0u64;
    let mut holding = false;
    let start = Instant::now();
    let mut cycle_start: Option<Instant> = None;
    let mut k: u64 = 0;
    loop {
        let over = match config.trigger {
            Trigger::Clock => max_cycles.is_some_and(|m| k >= m),
            Trigger::State => config.duration.is_some_and(|d| start.elapsed() >= d),
        };
        if over {
            report.exit = ExitReason::Duration;
            break;
        }
        if stopper.is_stopped() {
            report.exit = ExitReason::Interrupted;
            break;
        }
        // 1. Wait for the deadline (clock), or for a state within 1.5 periods (state trigger).
        let deadline = start + period.mul_f64(k as f64);
        let (newer, time_secs) = match config.trigger {
            Trigger::Clock => {
                sleep_until(deadline, config.spin);
                let woke = Instant::now();
                lateness.push(woke.saturating_duration_since(deadline).as_nanos() as u64);
                let newer = state_sub
                    .slot()
                    .take_newer(last_state_counter, &mut state_buf);
                (newer, (deadline - start).as_secs_f64())
            }
            Trigger::State => {
                let timeout = cycle_start.map_or(deadline, |t: Instant| t + period.mul_f64(1.5));
                let newer =
                    state_sub
                        .slot()
                        .wait_newer(last_state_counter, timeout, &mut state_buf);
                let woke = Instant::now();
                // Jitter here is the reaction time: from the sample's arrival to the wake-up.
                let since = newer.map_or(woke, |info| info.arrived);
                lateness.push(woke.saturating_duration_since(since).as_nanos() as u64);
                cycle_start = Some(woke);
                (newer, (woke - start).as_secs_f64())
            }
        };
        report.cycles += 1;

        // 2. State.
        let mut fresh = false;
        if let Some(info) = newer {
            last_state_counter = info.counter;
            if !info.has_attachment {
                report.states_without_attachment += 1;
            }
            observer.state(unix_time_ns(), &state_buf);
            match decode_and_accept(&mut state_msg, &state_buf, &mut measured, config) {
                Ok(()) => {
                    fresh = true;
                    report.states_accepted += 1;
                }
                Err(kind) => {
                    count_reject(&mut report.states_rejected, kind);
                    observer.event(
                        unix_time_ns(),
                        &format!("rejected state message: {}", reject_text(kind)),
                    );
                }
            }
        }
        stale = if fresh { 0 } else { stale + 1 };

        // 3. E-stop.
        if let Some(_info) = estop_sub
            .slot()
            .take_newer(last_estop_counter, &mut estop_buf)
        {
            last_estop_counter = _info.counter;
            let stop = match Bool::decode(&estop_buf) {
                Ok(b) => b.data,
                Err(_) => {
                    report.estop_rejected += 1;
                    true
                }
            };
            if stop && !filter.is_estopped() {
                filter.trigger_estop();
                report.estop_latched_at_secs = Some(time_secs);
                let reason = format!("e-stop latched by a message on `{}`", config.estop_topic);
                observer.event(unix_time_ns(), &reason);
                report.stops.push(StopEvent {
                    cycle: k,
                    time_secs,
                    kind: "estop",
                    reason,
                });
            }
        }

        // 4. Watchdog.
        if watch.seen() > 0 && watch.alive() == 0 {
            report.exit = ExitReason::StatePublisherLost;
            let reason = format!(
                "the robot's state publisher on `{}` went away (its liveliness token was \
                 removed): stopped commanding {:.3} s after the last valid state",
                config.state_topic,
                stale as f64 * period.as_secs_f64()
            );
            observer.event(unix_time_ns(), &reason);
            report.stops.push(StopEvent {
                cycle: k,
                time_secs,
                kind: "stop",
                reason,
            });
            break;
        }
        if stale > u64::from(config.stale_cycles) + u64::from(config.hold_cycles) {
            report.exit = ExitReason::StateStale;
            let reason = format!(
                "no valid state on `{}` for {stale} cycles ({:.3} s): stopped after holding {} \
                 cycles",
                config.state_topic,
                stale as f64 * period.as_secs_f64(),
                config.hold_cycles
            );
            observer.event(unix_time_ns(), &reason);
            report.stops.push(StopEvent {
                cycle: k,
                time_secs,
                kind: "stop",
                reason,
            });
            break;
        }
        let hold = stale > u64::from(config.stale_cycles);
        if hold != holding {
            holding = hold;
            let reason = if hold {
                format!(
                    "state on `{}` stale for {stale} cycles: holding",
                    config.state_topic
                )
            } else {
                "state fresh again: resuming".to_owned()
            };
            observer.event(unix_time_ns(), &reason);
            if hold {
                report.stops.push(StopEvent {
                    cycle: k,
                    time_secs,
                    kind: "hold",
                    reason,
                });
            } else {
                // Commands resume from the measured state, at rest.
                let _ = filter.reset(&measured.view());
            }
        }

        // 5. Command.
        if hold {
            report.hold_cycles += 1;
            for d in 0..n {
                command[d] = match mode {
                    CommandMode::Position if sent_any => last_sent[d],
                    CommandMode::Position => measured.position[d],
                    _ => 0.0,
                };
            }
        } else {
            source.command(time_secs, &measured.view(), &mut command);
            // DoFs the message does not carry: hold them (keeps the filter's state quiet).
            for (d, c) in command.iter_mut().enumerate() {
                if !commanded[d] {
                    *c = match mode {
                        CommandMode::Position => measured.position[d],
                        _ => 0.0,
                    };
                }
            }
            let filtered = filter.apply(mode, &measured.view(), &mut command);
            if !filtered.passed_through() {
                report.safety_limited_cycles += 1;
            }
        }
        last_sent.copy_from_slice(&command);
        sent_any = true;
        let now_ns = unix_time_ns();
        match &mut out {
            CommandOut::Forward(publisher, msg) => {
                for (slot, (_, d)) in msg.data.iter_mut().zip(&config.command_joints) {
                    *slot = command[*d];
                }
                let bytes = publisher.publish(msg)?;
                observer.command(now_ns, bytes);
            }
            CommandOut::Trajectory(publisher, msg) => {
                let point = &mut msg.points[0];
                for (j, (_, d)) in config.command_joints.iter().enumerate() {
                    point.positions[j] = command[*d];
                    point.velocities[j] = filter.output_state(*d).map_or(0.0, |s| s[1]);
                }
                point.time_from_start = RosDuration {
                    sec: 0,
                    nanosec: period.as_nanos() as u32,
                };
                msg.header.stamp = Time::default();
                let bytes = publisher.publish(msg)?;
                observer.command(now_ns, bytes);
            }
            CommandOut::DryRun => {
                let values: Vec<f64> = config
                    .command_joints
                    .iter()
                    .map(|(_, d)| command[*d])
                    .collect();
                let msg = Float64MultiArray {
                    data: values.clone(),
                    ..Default::default()
                };
                let mut bytes = Vec::new();
                msg.encode_into(&mut bytes);
                observer.command(now_ns, &bytes);
                report.dry_run_commands.push((time_secs, values));
            }
        }
        report.commands_sent += 1;

        if config.trigger == Trigger::State {
            k += 1;
            continue;
        }
        // Deadline bookkeeping: work that ran past the next deadline, and deadlines skipped.
        let next = start + period.mul_f64((k + 1) as f64);
        let now = Instant::now();
        if now > next {
            report.deadline_misses += 1;
            let behind = ((now - start).as_secs_f64() / period.as_secs_f64()).floor() as u64;
            if behind > k + 1 {
                report.deadline_misses += behind - (k + 1);
                k = behind;
                continue;
            }
        }
        k += 1;
    }
    report.elapsed_secs = start.elapsed().as_secs_f64();
    report.stale_cycles_at_exit = stale;
    report.jitter = JitterStats::from_samples(&mut lateness);
    if report.message.is_empty() {
        report.message = match report.exit {
            ExitReason::Duration => format!("ran {:.2} s", report.elapsed_secs),
            ExitReason::Interrupted => "interrupted".to_owned(),
            _ => report
                .stops
                .last()
                .map_or_else(String::new, |s| s.reason.clone()),
        };
    }
    observer.event(unix_time_ns(), &format!("deploy ended: {}", report.message));
    Ok(report)
}

fn decode_and_accept(
    msg: &mut JointState,
    bytes: &[u8],
    measured: &mut Measured,
    config: &DeployConfig,
) -> Result<(), RejectKind> {
    if msg.decode_into(bytes).is_err() {
        return Err(RejectKind::Malformed);
    }
    measured.accept(msg, &config.state_joints)
}

fn count_reject(counts: &mut RejectCounts, kind: RejectKind) {
    match kind {
        RejectKind::Malformed => counts.malformed += 1,
        RejectKind::WrongSize => counts.wrong_size += 1,
        RejectKind::MissingJoint => counts.missing_joint += 1,
        RejectKind::NonFinite => counts.non_finite += 1,
    }
}

fn reject_text(kind: RejectKind) -> &'static str {
    match kind {
        RejectKind::Malformed => "not a decodable sensor_msgs/JointState",
        RejectKind::WrongSize => "array lengths do not match the names",
        RejectKind::MissingJoint => "a profile joint is missing",
        RejectKind::NonFinite => "a value is NaN or infinite",
    }
}

/// Sleeps until `deadline`: the OS sleep for all but the last `spin`, then a busy wait.
pub fn sleep_until(deadline: Instant, spin: Duration) {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let left = deadline - now;
        if left > spin {
            std::thread::sleep(left - spin);
        } else {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests;
