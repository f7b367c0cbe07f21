//! The deploy loop against a stand-in robot: a second real zenoh session on loopback that
//! publishes joint states and records the commands it receives.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rivet_control::safety::{JointSafetyLimits, SafetyConfig};

use super::*;
use crate::keys::{DomainId, Namespace, NodeName, RosDistro, TypeHashProfile};
use crate::node::NodeSettings;
use crate::node::tests::{free_port, loopback_config};

fn settings(name: &str) -> NodeSettings {
    NodeSettings {
        domain: DomainId::new(0).unwrap(),
        namespace: Namespace::root(),
        name: NodeName::new(name).unwrap(),
        hashes: TypeHashProfile::new(RosDistro::Jazzy),
    }
}

fn config(rate_hz: f64, duration_secs: Option<f64>) -> DeployConfig {
    DeployConfig {
        state_joints: vec![("a".into(), 0), ("b".into(), 1)],
        command_joints: vec![("a".into(), 0), ("b".into(), 1)],
        dof_count: 2,
        kind: CommandKind::ForwardPosition,
        rate_hz,
        stale_cycles: 5,
        hold_cycles: 10,
        trigger: Trigger::Clock,
        startup_timeout: Duration::from_secs(20),
        duration: duration_secs.map(Duration::from_secs_f64),
        dry_run: false,
        spin: Duration::from_micros(100),
        state_topic: TopicName::new("/joint_states").unwrap(),
        command_topic: TopicName::new("/forward_position_controller/commands").unwrap(),
        estop_topic: TopicName::new("/rivet/estop").unwrap(),
    }
}

fn safety(rate_hz: f64) -> SafetyConfig {
    SafetyConfig {
        joints: vec![
            JointSafetyLimits::unlimited("a"),
            JointSafetyLimits {
                position: Some([-0.5, 0.5]),
                ..JointSafetyLimits::unlimited("b")
            },
        ],
        period_secs: 1.0 / rate_hz,
        workspace: None,
    }
}

/// Commands `0.25 + t` for joint a and `2.0` for joint b (outside b's limit: the filter clips).
struct Ramp {
    seen: Arc<Mutex<Vec<[f64; 2]>>>,
}

impl CommandSource for Ramp {
    fn command(&mut self, time_secs: f64, state: &JointStateView<'_>, command: &mut [f64]) {
        self.seen
            .lock()
            .unwrap()
            .push([state.position[0], state.position[1]]);
        command[0] = 0.25 + time_secs;
        command[1] = 2.0;
    }
}

/// What the stand-in robot sends each cycle.
#[derive(Clone, Copy, PartialEq)]
enum Send {
    Good,
    Garbage,
    Nan,
    WrongLength,
    Nothing,
}

/// Commands the stand-in robot received, with when.
type Received = Arc<Mutex<Vec<(Instant, Vec<f64>)>>>;

struct FakeRobot {
    stop: Arc<AtomicBool>,
    mode: Arc<Mutex<Send>>,
    commands: Received,
    thread: Option<std::thread::JoinHandle<RosNode>>,
}

impl FakeRobot {
    /// A robot node listening on `port`, publishing at 200 Hz.
    fn start(port: u16) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mode = Arc::new(Mutex::new(Send::Good));
        let commands = Arc::new(Mutex::new(Vec::new()));
        let (stop_t, mode_t, commands_t) = (stop.clone(), mode.clone(), commands.clone());
        let mut node = RosNode::open(loopback_config(Some(port), None), settings("robot")).unwrap();
        let thread = std::thread::spawn(move || {
            let mut publisher = node
                .publisher::<JointState>(&TopicName::new("/joint_states").unwrap())
                .unwrap();
            let commands_sub = node
                .subscribe_latest::<Float64MultiArray>(
                    &TopicName::new("/forward_position_controller/commands").unwrap(),
                )
                .unwrap();
            let mut msg = JointState {
                name: vec!["b".into(), "a".into(), "extra".into()],
                position: vec![0.0, 0.1, 9.0],
                velocity: vec![0.0, 0.0, 0.0],
                effort: vec![],
                ..Default::default()
            };
            let (mut last, mut buf) = (0, Vec::new());
            while !stop_t.load(Ordering::SeqCst) {
                let mode = *mode_t.lock().unwrap();
                match mode {
                    Send::Good => {
                        publisher.publish(&msg).unwrap();
                    }
                    Send::Garbage => publisher.publish_raw(&[0, 1, 0, 0, 7, 7, 7]).unwrap(),
                    Send::Nan => {
                        let mut bad = msg.clone();
                        bad.position[1] = f64::NAN;
                        publisher.publish(&bad).unwrap();
                    }
                    Send::WrongLength => {
                        let mut bad = msg.clone();
                        bad.position.pop();
                        publisher.publish(&bad).unwrap();
                    }
                    Send::Nothing => {}
                }
                if let Some(info) = commands_sub.slot().take_newer(last, &mut buf) {
                    last = info.counter;
                    let cmd = Float64MultiArray::decode(&buf).unwrap();
                    // The robot tracks position commands at once.
                    msg.position[1] = cmd.data[0];
                    msg.position[0] = cmd.data[1];
                    commands_t.lock().unwrap().push((Instant::now(), cmd.data));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            drop(publisher);
            node
        });
        Self {
            stop,
            mode,
            commands,
            thread: Some(thread),
        }
    }

    fn set(&self, send: Send) {
        *self.mode.lock().unwrap() = send;
    }

    /// Stops the robot and closes its session (its liveliness tokens go away).
    fn kill(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap().close();
        }
    }
}

impl Drop for FakeRobot {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs the loop at 100 Hz limits with no recording.
fn run_loop(
    node: &mut RosNode,
    config: &DeployConfig,
    source: &mut Ramp,
    stopper: &Stopper,
) -> DeployReport {
    run(
        node,
        config,
        safety(100.0),
        None,
        source,
        &mut NoObserver,
        stopper,
    )
    .unwrap()
}

fn client(port: u16) -> RosNode {
    RosNode::open(loopback_config(None, Some(port)), settings("rivet_deploy")).unwrap()
}

#[test]
fn commands_follow_the_source_through_the_safety_filter() {
    let port = free_port();
    let robot = FakeRobot::start(port);
    let mut node = client(port);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut source = Ramp { seen: seen.clone() };
    let report = run_loop(
        &mut node,
        &config(100.0, Some(0.5)),
        &mut source,
        &Stopper::default(),
    );
    assert_eq!(report.exit, ExitReason::Duration, "{}", report.message);
    // 50 deadlines in 0.5 s at 100 Hz: each one either ran a cycle or, on a loaded machine,
    // was skipped and counted as missed; every cycle sent one command.
    assert!(report.cycles <= 50, "{report:?}");
    assert!(report.cycles + report.deadline_misses >= 50, "{report:?}");
    assert_eq!(report.commands_sent, report.cycles);
    assert_eq!(report.states_rejected.total(), 0);
    // The state was mapped by name (the robot sends b, a, extra).
    assert_eq!(seen.lock().unwrap()[0], [0.1, 0.0]);
    assert!(
        report.safety_limited_cycles > 0,
        "joint b's command is clipped"
    );
    std::thread::sleep(Duration::from_millis(100));
    let commands = robot.commands.lock().unwrap();
    assert!(!commands.is_empty());
    let (_, last) = commands.last().unwrap();
    assert!((last[0] - (0.25 + 0.49)).abs() < 1e-9, "{last:?}");
    assert_eq!(last[1], 0.5, "clipped to b's upper limit");
    node.close();
}

#[test]
fn malformed_states_are_rejected_and_the_robot_is_held_then_stopped() {
    let port = free_port();
    let robot = FakeRobot::start(port);
    let mut node = client(port);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut source = Ramp { seen: seen.clone() };
    let stopper = Stopper::default();
    let mut cfg = config(100.0, Some(30.0));
    cfg.stale_cycles = 3;
    cfg.hold_cycles = 20;
    let handle = {
        let seen = seen.clone();
        let mode = robot.mode.clone();
        std::thread::spawn(move || {
            // Good states first, then every kind of bad message.
            let deadline = Instant::now() + Duration::from_secs(20);
            while seen.lock().unwrap().len() < 5 {
                assert!(Instant::now() < deadline);
                std::thread::sleep(Duration::from_millis(5));
            }
            for bad in [Send::Garbage, Send::Nan, Send::WrongLength] {
                *mode.lock().unwrap() = bad;
                std::thread::sleep(Duration::from_millis(60));
            }
        })
    };
    let report = run_loop(&mut node, &cfg, &mut source, &stopper);
    handle.join().unwrap();
    assert_eq!(report.exit, ExitReason::StateStale, "{}", report.message);
    let r = report.states_rejected;
    assert!(
        r.malformed > 0 && r.non_finite > 0 && r.wrong_size > 0,
        "{r:?}"
    );
    // The source never saw a bad state: every position it saw is finite and the good value.
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .all(|p| p.iter().all(|x| x.is_finite()))
    );
    assert!(
        report.hold_cycles >= 20,
        "held before stopping: {}",
        report.hold_cycles
    );
    assert!(report.stops.iter().any(|s| s.kind == "hold"));
    assert_eq!(report.stops.last().unwrap().kind, "stop");
    // While holding, position commands repeat the last one sent.
    let commands = robot.commands.lock().unwrap();
    let tail: Vec<&Vec<f64>> = commands.iter().rev().take(5).map(|(_, c)| c).collect();
    assert!(tail.windows(2).all(|w| w[0] == w[1]), "{tail:?}");
    node.close();
}

#[test]
fn a_robot_that_dies_stops_the_loop_within_two_cycles() {
    let port = free_port();
    let mut robot = FakeRobot::start(port);
    let mut node = client(port);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut source = Ramp { seen: seen.clone() };
    let stopper = Stopper::default();
    let killer = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            while seen.lock().unwrap().len() < 30 {
                std::thread::sleep(Duration::from_millis(5));
            }
            robot.kill();
            robot
        })
    };
    let mut cfg = config(100.0, Some(30.0));
    cfg.stale_cycles = 50;
    let report = run_loop(&mut node, &cfg, &mut source, &stopper);
    let _robot = killer.join().unwrap();
    assert_eq!(
        report.exit,
        ExitReason::StatePublisherLost,
        "{}",
        report.message
    );
    // Each cycle after the last valid state commanded from that old state; the loop noticed
    // the robot was gone within two.
    assert!(
        report.stale_cycles_at_exit <= 2,
        "commanded {} cycles past the last state",
        report.stale_cycles_at_exit
    );
    assert!(report.message.contains("went away"), "{}", report.message);
    node.close();
}

#[test]
fn an_estop_message_latches_a_stop() {
    let port = free_port();
    let robot = FakeRobot::start(port);
    // Peers do not route for each other (zenoh's peer-to-peer mode; robots run a router): the
    // e-stop panel connects to the deploy node directly.
    let deploy_port = free_port();
    let mut node = RosNode::open(
        loopback_config(Some(deploy_port), Some(port)),
        settings("rivet_deploy"),
    )
    .unwrap();
    let mut estop = client(deploy_port);
    let mut estop_pub = estop
        .publisher::<Bool>(&TopicName::new("/rivet/estop").unwrap())
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut source = Ramp { seen: seen.clone() };
    let sender = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            while seen.lock().unwrap().len() < 10 {
                std::thread::sleep(Duration::from_millis(5));
            }
            estop_pub.publish(&Bool { data: false }).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            estop_pub.publish(&Bool { data: true }).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            estop_pub.publish(&Bool { data: false }).unwrap();
            estop
        })
    };
    let report = run_loop(
        &mut node,
        &config(100.0, Some(0.6)),
        &mut source,
        &Stopper::default(),
    );
    sender.join().unwrap().close();
    assert_eq!(report.exit, ExitReason::Duration);
    let at = report.estop_latched_at_secs.expect("the e-stop latched");
    assert!(at > 0.1);
    // After the latch every command holds one position; `false` does not release it.
    let commands = robot.commands.lock().unwrap();
    let tail: Vec<&Vec<f64>> = commands.iter().rev().take(10).map(|(_, c)| c).collect();
    assert!(tail.windows(2).all(|w| w[0] == w[1]), "{tail:?}");
    node.close();
}

#[test]
fn a_state_triggered_loop_answers_each_state() {
    let port = free_port();
    let robot = FakeRobot::start(port);
    let mut node = client(port);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut source = Ramp { seen: seen.clone() };
    let mut cfg = config(100.0, Some(0.5));
    cfg.trigger = Trigger::State;
    let report = run_loop(&mut node, &cfg, &mut source, &Stopper::default());
    assert_eq!(report.exit, ExitReason::Duration, "{}", report.message);
    // Every cycle answered with a command, and a cycle without a fresh state is one that
    // waited its full 1.5 periods: the loop woke on states, never spun. (How many states
    // arrive depends on how busy the machine is, so that is not asserted.)
    assert!(report.states_accepted > 0, "{report:?}");
    assert_eq!(report.commands_sent, report.cycles);
    let timeouts = report.cycles.saturating_sub(report.states_accepted);
    assert!(
        timeouts as f64 <= report.elapsed_secs / 0.015 + 1.0,
        "{timeouts} cycles without a state in {:.3} s: {report:?}",
        report.elapsed_secs
    );
    assert!(!robot.commands.lock().unwrap().is_empty());
    node.close();
}

#[test]
fn no_state_means_no_command() {
    let port = free_port();
    let robot = FakeRobot::start(port);
    robot.set(Send::Nothing);
    let mut node = client(port);
    let mut cfg = config(100.0, Some(1.0));
    cfg.startup_timeout = Duration::from_millis(300);
    let mut source = Ramp {
        seen: Arc::new(Mutex::new(Vec::new())),
    };
    let report = run_loop(&mut node, &cfg, &mut source, &Stopper::default());
    assert_eq!(report.exit, ExitReason::NoInitialState);
    assert_eq!(report.commands_sent, 0);
    assert!(
        report.message.contains("/joint_states"),
        "{}",
        report.message
    );
    std::thread::sleep(Duration::from_millis(50));
    assert!(robot.commands.lock().unwrap().is_empty());
    node.close();
}
