//! `rivet bench bridge`: the hardware bridge's latency over loopback TCP, against raw zenoh.
//! Measurements, never assertions.
//!
//! Three measurements per loop rate, each with its own pair of real zenoh peer sessions in this
//! process (multicast scouting off, one listening on a free 127.0.0.1 port, the other
//! connecting to it):
//!
//! 1. Raw zenoh ping/pong. Session A puts a payload as long as the CDR `sensor_msgs/JointState`
//!    of the arm on `rivet/bench/ping`; session B's subscriber callback at once puts a payload
//!    as long as the CDR `std_msgs/Float64MultiArray` command on `rivet/bench/pong`; A times
//!    publish to receive per message. Both publishers use the bridge's QoS (drop on
//!    congestion, real-time priority, express).
//! 2. The bridge, state in to command out. A robot thread publishes `JointState` through a
//!    [`RosNode`] publisher (CDR, rmw_zenoh attachment), carrying a sequence number as a ramp on
//!    the first joint's position; [`deploy::run`] with [`Trigger::State`] (each state starts a
//!    cycle at once) decodes and validates it, echoes the positions as the command, passes it
//!    through the arm's [`SafetyFilter`](rivet_control::safety::SafetyFilter) and publishes
//!    `Float64MultiArray`; the robot's command subscriber times publish(state) to
//!    receive(command) for the matching sequence number.
//! 3. Loop jitter: [`deploy::run`] with [`Trigger::Clock`] against the robot publishing at the
//!    same rate; the report's wake-up lateness and deadline misses.
//!
//! Both senders run at the loop rate (a sleep, then a spin for the last `--spin-us`, as the
//! deploy loop does). The first `--warmup` samples of each measurement are discarded.
//!
//! The safety filter is [`SafetyConfig::from_tree`] of the arm: the URDF's position, soft
//! (`<safety_controller>`), velocity and effort limits over all of its coordinates (the loop
//! holds those the command does not carry). A URDF has no acceleration or jerk limits, so the
//! filter's braking simulations are short here; a hardware profile that sets them makes the
//! filter cost more per cycle (see the cost section of `rivet_control::safety`). The sequence
//! ramp moves at most 1% of the joint's velocity limit per state, so the filter passes it
//! through unchanged; commands it changed anyway are counted (`altered_by_filter`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rivet_control::safety::SafetyConfig;
use rivet_control::{JointStateView, RobotTree};
use rivet_hw_bridge::RosMessage;
use rivet_hw_bridge::deploy::{
    self, CommandSource, DeployConfig, DeployObserver, DeployReport, JitterStats, NoObserver,
    Stopper, Trigger,
};
use rivet_hw_bridge::keys::{
    ATTACHMENT_LEN, DomainId, Namespace, NodeName, RosDistro, TopicName, TypeHashProfile,
    data_key_expr_any_hash,
};
use rivet_hw_bridge::msgs::builtin_interfaces::Time;
use rivet_hw_bridge::msgs::sensor_msgs::JointState;
use rivet_hw_bridge::msgs::std_msgs::Float64MultiArray;
use rivet_hw_bridge::node::{NodeSettings, RosNode, unix_time_ns};
use rivet_hw_bridge::profile::CommandKind;
use serde_json::json;
use zenoh::Wait;
use zenoh::qos::{CongestionControl, Priority};

/// Goal from the issue: the bridge's round trip p99 at most this multiple of raw zenoh's.
const ROUND_TRIP_RATIO_GOAL: f64 = 1.2;

/// Goal from the issue: the clock loop's wake-up lateness p99 at 1 kHz (µs).
const JITTER_P99_GOAL_US: f64 = 50.0;

/// Joints the state and command carry: the arm's first six coordinates (rivet_arm6's arm; its
/// two fingers are held by the loop).
const ARM_JOINTS: usize = 6;

/// How long a sender waits for the first answer before giving up.
const PRIMING_TIMEOUT: Duration = Duration::from_secs(20);

/// Arguments of `rivet bench bridge`.
#[derive(clap::Args, Debug)]
pub struct BridgeArgs {
    /// Loop rates to measure (Hz).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "100,1000",
        value_name = "HZ,.."
    )]
    pub rates: Vec<f64>,
    /// Timed samples per measurement, at every rate (default: 2 s worth and at least 500, that
    /// is 500 at 100 Hz and 2000 at 1 kHz).
    #[arg(long, value_name = "N")]
    pub samples: Option<usize>,
    /// Samples sent (and cycles run) before the timed ones, then discarded.
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub warmup: usize,
    /// The last part of each wait, in the deploy loop and in the senders, that spins instead of
    /// sleeping (µs).
    #[arg(long, default_value_t = 100, value_name = "US")]
    pub spin_us: u64,
    /// The arm whose limits the safety filter enforces (its first six coordinates are the
    /// state and command joints).
    #[arg(
        long,
        default_value = "scenes/robots/rivet_arm6.urdf",
        value_name = "URDF"
    )]
    pub urdf: PathBuf,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

impl BridgeArgs {
    fn samples_at(&self, rate_hz: f64) -> usize {
        self.samples
            .unwrap_or_else(|| ((2.0 * rate_hz).round() as usize).max(500))
    }

    /// The command line that reproduces this run.
    fn command_line(&self) -> String {
        let rates: Vec<String> = self.rates.iter().map(|r| format!("{r}")).collect();
        let mut line = format!(
            "rivet bench bridge --rates {} --warmup {} --spin-us {} --urdf {}",
            rates.join(","),
            self.warmup,
            self.spin_us,
            self.urdf.display()
        );
        if let Some(n) = self.samples {
            line.push_str(&format!(" --samples {n}"));
        }
        if self.json {
            line.push_str(" --json");
        }
        line
    }
}

/// The arm, its messages and the sequence-number ramp.
struct Arm {
    path: PathBuf,
    tree: RobotTree,
    /// State and command joints: (name, tree DoF).
    joints: Vec<(String, usize)>,
    /// Positions of the state joints at rest (joint 0 is overwritten by the ramp).
    rest: Vec<f64>,
    /// Ramp on joint 0: position of sequence number `s` is `base + s * step` (`step` chosen per
    /// rate and sample count).
    base: f64,
    /// Room for the ramp above `base` (rad).
    span: f64,
    /// Joint 0's velocity limit (rad/s; infinite when the file has none).
    velocity_limit: f64,
    /// Encoded sizes.
    state_bytes: usize,
    command_bytes: usize,
}

impl Arm {
    fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let tree = RobotTree::from_urdf_file(path)?;
        let n = tree.dof_count();
        anyhow::ensure!(n > 0, "{}: the robot has no moving joints", path.display());
        let limits = SafetyConfig::from_tree(&tree, 0.01);
        let joints: Vec<(String, usize)> = (0..n.min(ARM_JOINTS))
            .map(|d| (tree.dof_joint(d).name.clone(), d))
            .collect();
        // Where each joint may go without the filter stepping in: the soft limits, else the hard
        // ones, else one turn.
        let range = |d: usize| {
            let j = &limits.joints[d];
            let [lo, hi] = j
                .soft
                .map(|s| [s.lower, s.upper])
                .or(j.position)
                .unwrap_or([-std::f64::consts::PI, std::f64::consts::PI]);
            let lo = if lo.is_finite() {
                lo
            } else {
                -std::f64::consts::PI
            };
            let hi = if hi.is_finite() {
                hi
            } else {
                std::f64::consts::PI
            };
            [lo, hi]
        };
        let rest: Vec<f64> = joints
            .iter()
            .map(|&(_, d)| {
                let [lo, hi] = range(d);
                if lo < 0.0 && 0.0 < hi {
                    0.0
                } else {
                    0.5 * (lo + hi)
                }
            })
            .collect();
        let [lo, hi] = range(0);
        anyhow::ensure!(
            hi > lo,
            "{}: joint `{}` has no room to move",
            path.display(),
            joints[0].0
        );
        // Stay a tenth of the range away from the limits (the soft-limit velocity band narrows
        // near them).
        let margin = 0.1 * (hi - lo);
        let velocity_limit = limits.joints[0].velocity;
        let mut arm = Self {
            path: std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
            tree,
            joints,
            rest,
            base: lo + margin,
            span: (hi - lo) - 2.0 * margin,
            velocity_limit,
            state_bytes: 0,
            command_bytes: 0,
        };
        let mut buf = Vec::new();
        arm.state_msg().encode_into(&mut buf);
        arm.state_bytes = buf.len();
        arm.command_msg().encode_into(&mut buf);
        arm.command_bytes = buf.len();
        Ok(arm)
    }

    fn state_msg(&self) -> JointState {
        let mut position = self.rest.clone();
        position[0] = self.base;
        let n = self.joints.len();
        JointState {
            name: self.joints.iter().map(|(name, _)| name.clone()).collect(),
            position,
            velocity: vec![0.0; n],
            effort: vec![0.0; n],
            ..Default::default()
        }
    }

    fn command_msg(&self) -> Float64MultiArray {
        Float64MultiArray {
            data: vec![0.0; self.joints.len()],
            ..Default::default()
        }
    }

    /// Ramp step for `count` sequence numbers at `rate_hz`: at most 1% of the velocity limit,
    /// so the filter passes the ramp through unchanged even when the loop skips up to 99
    /// states in a row (a stalled thread on a loaded machine), and within the joint's range.
    fn step(&self, rate_hz: f64, count: usize) -> f64 {
        let by_range = self.span / (count as f64 + 1.0);
        if self.velocity_limit.is_finite() {
            by_range.min(0.01 * self.velocity_limit / rate_hz)
        } else {
            by_range
        }
    }

    fn deploy_config(&self, rate_hz: f64, trigger: Trigger, spin: Duration) -> DeployConfig {
        DeployConfig {
            state_joints: self.joints.clone(),
            command_joints: self.joints.clone(),
            dof_count: self.tree.dof_count(),
            kind: CommandKind::ForwardPosition,
            rate_hz,
            // The bench ends runs with the stopper; the watchdog must not end them first (the
            // senders stop a little before the loop does).
            stale_cycles: (0.1 * rate_hz).ceil().max(5.0) as u32,
            hold_cycles: (10.0 * rate_hz).ceil() as u32,
            trigger,
            startup_timeout: PRIMING_TIMEOUT,
            duration: None,
            dry_run: false,
            spin,
            state_topic: topic("/joint_states"),
            command_topic: topic("/forward_position_controller/commands"),
            estop_topic: topic("/rivet/estop"),
        }
    }
}

fn topic(name: &str) -> TopicName {
    TopicName::new(name).unwrap_or_else(|e| unreachable!("{name} is a valid topic: {e}"))
}

/// Echoes the measured positions as the position command: joint 0 carries the sequence number
/// back, the other joints hold.
struct Echo;

impl CommandSource for Echo {
    fn command(&mut self, _time_secs: f64, state: &JointStateView<'_>, command: &mut [f64]) {
        command.copy_from_slice(state.position);
    }
}

/// Now, as a ROS time stamp.
fn stamp() -> Time {
    let now = unix_time_ns();
    Time {
        sec: (now / 1_000_000_000) as i32,
        nanosec: (now % 1_000_000_000) as u32,
    }
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// A peer config with multicast scouting off, listening and/or connecting on loopback.
fn loopback_config(listen: Option<u16>, connect: Option<u16>) -> anyhow::Result<zenoh::Config> {
    let mut config = zenoh::Config::default();
    let endpoints = |port: Option<u16>| match port {
        Some(p) => format!("[\"tcp/127.0.0.1:{p}\"]"),
        None => "[]".into(),
    };
    for (key, value) in [
        ("mode", "\"peer\"".to_owned()),
        ("scouting/multicast/enabled", "false".to_owned()),
        ("listen/endpoints", endpoints(listen)),
        ("connect/endpoints", endpoints(connect)),
    ] {
        config
            .insert_json5(key, &value)
            .map_err(|e| anyhow::anyhow!("zenoh config {key} = {value}: {e}"))?;
    }
    Ok(config)
}

fn open_session(config: zenoh::Config) -> anyhow::Result<zenoh::Session> {
    zenoh::open(config)
        .wait()
        .map_err(|e| anyhow::anyhow!("cannot open a zenoh session: {e}"))
}

fn settings(name: &str) -> anyhow::Result<NodeSettings> {
    Ok(NodeSettings {
        domain: DomainId::new(0)?,
        namespace: Namespace::root(),
        name: NodeName::new(name)?,
        hashes: TypeHashProfile::new(RosDistro::Jazzy),
    })
}

/// A node pair on a fresh loopback port: the robot listens, the deploy side connects.
fn node_pair() -> anyhow::Result<(RosNode, RosNode)> {
    let port = free_port()?;
    let robot = RosNode::open(loopback_config(Some(port), None)?, settings("bench_robot")?)?;
    let deploy = RosNode::open(
        loopback_config(None, Some(port))?,
        settings("rivet_deploy")?,
    )?;
    Ok((robot, deploy))
}

/// Paces a sender at the loop rate.
struct Pacer {
    start: Instant,
    period: Duration,
    spin: Duration,
    k: u32,
}

impl Pacer {
    fn new(rate_hz: f64, spin: Duration) -> Self {
        Self {
            start: Instant::now(),
            period: Duration::from_secs_f64(1.0 / rate_hz),
            spin,
            k: 0,
        }
    }

    fn wait(&mut self) {
        deploy::sleep_until(self.start + self.period * self.k, self.spin);
        self.k += 1;
    }

    /// Time for the last answers to come back.
    fn settle(&self) -> Duration {
        (self.period * 20).max(Duration::from_millis(50))
    }
}

/// Round trips of one measurement.
struct RoundTrip {
    /// Timed samples sent (after the warm-up).
    sent: usize,
    /// Of those, answered.
    received: usize,
    /// Answers whose value did not match what was sent (the filter changed it).
    altered: usize,
    stats: JitterStats,
    mean_us: f64,
}

impl RoundTrip {
    /// `sent[i]` is when sequence number `i + 1` went out; `answers` are (arrival, sequence
    /// number) pairs in arrival order, `None` for an answer that matched nothing.
    fn new(
        sent: &[Instant],
        warmup: usize,
        answers: impl Iterator<Item = (Instant, Option<u64>)>,
    ) -> Self {
        let mut first: Vec<Option<Instant>> = vec![None; sent.len()];
        let mut altered = 0;
        for (t, seq) in answers {
            match seq {
                Some(s) if s >= 1 && (s as usize) <= sent.len() => {
                    let slot = &mut first[s as usize - 1];
                    if slot.is_none() {
                        *slot = Some(t);
                    }
                }
                Some(_) => {}
                None => altered += 1,
            }
        }
        let mut ns: Vec<u64> = sent
            .iter()
            .zip(&first)
            .skip(warmup)
            .filter_map(|(s, r)| r.map(|r| r.saturating_duration_since(*s).as_nanos() as u64))
            .collect();
        let received = ns.len();
        let mean_us = if ns.is_empty() {
            f64::NAN
        } else {
            ns.iter().map(|&x| x as f64).sum::<f64>() / ns.len() as f64 / 1e3
        };
        Self {
            sent: sent.len().saturating_sub(warmup),
            received,
            altered,
            stats: JitterStats::from_samples(&mut ns),
            mean_us,
        }
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "samples": self.sent,
            "received": self.received,
            "lost": self.sent - self.received,
            "p50_us": self.stats.p50_us,
            "p99_us": self.stats.p99_us,
            "p999_us": self.stats.p999_us,
            "max_us": self.stats.max_us,
            "mean_us": self.mean_us,
        })
    }
}

/// What one sender does in order: publish priming messages until the first answer, then the
/// warm-up and timed ones, then wait for the last answers.
struct Sequence {
    rate_hz: f64,
    spin: Duration,
    count: usize,
}

impl Sequence {
    /// Runs the sender: `send(seq)` publishes (seq 0 for priming) and returns when it went out;
    /// `answered` counts answers; after the last send it waits until `done()` says the last
    /// answer came (or a settling time passed).
    fn run(
        &self,
        answered: &AtomicU64,
        abort: &AtomicBool,
        progress: &indicatif::ProgressBar,
        mut send: impl FnMut(u64) -> anyhow::Result<Instant>,
        done: impl Fn() -> bool,
    ) -> anyhow::Result<Vec<Instant>> {
        let mut pacer = Pacer::new(self.rate_hz, self.spin);
        let started = Instant::now();
        while answered.load(Ordering::SeqCst) == 0 {
            anyhow::ensure!(!abort.load(Ordering::SeqCst), "the other side stopped");
            anyhow::ensure!(
                started.elapsed() < PRIMING_TIMEOUT,
                "no answer within {:.0} s",
                PRIMING_TIMEOUT.as_secs_f64()
            );
            pacer.wait();
            send(0)?;
        }
        let mut pacer = Pacer::new(self.rate_hz, self.spin);
        let mut sent = Vec::with_capacity(self.count);
        for seq in 1..=self.count as u64 {
            if abort.load(Ordering::SeqCst) {
                break;
            }
            pacer.wait();
            sent.push(send(seq)?);
            progress.inc(1);
        }
        let settled = Instant::now() + pacer.settle();
        while !done() && Instant::now() < settled {
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(sent)
    }
}

fn raw_publisher(
    session: &zenoh::Session,
    key: &'static str,
) -> anyhow::Result<zenoh::pubsub::Publisher<'static>> {
    session
        .declare_publisher(key)
        .congestion_control(CongestionControl::Drop)
        .priority(Priority::RealTime)
        .express(true)
        .wait()
        .map_err(|e| anyhow::anyhow!("cannot declare a publisher on {key}: {e}"))
}

/// Measurement 1: raw zenoh ping/pong.
fn raw_round_trip(
    arm: &Arm,
    rate_hz: f64,
    samples: usize,
    args: &BridgeArgs,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<(RoundTrip, RawStages)> {
    let port = free_port()?;
    let a = open_session(loopback_config(Some(port), None)?)?;
    let b = open_session(loopback_config(None, Some(port))?)?;
    let pong_len = arm.command_bytes.max(8);
    let pong = raw_publisher(&b, "rivet/bench/pong")?;
    let count = args.warmup + samples;
    let pings = Arc::new(Mutex::new(Vec::<(Instant, u64)>::with_capacity(2 * count)));
    let echo = {
        let pings = pings.clone();
        b.declare_subscriber("rivet/bench/ping")
            .callback(move |sample| {
                let t = Instant::now();
                let ping = sample.payload().to_bytes();
                let mut reply = vec![0u8; pong_len];
                let n = ping.len().min(8);
                reply[..n].copy_from_slice(&ping[..n]);
                let _ = pong.put(reply).wait();
                // Noted after the answer went out, so the note does not delay it.
                if let Some(seq) = ping.get(..8)
                    && let Ok(mut v) = pings.lock()
                {
                    v.push((t, u64::from_le_bytes(seq.try_into().unwrap_or_default())));
                }
            })
            .wait()
            .map_err(|e| anyhow::anyhow!("cannot subscribe to rivet/bench/ping: {e}"))?
    };
    let arrivals = Arc::new(Mutex::new(Vec::<(Instant, u64)>::with_capacity(2 * count)));
    let answered = Arc::new(AtomicU64::new(0));
    let last = Arc::new(AtomicU64::new(0));
    let pongs = {
        let (arrivals, answered, last) = (arrivals.clone(), answered.clone(), last.clone());
        a.declare_subscriber("rivet/bench/pong")
            .callback(move |sample| {
                let t = Instant::now();
                let bytes = sample.payload().to_bytes();
                if let Some(seq) = bytes.get(..8) {
                    let seq = u64::from_le_bytes(seq.try_into().unwrap_or_default());
                    last.store(seq, Ordering::SeqCst);
                    if let Ok(mut v) = arrivals.lock() {
                        v.push((t, seq));
                    }
                }
                answered.fetch_add(1, Ordering::SeqCst);
            })
            .wait()
            .map_err(|e| anyhow::anyhow!("cannot subscribe to rivet/bench/pong: {e}"))?
    };
    let ping = raw_publisher(&a, "rivet/bench/ping")?;
    let mut payload = vec![0u8; arm.state_bytes.max(8)];
    let sent = Sequence {
        rate_hz,
        spin: Duration::from_micros(args.spin_us),
        count,
    }
    .run(
        &answered,
        &AtomicBool::new(false),
        progress,
        |seq| {
            payload[..8].copy_from_slice(&seq.to_le_bytes());
            let t = Instant::now();
            ping.put(payload.clone())
                .wait()
                .map_err(|e| anyhow::anyhow!("cannot publish on rivet/bench/ping: {e}"))?;
            Ok(t)
        },
        || last.load(Ordering::SeqCst) >= count as u64,
    )
    .map_err(|e| anyhow::anyhow!("raw zenoh ping/pong at {rate_hz} Hz: {e}"))?;
    drop((echo, pongs, ping));
    let _ = a.close().wait();
    let _ = b.close().wait();
    let arrivals = std::mem::take(&mut *arrivals.lock().map_err(|_| poisoned())?);
    let pings = std::mem::take(&mut *pings.lock().map_err(|_| poisoned())?);
    let stages = RawStages::new(&sent, args.warmup, &pings, &arrivals);
    Ok((
        RoundTrip::new(
            &sent,
            args.warmup,
            arrivals.into_iter().map(|(t, s)| (t, Some(s))),
        ),
        stages,
    ))
}

/// The raw round trip's two one-way legs (same process, same clock).
struct RawStages {
    /// Samples with both legs.
    samples: usize,
    /// A's put to B's callback.
    ping: JitterStats,
    /// B's callback to A's callback (B's put included).
    pong: JitterStats,
}

impl RawStages {
    /// `sent[i]`: when sequence number `i + 1` went out; `pings` and `pongs`: (arrival, sequence
    /// number) at B and back at A.
    fn new(
        sent: &[Instant],
        warmup: usize,
        pings: &[(Instant, u64)],
        pongs: &[(Instant, u64)],
    ) -> Self {
        let first = |arrivals: &[(Instant, u64)]| {
            let mut at: Vec<Option<Instant>> = vec![None; sent.len()];
            for &(t, s) in arrivals {
                if let Some(slot) = at.get_mut((s as usize).wrapping_sub(1))
                    && slot.is_none()
                {
                    *slot = Some(t);
                }
            }
            at
        };
        let (at_b, at_a) = (first(pings), first(pongs));
        let (mut ping, mut pong) = (Vec::new(), Vec::new());
        for i in warmup..sent.len() {
            if let (Some(b), Some(a)) = (at_b[i], at_a[i]) {
                ping.push(b.saturating_duration_since(sent[i]).as_nanos() as u64);
                pong.push(a.saturating_duration_since(b).as_nanos() as u64);
            }
        }
        Self {
            samples: ping.len(),
            ping: JitterStats::from_samples(&mut ping),
            pong: JitterStats::from_samples(&mut pong),
        }
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "samples": self.samples,
            "ping_one_way": stats_json(&self.ping),
            "pong_one_way": stats_json(&self.pong),
        })
    }
}

fn stats_json(j: &JitterStats) -> serde_json::Value {
    json!({ "p50_us": j.p50_us, "p99_us": j.p99_us, "p999_us": j.p999_us, "max_us": j.max_us })
}

fn poisoned() -> anyhow::Error {
    anyhow::anyhow!("a measurement thread panicked")
}

/// What the robot side of a bridge measurement saw.
struct RobotSide {
    /// (arrival, arrival in UNIX ns, joint 0's commanded position) per command received.
    commands: Arc<Mutex<Vec<(Instant, u64, f64)>>>,
    received: Arc<AtomicU64>,
    /// Joint 0's value in the last command (`f64` bits).
    last: Arc<AtomicU64>,
    _subscriber: zenoh::pubsub::Subscriber<()>,
}

impl RobotSide {
    /// Subscribes to the commands with a callback that notes each one's arrival.
    fn subscribe(robot: &RosNode, config: &DeployConfig, capacity: usize) -> anyhow::Result<Self> {
        let commands = Arc::new(Mutex::new(Vec::with_capacity(capacity)));
        let received = Arc::new(AtomicU64::new(0));
        let last = Arc::new(AtomicU64::new(f64::NAN.to_bits()));
        let key = data_key_expr_any_hash(
            robot.identity().domain,
            &config.command_topic,
            Float64MultiArray::DDS_TYPE_NAME,
        );
        let (c, r, l) = (commands.clone(), received.clone(), last.clone());
        let subscriber = robot
            .session()
            .declare_subscriber(key.clone())
            .callback(move |sample| {
                let t = Instant::now();
                let t_ns = unix_time_ns();
                if let Ok(cmd) = Float64MultiArray::decode(&sample.payload().to_bytes())
                    && let Some(&v) = cmd.data.first()
                {
                    l.store(v.to_bits(), Ordering::SeqCst);
                    if let Ok(mut c) = c.lock() {
                        c.push((t, t_ns, v));
                    }
                }
                r.fetch_add(1, Ordering::SeqCst);
            })
            .wait()
            .map_err(|e| anyhow::anyhow!("cannot subscribe to {key}: {e}"))?;
        Ok(Self {
            commands,
            received,
            last,
            _subscriber: subscriber,
        })
    }
}

/// Runs the deploy loop on this thread while `robot` runs on another; the robot thread stops
/// the loop when it is done, and is told to stop when the loop ends first.
fn with_robot<T: Send + 'static>(
    deploy_node: &mut RosNode,
    config: &DeployConfig,
    safety: SafetyConfig,
    tree: &RobotTree,
    observer: &mut dyn DeployObserver,
    robot: impl FnOnce(&AtomicBool, &Stopper) -> anyhow::Result<T> + Send + 'static,
    mut runs: impl FnMut(&mut RosNode, &Stopper) -> anyhow::Result<()>,
) -> anyhow::Result<(DeployReport, T)> {
    let stopper = Stopper::default();
    let abort = Arc::new(AtomicBool::new(false));
    let thread = {
        let (abort, stopper) = (abort.clone(), stopper.clone());
        std::thread::spawn(move || {
            let result = robot(&abort, &stopper);
            stopper.stop();
            result
        })
    };
    let report = runs(deploy_node, &stopper).and_then(|()| {
        deploy::run(
            deploy_node,
            config,
            safety,
            Some(tree.clone()),
            &mut Echo,
            observer,
            &stopper,
        )
        .map_err(anyhow::Error::from)
    });
    abort.store(true, Ordering::SeqCst);
    let robot = thread.join().map_err(|_| poisoned())?;
    let report = report?;
    Ok((report, robot?))
}

/// Measurement 2: the bridge round trip, state in to command out (Trigger::State).
fn bridge_round_trip(
    arm: &Arm,
    rate_hz: f64,
    samples: usize,
    args: &BridgeArgs,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<(RoundTrip, StateLoop)> {
    let spin = Duration::from_micros(args.spin_us);
    let config = arm.deploy_config(rate_hz, Trigger::State, spin);
    let (mut robot, mut deploy_node) = node_pair()?;
    let count = args.warmup + samples;
    let side = RobotSide::subscribe(&robot, &config, 2 * count + 1024)?;
    let mut publisher = robot.publisher::<JointState>(&config.state_topic)?;
    let step = arm.step(rate_hz, count);
    let base = arm.base;
    let mut msg = arm.state_msg();
    let sequence = Sequence {
        rate_hz,
        spin,
        count,
    };
    let answered = side.received.clone();
    let last = side.last.clone();
    let final_position = base + count as f64 * step;
    let bar = progress.clone();
    let mut loop_times = LoopTimes {
        fresh: false,
        msg: arm.command_msg(),
        base,
        step,
        window: (args.warmup + 1) as f64..=(count as f64 - 1.0),
        cycles: 0,
        without_state: 0,
        state_ns: 0,
        stages: Vec::with_capacity(count),
    };
    let (report, sent) = with_robot(
        &mut deploy_node,
        &config,
        SafetyConfig::from_tree(&arm.tree, 1.0 / rate_hz),
        &arm.tree,
        &mut loop_times,
        move |abort, _stopper| {
            let mut positions = Vec::with_capacity(count);
            let times = sequence.run(
                &answered,
                abort,
                &bar,
                |seq| {
                    let position = base + seq as f64 * step;
                    msg.position[0] = position;
                    msg.header.stamp = stamp();
                    let t_ns = unix_time_ns();
                    let t = Instant::now();
                    publisher.publish(&msg)?;
                    if seq > 0 {
                        positions.push((position, t_ns));
                    }
                    Ok(t)
                },
                || f64::from_bits(last.load(Ordering::SeqCst)) == final_position,
            )?;
            Ok((times, positions))
        },
        |_, _| Ok(()),
    )
    .map_err(|e| anyhow::anyhow!("bridge round trip at {rate_hz} Hz: {e}"))?;
    let (times, positions) = sent;
    let commands = std::mem::take(&mut *side.commands.lock().map_err(|_| poisoned())?);
    drop(side);
    robot.close();
    deploy_node.close();
    // An answer names its sequence number by its value; the priming value (seq 0) is skipped,
    // a value between ramp points (the filter changed it) counts as altered.
    let answers: Vec<(Instant, u64, Option<u64>)> = commands
        .into_iter()
        .filter_map(|(t, t_ns, v)| {
            let seq = ((v - base) / step).round();
            if seq < 0.5 {
                return (v != base).then_some((t, t_ns, None));
            }
            let s = seq as usize;
            match positions.get(s - 1) {
                Some(&(p, _)) if p == v => Some((t, t_ns, Some(s as u64))),
                Some(_) => Some((t, t_ns, None)),
                None => Some((t, t_ns, Some(s as u64))),
            }
        })
        .collect();
    let stages = Stages::new(&positions, args.warmup, &answers, &loop_times.stages);
    Ok((
        RoundTrip::new(
            &times,
            args.warmup,
            answers.into_iter().map(|(t, _, s)| (t, s)),
        ),
        StateLoop {
            report,
            cycles: loop_times.cycles,
            without_state: loop_times.without_state,
            stages,
        },
    ))
}

/// Where a bridge round trip's time goes, per timed sample (UNIX-clock time stamps, all in
/// this process).
struct Stages {
    /// Samples with all four time stamps.
    samples: usize,
    /// Robot publish to the loop taking the state (encode, zenoh, TCP, the deploy node's
    /// receive callback, the slot, the loop thread's wake-up).
    state_to_loop: JitterStats,
    /// Loop taking the state to publishing the command (decode, validation, e-stop, watchdog,
    /// command source, safety filter).
    loop_work: JitterStats,
    /// Loop publishing the command to the robot receiving it (encode, zenoh, TCP, the robot's
    /// receive callback).
    command_to_robot: JitterStats,
}

impl Stages {
    /// `sent[i]`: (position, publish time) of sequence number `i + 1`; `answers`: (arrival,
    /// arrival time, sequence number) in arrival order; `loop_times`: (sequence number, state
    /// taken, command published) for the loop's cycles that took a new state.
    fn new(
        sent: &[(f64, u64)],
        warmup: usize,
        answers: &[(Instant, u64, Option<u64>)],
        loop_times: &[(u64, u64, u64)],
    ) -> Self {
        let mut arrived: Vec<Option<u64>> = vec![None; sent.len()];
        for &(_, t_ns, seq) in answers {
            if let Some(s) = seq
                && let Some(slot) = arrived.get_mut((s as usize).wrapping_sub(1))
                && slot.is_none()
            {
                *slot = Some(t_ns);
            }
        }
        let mut took: Vec<Option<(u64, u64)>> = vec![None; sent.len()];
        for &(s, state_ns, command_ns) in loop_times {
            if let Some(slot) = took.get_mut((s as usize).wrapping_sub(1))
                && slot.is_none()
            {
                *slot = Some((state_ns, command_ns));
            }
        }
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        for i in warmup..sent.len() {
            if let (Some(arrival), Some((state_ns, command_ns))) = (arrived[i], took[i]) {
                a.push(state_ns.saturating_sub(sent[i].1));
                b.push(command_ns.saturating_sub(state_ns));
                c.push(arrival.saturating_sub(command_ns));
            }
        }
        Self {
            samples: a.len(),
            state_to_loop: JitterStats::from_samples(&mut a),
            loop_work: JitterStats::from_samples(&mut b),
            command_to_robot: JitterStats::from_samples(&mut c),
        }
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "samples": self.samples,
            "state_to_loop": stats_json(&self.state_to_loop),
            "loop_work": stats_json(&self.loop_work),
            "command_to_robot": stats_json(&self.command_to_robot),
        })
    }
}

/// The state-triggered loop's figures.
struct StateLoop {
    report: DeployReport,
    /// Cycles that answered a timed state (the last one excluded).
    cycles: u64,
    /// Of those, cycles that ran without a new state: the period (the watchdog's timeout) ran
    /// out before the next state came, so the loop commanded from the old one.
    without_state: u64,
    stages: Stages,
}

/// Counts the state-triggered loop's cycles between timed states, and those that ran without a
/// new state, from the commands it sends (joint 0 names the state's sequence number).
struct LoopTimes {
    fresh: bool,
    msg: Float64MultiArray,
    base: f64,
    step: f64,
    /// Sequence numbers whose cycles count (the timed ones but the last, after which the loop
    /// only times out until it is stopped).
    window: std::ops::RangeInclusive<f64>,
    cycles: u64,
    without_state: u64,
    /// When the loop took the last state (UNIX ns).
    state_ns: u64,
    /// (sequence number, state taken, command published) of the cycles that took a new state.
    stages: Vec<(u64, u64, u64)>,
}

impl DeployObserver for LoopTimes {
    fn state(&mut self, time_ns: u64, _: &[u8]) {
        self.fresh = true;
        self.state_ns = time_ns;
    }

    fn command(&mut self, time_ns: u64, cdr: &[u8]) {
        let fresh = std::mem::take(&mut self.fresh);
        if self.msg.decode_into(cdr).is_err() {
            return;
        }
        let Some(&v) = self.msg.data.first() else {
            return;
        };
        let seq = ((v - self.base) / self.step).round();
        if fresh && seq >= 0.5 && self.stages.len() < self.stages.capacity() {
            self.stages.push((seq as u64, self.state_ns, time_ns));
        }
        if self.window.contains(&seq) {
            self.cycles += 1;
            if !fresh {
                self.without_state += 1;
            }
        }
    }

    fn event(&mut self, _: u64, _: &str) {}
}

/// The clock loop's figures.
struct Clock {
    report: DeployReport,
    commands_received: u64,
}

/// Measurement 3: loop jitter with the fixed-rate clock: a warm-up run of `--warmup` cycles,
/// then the timed run of `samples` cycles, against a robot publishing at the same rate.
fn clock_jitter(
    arm: &Arm,
    rate_hz: f64,
    samples: usize,
    args: &BridgeArgs,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<Clock> {
    let spin = Duration::from_micros(args.spin_us);
    let mut config = arm.deploy_config(rate_hz, Trigger::Clock, spin);
    let (mut robot, mut deploy_node) = node_pair()?;
    let count = args.warmup + samples;
    let side = RobotSide::subscribe(&robot, &config, 2 * count + 1024)?;
    let mut publisher = robot.publisher::<JointState>(&config.state_topic)?;
    let mut msg = arm.state_msg();
    let bar = progress.clone();
    let received = side.received.clone();
    let robot_thread = move |abort: &AtomicBool, _: &Stopper| -> anyhow::Result<()> {
        let mut pacer = Pacer::new(rate_hz, spin);
        let mut shown = 0;
        while !abort.load(Ordering::SeqCst) {
            pacer.wait();
            msg.header.stamp = stamp();
            publisher.publish(&msg)?;
            if shown < count && received.load(Ordering::SeqCst) > 0 {
                bar.inc(1);
                shown += 1;
            }
        }
        Ok(())
    };
    let safety = SafetyConfig::from_tree(&arm.tree, 1.0 / rate_hz);
    let warmup_cycles = args.warmup;
    let warmup_config = DeployConfig {
        duration: Some(Duration::from_secs_f64(warmup_cycles as f64 / rate_hz)),
        ..config.clone()
    };
    let warmup_safety = safety.clone();
    let tree = arm.tree.clone();
    config.duration = Some(Duration::from_secs_f64(samples as f64 / rate_hz));
    let (report, ()) = with_robot(
        &mut deploy_node,
        &config,
        safety,
        &arm.tree,
        &mut NoObserver,
        robot_thread,
        move |node, stopper| {
            if warmup_cycles > 0 {
                let r = deploy::run(
                    node,
                    &warmup_config,
                    warmup_safety.clone(),
                    Some(tree.clone()),
                    &mut Echo,
                    &mut NoObserver,
                    stopper,
                )?;
                anyhow::ensure!(r.exit.is_clean(), "warm-up run: {}", r.message);
            }
            Ok(())
        },
    )
    .map_err(|e| anyhow::anyhow!("clock loop at {rate_hz} Hz: {e}"))?;
    // The robot thread stops the loop when it fails; a clean run ends by its duration.
    anyhow::ensure!(
        report.exit == deploy::ExitReason::Duration,
        "clock loop at {rate_hz} Hz: {}",
        report.message
    );
    let commands_received = side.received.load(Ordering::SeqCst);
    drop(side);
    robot.close();
    deploy_node.close();
    Ok(Clock {
        report,
        commands_received,
    })
}

/// Bridge over raw at one percentile.
fn ratio(bridge: f64, raw: f64) -> f64 {
    if raw > 0.0 { bridge / raw } else { f64::NAN }
}

/// The 1-minute load average (Linux), to judge how shared the machine was.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "missed" }
}

/// Runs the benchmark.
pub fn bridge(args: BridgeArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.rates.is_empty(),
        "--rates must name at least one rate"
    );
    for &r in &args.rates {
        anyhow::ensure!(
            r.is_finite() && r > 0.0 && r <= 10_000.0,
            "--rates: {r} Hz must be in (0, 10000]"
        );
    }
    anyhow::ensure!(args.samples != Some(0), "--samples must be > 0");
    let arm = Arm::load(&args.urdf)?;
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load_start = load_average();
    let total: usize = args
        .rates
        .iter()
        .map(|&r| 3 * (args.warmup + args.samples_at(r)))
        .sum();
    let progress = if args.json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(total as u64).with_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        )
    };

    let mut results = Vec::new();
    let mut goals = Vec::new();
    for &rate in &args.rates {
        let samples = args.samples_at(rate);
        progress.set_message(format!("{rate} Hz: raw zenoh ping/pong"));
        let (raw, raw_stages) = raw_round_trip(&arm, rate, samples, &args, &progress)?;
        progress.set_message(format!("{rate} Hz: bridge, state in to command out"));
        let (bridge, state_loop) = bridge_round_trip(&arm, rate, samples, &args, &progress)?;
        progress.set_message(format!("{rate} Hz: clock loop jitter"));
        let clock = clock_jitter(&arm, rate, samples, &args, &progress)?;

        let ratios = [
            ratio(bridge.stats.p50_us, raw.stats.p50_us),
            ratio(bridge.stats.p99_us, raw.stats.p99_us),
            ratio(bridge.stats.p999_us, raw.stats.p999_us),
        ];
        goals.push(json!({
            "goal": format!("bridge round trip p99 <= {ROUND_TRIP_RATIO_GOAL}x raw zenoh"),
            "rate_hz": rate,
            "measured": ratios[1],
            "limit": ROUND_TRIP_RATIO_GOAL,
            "unit": "x",
            "met": ratios[1] <= ROUND_TRIP_RATIO_GOAL,
        }));
        if rate == 1000.0 {
            let p99 = clock.report.jitter.p99_us;
            goals.push(json!({
                "goal": format!("clock loop jitter (wake-up lateness) p99 <= {JITTER_P99_GOAL_US} us"),
                "rate_hz": rate,
                "measured": p99,
                "limit": JITTER_P99_GOAL_US,
                "unit": "us",
                "met": p99 <= JITTER_P99_GOAL_US,
            }));
        }
        let j = clock.report.jitter;
        let sj = state_loop.report.jitter;
        let mut raw_json = raw.json();
        raw_json["stages"] = raw_stages.json();
        let mut bridge_json = bridge.json();
        bridge_json["altered_by_filter"] = json!(bridge.altered);
        bridge_json["stages"] = state_loop.stages.json();
        let sr = &state_loop.report;
        bridge_json["loop"] = json!({
            "trigger": "state",
            "cycles": sr.cycles,
            "states_accepted": sr.states_accepted,
            "states_rejected": sr.states_rejected.total(),
            "timed_cycles": state_loop.cycles,
            "timed_cycles_without_new_state": state_loop.without_state,
            "commands_sent": sr.commands_sent,
            "safety_limited_cycles": sr.safety_limited_cycles,
            "reaction_p50_us": sj.p50_us,
            "reaction_p99_us": sj.p99_us,
            "reaction_p999_us": sj.p999_us,
            "reaction_max_us": sj.max_us,
            "exit": sr.exit,
        });
        results.push(json!({
            "rate_hz": rate,
            "samples": samples,
            "warmup": args.warmup,
            "raw_zenoh": raw_json,
            "bridge": bridge_json,
            "ratio_bridge_over_raw": {
                "p50": ratios[0],
                "p99": ratios[1],
                "p999": ratios[2],
            },
            "clock_loop": {
                "trigger": "clock",
                "cycles_asked": samples,
                "warmup_cycles": args.warmup,
                "cycles": clock.report.cycles,
                "deadline_misses": clock.report.deadline_misses,
                "jitter_p50_us": j.p50_us,
                "jitter_p99_us": j.p99_us,
                "jitter_p999_us": j.p999_us,
                "jitter_max_us": j.max_us,
                "states_accepted": clock.report.states_accepted,
                "commands_sent": clock.report.commands_sent,
                "commands_received": clock.commands_received,
                "safety_limited_cycles": clock.report.safety_limited_cycles,
                "elapsed_secs": clock.report.elapsed_secs,
            },
        }));
    }
    progress.finish_and_clear();
    let load_end = load_average();

    let payload = json!({
        "joint_state": arm.state_bytes,
        "float64_multi_array": arm.command_bytes,
        "rmw_zenoh_attachment": ATTACHMENT_LEN,
        "joints": arm.joints.len(),
    });
    if args.json {
        return crate::print_json(&json!({
            "bench": "bridge",
            "command": args.command_line(),
            "transport": "zenoh peers over TCP on 127.0.0.1, one process, multicast scouting off",
            "qos": { "congestion_control": "drop", "priority": "real_time", "express": true },
            "robot": {
                "urdf": arm.path,
                "dof": arm.tree.dof_count(),
                "joints": arm.joints.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
            },
            "payload_bytes": payload,
            "rates_hz": args.rates,
            "warmup": args.warmup,
            "spin_us": args.spin_us,
            "cpus": cpus,
            "load_average_1min": { "start": load_start, "end": load_end },
            "results": results,
            "goals": goals,
        }));
    }

    println!(
        "Round trip over loopback TCP (zenoh peers in one process), {} joints: JointState {} B \
         (+{} B attachment on the bridge), command {} B",
        arm.joints.len(),
        arm.state_bytes,
        ATTACHMENT_LEN,
        arm.command_bytes
    );
    println!(
        "{:>7}  {:<28} {:>7} {:>5} {:>10} {:>10} {:>11} {:>10}",
        "rate", "path", "samples", "lost", "p50 (us)", "p99 (us)", "p99.9 (us)", "max (us)"
    );
    for r in &results {
        let rate = r["rate_hz"].as_f64().unwrap_or(f64::NAN);
        for (name, key) in [
            ("raw zenoh ping/pong", "raw_zenoh"),
            ("bridge state in, command out", "bridge"),
        ] {
            let v = &r[key];
            println!(
                "{:>4} Hz  {:<28} {:>7} {:>5} {:>10.1} {:>10.1} {:>11.1} {:>10.1}",
                rate,
                name,
                v["received"].as_u64().unwrap_or_default(),
                v["lost"].as_u64().unwrap_or_default(),
                v["p50_us"].as_f64().unwrap_or(f64::NAN),
                v["p99_us"].as_f64().unwrap_or(f64::NAN),
                v["p999_us"].as_f64().unwrap_or(f64::NAN),
                v["max_us"].as_f64().unwrap_or(f64::NAN),
            );
        }
        let q = &r["ratio_bridge_over_raw"];
        println!(
            "{:>4} Hz  {:<28} {:>7} {:>5} {:>9.2}x {:>9.2}x {:>10.2}x",
            rate,
            "bridge / raw",
            "",
            "",
            q["p50"].as_f64().unwrap_or(f64::NAN),
            q["p99"].as_f64().unwrap_or(f64::NAN),
            q["p999"].as_f64().unwrap_or(f64::NAN),
        );
    }
    let pair = |v: &serde_json::Value, p50: &str, p99: &str| {
        format!(
            "{:.1} / {:.1}",
            v[p50].as_f64().unwrap_or(f64::NAN),
            v[p99].as_f64().unwrap_or(f64::NAN)
        )
    };
    println!();
    println!("Round trip by stage, p50 / p99 (us)");
    println!(
        "{:>7}  {:>18} {:>18}",
        "rate", "raw ping one way", "raw pong one way"
    );
    for r in &results {
        let st = &r["raw_zenoh"]["stages"];
        println!(
            "{:>4} Hz  {:>18} {:>18}",
            r["rate_hz"].as_f64().unwrap_or(f64::NAN),
            pair(&st["ping_one_way"], "p50_us", "p99_us"),
            pair(&st["pong_one_way"], "p50_us", "p99_us"),
        );
    }
    println!(
        "{:>7}  {:>18} {:>18} {:>14} {:>18} {:>15}",
        "rate",
        "state to loop",
        "(of it: wake-up)",
        "loop work",
        "command to robot",
        "stale cycles"
    );
    for r in &results {
        let l = &r["bridge"]["loop"];
        let st = &r["bridge"]["stages"];
        println!(
            "{:>4} Hz  {:>18} {:>18} {:>14} {:>18} {:>15}",
            r["rate_hz"].as_f64().unwrap_or(f64::NAN),
            pair(&st["state_to_loop"], "p50_us", "p99_us"),
            pair(l, "reaction_p50_us", "reaction_p99_us"),
            pair(&st["loop_work"], "p50_us", "p99_us"),
            pair(&st["command_to_robot"], "p50_us", "p99_us"),
            format!(
                "{} of {}",
                l["timed_cycles_without_new_state"]
                    .as_u64()
                    .unwrap_or_default(),
                l["timed_cycles"].as_u64().unwrap_or_default()
            ),
        );
        let altered = r["bridge"]["altered_by_filter"]
            .as_u64()
            .unwrap_or_default();
        if altered > 0 {
            println!("         the safety filter changed {altered} echoed commands");
        }
    }
    println!(
        "(wake-up: the state's arrival at the deploy node to the loop thread running; stale \
         cycles: cycles between timed states that ran without a new one, because the period \
         ran out first)"
    );
    println!();
    println!("Clock-triggered deploy loop: wake-up lateness");
    println!(
        "{:>7}  {:>7} {:>7} {:>10} {:>10} {:>11} {:>10}",
        "rate", "cycles", "misses", "p50 (us)", "p99 (us)", "p99.9 (us)", "max (us)"
    );
    for r in &results {
        let c = &r["clock_loop"];
        println!(
            "{:>4} Hz  {:>7} {:>7} {:>10.1} {:>10.1} {:>11.1} {:>10.1}",
            r["rate_hz"].as_f64().unwrap_or(f64::NAN),
            c["cycles"].as_u64().unwrap_or_default(),
            c["deadline_misses"].as_u64().unwrap_or_default(),
            c["jitter_p50_us"].as_f64().unwrap_or(f64::NAN),
            c["jitter_p99_us"].as_f64().unwrap_or(f64::NAN),
            c["jitter_p999_us"].as_f64().unwrap_or(f64::NAN),
            c["jitter_max_us"].as_f64().unwrap_or(f64::NAN),
        );
    }
    println!();
    println!("Goals (measured, not asserted):");
    for g in &goals {
        let x = g["measured"].as_f64().unwrap_or(f64::NAN);
        let measured = match g["unit"].as_str() {
            Some("x") => format!("{x:.2}x"),
            _ => format!("{x:.1} us"),
        };
        println!(
            "  {}, at {} Hz: {measured}: {}",
            g["goal"].as_str().unwrap_or_default(),
            g["rate_hz"].as_f64().unwrap_or(f64::NAN),
            met(g["met"].as_bool() == Some(true)),
        );
    }
    println!(
        "Load average (1 min): {} at the start, {} at the end; {} CPUs.",
        load_start.map_or("unknown".into(), |l| format!("{l:.2}")),
        load_end.map_or("unknown".into(), |l| format!("{l:.2}")),
        cpus
    );
    Ok(())
}
