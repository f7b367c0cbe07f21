//! The robot profile: one real (or simulated) ros2_control robot as `rivet deploy` and
//! `rivet robot serve` see it: its URDF and joints, its ROS 2 identity and topics, the deploy
//! loop's rate and watchdog, safety limits tighter than the URDF's, and how to open the zenoh
//! session that reaches it.
//!
//! [`RobotProfile::load`] reads a TOML file, checks everything once (the URDF loads, every joint
//! exists, topics are valid ROS 2 names, overrides only tighten limits, files exist, endpoints
//! parse) and returns resolved values: absolute-or-profile-relative paths resolved, default
//! values filled in, joint names mapped to the tree's DoF indices.
//!
//! # Format
//!
//! A cart-pole driven by an effort controller (`hw-bridge/tests/profiles/cartpole.toml` is this
//! profile without the TLS and authentication sections):
//!
//! ```toml
//! [robot]
//! name = "cartpole"
//! urdf = "../robots/rivet_cartpole.urdf"   # required; relative paths are relative to the profile file
//! joints = ["slider", "hinge"]             # optional: the joints the state carries, in this order;
//!                                          # default: the URDF's DoF order. Each must be a movable joint.
//!
//! [ros]
//! domain_id = 0            # default 0 (0 to 232)
//! namespace = "/"          # default "/"
//! node = "rivet_deploy"    # default "rivet_deploy"
//! distro = "jazzy"         # "jazzy" (default) or "humble"
//! [ros.type_hashes]        # optional overrides: ROS type name -> hash
//! # "sensor_msgs/msg/JointState" = "RIHS01_..."
//!
//! [state]
//! topic = "/joint_states"  # default
//! stale_cycles = 5         # watchdog: state older than this many control cycles is stale (default 5)
//!
//! [command]
//! topic = "/effort_controller/commands"   # required
//! kind = "forward_effort"  # required: forward_position | forward_velocity | forward_effort | joint_trajectory
//! joints = ["slider"]      # default: all state joints; order of the values in the command message
//! rate_hz = 25.0           # deploy loop rate, default 100, at most 10 000
//! hold_cycles = 10         # watchdog: after this many stale cycles holding, stop (default 10)
//!
//! [estop]
//! topic = "/rivet/estop"   # default; std_msgs/msg/Bool, true latches a stop
//!
//! [safety]                 # rivet_control::safety::SafetyOverrides: may only tighten the URDF
//! all_joints = { acceleration = 50.0 }
//! [safety.joints.slider]
//! effort = 20.0
//!
//! [session]
//! mode = "peer"                      # peer (default) | client
//! connect = ["tcp/127.0.0.1:7447"]   # endpoints to connect to (default: none)
//! listen = []                        # endpoints to listen on (default: none)
//! multicast_scouting = false         # default false
//! [session.tls]                      # optional; paths relative to the profile file
//! root_ca_certificate = "certs/ca.pem"
//! connect_certificate = "certs/client.pem"   # optional (mTLS), with connect_private_key
//! connect_private_key = "certs/client.key"
//! listen_certificate = "certs/server.pem"    # needed to listen on tls/ endpoints
//! listen_private_key = "certs/server.key"
//! enable_mtls = false                # default false
//! verify_name_on_connect = true      # default true
//! [session.auth]                     # optional: zenoh user/password authentication
//! user = "rivet"
//! password = "secret"                # or password_env = "RIVET_ZENOH_PASSWORD" (read at load)
//! dictionary_file = "users.txt"      # the `user:password` lines this side accepts
//! ```
//!
//! Unknown keys are errors (a typo must not silently fall back to a default). Every error
//! ([`ProfileError`]) names the file and the TOML key path (`robot.joints[2]`, `command.kind`,
//! `session.tls.root_ca_certificate`); TOML syntax and type errors also give line and column.
//! [`json_schema`] describes the format for editors.
//!
//! # Topics and types
//!
//! The state topic carries `sensor_msgs/msg/JointState`, the e-stop topic `std_msgs/msg/Bool`,
//! the command topic `std_msgs/msg/Float64MultiArray` for the `forward_*` kinds (one value per
//! command joint, in `command.joints` order) and `trajectory_msgs/msg/JointTrajectory` for
//! `joint_trajectory` ([`CommandKind::ros_type_name`]). Topic names must be absolute. The three
//! topics must differ.
//!
//! # zenoh session: what works
//!
//! [`SessionSettings::zenoh_config`] starts from zenoh's defaults and sets `mode`,
//! `connect/endpoints`, `listen/endpoints` (an empty list replaces zenoh's peer default
//! `tcp/[::]:0`: no listener), `scouting/multicast/enabled`, `transport/link/tls/*` and
//! `transport/auth/usrpwd/*`. Only the `tcp` and `tls` transports are built. In peer mode zenoh
//! connects to `connect` endpoints in the background and retries forever (its default
//! `connect/timeout_ms` for peers is -1 with `exit_on_failure` false), so opening a session
//! succeeds even when the robot is not reachable yet; in client mode opening fails if no
//! endpoint answers.
//!
//! **User/password** (zenoh 1.10.2, checked in `zenoh-transport-1.10.2/src/unicast/
//! establishment/ext/auth/usrpwd.rs` and `.../ext/auth/mod.rs`): authentication is per
//! connection and one-directional. The side that *opens* the connection (the one with
//! `connect`) presents `user`/`password`; the side that *accepts* it (the one with `listen`)
//! checks them against its `dictionary_file` and refuses the connection on an unknown user or a
//! wrong password (the HMAC of the password over a nonce does not match). The listener's own
//! `user`/`password` are not used to accept; they only matter when it opens connections itself
//! (a peer that also connects, or gossip auto-connect). Both sides must have authentication
//! configured: a listener with a dictionary refuses a connecting side without credentials
//! ("Expected extension"), and a connecting side with credentials refuses a listener without
//! authentication. A side with only `user`/`password` and no dictionary accepts nobody who
//! connects to it, so a profile that listens with `[session.auth]` must give a
//! `dictionary_file`. zenoh requires `user` and `password` together (`user_conf_validator` in
//! `zenoh-config-1.10.2/src/lib.rs`), trims dictionary entries and rejects empty ones; an empty
//! dictionary with no credentials disables authentication altogether, so the loader rejects an
//! empty dictionary. The failed side does not panic: in peer mode it logs and keeps retrying, no
//! peer appears in `session.info().peers_zid()` and no sample crosses. The tests in this module
//! show each case with real sessions over loopback.
//!
//! **TLS** (`zenoh-link-tls-1.10.2/src/utils.rs`, `TlsConfigurator` and `TlsServerConfig` /
//! `TlsClientConfig`): the file keys `root_ca_certificate`, `listen_certificate`,
//! `listen_private_key`, `connect_certificate`, `connect_private_key` (PEM files; keys RSA,
//! PKCS#8 or SEC1 EC), and `enable_mtls`, `verify_name_on_connect`. A connecting side trusts the
//! built-in web PKI roots plus `root_ca_certificate`, and with `verify_name_on_connect` (default)
//! checks that the listener's certificate names the host in the endpoint (an `IP:` subject
//! alternative name for `tls/127.0.0.1:7447`). With `enable_mtls` the listener requires a client
//! certificate signed by its `root_ca_certificate` (TLS 1.3 only) and the connecting side must
//! have `connect_certificate` and `connect_private_key`.

mod error;
mod raw;
mod session;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod zenoh_tests;

use std::fmt;
use std::path::{Path, PathBuf};

use rivet_control::safety::{JointLimitOverrides, SafetyConfig, SafetyError, SafetyOverrides};
use rivet_control::{CommandMode, RobotTree};
use serde::Deserialize;

pub use error::ProfileError;
pub use session::{AuthSettings, Credentials, SessionMode, SessionSettings, TlsSettings};

use crate::cdr::RosMessage;
use crate::keys::{DomainId, Namespace, NodeName, RosDistro, TopicName, TypeHash, TypeHashProfile};
use crate::msgs::sensor_msgs::JointState;
use crate::msgs::std_msgs::{Bool, Float64MultiArray};
use crate::msgs::trajectory_msgs::JointTrajectory;
use error::{toml_error, toml_key};

/// Default deploy loop rate (Hz).
pub const DEFAULT_RATE_HZ: f64 = 100.0;
/// Highest deploy loop rate a profile may ask for (Hz).
pub const MAX_RATE_HZ: f64 = 10_000.0;
/// Default `state.stale_cycles`.
pub const DEFAULT_STALE_CYCLES: u32 = 5;
/// Default `command.hold_cycles`.
pub const DEFAULT_HOLD_CYCLES: u32 = 10;
/// Default `state.topic`.
pub const DEFAULT_STATE_TOPIC: &str = "/joint_states";
/// Default `estop.topic`.
pub const DEFAULT_ESTOP_TOPIC: &str = "/rivet/estop";
/// Default `ros.node`.
pub const DEFAULT_NODE_NAME: &str = "rivet_deploy";

/// Which ros2_control controller receives the commands, and so the command message type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CommandKind {
    /// `forward_command_controller` on position interfaces: `std_msgs/msg/Float64MultiArray`
    /// of positions (rad or m).
    ForwardPosition,
    /// `forward_command_controller` on velocity interfaces: `Float64MultiArray` of velocities.
    ForwardVelocity,
    /// `forward_command_controller` on effort interfaces: `Float64MultiArray` of efforts
    /// (N·m or N).
    ForwardEffort,
    /// `joint_trajectory_controller`: `trajectory_msgs/msg/JointTrajectory` (positions).
    JointTrajectory,
}

impl CommandKind {
    /// All kinds, in the order the TOML documentation lists them.
    pub const ALL: [CommandKind; 4] = [
        CommandKind::ForwardPosition,
        CommandKind::ForwardVelocity,
        CommandKind::ForwardEffort,
        CommandKind::JointTrajectory,
    ];

    /// The command mode of the values the deploy loop computes and the safety filter checks
    /// (a trajectory carries positions).
    pub fn mode(self) -> CommandMode {
        match self {
            CommandKind::ForwardPosition | CommandKind::JointTrajectory => CommandMode::Position,
            CommandKind::ForwardVelocity => CommandMode::Velocity,
            CommandKind::ForwardEffort => CommandMode::Torque,
        }
    }

    /// The ROS 2 message type published on the command topic.
    pub fn ros_type_name(self) -> &'static str {
        match self {
            CommandKind::JointTrajectory => JointTrajectory::ROS_TYPE_NAME,
            _ => Float64MultiArray::ROS_TYPE_NAME,
        }
    }

    /// The DDS type name of that message, as in rmw_zenoh key expressions.
    pub fn dds_type_name(self) -> &'static str {
        match self {
            CommandKind::JointTrajectory => JointTrajectory::DDS_TYPE_NAME,
            _ => Float64MultiArray::DDS_TYPE_NAME,
        }
    }

    /// The TOML spelling (`forward_effort`).
    pub fn as_str(self) -> &'static str {
        match self {
            CommandKind::ForwardPosition => "forward_position",
            CommandKind::ForwardVelocity => "forward_velocity",
            CommandKind::ForwardEffort => "forward_effort",
            CommandKind::JointTrajectory => "joint_trajectory",
        }
    }
}

impl fmt::Display for CommandKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// ROS 2 identity of the bridge (`[ros]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RosSettings {
    /// `ROS_DOMAIN_ID`.
    pub domain: DomainId,
    /// The node's namespace.
    pub namespace: Namespace,
    /// The node's name.
    pub node: NodeName,
    /// Type hashes to put in key expressions: the distribution's defaults plus the profile's
    /// overrides.
    pub hashes: TypeHashProfile,
}

/// The joint state subscription (`[state]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateSettings {
    /// The `sensor_msgs/msg/JointState` topic.
    pub topic: TopicName,
    /// Watchdog: a state older than this many control cycles counts as stale (> 0).
    pub stale_cycles: u32,
}

/// The command publication and loop rate (`[command]`).
#[derive(Clone, Debug, PartialEq)]
pub struct CommandSettings {
    /// The controller's command topic.
    pub topic: TopicName,
    /// The controller kind, and so the message type.
    pub kind: CommandKind,
    /// The joint of each command value, in message order (a subset of the state joints).
    pub joints: Vec<String>,
    /// The tree DoF index of each command value.
    pub dofs: Vec<usize>,
    /// Deploy loop rate (Hz): finite, > 0, at most [`MAX_RATE_HZ`].
    pub rate_hz: f64,
    /// Watchdog: after this many stale cycles holding position, stop (> 0).
    pub hold_cycles: u32,
}

/// A loaded and validated robot profile.
#[derive(Clone, Debug)]
pub struct RobotProfile {
    /// Robot name (the URDF's when the profile gives none).
    pub name: String,
    /// The profile file.
    pub source: PathBuf,
    /// The URDF, resolved against the profile's directory.
    pub urdf: PathBuf,
    /// The robot tree loaded from the URDF.
    pub tree: RobotTree,
    /// The joints the state carries, in order.
    pub joints: Vec<String>,
    /// The tree DoF index of each state joint.
    pub joint_dofs: Vec<usize>,
    /// ROS 2 identity.
    pub ros: RosSettings,
    /// Joint state subscription.
    pub state: StateSettings,
    /// Command publication and loop rate.
    pub command: CommandSettings,
    /// The `std_msgs/msg/Bool` e-stop topic (`true` latches a stop).
    pub estop: TopicName,
    /// Safety overrides, as written (checked at load against the URDF at the loop period).
    pub safety: SafetyOverrides,
    /// The zenoh session.
    pub session: SessionSettings,
}

/// Environment lookup, replaceable in tests.
type EnvLookup<'a> = &'a dyn Fn(&str) -> Result<String, std::env::VarError>;

impl RobotProfile {
    /// Reads and validates the profile at `path`. Relative paths inside are resolved against
    /// the profile's directory; `session.auth.password_env` is read now.
    pub fn load(path: &Path) -> Result<Self, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_str(&text, path)
    }

    /// Parses and validates profile text as if read from `source` (which need not exist):
    /// errors name `source`, and relative paths are resolved against its directory.
    pub fn from_toml_str(text: &str, source: &Path) -> Result<Self, ProfileError> {
        Self::from_toml_str_with_env(text, source, &|var| std::env::var(var))
    }

    fn from_toml_str_with_env(
        text: &str,
        source: &Path,
        env: EnvLookup<'_>,
    ) -> Result<Self, ProfileError> {
        let raw: raw::RawProfile =
            toml::from_str(text).map_err(|e| toml_error(source, text, &e))?;
        Loader {
            file: source,
            base: source.parent().unwrap_or(Path::new("")),
            env,
        }
        .build(raw)
    }

    /// The deploy loop period (s): `1 / command.rate_hz`.
    pub fn period_secs(&self) -> f64 {
        1.0 / self.command.rate_hz
    }

    /// The safety filter configuration: the URDF's limits at the loop period
    /// ([`SafetyConfig::from_tree`]), tightened by the profile's overrides
    /// ([`SafetyConfig::apply_overrides`]). Checked at load, so this fails only for a profile
    /// modified since.
    pub fn safety_config(&self) -> Result<SafetyConfig, ProfileError> {
        let mut config = SafetyConfig::from_tree(&self.tree, self.period_secs());
        let file_limits = config.clone();
        config
            .apply_overrides(&self.tree, &self.safety)
            .map_err(|source| {
                let (key, context) = safety_context(&self.safety, &file_limits, &source);
                ProfileError::Safety {
                    file: self.source.clone(),
                    key,
                    source: Box::new(source),
                    context,
                }
            })?;
        Ok(config)
    }

    /// The names of the tree's movable joints, in DoF order.
    pub fn dof_names(&self) -> Vec<&str> {
        dof_names(&self.tree)
    }
}

/// The JSON Schema of the profile format (for editors and `rivet robot schema`-style commands).
pub fn json_schema() -> schemars::Schema {
    schemars::schema_for!(raw::RawProfile)
}

fn dof_names(tree: &RobotTree) -> Vec<&str> {
    (0..tree.dof_count())
        .map(|i| tree.dof_joint(i).name.as_str())
        .collect()
}

/// The key path and extra context of a safety error.
fn safety_context(
    overrides: &SafetyOverrides,
    file_limits: &SafetyConfig,
    error: &SafetyError,
) -> (String, String) {
    match error {
        SafetyError::Limit {
            name,
            field,
            value,
            reason,
            ..
        } => {
            // `all_joints` is applied first, so when both set the offending value it is the one.
            let key = if override_value(&overrides.all_joints, field).as_ref() == Some(value) {
                format!("safety.all_joints.{field}")
            } else if overrides
                .joints
                .get(name)
                .is_some_and(|o| override_value(o, field).is_some())
            {
                format!("safety.joints.{}.{field}", toml_key(name))
            } else if override_value(&overrides.all_joints, field).is_some() {
                format!("safety.all_joints.{field}")
            } else {
                "safety".to_owned()
            };
            let file_value = file_limits
                .joints
                .iter()
                .find(|j| &j.name == name)
                .map(|j| match *field {
                    "velocity" => j.velocity.to_string(),
                    "acceleration" => j.acceleration.to_string(),
                    "jerk" => j.jerk.to_string(),
                    "effort" => j.effort.to_string(),
                    "max_step" => j.max_step.to_string(),
                    "position" => j
                        .position
                        .map_or("inf".to_owned(), |[lo, hi]| format!("[{lo}, {hi}]")),
                    _ => String::new(),
                });
            let context = match file_value {
                Some(limit) if reason.contains("tighten") && !limit.is_empty() => {
                    format!(" (the URDF's {field} limit of '{name}' is {limit})")
                }
                _ => String::new(),
            };
            (key, context)
        }
        SafetyError::UnknownJoint(name) => {
            (format!("safety.joints.{}", toml_key(name)), String::new())
        }
        SafetyError::Workspace(_) => ("safety.workspace".to_owned(), String::new()),
        SafetyError::Period(_) => ("command.rate_hz".to_owned(), String::new()),
        _ => ("safety".to_owned(), String::new()),
    }
}

/// An override's value of `field`, formatted as [`SafetyError::Limit`] formats it.
fn override_value(o: &JointLimitOverrides, field: &str) -> Option<String> {
    match field {
        "position" => o.position.map(|[lo, hi]| format!("[{lo}, {hi}]")),
        "velocity" => o.velocity.map(|v| v.to_string()),
        "acceleration" => o.acceleration.map(|v| v.to_string()),
        "jerk" => o.jerk.map(|v| v.to_string()),
        "effort" => o.effort.map(|v| v.to_string()),
        "max_step" => o.max_step.map(|v| v.to_string()),
        _ => None,
    }
}

/// Validation with the file's context.
struct Loader<'a> {
    file: &'a Path,
    base: &'a Path,
    env: EnvLookup<'a>,
}

impl Loader<'_> {
    fn invalid(&self, key: impl Into<String>, message: impl Into<String>) -> ProfileError {
        ProfileError::Invalid {
            file: self.file.to_path_buf(),
            key: key.into(),
            message: message.into(),
        }
    }

    fn name_error(&self, key: impl Into<String>, source: crate::keys::KeyError) -> ProfileError {
        ProfileError::Name {
            file: self.file.to_path_buf(),
            key: key.into(),
            source,
        }
    }

    fn topic(&self, key: &str, name: &str) -> Result<TopicName, ProfileError> {
        TopicName::new(name).map_err(|e| self.name_error(key, e))
    }

    /// `path` resolved against the profile's directory; it must be an existing file.
    fn existing_file(&self, key: &str, path: &Path) -> Result<PathBuf, ProfileError> {
        let resolved = self.base.join(path);
        match std::fs::metadata(&resolved) {
            Ok(meta) if meta.is_file() => Ok(resolved),
            Ok(_) => Err(ProfileError::MissingFile {
                file: self.file.to_path_buf(),
                key: key.to_owned(),
                path: resolved,
                reason: Some("it is a directory".to_owned()),
            }),
            Err(e) => Err(ProfileError::MissingFile {
                file: self.file.to_path_buf(),
                key: key.to_owned(),
                path: resolved,
                reason: Some(e.to_string()),
            }),
        }
    }

    fn build(&self, raw: raw::RawProfile) -> Result<RobotProfile, ProfileError> {
        let urdf = self.existing_file("robot.urdf", &raw.robot.urdf)?;
        let tree = RobotTree::from_urdf_file(&urdf).map_err(|source| ProfileError::Urdf {
            file: self.file.to_path_buf(),
            key: "robot.urdf".to_owned(),
            source,
        })?;
        let name = match raw.robot.name {
            Some(name) if name.trim().is_empty() => {
                return Err(self.invalid("robot.name", "is empty"));
            }
            Some(name) => name,
            None => tree.name.clone(),
        };

        // State joints.
        let (joints, joint_dofs) = match raw.robot.joints {
            Some(list) => {
                if list.is_empty() {
                    return Err(self.invalid(
                        "robot.joints",
                        format!(
                            "is empty; leave it out to use all movable joints ({})",
                            dof_names(&tree).join(", ")
                        ),
                    ));
                }
                let dofs = self.joint_list("robot.joints", &list, &tree, &urdf, None)?;
                (list, dofs)
            }
            None => {
                if tree.dof_count() == 0 {
                    return Err(self.invalid(
                        "robot.urdf",
                        format!("{} has no movable joints", urdf.display()),
                    ));
                }
                let names: Vec<String> = dof_names(&tree).into_iter().map(String::from).collect();
                (names, (0..tree.dof_count()).collect())
            }
        };

        let ros = self.ros(raw.ros)?;

        let state = StateSettings {
            topic: self.topic(
                "state.topic",
                raw.state.topic.as_deref().unwrap_or(DEFAULT_STATE_TOPIC),
            )?,
            stale_cycles: self.positive(
                "state.stale_cycles",
                raw.state.stale_cycles.unwrap_or(DEFAULT_STALE_CYCLES),
            )?,
        };

        let command = self.command(raw.command, &tree, &urdf, &joints)?;
        let estop = self.topic(
            "estop.topic",
            raw.estop.topic.as_deref().unwrap_or(DEFAULT_ESTOP_TOPIC),
        )?;
        self.distinct_topics(&state.topic, &command.topic, &estop)?;
        for ros_type in [
            JointState::ROS_TYPE_NAME,
            Bool::ROS_TYPE_NAME,
            command.kind.ros_type_name(),
        ] {
            ros.hashes.get(ros_type).map_err(|e| {
                self.name_error(format!("ros.type_hashes.{}", toml_key(ros_type)), e)
            })?;
        }

        let dofs = dof_names(&tree);
        for joint in raw.safety.joints.keys() {
            if !dofs.contains(&joint.as_str()) {
                return Err(self.invalid(
                    format!("safety.joints.{}", toml_key(joint)),
                    unknown_joint_message(&tree, &urdf, joint),
                ));
            }
        }

        let session = self.session(raw.session)?;

        let profile = RobotProfile {
            name,
            source: self.file.to_path_buf(),
            urdf,
            tree,
            joints,
            joint_dofs,
            ros,
            state,
            command,
            estop,
            safety: raw.safety,
            session,
        };
        profile.safety_config()?;
        Ok(profile)
    }

    /// Maps joint names to DoF indices: each must be a movable joint of the tree, listed once,
    /// and (for command joints) one of `allowed`.
    fn joint_list(
        &self,
        key: &str,
        list: &[String],
        tree: &RobotTree,
        urdf: &Path,
        allowed: Option<&[String]>,
    ) -> Result<Vec<usize>, ProfileError> {
        let mut dofs = Vec::with_capacity(list.len());
        for (index, name) in list.iter().enumerate() {
            let item_key = format!("{key}[{index}]");
            let dof = tree
                .joint_by_name(name)
                .and_then(|id| tree.dof_of_joint(id))
                .ok_or_else(|| self.invalid(&item_key, unknown_joint_message(tree, urdf, name)))?;
            if let Some(first) = list[..index].iter().position(|other| other == name) {
                return Err(self.invalid(
                    item_key,
                    format!("joint `{name}` is listed twice (also {key}[{first}])"),
                ));
            }
            if let Some(allowed) = allowed
                && !allowed.contains(name)
            {
                return Err(self.invalid(
                    item_key,
                    format!(
                        "joint `{name}` is not among the state joints (robot.joints: {}); a \
                         command can only drive joints whose state the bridge receives",
                        allowed.join(", ")
                    ),
                ));
            }
            dofs.push(dof);
        }
        Ok(dofs)
    }

    fn positive(&self, key: &str, value: u32) -> Result<u32, ProfileError> {
        if value == 0 {
            return Err(self.invalid(key, "must be at least 1"));
        }
        Ok(value)
    }

    fn ros(&self, raw: raw::RawRos) -> Result<RosSettings, ProfileError> {
        let domain =
            DomainId::new(raw.domain_id).map_err(|e| self.name_error("ros.domain_id", e))?;
        let namespace = match raw.namespace {
            Some(ns) => Namespace::new(&ns).map_err(|e| self.name_error("ros.namespace", e))?,
            None => Namespace::root(),
        };
        let node = NodeName::new(raw.node.as_deref().unwrap_or(DEFAULT_NODE_NAME))
            .map_err(|e| self.name_error("ros.node", e))?;
        let distro = match raw.distro {
            Some(d) => d
                .parse::<RosDistro>()
                .map_err(|e| self.name_error("ros.distro", e))?,
            None => RosDistro::Jazzy,
        };
        let mut hashes = TypeHashProfile::new(distro);
        for (type_name, hash) in &raw.type_hashes {
            let key = format!("ros.type_hashes.{}", toml_key(type_name));
            let parts: Vec<&str> = type_name.split('/').collect();
            if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) || parts[1] != "msg" {
                return Err(self.invalid(
                    key,
                    format!(
                        "`{type_name}` is not a ROS 2 message type name \
                         (`<package>/msg/<Type>`, e.g. `sensor_msgs/msg/JointState`)"
                    ),
                ));
            }
            let hash: TypeHash = hash.parse().map_err(|e| self.name_error(&key, e))?;
            hashes.set_override(type_name.clone(), hash);
        }
        Ok(RosSettings {
            domain,
            namespace,
            node,
            hashes,
        })
    }

    fn command(
        &self,
        raw: raw::RawCommand,
        tree: &RobotTree,
        urdf: &Path,
        state_joints: &[String],
    ) -> Result<CommandSettings, ProfileError> {
        let topic = self.topic("command.topic", &raw.topic)?;
        let joints = match raw.joints {
            Some(list) if list.is_empty() => {
                return Err(self.invalid(
                    "command.joints",
                    "is empty; leave it out to command all state joints",
                ));
            }
            Some(list) => list,
            None => state_joints.to_vec(),
        };
        let dofs = self.joint_list("command.joints", &joints, tree, urdf, Some(state_joints))?;
        let rate_hz = raw.rate_hz.unwrap_or(DEFAULT_RATE_HZ);
        if !(rate_hz.is_finite() && rate_hz > 0.0) {
            return Err(self.invalid(
                "command.rate_hz",
                format!("{rate_hz} Hz: the rate must be a finite number above 0"),
            ));
        }
        if rate_hz > MAX_RATE_HZ {
            return Err(self.invalid(
                "command.rate_hz",
                format!("{rate_hz} Hz is above the {MAX_RATE_HZ} Hz the deploy loop supports"),
            ));
        }
        let hold_cycles = self.positive(
            "command.hold_cycles",
            raw.hold_cycles.unwrap_or(DEFAULT_HOLD_CYCLES),
        )?;
        Ok(CommandSettings {
            topic,
            kind: raw.kind,
            joints,
            dofs,
            rate_hz,
            hold_cycles,
        })
    }

    /// State, command and e-stop carry different message types, so they cannot share a topic.
    fn distinct_topics(
        &self,
        state: &TopicName,
        command: &TopicName,
        estop: &TopicName,
    ) -> Result<(), ProfileError> {
        for (key, topic, other_key, other) in [
            ("command.topic", command, "state.topic", state),
            ("estop.topic", estop, "state.topic", state),
            ("estop.topic", estop, "command.topic", command),
        ] {
            if topic == other {
                return Err(self.invalid(
                    key,
                    format!("`{topic}` is also {other_key}; each topic carries one message type"),
                ));
            }
        }
        Ok(())
    }

    fn session(&self, raw: raw::RawSession) -> Result<SessionSettings, ProfileError> {
        let tls = match raw.tls {
            Some(t) => {
                let file = |key: &str, path: Option<PathBuf>| {
                    path.map(|p| self.existing_file(&format!("session.tls.{key}"), &p))
                        .transpose()
                };
                Some(TlsSettings {
                    root_ca_certificate: file("root_ca_certificate", t.root_ca_certificate)?,
                    connect_certificate: file("connect_certificate", t.connect_certificate)?,
                    connect_private_key: file("connect_private_key", t.connect_private_key)?,
                    listen_certificate: file("listen_certificate", t.listen_certificate)?,
                    listen_private_key: file("listen_private_key", t.listen_private_key)?,
                    enable_mtls: t.enable_mtls,
                    verify_name_on_connect: t.verify_name_on_connect,
                })
            }
            None => None,
        };
        let auth = raw.auth.map(|a| self.auth(a)).transpose()?;
        let settings = SessionSettings {
            mode: raw.mode,
            connect: raw.connect,
            listen: raw.listen,
            multicast_scouting: raw.multicast_scouting,
            tls,
            auth,
        };
        settings
            .check()
            .map_err(|(key, message)| self.invalid(key, message))?;
        Ok(settings)
    }

    fn auth(&self, raw: raw::RawAuth) -> Result<AuthSettings, ProfileError> {
        let password = match (raw.password, raw.password_env) {
            (Some(_), Some(_)) => {
                return Err(self.invalid(
                    "session.auth.password_env",
                    "both password and password_env are set; give one",
                ));
            }
            (Some(password), None) => Some(password),
            (None, Some(var)) => {
                let env_error = |problem: &str| ProfileError::Env {
                    file: self.file.to_path_buf(),
                    key: "session.auth.password_env".to_owned(),
                    var: var.clone(),
                    problem: problem.to_owned(),
                };
                match (self.env)(&var) {
                    Ok(value) => Some(value),
                    Err(std::env::VarError::NotPresent) => return Err(env_error("is not set")),
                    Err(std::env::VarError::NotUnicode(_)) => {
                        return Err(env_error("is not valid UTF-8"));
                    }
                }
            }
            (None, None) => None,
        };
        let credentials = match (raw.user, password) {
            (Some(user), Some(password)) => Some(Credentials { user, password }),
            (Some(_), None) => {
                return Err(self.invalid(
                    "session.auth.password",
                    "a user needs a password: set password or password_env (neither is set)",
                ));
            }
            (None, Some(_)) => {
                return Err(self.invalid("session.auth.user", "a password is given without a user"));
            }
            (None, None) => None,
        };
        let dictionary_file = match raw.dictionary_file {
            Some(path) => {
                let key = "session.auth.dictionary_file";
                let path = self.existing_file(key, &path)?;
                self.check_dictionary(key, &path)?;
                Some(path)
            }
            None => None,
        };
        Ok(AuthSettings {
            credentials,
            dictionary_file,
        })
    }

    /// The dictionary as zenoh parses it (`AuthUsrPwd::from_config`): one `user:password` per
    /// non-blank line, both trimmed and non-empty. Messages never show a password.
    fn check_dictionary(&self, key: &str, path: &Path) -> Result<(), ProfileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| self.invalid(key, format!("cannot read {}: {e}", path.display())))?;
        let mut entries = 0;
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let problem = match line.split_once(':') {
                None => Some("has no `:` (expected `user:password`)"),
                Some((user, _)) if user.trim().is_empty() => Some("has an empty user"),
                Some((_, password)) if password.trim().is_empty() => Some("has an empty password"),
                Some(_) => None,
            };
            if let Some(problem) = problem {
                return Err(self.invalid(
                    key,
                    format!("{} line {} {problem}", path.display(), index + 1),
                ));
            }
            entries += 1;
        }
        if entries == 0 {
            return Err(self.invalid(
                key,
                format!(
                    "{} has no `user:password` lines; zenoh would accept everyone",
                    path.display()
                ),
            ));
        }
        Ok(())
    }
}

/// Why `name` is not a movable joint, with the movable joints listed.
fn unknown_joint_message(tree: &RobotTree, urdf: &Path, name: &str) -> String {
    let dofs = dof_names(tree).join(", ");
    match tree.joint_by_name(name) {
        Some(id) => {
            let why = match tree.joints.get(id.0 as usize) {
                Some(joint) if joint.mimic.is_some() => {
                    "a mimic joint (it follows another joint and has no degree of freedom of \
                     its own)"
                        .to_owned()
                }
                Some(joint) => {
                    format!("a {:?} joint, not a movable one", joint.kind).to_lowercase()
                }
                None => "not a movable joint".to_owned(),
            };
            format!("`{name}` is {why}; the movable joints of the URDF are: {dofs}")
        }
        None => format!(
            "`{name}` is not a joint of {}; its movable joints (DoF order) are: {dofs}",
            urdf.display()
        ),
    }
}
