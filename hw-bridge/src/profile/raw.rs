//! The profile file as written: serde structs with the TOML layout, every table
//! `deny_unknown_fields`. [`super::RobotProfile`] is built from these after validation.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rivet_control::safety::SafetyOverrides;
use serde::Deserialize;

use super::CommandKind;
use super::session::SessionMode;

/// A Rivet robot profile: one ros2_control robot, its topics, limits and zenoh session.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProfile {
    /// The robot model and the joints the state carries.
    pub robot: RawRobot,
    /// ROS 2 identity: domain, namespace, node name, distribution, type hashes.
    #[serde(default)]
    pub ros: RawRos,
    /// The joint state subscription.
    #[serde(default)]
    pub state: RawState,
    /// The command publication and the deploy loop rate.
    pub command: RawCommand,
    /// The e-stop subscription.
    #[serde(default)]
    pub estop: RawEstop,
    /// Safety filter overrides: may only tighten the URDF's limits.
    #[serde(default)]
    pub safety: SafetyOverrides,
    /// The zenoh session.
    #[serde(default)]
    pub session: RawSession,
}

/// `[robot]`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRobot {
    /// Display name (default: the URDF's robot name).
    pub name: Option<String>,
    /// The URDF, relative to the profile file.
    pub urdf: PathBuf,
    /// The joints the state carries, in this order (default: the URDF's DoF order). Each must
    /// be a movable URDF joint.
    pub joints: Option<Vec<String>>,
}

/// `[ros]`.
#[derive(Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRos {
    /// ROS_DOMAIN_ID, 0 to 232 (default 0).
    #[serde(default)]
    pub domain_id: u32,
    /// Node namespace (default `/`).
    pub namespace: Option<String>,
    /// Node name (default `rivet_deploy`).
    pub node: Option<String>,
    /// `jazzy` (default) or `humble`.
    pub distro: Option<String>,
    /// Type hash overrides: ROS type name (`sensor_msgs/msg/JointState`) to `RIHS01_<64 hex>`
    /// or `TypeHashNotSupported`.
    #[serde(default)]
    pub type_hashes: BTreeMap<String, String>,
}

/// `[state]`.
#[derive(Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawState {
    /// sensor_msgs/msg/JointState topic (default `/joint_states`).
    pub topic: Option<String>,
    /// State older than this many control cycles is stale (default 5).
    pub stale_cycles: Option<u32>,
}

/// `[command]`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCommand {
    /// The controller's command topic.
    pub topic: String,
    /// Which ros2_control controller listens on it.
    pub kind: CommandKind,
    /// The joints of the command values, in message order (default: all state joints).
    pub joints: Option<Vec<String>>,
    /// Deploy loop rate in Hz (default 100, at most 10 000).
    pub rate_hz: Option<f64>,
    /// After this many stale cycles holding, stop (default 10).
    pub hold_cycles: Option<u32>,
}

/// `[estop]`.
#[derive(Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEstop {
    /// std_msgs/msg/Bool topic; `true` latches a stop (default `/rivet/estop`).
    pub topic: Option<String>,
}

/// `[session]`.
#[derive(Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSession {
    /// `peer` (default) or `client`.
    #[serde(default)]
    pub mode: SessionMode,
    /// Endpoints to connect to, `<proto>/<address>` (default: none).
    #[serde(default)]
    pub connect: Vec<String>,
    /// Endpoints to listen on (default: none).
    #[serde(default)]
    pub listen: Vec<String>,
    /// zenoh multicast scouting (default false).
    #[serde(default)]
    pub multicast_scouting: bool,
    /// TLS for `tls/` endpoints.
    pub tls: Option<RawTls>,
    /// zenoh user/password authentication.
    pub auth: Option<RawAuth>,
}

fn yes() -> bool {
    true
}

/// `[session.tls]`: paths relative to the profile file.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    /// CA certificate (PEM) that verifies the other side.
    pub root_ca_certificate: Option<PathBuf>,
    /// This side's certificate when connecting with mTLS.
    pub connect_certificate: Option<PathBuf>,
    /// Its private key.
    pub connect_private_key: Option<PathBuf>,
    /// This side's certificate when listening on `tls/` endpoints.
    pub listen_certificate: Option<PathBuf>,
    /// Its private key.
    pub listen_private_key: Option<PathBuf>,
    /// Mutual TLS (default false).
    #[serde(default)]
    pub enable_mtls: bool,
    /// Check the listener's certificate names the host connected to (default true).
    #[serde(default = "yes")]
    pub verify_name_on_connect: bool,
}

/// `[session.auth]`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    /// User name presented when connecting.
    pub user: Option<String>,
    /// Password presented when connecting (or `password_env`).
    pub password: Option<String>,
    /// Environment variable holding the password, read at load.
    pub password_env: Option<String>,
    /// `user:password` lines accepted from peers that connect to this side.
    pub dictionary_file: Option<PathBuf>,
}
