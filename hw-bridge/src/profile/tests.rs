//! Loading and validation of robot profiles, and the zenoh configuration they produce.

use std::path::{Path, PathBuf};

use rivet_control::CommandMode;
use rivet_control::safety::SafetyError;

use super::*;
use crate::keys::{KeyError, NameKind};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> PathBuf {
    manifest_dir().join("tests/profiles").join(name)
}

/// The cart-pole URDF, absolute, so test profiles can live anywhere.
fn cartpole_urdf() -> PathBuf {
    manifest_dir().join("../scenes/robots/rivet_cartpole.urdf")
}

/// A profile file path that does not exist (errors name it; relative paths resolve next to it).
fn virtual_source() -> PathBuf {
    fixture("virtual.toml")
}

/// A cart-pole profile: `robot` and `command` lines are added to those sections (effort
/// controller on `/effort_controller/commands`), `rest` is appended (whole sections).
fn cartpole(robot: &str, command: &str, rest: &str) -> String {
    format!(
        "[robot]\nurdf = '{}'\n{robot}\n\n[command]\ntopic = \"/effort_controller/commands\"\n\
         kind = \"forward_effort\"\n{command}\n\n{rest}\n",
        cartpole_urdf().display()
    )
}

fn load(text: &str) -> Result<RobotProfile, ProfileError> {
    RobotProfile::from_toml_str(text, &virtual_source())
}

fn load_ok(text: &str) -> RobotProfile {
    match load(text) {
        Ok(profile) => profile,
        Err(e) => panic!("profile should load: {e}\n---\n{text}"),
    }
}

fn load_err(text: &str) -> ProfileError {
    match load(text) {
        Ok(_) => panic!("profile should not load:\n{text}"),
        Err(e) => e,
    }
}

/// Asserts an `Invalid` error at `key` whose message contains every one of `needles`.
fn assert_invalid(error: &ProfileError, key: &str, needles: &[&str]) {
    match error {
        ProfileError::Invalid {
            key: found,
            message,
            file,
        } => {
            assert_eq!(found, key, "{error}");
            assert_eq!(file, &virtual_source());
            for needle in needles {
                assert!(message.contains(needle), "`{needle}` not in: {error}");
            }
        }
        other => panic!("expected Invalid at `{key}`, got {other:?} ({other})"),
    }
    let shown = error.to_string();
    assert!(shown.contains("virtual.toml"), "no file in: {shown}");
    assert!(shown.contains(key), "no key in: {shown}");
}

// ---------------------------------------------------------------------------------------------
// The fixtures

#[test]
fn cartpole_fixture_loads_with_every_value() {
    let path = fixture("cartpole.toml");
    let profile = RobotProfile::load(&path).expect("fixture loads");
    assert_eq!(profile.name, "cartpole");
    assert_eq!(profile.source, path);
    assert_eq!(
        profile.urdf,
        manifest_dir().join("tests/profiles/../../../scenes/robots/rivet_cartpole.urdf")
    );
    assert!(profile.urdf.is_file());
    assert_eq!(profile.tree.dof_count(), 2);
    assert_eq!(profile.joints, ["slider", "hinge"]);
    assert_eq!(profile.joint_dofs, [0, 1]);
    assert_eq!(profile.dof_names(), ["slider", "hinge"]);

    assert_eq!(profile.ros.domain.get(), 0);
    assert_eq!(profile.ros.namespace.as_str(), "/");
    assert_eq!(profile.ros.node.as_str(), "rivet_deploy");
    assert_eq!(profile.ros.hashes.distro(), RosDistro::Jazzy);

    assert_eq!(profile.state.topic.as_str(), "/joint_states");
    assert_eq!(profile.state.stale_cycles, 5);

    assert_eq!(
        profile.command.topic.as_str(),
        "/effort_controller/commands"
    );
    assert_eq!(profile.command.kind, CommandKind::ForwardEffort);
    assert_eq!(profile.command.joints, ["slider"]);
    assert_eq!(profile.command.dofs, [0]);
    assert_eq!(profile.command.rate_hz, 25.0);
    assert_eq!(profile.command.hold_cycles, 10);
    assert_eq!(profile.period_secs(), 0.04);
    assert_eq!(profile.estop.as_str(), "/rivet/estop");

    assert_eq!(profile.session.mode, SessionMode::Peer);
    assert_eq!(profile.session.connect, ["tcp/127.0.0.1:7447"]);
    assert!(profile.session.listen.is_empty());
    assert!(!profile.session.multicast_scouting);
    assert!(profile.session.tls.is_none());
    assert!(profile.session.auth.is_none());

    let safety = profile.safety_config().expect("safety config");
    assert_eq!(safety.period_secs, 0.04);
    assert_eq!(safety.joints.len(), 2);
    let slider = &safety.joints[0];
    assert_eq!(slider.name, "slider");
    assert_eq!(slider.effort, 20.0);
    assert_eq!(slider.acceleration, 50.0);
    assert_eq!(slider.velocity, 5.0);
    assert_eq!(slider.position, Some([-1.0, 1.0]));
    let hinge = &safety.joints[1];
    assert_eq!(hinge.acceleration, 50.0);
    assert_eq!(hinge.effort, f64::INFINITY);
}

#[test]
fn minimal_profile_fills_every_default() {
    let profile = RobotProfile::load(&fixture("arm6_minimal.toml")).expect("fixture loads");
    let dofs = [
        "shoulder_pan",
        "shoulder_lift",
        "elbow",
        "wrist_1",
        "wrist_2",
        "wrist_3",
        "finger_left_joint",
        "finger_right_joint",
    ];
    assert_eq!(profile.name, profile.tree.name);
    assert_eq!(profile.joints, dofs);
    assert_eq!(profile.joint_dofs, (0..8).collect::<Vec<_>>());
    assert_eq!(profile.command.joints, dofs);
    assert_eq!(profile.command.dofs, (0..8).collect::<Vec<_>>());
    assert_eq!(profile.command.kind, CommandKind::JointTrajectory);
    assert_eq!(profile.command.rate_hz, DEFAULT_RATE_HZ);
    assert_eq!(profile.command.hold_cycles, DEFAULT_HOLD_CYCLES);
    assert_eq!(profile.state.stale_cycles, DEFAULT_STALE_CYCLES);
    assert_eq!(profile.state.topic.as_str(), DEFAULT_STATE_TOPIC);
    assert_eq!(profile.estop.as_str(), DEFAULT_ESTOP_TOPIC);
    assert_eq!(profile.ros.node.as_str(), DEFAULT_NODE_NAME);
    assert_eq!(profile.ros.namespace, crate::keys::Namespace::root());
    assert_eq!(profile.ros.domain.get(), 0);
    assert_eq!(profile.ros.hashes.distro(), RosDistro::Jazzy);
    assert_eq!(profile.session, SessionSettings::default());
    assert_eq!(profile.safety, Default::default());
    assert_eq!(profile.period_secs(), 0.01);
    let safety = profile.safety_config().expect("safety config");
    assert_eq!(safety.period_secs, 0.01);
    assert_eq!(safety.joints.len(), 8);
}

#[test]
fn load_of_a_missing_profile_is_a_read_error_naming_it() {
    let path = fixture("does_not_exist.toml");
    let error = RobotProfile::load(&path).expect_err("no such file");
    assert!(matches!(&error, ProfileError::Read { file, .. } if file == &path));
    assert!(error.to_string().contains("does_not_exist.toml"));
    assert_eq!(error.file(), Some(path.as_path()));
    assert_eq!(error.key(), None);
}

#[test]
fn command_kinds_map_to_modes_and_message_types() {
    let expected = [
        (
            "forward_position",
            CommandKind::ForwardPosition,
            CommandMode::Position,
            "std_msgs/msg/Float64MultiArray",
        ),
        (
            "forward_velocity",
            CommandKind::ForwardVelocity,
            CommandMode::Velocity,
            "std_msgs/msg/Float64MultiArray",
        ),
        (
            "forward_effort",
            CommandKind::ForwardEffort,
            CommandMode::Torque,
            "std_msgs/msg/Float64MultiArray",
        ),
        (
            "joint_trajectory",
            CommandKind::JointTrajectory,
            CommandMode::Position,
            "trajectory_msgs/msg/JointTrajectory",
        ),
    ];
    assert_eq!(CommandKind::ALL.len(), expected.len());
    for (spelling, kind, mode, ros_type) in expected {
        assert_eq!(kind.as_str(), spelling);
        assert_eq!(kind.to_string(), spelling);
        assert_eq!(kind.mode(), mode);
        assert_eq!(kind.ros_type_name(), ros_type);
        assert!(kind.dds_type_name().contains("::msg::dds_::"));
        let text = format!(
            "[robot]\nurdf = '{}'\n[command]\ntopic = \"/cmd\"\nkind = \"{spelling}\"\n",
            cartpole_urdf().display()
        );
        assert_eq!(load_ok(&text).command.kind, kind);
    }
}

// ---------------------------------------------------------------------------------------------
// Joints

#[test]
fn unknown_state_joint_lists_the_urdf_dofs() {
    let error = load_err(&cartpole("joints = [\"slider\", \"elbow\"]", "", ""));
    assert_invalid(
        &error,
        "robot.joints[1]",
        &["`elbow`", "rivet_cartpole.urdf", "slider, hinge"],
    );
}

#[test]
fn fixed_joint_is_not_a_state_joint() {
    let error = load_err(&cartpole(
        "joints = [\"slider\", \"pole_tip_joint\"]",
        "",
        "",
    ));
    assert_invalid(
        &error,
        "robot.joints[1]",
        &["`pole_tip_joint`", "fixed joint", "slider, hinge"],
    );
}

#[test]
fn duplicate_state_joint_is_rejected() {
    let error = load_err(&cartpole(
        "joints = [\"slider\", \"hinge\", \"slider\"]",
        "",
        "",
    ));
    assert_invalid(
        &error,
        "robot.joints[2]",
        &["`slider` is listed twice", "robot.joints[0]"],
    );
}

#[test]
fn empty_joint_lists_are_rejected() {
    let error = load_err(&cartpole("joints = []", "", ""));
    assert_invalid(&error, "robot.joints", &["empty", "slider, hinge"]);
    let error = load_err(&cartpole("", "joints = []", ""));
    assert_invalid(&error, "command.joints", &["empty"]);
}

#[test]
fn state_joint_order_is_kept() {
    let profile = load_ok(&cartpole("joints = [\"hinge\", \"slider\"]", "", ""));
    assert_eq!(profile.joints, ["hinge", "slider"]);
    assert_eq!(profile.joint_dofs, [1, 0]);
    // Command joints default to the state joints, in their order.
    assert_eq!(profile.command.joints, ["hinge", "slider"]);
    assert_eq!(profile.command.dofs, [1, 0]);
}

#[test]
fn unknown_command_joint_lists_the_urdf_dofs() {
    let error = load_err(&cartpole("", "joints = [\"slider\", \"wheel\"]", ""));
    assert_invalid(&error, "command.joints[1]", &["`wheel`", "slider, hinge"]);
}

#[test]
fn duplicate_command_joint_is_rejected() {
    let error = load_err(&cartpole("", "joints = [\"slider\", \"slider\"]", ""));
    assert_invalid(
        &error,
        "command.joints[1]",
        &["listed twice", "command.joints[0]"],
    );
}

#[test]
fn command_joint_must_be_a_state_joint() {
    let error = load_err(&cartpole(
        "joints = [\"slider\"]",
        "joints = [\"hinge\"]",
        "",
    ));
    assert_invalid(
        &error,
        "command.joints[0]",
        &["`hinge`", "not among the state joints", "slider"],
    );
}

// ---------------------------------------------------------------------------------------------
// Rate and watchdog

#[test]
fn rate_hz_must_be_finite_positive_and_at_most_10_khz() {
    for bad in ["0.0", "-1.0", "nan", "inf", "-inf", "10000.5", "1e9"] {
        let error = load_err(&cartpole("", &format!("rate_hz = {bad}"), ""));
        assert_invalid(&error, "command.rate_hz", &["Hz"]);
    }
    let profile = load_ok(&cartpole("", "rate_hz = 10000.0", ""));
    assert_eq!(profile.period_secs(), 1e-4);
    // A TOML integer is accepted as a rate.
    let profile = load_ok(&cartpole("", "rate_hz = 50", ""));
    assert_eq!(profile.command.rate_hz, 50.0);
    assert_eq!(profile.period_secs(), 0.02);
}

#[test]
fn zero_stale_or_hold_cycles_are_rejected() {
    let error = load_err(&cartpole("", "", "[state]\nstale_cycles = 0"));
    assert_invalid(&error, "state.stale_cycles", &["at least 1"]);
    let error = load_err(&cartpole("", "hold_cycles = 0", ""));
    assert_invalid(&error, "command.hold_cycles", &["at least 1"]);
}

#[test]
fn negative_cycles_are_a_type_error_at_the_key() {
    let error = load_err(&cartpole("", "", "[state]\nstale_cycles = -3"));
    match &error {
        ProfileError::Toml { key, line, .. } => {
            assert_eq!(key.as_deref(), Some("state.stale_cycles"), "{error}");
            assert_eq!(*line, Some(11), "{error}");
        }
        other => panic!("expected a TOML error, got {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// ROS names

/// Asserts a `Name` error at `key`.
fn assert_name_error(error: &ProfileError, key: &str) -> KeyError {
    match error {
        ProfileError::Name {
            key: found, source, ..
        } => {
            assert_eq!(found, key, "{error}");
            let shown = error.to_string();
            assert!(
                shown.contains(key) && shown.contains("virtual.toml"),
                "{shown}"
            );
            source.clone()
        }
        other => panic!("expected a Name error at `{key}`, got {other}"),
    }
}

#[test]
fn invalid_topic_names_name_the_key() {
    let error = load_err(&cartpole("", "", "[state]\ntopic = \"joint_states\""));
    assert!(matches!(
        assert_name_error(&error, "state.topic"),
        KeyError::NotAbsolute {
            kind: NameKind::Topic,
            ..
        }
    ));

    let text = format!(
        "[robot]\nurdf = '{}'\n[command]\ntopic = \"/effort//commands\"\nkind = \"forward_effort\"\n",
        cartpole_urdf().display()
    );
    let error = load_err(&text);
    assert!(matches!(
        assert_name_error(&error, "command.topic"),
        KeyError::RepeatedSlash { .. }
    ));

    let error = load_err(&cartpole("", "", "[estop]\ntopic = \"/rivet/e-stop\""));
    assert!(matches!(
        assert_name_error(&error, "estop.topic"),
        KeyError::InvalidCharacter { character: '-', .. }
    ));
}

#[test]
fn topics_must_differ() {
    let error = load_err(&cartpole(
        "",
        "",
        "[state]\ntopic = \"/effort_controller/commands\"",
    ));
    assert_invalid(&error, "command.topic", &["also state.topic"]);
    let error = load_err(&cartpole(
        "",
        "",
        "[estop]\ntopic = \"/effort_controller/commands\"",
    ));
    assert_invalid(&error, "estop.topic", &["also command.topic"]);
}

#[test]
fn invalid_namespace_node_and_domain_name_the_key() {
    let error = load_err(&cartpole("", "", "[ros]\nnamespace = \"robot\""));
    assert!(matches!(
        assert_name_error(&error, "ros.namespace"),
        KeyError::NotAbsolute {
            kind: NameKind::Namespace,
            ..
        }
    ));
    let error = load_err(&cartpole("", "", "[ros]\nnode = \"rivet/deploy\""));
    assert!(matches!(
        assert_name_error(&error, "ros.node"),
        KeyError::InvalidCharacter {
            kind: NameKind::Node,
            ..
        }
    ));
    let error = load_err(&cartpole("", "", "[ros]\ndomain_id = 233"));
    assert!(matches!(
        assert_name_error(&error, "ros.domain_id"),
        KeyError::DomainIdOutOfRange { value: 233, .. }
    ));
    let profile = load_ok(&cartpole(
        "",
        "",
        "[ros]\ndomain_id = 42\nnamespace = \"/site/arm\"\nnode = \"bridge_1\"",
    ));
    assert_eq!(profile.ros.domain.get(), 42);
    assert_eq!(profile.ros.namespace.as_str(), "/site/arm");
    assert_eq!(profile.ros.node.as_str(), "bridge_1");
}

#[test]
fn unknown_distro_is_rejected() {
    let error = load_err(&cartpole("", "", "[ros]\ndistro = \"iron\""));
    assert!(matches!(
        assert_name_error(&error, "ros.distro"),
        KeyError::UnknownDistro { .. }
    ));
}

#[test]
fn humble_uses_no_type_hashes() {
    let profile = load_ok(&cartpole("", "", "[ros]\ndistro = \"humble\""));
    assert_eq!(profile.ros.hashes.distro(), RosDistro::Humble);
    assert_eq!(
        profile.ros.hashes.get("sensor_msgs/msg/JointState"),
        Ok(TypeHash::NotSupported)
    );
}

#[test]
fn bad_type_hash_is_rejected_at_its_key() {
    let error = load_err(&cartpole(
        "",
        "",
        "[ros.type_hashes]\n\"sensor_msgs/msg/JointState\" = \"RIHS01_1234\"",
    ));
    assert!(matches!(
        assert_name_error(&error, "ros.type_hashes.\"sensor_msgs/msg/JointState\""),
        KeyError::InvalidTypeHash { .. }
    ));

    let error = load_err(&cartpole(
        "",
        "",
        "[ros.type_hashes]\n\"JointState\" = \"TypeHashNotSupported\"",
    ));
    assert_invalid(
        &error,
        "ros.type_hashes.JointState",
        &["not a ROS 2 message type name"],
    );
}

#[test]
fn type_hash_override_is_applied() {
    let hash = "RIHS01_00000000000000000000000000000000000000000000000000000000000000ff";
    let profile = load_ok(&cartpole(
        "",
        "",
        &format!("[ros.type_hashes]\n\"std_msgs/msg/Float64MultiArray\" = \"{hash}\""),
    ));
    assert_eq!(
        profile
            .ros
            .hashes
            .get("std_msgs/msg/Float64MultiArray")
            .map(|h| h.to_string()),
        Ok(hash.to_owned())
    );
    // Others keep the Jazzy defaults.
    assert!(matches!(
        profile.ros.hashes.get("sensor_msgs/msg/JointState"),
        Ok(TypeHash::Rihs01(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// URDF

#[test]
fn missing_urdf_shows_the_resolved_path() {
    let text = "[robot]\nurdf = \"robots/nowhere.urdf\"\n[command]\ntopic = \"/cmd\"\n\
                kind = \"forward_position\"\n";
    let error = load_err(text);
    let expected = manifest_dir().join("tests/profiles/robots/nowhere.urdf");
    match &error {
        ProfileError::MissingFile { key, path, .. } => {
            assert_eq!(key, "robot.urdf");
            assert_eq!(path, &expected);
        }
        other => panic!("expected MissingFile, got {other}"),
    }
    let shown = error.to_string();
    assert!(shown.contains("robots/nowhere.urdf"), "{shown}");
    assert!(shown.contains("`robot.urdf`"), "{shown}");
}

#[test]
fn broken_urdf_is_a_urdf_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("broken.urdf"), "<robot name=\"x\"><link").expect("write");
    let text = "[robot]\nurdf = \"broken.urdf\"\n[command]\ntopic = \"/cmd\"\n\
                kind = \"forward_position\"\n";
    let error =
        RobotProfile::from_toml_str(text, &dir.path().join("p.toml")).expect_err("broken URDF");
    assert!(
        matches!(&error, ProfileError::Urdf { key, .. } if key == "robot.urdf"),
        "{error}"
    );
    assert!(error.to_string().contains("broken.urdf"), "{error}");
}

#[test]
fn empty_robot_name_is_rejected() {
    let error = load_err(&cartpole("name = \" \"", "", ""));
    assert_invalid(&error, "robot.name", &["empty"]);
}

// ---------------------------------------------------------------------------------------------
// TOML errors

fn assert_toml_error(error: &ProfileError, key: Option<&str>, needle: &str) -> (usize, usize) {
    match error {
        ProfileError::Toml {
            key: found,
            message,
            line,
            column,
            file,
        } => {
            assert_eq!(found.as_deref(), key, "{error}");
            assert!(message.contains(needle), "`{needle}` not in {error}");
            assert_eq!(file, &virtual_source());
            assert!(error.to_string().contains("virtual.toml"), "{error}");
            (
                line.unwrap_or_else(|| panic!("no line: {error}")),
                column.unwrap_or_else(|| panic!("no column: {error}")),
            )
        }
        other => panic!("expected a TOML error, got {other}"),
    }
}

#[test]
fn unknown_keys_are_errors_with_their_key_path() {
    let error = load_err(&cartpole("colour = \"red\"", "", ""));
    let (line, column) = assert_toml_error(&error, Some("robot.colour"), "unknown field `colour`");
    assert_eq!((line, column), (3, 1));

    let error = load_err(&cartpole("", "", "[session]\nmulticast = true"));
    assert_toml_error(
        &error,
        Some("session.multicast"),
        "unknown field `multicast`",
    );

    let error = load_err(&cartpole(
        "",
        "",
        "[session.auth]\nuser = \"a\"\npasswd = \"b\"",
    ));
    assert_toml_error(
        &error,
        Some("session.auth.passwd"),
        "unknown field `passwd`",
    );

    let error = load_err(&cartpole("", "", "[safety.joints.slider]\ntorque = 1.0"));
    assert_toml_error(
        &error,
        Some("safety.joints.slider.torque"),
        "unknown field `torque`",
    );

    let error = load_err(&cartpole("", "", "[deploy]\nrate = 1"));
    assert_toml_error(&error, Some("deploy"), "unknown field `deploy`");
}

#[test]
fn unknown_command_kind_names_command_kind() {
    let text = format!(
        "[robot]\nurdf = '{}'\n[command]\ntopic = \"/cmd\"\nkind = \"forward_torque\"\n",
        cartpole_urdf().display()
    );
    let error = load_err(&text);
    let (line, _) = assert_toml_error(&error, Some("command.kind"), "forward_effort");
    assert_eq!(line, 5);
    assert!(error.to_string().contains("forward_torque"), "{error}");
}

#[test]
fn wrong_type_names_the_array_element() {
    let error = load_err(&cartpole("joints = [\"slider\", 3]", "", ""));
    assert_toml_error(&error, Some("robot.joints[1]"), "string");
}

#[test]
fn syntax_error_keeps_line_and_column() {
    let text = "[robot]\nurdf = \"x.urdf\"\njoints = [\"a\",\n\n[command]\n";
    let error = load_err(text);
    match &error {
        ProfileError::Toml { line, column, .. } => {
            assert!(line.is_some() && column.is_some(), "{error}");
        }
        other => panic!("expected a TOML error, got {other}"),
    }
    let text = "[robot]\nurdf = \"x.urdf\"\nname = \"unterminated\n";
    let error = load_err(text);
    let (line, column) = assert_toml_error(&error, None, "");
    assert_eq!(line, 3, "{error}");
    assert!(column >= 8, "{error}");
    assert!(error.to_string().contains("virtual.toml:3:"), "{error}");
}

#[test]
fn missing_required_keys_are_named() {
    let text = format!("[robot]\nurdf = '{}'\n", cartpole_urdf().display());
    let error = load_err(&text);
    assert_toml_error(&error, None, "missing field `command`");

    let text = format!(
        "[robot]\nurdf = '{}'\n[command]\ntopic = \"/cmd\"\n",
        cartpole_urdf().display()
    );
    let error = load_err(&text);
    assert_toml_error(&error, Some("command"), "missing field `kind`");
}

// ---------------------------------------------------------------------------------------------
// Safety overrides

fn assert_safety_error(error: &ProfileError, key: &str) -> (SafetyError, String) {
    match error {
        ProfileError::Safety {
            key: found,
            source,
            context,
            ..
        } => {
            assert_eq!(found, key, "{error}");
            let shown = error.to_string();
            assert!(
                shown.contains(key) && shown.contains("virtual.toml"),
                "{shown}"
            );
            ((**source).clone(), context.clone())
        }
        other => panic!("expected a Safety error at `{key}`, got {other}"),
    }
}

#[test]
fn safety_override_that_widens_a_urdf_limit_is_rejected_with_context() {
    let error = load_err(&cartpole("", "", "[safety.joints.slider]\neffort = 40.0"));
    let (source, context) = assert_safety_error(&error, "safety.joints.slider.effort");
    assert!(
        matches!(source, SafetyError::Limit { field: "effort", ref name, .. } if name == "slider")
    );
    assert!(context.contains("30"), "{error}");
    assert!(error.to_string().contains("only tighten"), "{error}");

    let error = load_err(&cartpole(
        "",
        "",
        "[safety]\nall_joints = { velocity = 6.0 }",
    ));
    let (_, context) = assert_safety_error(&error, "safety.all_joints.velocity");
    assert!(
        context.contains("'slider'") && context.contains('5'),
        "{error}"
    );

    let error = load_err(&cartpole(
        "",
        "",
        "[safety.joints.slider]\nposition = [-2.0, 0.5]",
    ));
    let (_, context) = assert_safety_error(&error, "safety.joints.slider.position");
    assert!(context.contains("[-1, 1]"), "{error}");
}

#[test]
fn widening_all_joints_override_is_named_even_when_a_joint_sets_the_field_too() {
    // all_joints is applied first: its 100 widens the slider's 30 before the joint's 10 counts.
    let error = load_err(&cartpole(
        "",
        "",
        "[safety]\nall_joints = { effort = 100.0 }\n[safety.joints.slider]\neffort = 10.0",
    ));
    let (_, context) = assert_safety_error(&error, "safety.all_joints.effort");
    assert!(context.contains("30"), "{error}");
    // A limit that is not usable at all carries no URDF context.
    let error = load_err(&cartpole("", "", "[safety.joints.hinge]\njerk = 0.0"));
    let (_, context) = assert_safety_error(&error, "safety.joints.hinge.jerk");
    assert_eq!(context, "", "{error}");
}

#[test]
fn safety_override_that_tightens_is_applied() {
    let profile = load_ok(&cartpole(
        "",
        "",
        "[safety]\nall_joints = { jerk = 500.0, max_step = 0.05 }\n\
         [safety.joints.slider]\nposition = [-0.5, 0.5]\nvelocity = 1.0",
    ));
    let config = profile.safety_config().expect("config");
    assert_eq!(config.joints[0].position, Some([-0.5, 0.5]));
    assert_eq!(config.joints[0].velocity, 1.0);
    assert_eq!(config.joints[0].jerk, 500.0);
    assert_eq!(config.joints[1].max_step, 0.05);
    assert_eq!(config.joints[1].velocity, 20.0);
}

#[test]
fn safety_override_for_an_unknown_joint_lists_the_dofs() {
    let error = load_err(&cartpole("", "", "[safety.joints.wheel]\neffort = 1.0"));
    assert_invalid(&error, "safety.joints.wheel", &["`wheel`", "slider, hinge"]);
}

#[test]
fn invalid_safety_values_are_rejected() {
    let error = load_err(&cartpole(
        "",
        "",
        "[safety.joints.hinge]\nacceleration = -1.0",
    ));
    let (source, _) = assert_safety_error(&error, "safety.joints.hinge.acceleration");
    assert!(matches!(
        source,
        SafetyError::Limit {
            field: "acceleration",
            ..
        }
    ));
}

#[test]
fn safety_workspace_needs_a_known_frame() {
    let error = load_err(&cartpole(
        "",
        "",
        "[safety.workspace]\nframe = \"tool0\"\nmin = [-1.0, -1.0, 0.0]\nmax = [1.0, 1.0, 1.0]",
    ));
    let (source, _) = assert_safety_error(&error, "safety.workspace");
    assert!(matches!(source, SafetyError::Workspace(_)));

    let profile = load_ok(&cartpole(
        "",
        "",
        "[safety.workspace]\nframe = \"pole_tip\"\nmin = [-1.5, -1.0, 0.0]\nmax = [1.5, 1.0, 1.0]",
    ));
    let config = profile.safety_config().expect("config");
    assert!(config.workspace.is_some());
}

// ---------------------------------------------------------------------------------------------
// Session: endpoints and mode

#[test]
fn endpoints_must_be_proto_slash_address() {
    for (bad, needle) in [
        ("127.0.0.1:7447", "<proto>/<address>"),
        ("tcp/", "<proto>/<address>"),
        ("udp/127.0.0.1:7447", "protocol `udp`"),
        ("quic/127.0.0.1:7447", "protocol `quic`"),
        ("tcp/127.0.0.1", "not `<host>:<port>`"),
        ("tcp/:7447", "not `<host>:<port>`"),
        ("tcp/127.0.0.1:70000", "port `70000`"),
        ("tcp/127.0.0.1:0", "port 0"),
    ] {
        let error = load_err(&cartpole(
            "",
            "",
            &format!("[session]\nconnect = [\"tcp/10.0.0.2:7447\", \"{bad}\"]"),
        ));
        assert_invalid(&error, "session.connect[1]", &[needle]);
    }
    let error = load_err(&cartpole("", "", "[session]\nlisten = [\"tcp\"]"));
    assert_invalid(&error, "session.listen[0]", &["<proto>/<address>"]);

    let profile = load_ok(&cartpole(
        "",
        "",
        "[session]\nconnect = [\"tcp/robot.local:7447\", \"tcp/[fe80::1]:7447\", \
         \"tcp/10.0.0.2:7447#iface=eth0\"]\nlisten = [\"tcp/0.0.0.0:0\"]",
    ));
    assert_eq!(profile.session.connect.len(), 3);
    assert_eq!(profile.session.listen, ["tcp/0.0.0.0:0"]);
}

#[test]
fn client_mode_needs_a_router_and_does_not_listen() {
    let error = load_err(&cartpole("", "", "[session]\nmode = \"client\""));
    assert_invalid(&error, "session.connect", &["client"]);
    let error = load_err(&cartpole(
        "",
        "",
        "[session]\nmode = \"client\"\nconnect = [\"tcp/10.0.0.1:7447\"]\n\
         listen = [\"tcp/0.0.0.0:7447\"]",
    ));
    assert_invalid(&error, "session.listen", &["client does not listen"]);
    let profile = load_ok(&cartpole(
        "",
        "",
        "[session]\nmode = \"client\"\nconnect = [\"tcp/10.0.0.1:7447\"]",
    ));
    assert_eq!(profile.session.mode, SessionMode::Client);
    let error = load_err(&cartpole("", "", "[session]\nmode = \"router\""));
    assert_toml_error(&error, Some("session.mode"), "unknown variant `router`");
}

#[test]
fn zenoh_config_sets_mode_endpoints_and_scouting() {
    let profile = load_ok(&cartpole(
        "",
        "",
        "[session]\nconnect = [\"tcp/10.0.0.2:7447\"]\nlisten = [\"tcp/0.0.0.0:7447\"]\n\
         multicast_scouting = true",
    ));
    let config = profile.session.zenoh_config().expect("config");
    assert_eq!(config.get_json("mode").expect("mode"), "\"peer\"");
    assert_eq!(
        config.get_json("connect/endpoints").expect("connect"),
        "[\"tcp/10.0.0.2:7447\"]"
    );
    assert_eq!(
        config.get_json("listen/endpoints").expect("listen"),
        "[\"tcp/0.0.0.0:7447\"]"
    );
    assert_eq!(
        config
            .get_json("scouting/multicast/enabled")
            .expect("scouting"),
        "true"
    );
    // No TLS or authentication configured.
    assert_eq!(
        config.get_json("transport/auth/usrpwd/user").expect("user"),
        "null"
    );
    assert_eq!(
        config
            .get_json("transport/link/tls/root_ca_certificate")
            .expect("ca"),
        "null"
    );

    let client = SessionSettings {
        mode: SessionMode::Client,
        ..SessionSettings::with_endpoints(vec!["tcp/10.0.0.1:7447".into()], vec![])
    };
    let config = client.zenoh_config().expect("config");
    assert_eq!(config.get_json("mode").expect("mode"), "\"client\"");
}

#[test]
fn with_endpoints_is_a_plain_peer_and_replaces_the_default_listener() {
    let settings = SessionSettings::with_endpoints(vec![], vec![]);
    assert_eq!(settings.mode, SessionMode::Peer);
    assert!(!settings.multicast_scouting && settings.tls.is_none() && settings.auth.is_none());
    let config = settings.zenoh_config().expect("config");
    // zenoh's peer default would listen on tcp/[::]:0; an empty list means no listener.
    assert_eq!(config.get_json("listen/endpoints").expect("listen"), "[]");
    assert_eq!(config.get_json("connect/endpoints").expect("connect"), "[]");
    assert_eq!(
        config
            .get_json("scouting/multicast/enabled")
            .expect("scouting"),
        "false"
    );
}

#[test]
fn zenoh_config_checks_settings_built_in_code() {
    let settings = SessionSettings::with_endpoints(vec!["localhost:7447".into()], vec![]);
    let error = settings.zenoh_config().expect_err("bad endpoint");
    assert!(
        matches!(&error, ProfileError::Session { key, message }
            if key == "session.connect[0]" && message.contains("<proto>/<address>")),
        "{error}"
    );
    assert_eq!(error.file(), None);
    assert_eq!(error.key(), Some("session.connect[0]"));

    let settings = SessionSettings::with_endpoints(vec![], vec!["tls/127.0.0.1:0".into()]);
    let error = settings
        .zenoh_config()
        .expect_err("tls listener without certificate");
    assert!(error.to_string().contains("listen_certificate"), "{error}");
}

// ---------------------------------------------------------------------------------------------
// Session: TLS and authentication

/// A temporary directory with empty files of the given names.
fn dir_with(files: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in files {
        let path = dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, "placeholder\n").expect("write");
    }
    dir
}

fn load_in(dir: &Path, text: &str) -> Result<RobotProfile, ProfileError> {
    RobotProfile::from_toml_str(text, &dir.join("robot.toml"))
}

#[test]
fn tls_files_must_exist() {
    let dir = dir_with(&["certs/ca.pem"]);
    let text = cartpole(
        "",
        "",
        "[session.tls]\nroot_ca_certificate = \"certs/ca.pem\"\nlisten_certificate = \
         \"certs/server.pem\"\nlisten_private_key = \"certs/server.key\"",
    );
    let error = load_in(dir.path(), &text).expect_err("missing server certificate");
    match &error {
        ProfileError::MissingFile { key, path, .. } => {
            assert_eq!(key, "session.tls.listen_certificate");
            assert_eq!(path, &dir.path().join("certs/server.pem"));
        }
        other => panic!("expected MissingFile, got {other}"),
    }
    let shown = error.to_string();
    assert!(
        shown.contains("certs/server.pem") && shown.contains("robot.toml"),
        "{shown}"
    );

    // A directory is not a certificate.
    let text = cartpole("", "", "[session.tls]\nroot_ca_certificate = \"certs\"");
    let error = load_in(dir.path(), &text).expect_err("directory");
    assert!(
        matches!(&error, ProfileError::MissingFile { key, .. } if key == "session.tls.root_ca_certificate"),
        "{error}"
    );
}

#[test]
fn tls_settings_resolve_against_the_profile_and_reach_the_zenoh_config() {
    let dir = dir_with(&[
        "certs/ca.pem",
        "certs/client.pem",
        "certs/client.key",
        "certs/server.pem",
        "certs/server.key",
    ]);
    let text = cartpole(
        "",
        "",
        "[session]\nconnect = [\"tls/10.0.0.2:7447\"]\nlisten = [\"tls/0.0.0.0:7447\"]\n\
         [session.tls]\nroot_ca_certificate = \"certs/ca.pem\"\n\
         connect_certificate = \"certs/client.pem\"\nconnect_private_key = \"certs/client.key\"\n\
         listen_certificate = \"certs/server.pem\"\nlisten_private_key = \"certs/server.key\"\n\
         enable_mtls = true\nverify_name_on_connect = false",
    );
    let profile = load_in(dir.path(), &text).expect("loads");
    let tls = profile.session.tls.clone().expect("tls");
    assert_eq!(
        tls.root_ca_certificate.as_deref(),
        Some(dir.path().join("certs/ca.pem").as_path())
    );
    assert!(tls.enable_mtls && !tls.verify_name_on_connect);
    let config = profile.session.zenoh_config().expect("config");
    for name in [
        "root_ca_certificate",
        "connect_certificate",
        "connect_private_key",
        "listen_certificate",
        "listen_private_key",
    ] {
        let json = config
            .get_json(&format!("transport/link/tls/{name}"))
            .expect("key exists");
        let value: String = serde_json::from_str(&json).expect("a JSON string");
        let file = match name {
            "root_ca_certificate" => "ca.pem",
            "connect_certificate" => "client.pem",
            "connect_private_key" => "client.key",
            "listen_certificate" => "server.pem",
            _ => "server.key",
        };
        assert_eq!(
            PathBuf::from(value),
            dir.path().join("certs").join(file),
            "{name}"
        );
    }
    assert_eq!(
        config
            .get_json("transport/link/tls/enable_mtls")
            .expect("mtls"),
        "true"
    );
    assert_eq!(
        config
            .get_json("transport/link/tls/verify_name_on_connect")
            .expect("verify"),
        "false"
    );
}

#[test]
fn tls_rules_certificate_pairs_mtls_and_tls_listeners() {
    let dir = dir_with(&["ca.pem", "server.pem", "client.pem", "client.key"]);
    // A certificate without its key.
    let text = cartpole("", "", "[session.tls]\nlisten_certificate = \"server.pem\"");
    let error = load_in(dir.path(), &text).expect_err("pair");
    assert!(
        matches!(&error, ProfileError::Invalid { key, message, .. }
            if key == "session.tls.listen_certificate" && message.contains("listen_private_key")),
        "{error}"
    );
    // mTLS without a CA.
    let text = cartpole("", "", "[session.tls]\nenable_mtls = true");
    let error = load_in(dir.path(), &text).expect_err("mtls");
    assert!(
        matches!(&error, ProfileError::Invalid { key, .. } if key == "session.tls.enable_mtls"),
        "{error}"
    );
    // Listening on tls/ needs a certificate.
    let text = cartpole(
        "",
        "",
        "[session]\nlisten = [\"tls/0.0.0.0:7447\"]\n[session.tls]\nroot_ca_certificate = \"ca.pem\"",
    );
    let error = load_in(dir.path(), &text).expect_err("listener certificate");
    assert!(
        matches!(&error, ProfileError::Invalid { key, .. } if key == "session.listen[0]"),
        "{error}"
    );
    // Connecting with mTLS needs this side's certificate.
    let text = cartpole(
        "",
        "",
        "[session]\nconnect = [\"tls/10.0.0.2:7447\"]\n[session.tls]\n\
         root_ca_certificate = \"ca.pem\"\nenable_mtls = true",
    );
    let error = load_in(dir.path(), &text).expect_err("client certificate");
    assert!(
        matches!(&error, ProfileError::Invalid { key, message, .. }
            if key == "session.connect[0]" && message.contains("connect_certificate")),
        "{error}"
    );
    // Connecting without [session.tls] is allowed (web PKI roots).
    let text = cartpole(
        "",
        "",
        "[session]\nconnect = [\"tls/robot.example.com:7447\"]",
    );
    load_in(dir.path(), &text).expect("tls connect without tls section");
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write");
}

#[test]
fn dictionary_file_must_exist_and_hold_user_password_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let auth = |file: &str| {
        cartpole(
            "",
            "",
            &format!("[session.auth]\ndictionary_file = \"{file}\""),
        )
    };
    let error = load_in(dir.path(), &auth("users.txt")).expect_err("missing");
    match &error {
        ProfileError::MissingFile { key, path, .. } => {
            assert_eq!(key, "session.auth.dictionary_file");
            assert_eq!(path, &dir.path().join("users.txt"));
        }
        other => panic!("expected MissingFile, got {other}"),
    }

    write(dir.path(), "empty.txt", "\n  \n");
    let error = load_in(dir.path(), &auth("empty.txt")).expect_err("empty");
    assert!(
        error.to_string().contains("no `user:password` lines"),
        "{error}"
    );

    write(
        dir.path(),
        "bad.txt",
        "rivet:secret\nsecond-line-without-colon\n",
    );
    let error = load_in(dir.path(), &auth("bad.txt")).expect_err("bad line");
    assert!(
        matches!(&error, ProfileError::Invalid { key, message, .. }
            if key == "session.auth.dictionary_file" && message.contains("line 2")),
        "{error}"
    );

    write(dir.path(), "nopass.txt", "rivet:  \n");
    let error = load_in(dir.path(), &auth("nopass.txt")).expect_err("empty password");
    assert!(error.to_string().contains("empty password"), "{error}");
    assert!(!error.to_string().contains("secret"));

    write(
        dir.path(),
        "users.txt",
        "rivet:secret\n\n operator : hunter2 \n",
    );
    let profile = load_in(dir.path(), &auth("users.txt")).expect("valid dictionary");
    let auth = profile.session.auth.expect("auth");
    assert_eq!(auth.credentials, None);
    assert_eq!(auth.dictionary_file, Some(dir.path().join("users.txt")));
}

#[test]
fn password_and_password_env_both_set_or_neither_are_errors() {
    let error = load_err(&cartpole(
        "",
        "",
        "[session.auth]\nuser = \"rivet\"\npassword = \"secret\"\npassword_env = \"RIVET_PW\"",
    ));
    assert_invalid(&error, "session.auth.password_env", &["both"]);

    let error = load_err(&cartpole("", "", "[session.auth]\nuser = \"rivet\""));
    assert_invalid(&error, "session.auth.password", &["neither"]);

    let error = load_err(&cartpole("", "", "[session.auth]\npassword = \"secret\""));
    assert_invalid(&error, "session.auth.user", &["without a user"]);

    let error = load_err(&cartpole("", "", "[session.auth]\n"));
    assert_invalid(&error, "session.auth", &["empty"]);
}

#[test]
fn credentials_zenoh_cannot_match_are_rejected() {
    let error = load_err(&cartpole(
        "",
        "",
        "[session.auth]\nuser = \"ri:vet\"\npassword = \"secret\"",
    ));
    assert_invalid(&error, "session.auth.user", &["`:`"]);
    let error = load_err(&cartpole(
        "",
        "",
        "[session.auth]\nuser = \"rivet\"\npassword = \" secret\"",
    ));
    assert_invalid(&error, "session.auth.password", &["whitespace"]);
    assert!(!error.to_string().contains("secret"));
}

#[test]
fn password_env_is_read_at_load() {
    let text = cartpole(
        "",
        "",
        "[session.auth]\nuser = \"rivet\"\npassword_env = \"RIVET_TEST_PW\"",
    );
    let env = |var: &str| {
        if var == "RIVET_TEST_PW" {
            Ok("from-env".to_owned())
        } else {
            Err(std::env::VarError::NotPresent)
        }
    };
    let profile =
        RobotProfile::from_toml_str_with_env(&text, &virtual_source(), &env).expect("variable set");
    let credentials = profile
        .session
        .auth
        .and_then(|a| a.credentials)
        .expect("credentials");
    assert_eq!(credentials.user, "rivet");
    assert_eq!(credentials.password, "from-env");

    let unset = |_: &str| Err(std::env::VarError::NotPresent);
    let error = RobotProfile::from_toml_str_with_env(&text, &virtual_source(), &unset)
        .expect_err("variable unset");
    assert!(
        matches!(&error, ProfileError::Env { key, var, .. }
            if key == "session.auth.password_env" && var == "RIVET_TEST_PW"),
        "{error}"
    );
    assert!(error.to_string().contains("is not set"), "{error}");

    // The real environment: a variable nobody sets.
    let text = cartpole(
        "",
        "",
        "[session.auth]\nuser = \"rivet\"\npassword_env = \"RIVET_TEST_SURELY_UNSET_7f3a\"",
    );
    assert!(matches!(load_err(&text), ProfileError::Env { .. }));
}

#[test]
fn listening_with_authentication_needs_a_dictionary() {
    let error = load_err(&cartpole(
        "",
        "",
        "[session]\nlisten = [\"tcp/0.0.0.0:7447\"]\n\
         [session.auth]\nuser = \"rivet\"\npassword = \"secret\"",
    ));
    assert_invalid(&error, "session.auth.dictionary_file", &["accepts no one"]);
}

#[test]
fn passwords_are_not_shown_in_debug_output() {
    let profile = load_ok(&cartpole(
        "",
        "",
        "[session.auth]\nuser = \"rivet\"\npassword = \"hunter2\"",
    ));
    let shown = format!("{profile:?}");
    assert!(shown.contains("rivet"));
    assert!(!shown.contains("hunter2"), "password leaked: {shown}");
}

#[test]
fn zenoh_config_sets_usrpwd_in_one_piece() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "users.txt", "peer:pw\n");
    let text = cartpole(
        "",
        "",
        "[session.auth]\nuser = \"ri\\\"vet\"\npassword = \"p\\\\w\"\ndictionary_file = \"users.txt\"",
    );
    let profile = load_in(dir.path(), &text).expect("loads");
    let config = profile.session.zenoh_config().expect("config");
    let get = |key: &str| -> String {
        let json = config.get_json(key).expect("key exists");
        serde_json::from_str(&json).expect("a JSON string")
    };
    assert_eq!(get("transport/auth/usrpwd/user"), "ri\"vet");
    assert_eq!(get("transport/auth/usrpwd/password"), "p\\w");
    assert_eq!(
        PathBuf::from(get("transport/auth/usrpwd/dictionary_file")),
        dir.path().join("users.txt")
    );

    // zenoh's `user_conf_validator` (user and password together) checks the object as a whole
    // (a leaf insertion of `user` alone is not checked).
    let mut bare = zenoh::Config::default();
    assert!(
        bare.insert_json5(
            "transport/auth/usrpwd",
            "{user: \"rivet\", password: null, dictionary_file: null}"
        )
        .is_err()
    );

    // A dictionary alone (a pure listener).
    let settings = SessionSettings {
        auth: Some(AuthSettings {
            credentials: None,
            dictionary_file: Some(dir.path().join("users.txt")),
        }),
        ..SessionSettings::with_endpoints(vec![], vec!["tcp/127.0.0.1:0".into()])
    };
    let config = settings.zenoh_config().expect("config");
    assert_eq!(
        config.get_json("transport/auth/usrpwd/user").expect("user"),
        "null"
    );
}

#[test]
fn json_strings_survive_zenohs_json5_parser() {
    let mut config = zenoh::Config::default();
    for value in [
        "plain",
        "quote \" and backslash \\",
        "tab\tnewline\nreturn\r",
        "\u{1}\u{1f}\u{7f}\u{2028}\u{2029}",
        "ünïcödé ✓",
    ] {
        config
            .insert_json5(
                "transport/link/tls/root_ca_certificate",
                &session::json_string(value),
            )
            .expect("insert");
        let json = config
            .get_json("transport/link/tls/root_ca_certificate")
            .expect("get");
        let back: String = serde_json::from_str(&json).expect("JSON string");
        assert_eq!(back, value);
    }
}

// ---------------------------------------------------------------------------------------------
// Schema and messages

#[test]
fn json_schema_covers_every_section() {
    let schema = serde_json::to_string(&json_schema()).expect("schema serializes");
    for needle in [
        "robot",
        "urdf",
        "type_hashes",
        "stale_cycles",
        "hold_cycles",
        "forward_effort",
        "joint_trajectory",
        "estop",
        "all_joints",
        "multicast_scouting",
        "root_ca_certificate",
        "password_env",
        "dictionary_file",
    ] {
        assert!(
            schema.contains(needle),
            "`{needle}` missing from the schema"
        );
    }
}

#[test]
fn toml_keys_are_quoted_when_needed() {
    assert_eq!(error::toml_key("slider"), "slider");
    assert_eq!(error::toml_key("finger-left_2"), "finger-left_2");
    assert_eq!(
        error::toml_key("sensor_msgs/msg/JointState"),
        "\"sensor_msgs/msg/JointState\""
    );
    assert_eq!(error::toml_key("a \"b\""), "\"a \\\"b\\\"\"");
    assert_eq!(error::toml_key(""), "\"\"");
}
