//! rmw_zenoh liveliness tokens: the `@ros2_lv/...` keys a node and its endpoints declare so that
//! ROS 2 tools see them (`ros2 node list`, `ros2 topic list -v`).
//!
//! Layout (rmw_zenoh `liveliness_utils.cpp`; every `/` inside a name is written `%`):
//! - node: `@ros2_lv/<domain>/<zid>/<nid>/<nid>/NN/<enclave>/<namespace>/<node>`
//! - endpoint: `@ros2_lv/<domain>/<zid>/<nid>/<eid>/<MP|MS>/<enclave>/<namespace>/<node>/<topic>/
//!   <dds type>/<type hash>/<qos>`
//!
//! rmw_zenoh's code delivers data without these tokens (not confirmed on a live system); the bridge
//! declares them anyway so it is visible and debuggable from ROS 2.

use std::fmt::{self, Write as _};

use super::{DomainId, Namespace, NodeName, TopicName, TypeHash, Zid, data_key_expr};
use crate::cdr::RosMessage;

const ADMIN_SPACE: &str = "@ros2_lv";

/// Key expression that matches every liveliness token of a domain, to discover the ROS 2 graph.
pub fn liveliness_subscription_key_expr(domain: DomainId) -> String {
    format!("{ADMIN_SPACE}/{domain}/**")
}

/// Writes `name` with every `/` replaced by `%` (rmw_zenoh's `mangle_name`).
fn write_mangled(out: &mut String, name: &str) {
    out.extend(name.chars().map(|c| if c == '/' { '%' } else { c }));
}

/// Id of a node or endpoint within one zenoh session (rmw_zenoh numbers them from one counter per
/// context). It only has to be unique per session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntityId(pub u64);

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Whether samples are retransmitted until received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Reliability {
    /// Retransmit (rmw value 1; rmw_zenoh's default).
    #[default]
    Reliable,
    /// Drop on loss (rmw value 2); the usual choice for sensor streams.
    BestEffort,
}

/// Whether late-joining subscribers get samples published before they joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Durability {
    /// No (rmw value 2; rmw_zenoh's default).
    #[default]
    Volatile,
    /// Yes, the last `depth` samples (rmw value 1).
    TransientLocal,
}

/// How many samples are queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum History {
    /// Keep the last `depth` samples (rmw value 1). A depth of 0 means rmw_zenoh's default, 42.
    KeepLast {
        /// Queue length in samples.
        depth: u32,
    },
    /// Keep everything (rmw value 2).
    KeepAll,
}

impl Default for History {
    /// rclcpp's usual `KeepLast(10)`.
    fn default() -> Self {
        History::KeepLast { depth: 10 }
    }
}

/// The QoS of an endpoint, as far as rmw_zenoh's liveliness tokens carry it. Deadline, lifespan
/// and liveliness are always rmw_zenoh's defaults (infinite, infinite, automatic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct QosProfile {
    /// Reliability policy.
    pub reliability: Reliability,
    /// Durability policy.
    pub durability: Durability,
    /// History policy and depth.
    pub history: History,
}

impl QosProfile {
    /// rmw_zenoh's default depth, written as an empty field.
    const DEFAULT_DEPTH: u32 = 42;

    /// rclcpp's `SensorDataQoS`: best effort, volatile, keep last 5.
    pub fn sensor_data() -> Self {
        Self {
            reliability: Reliability::BestEffort,
            durability: Durability::Volatile,
            history: History::KeepLast { depth: 5 },
        }
    }

    /// The token segment rmw_zenoh writes for this QoS:
    /// `<reliability>:<durability>:<history>,<depth>:<deadline s>,<ns>:<lifespan s>,<ns>:<liveliness>,<lease s>,<ns>`,
    /// each field empty when it equals rmw_zenoh's default. Reliable, volatile, keep last 10 is
    /// `::,10:,:,:,,`.
    pub fn liveliness_segment(&self) -> String {
        let reliability = match self.reliability {
            Reliability::Reliable => "",
            Reliability::BestEffort => "2",
        };
        let durability = match self.durability {
            Durability::Volatile => "",
            Durability::TransientLocal => "1",
        };
        let (history, depth) = match self.history {
            History::KeepLast { depth } if depth == 0 || depth == Self::DEFAULT_DEPTH => {
                ("", String::new())
            }
            History::KeepLast { depth } => ("", depth.to_string()),
            History::KeepAll => ("2", String::new()),
        };
        format!("{reliability}:{durability}:{history},{depth}:,:,:,,")
    }
}

/// Whether an endpoint publishes or subscribes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndpointKind {
    /// A publisher (`MP`).
    Publisher,
    /// A subscription (`MS`).
    Subscription,
}

impl EndpointKind {
    fn token_str(self) -> &'static str {
        match self {
            EndpointKind::Publisher => "MP",
            EndpointKind::Subscription => "MS",
        }
    }
}

/// The ROS 2 node the bridge presents itself as, within one zenoh session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeIdentity {
    /// Domain the node lives in.
    pub domain: DomainId,
    /// Id of the zenoh session that declares the tokens.
    pub zid: Zid,
    /// Id of the node within the session.
    pub node_id: EntityId,
    /// Security enclave; `/` (rcl's default) when security is off.
    pub enclave: Namespace,
    /// Node namespace; `/` for none.
    pub namespace: Namespace,
    /// Node name.
    pub name: NodeName,
}

impl NodeIdentity {
    /// `@ros2_lv/<domain>/<zid>/<nid>/<nid>/` and the entity kind.
    fn token_prefix(&self, entity_id: EntityId, kind: &str) -> String {
        format!(
            "{ADMIN_SPACE}/{domain}/{zid}/{nid}/{entity_id}/{kind}/",
            domain = self.domain,
            zid = self.zid,
            nid = self.node_id,
        )
    }

    fn push_node_names(&self, token: &mut String) {
        write_mangled(token, self.enclave.as_str());
        token.push('/');
        write_mangled(token, self.namespace.as_str());
        token.push('/');
        token.push_str(self.name.as_str());
    }

    /// The node's liveliness token.
    pub fn liveliness_token(&self) -> String {
        let mut token = self.token_prefix(self.node_id, "NN");
        self.push_node_names(&mut token);
        token
    }

    /// The liveliness token of one of this node's endpoints.
    pub fn endpoint_token(&self, endpoint: &Endpoint) -> String {
        let mut token = self.token_prefix(endpoint.id, endpoint.kind.token_str());
        self.push_node_names(&mut token);
        token.push('/');
        write_mangled(&mut token, endpoint.topic.as_str());
        // Neither the DDS type name nor the hash contain `/`, so there is nothing to mangle.
        let _ = write!(
            token,
            "/{}/{}/{}",
            endpoint.dds_type_name,
            endpoint.type_hash,
            endpoint.qos.liveliness_segment()
        );
        token
    }
}

/// A publisher or subscription: what its liveliness token and data key expression are built from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Id within the session; distinct from the node's and every other endpoint's.
    pub id: EntityId,
    /// Publisher or subscription.
    pub kind: EndpointKind,
    /// Fully qualified topic.
    pub topic: TopicName,
    /// DDS type name, e.g. `sensor_msgs::msg::dds_::JointState_`.
    pub dds_type_name: &'static str,
    /// Type hash, from a [`TypeHashProfile`](super::TypeHashProfile).
    pub type_hash: TypeHash,
    /// Quality of service.
    pub qos: QosProfile,
}

impl Endpoint {
    /// An endpoint for message type `M`.
    pub fn new<M: RosMessage>(
        id: EntityId,
        kind: EndpointKind,
        topic: TopicName,
        type_hash: TypeHash,
        qos: QosProfile,
    ) -> Self {
        Self {
            id,
            kind,
            topic,
            dds_type_name: M::DDS_TYPE_NAME,
            type_hash,
            qos,
        }
    }

    /// The key expression this endpoint's data flows on.
    pub fn data_key_expr(&self, domain: DomainId) -> String {
        data_key_expr(domain, &self.topic, self.dds_type_name, &self.type_hash)
    }
}
