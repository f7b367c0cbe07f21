//! The hardware bridge end to end through the CLI, on real zenoh sessions over loopback:
//! `rivet deploy` drives `rivet robot serve` with a policy trained by `rivet train`, stops when
//! the robot dies, and nothing gets through without valid messages and credentials.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rivet_hw_bridge::RosMessage;
use rivet_hw_bridge::keys::{DomainId, Namespace, NodeName, RosDistro, TopicName, TypeHashProfile};
use rivet_hw_bridge::msgs::sensor_msgs::JointState;
use rivet_hw_bridge::msgs::std_msgs::Float64MultiArray;
use rivet_hw_bridge::node::{NodeSettings, RosNode};
use rivet_hw_bridge::profile::SessionSettings;
use rivet_hw_bridge::record::EpisodeReader;
use zenoh::Wait;

use crate::cli::{json_stdout, rivet};
use crate::repo;

/// A free loopback TCP port.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The shipped cart-pole profile, connecting to `port`, with `extra` appended (TOML).
fn profile(dir: &Path, name: &str, port: u16, extra: &str) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("scenes/profiles/cartpole.toml")).unwrap();
    let urdf = repo().join("scenes/robots/rivet_cartpole.urdf");
    let text = text
        .replace(
            "urdf = \"../robots/rivet_cartpole.urdf\"",
            &format!("urdf = {:?}", urdf.to_str().unwrap()),
        )
        .replace("tcp/127.0.0.1:7447", &format!("tcp/127.0.0.1:{port}"));
    let path = dir.join(name);
    std::fs::write(&path, format!("{text}\n{extra}")).unwrap();
    path
}

/// `rivet robot serve` for the cart-pole on `port`.
fn serve(port: u16, extra: &[&str]) -> Child {
    let scene = repo().join("scenes/cartpole.toml");
    let profile_path = repo().join("scenes/profiles/cartpole.toml");
    let listen = format!("tcp/127.0.0.1:{port}");
    let mut args = vec![
        "robot",
        "serve",
        scene.to_str().unwrap(),
        "--profile",
        profile_path.to_str().unwrap(),
        "--listen",
        &listen,
        "--json",
    ];
    args.extend_from_slice(extra);
    Command::new(env!("CARGO_BIN_EXE_rivet"))
        .args(&args)
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child) -> serde_json::Value {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "robot serve failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    json_stdout(&out)
}

fn train_cartpole(dir: &Path) -> PathBuf {
    let out = dir.join("policy");
    let scene = repo().join("scenes/cartpole.toml");
    let result = rivet(
        &[
            "train",
            scene.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--steps",
            "60000",
            "--seed",
            "0",
            "--json",
        ],
        dir,
    );
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    out
}

fn deploy(args: &[&str]) -> (std::process::Output, serde_json::Value) {
    let out = rivet(args, repo());
    let json = json_stdout(&out);
    (out, json)
}

#[test]
fn a_trained_policy_balances_the_served_cartpole_and_survives_the_robot_dying() {
    let _cpu = crate::real_time();
    let dir = tempfile::tempdir().unwrap();
    let policy = train_cartpole(dir.path());

    // 1. The policy balances the pole on the served robot for 8 s (the task's survival
    //    criterion: hinge within ±0.2 rad, cart within ±0.95 m, at every measured state).
    let port = free_port();
    let robot = serve(port, &["--duration", "12"]);
    let profile_path = profile(dir.path(), "cartpole.toml", port, "");
    let episode = dir.path().join("episode.mcap");
    let (out, report) = deploy(&[
        "deploy",
        "--robot",
        profile_path.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
        "--duration",
        "8",
        // Each state starts a cycle: the command reaches the robot before its next physics
        // step, the timing the policy was trained with (no latency randomisation).
        "--trigger",
        "state",
        "--record",
        episode.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let served = finish(robot);
    let r = &report["report"];
    assert_eq!(r["exit"], "duration", "{report}");
    assert!(r["cycles"].as_u64().unwrap() >= 190, "{report}");
    assert!(r["states_accepted"].as_u64().unwrap() >= 190, "{report}");
    assert!(
        served["commands_accepted"].as_u64().unwrap() >= 190,
        "{served}"
    );
    assert_eq!(served["commands_rejected"], 0, "{served}");
    let reader = EpisodeReader::open(&episode).unwrap();
    let states = reader.messages::<JointState>("/joint_states").unwrap();
    assert!(states.len() >= 190);
    for (t, s) in &states {
        assert_eq!(s.name, ["slider", "hinge"]);
        assert!(
            s.position[1].abs() < 0.2,
            "pole fell at {t}: {:?}",
            s.position
        );
        assert!(
            s.position[0].abs() < 0.95,
            "cart left the rail at {t}: {:?}",
            s.position
        );
    }
    let commands = reader
        .messages::<Float64MultiArray>("/forward_effort_controller/commands")
        .unwrap();
    assert!(commands.len() >= 190);
    assert!(
        commands.iter().any(|(_, c)| c.data[0].abs() > 0.1),
        "the policy pushed"
    );
    assert!(episode.with_extension("rrd").is_file());

    // 2. The robot is killed mid-run: deploy stops commanding within 2 cycles, exits with a
    //    clear message, and the episode file is complete and readable.
    let port = free_port();
    let mut robot = serve(port, &[]);
    let profile_path = profile(dir.path(), "cartpole_kill.toml", port, "");
    let episode = dir.path().join("killed.mcap");
    let deploy_child = Command::new(env!("CARGO_BIN_EXE_rivet"))
        .args([
            "deploy",
            "--robot",
            profile_path.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
            "--duration",
            "60",
            "--record",
            episode.to_str().unwrap(),
            "--json",
        ])
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    robot.kill().unwrap();
    let _ = robot.wait();
    let out = deploy_child.wait_with_output().unwrap();
    assert!(
        !out.status.success(),
        "deploy must fail when the robot dies"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("went away"), "{stderr}");
    let report = json_stdout(&out);
    let r = &report["report"];
    assert_eq!(r["exit"], "state_publisher_lost", "{report}");
    assert!(r["stale_cycles_at_exit"].as_u64().unwrap() <= 2, "{report}");
    let reader = EpisodeReader::open(&episode).unwrap();
    let states = reader.messages::<JointState>("/joint_states").unwrap();
    let commands = reader
        .messages::<Float64MultiArray>("/forward_effort_controller/commands")
        .unwrap();
    assert!(states.len() > 50 && commands.len() > 50);
    let events = reader
        .messages::<rivet_hw_bridge::msgs::std_msgs::StringMsg>("/rivet/events")
        .unwrap();
    assert!(events.iter().any(|(_, e)| e.data.contains("went away")));
}

fn settings(name: &str) -> NodeSettings {
    NodeSettings {
        domain: DomainId::new(0).unwrap(),
        namespace: Namespace::root(),
        name: NodeName::new(name).unwrap(),
        hashes: TypeHashProfile::new(RosDistro::Jazzy),
    }
}

#[test]
fn the_served_robot_rejects_malformed_commands_and_holds() {
    let _cpu = crate::real_time();
    let port = free_port();
    let robot = serve(port, &["--duration", "4"]);
    let config = SessionSettings::with_endpoints(vec![format!("tcp/127.0.0.1:{port}")], Vec::new())
        .zenoh_config()
        .unwrap();
    // The robot may still be starting: retry the connection for a while.
    let start = Instant::now();
    let mut node = loop {
        match RosNode::open(config.clone(), settings("tester")) {
            Ok(node) if node.session().info().peers_zid().wait().next().is_some() => break node,
            _ if start.elapsed() > Duration::from_secs(30) => panic!("robot serve never came up"),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let topic = TopicName::new("/forward_effort_controller/commands").unwrap();
    let mut publisher = node.publisher::<Float64MultiArray>(&topic).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut nan = Vec::new();
    Float64MultiArray {
        data: vec![f64::NAN],
        ..Default::default()
    }
    .encode_into(&mut nan);
    let mut long = Vec::new();
    Float64MultiArray {
        data: vec![1.0, 2.0],
        ..Default::default()
    }
    .encode_into(&mut long);
    for bytes in [vec![0u8, 1, 0, 0, 9, 9], nan, long] {
        publisher.publish_raw(&bytes).unwrap();
        // The robot keeps only the newest command per step: space them out.
        std::thread::sleep(Duration::from_millis(200));
    }
    node.close();
    let served = finish(robot);
    assert_eq!(served["commands_accepted"], 0, "{served}");
    assert_eq!(served["commands_rejected"], 3, "{served}");
    let reasons = &served["rejected_by_reason"];
    assert_eq!(reasons["undecodable"], 1, "{served}");
    assert_eq!(reasons["non-finite"], 1, "{served}");
    assert_eq!(reasons["wrong length"], 1, "{served}");
}

#[test]
fn wrong_credentials_cannot_command_the_robot() {
    let _cpu = crate::real_time();
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.txt");
    std::fs::write(&users, "operator:right-password\n").unwrap();
    let port = free_port();
    // The robot accepts only the dictionary's credentials.
    let robot_profile = profile(
        dir.path(),
        "robot.toml",
        port,
        &format!(
            "[session.auth]\nuser = \"robot\"\npassword = \"robot-password\"\n\
             dictionary_file = {:?}\n",
            users.to_str().unwrap()
        ),
    );
    let scene = repo().join("scenes/cartpole.toml");
    let listen = format!("tcp/127.0.0.1:{port}");
    let robot = Command::new(env!("CARGO_BIN_EXE_rivet"))
        .args([
            "robot",
            "serve",
            scene.to_str().unwrap(),
            "--profile",
            robot_profile.to_str().unwrap(),
            "--listen",
            &listen,
            "--duration",
            "5",
            "--json",
        ])
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let intruder = profile(
        dir.path(),
        "intruder.toml",
        port,
        "[session.auth]\nuser = \"operator\"\npassword = \"wrong-password\"\n",
    );
    let (out, report) = deploy(&[
        "deploy",
        "--robot",
        intruder.to_str().unwrap(),
        "--controller",
        "sine:amplitude=5,period=1",
        "--duration",
        "2",
        "--startup-timeout",
        "2",
        "--record",
        dir.path().join("intruder.mcap").to_str().unwrap(),
        "--json",
    ]);
    assert!(!out.status.success());
    assert_eq!(report["report"]["exit"], "no_initial_state", "{report}");
    assert_eq!(report["report"]["commands_sent"], 0, "{report}");
    let served = finish(robot);
    assert_eq!(served["commands_accepted"], 0, "{served}");
    assert_eq!(served["commands_rejected"], 0, "{served}");
}
