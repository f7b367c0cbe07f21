//! A zenoh session that looks like a ROS 2 node to rmw_zenoh: publishers that put CDR payloads
//! with the 33-byte attachment on `<domain>/<topic>/<type>/<hash>`, subscribers that keep the
//! latest sample, and the liveliness tokens that make the node and its endpoints visible in
//! `ros2 node list` and `ros2 topic list`.
//!
//! Everything uses zenoh's synchronous API (`Wait`), so the control loops stay plain threads:
//! zenoh runs its own runtime inside, and must not be called from a current-thread tokio
//! runtime.
//!
//! # Receiving on a control path
//! A control loop wants the newest state, not a queue of old ones. [`LatestSlot`] is what a
//! subscriber's callback writes into: the payload bytes of the newest sample (copied into a
//! buffer that is reused once it has grown), its arrival time and a counter. The loop takes it
//! with [`LatestSlot::take_newer`], which swaps buffers, so nothing is allocated per sample once
//! the buffers have grown. Decoding happens on the loop's side, where a malformed message can be
//! counted and rejected.
//!
//! # Publishing
//! [`RosPublisher::publish`] encodes into a reused buffer; zenoh takes each payload by value, so
//! one copy of the payload per message remains (zenoh itself allocates per sample). Publishers
//! use `CongestionControl::Drop`, `Priority::RealTime` and express mode: a command that cannot
//! go out now is worthless later.
//!
//! # Liveness of the other side
//! [`RosNode::watch_publishers`] follows the liveliness tokens of the publishers of one topic
//! (rmw_zenoh declares one per publisher): when the robot's state publisher goes away (its
//! process died, the link dropped), zenoh removes the token and the watcher sees it at once,
//! without waiting for a timeout.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use zenoh::Wait;
use zenoh::qos::{CongestionControl, Priority};
use zenoh::sample::SampleKind;

use crate::cdr::RosMessage;
use crate::keys::{
    Attachment, DomainId, Endpoint, EndpointKind, EntityId, Gid, KeyError, Namespace, NodeIdentity,
    NodeName, QosProfile, TopicName, TypeHashProfile, Zid, liveliness_subscription_key_expr,
};

/// A zenoh or naming failure of the node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Opening the zenoh session failed (bad endpoint, port in use, TLS or credentials).
    #[error("cannot open the zenoh session: {0}")]
    Open(String),
    /// Declaring a publisher, subscriber or token failed.
    #[error("cannot declare {what} on `{key_expr}`: {message}")]
    Declare {
        /// What was declared.
        what: &'static str,
        /// The key expression.
        key_expr: String,
        /// zenoh's message.
        message: String,
    },
    /// Putting a sample failed.
    #[error("cannot publish on `{key_expr}`: {message}")]
    Publish {
        /// The key expression.
        key_expr: String,
        /// zenoh's message.
        message: String,
    },
    /// A name or hash did not follow the rmw_zenoh rules.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Where ROS 2 names come from for a node.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// ROS domain.
    pub domain: DomainId,
    /// Node namespace (`/` for none).
    pub namespace: Namespace,
    /// Node name.
    pub name: NodeName,
    /// Type hashes per message type.
    pub hashes: TypeHashProfile,
}

/// A zenoh session presenting itself as one ROS 2 node.
pub struct RosNode {
    session: zenoh::Session,
    identity: NodeIdentity,
    hashes: TypeHashProfile,
    next_entity: u64,
    tokens: Vec<zenoh::liveliness::LivelinessToken>,
}

impl RosNode {
    /// Opens a zenoh session with `config` and declares the node's liveliness token.
    pub fn open(config: zenoh::Config, settings: NodeSettings) -> Result<Self, NodeError> {
        let session = zenoh::open(config)
            .wait()
            .map_err(|e| NodeError::Open(e.to_string()))?;
        let zid = Zid::new(&session.zid().to_string())?;
        let identity = NodeIdentity {
            domain: settings.domain,
            zid,
            node_id: EntityId(0),
            enclave: Namespace::root(),
            namespace: settings.namespace,
            name: settings.name,
        };
        let mut node = Self {
            session,
            identity,
            hashes: settings.hashes,
            next_entity: 1,
            tokens: Vec::new(),
        };
        let token = node.identity.liveliness_token();
        node.declare_token(token)?;
        Ok(node)
    }

    /// The underlying zenoh session (for raw benchmarks and tests).
    pub fn session(&self) -> &zenoh::Session {
        &self.session
    }

    /// The node's ROS identity.
    pub fn identity(&self) -> &NodeIdentity {
        &self.identity
    }

    fn declare_token(&mut self, key_expr: String) -> Result<(), NodeError> {
        let token = self
            .session
            .liveliness()
            .declare_token(key_expr.clone())
            .wait()
            .map_err(|e| NodeError::Declare {
                what: "liveliness token",
                key_expr,
                message: e.to_string(),
            })?;
        self.tokens.push(token);
        Ok(())
    }

    fn endpoint<M: RosMessage>(
        &mut self,
        kind: EndpointKind,
        topic: &TopicName,
    ) -> Result<Endpoint, NodeError> {
        let id = EntityId(self.next_entity);
        self.next_entity += 1;
        let hash = self.hashes.hash_of::<M>()?;
        Ok(Endpoint::new::<M>(
            id,
            kind,
            topic.clone(),
            hash,
            QosProfile::default(),
        ))
    }

    /// Declares a publisher of `M` on `topic` (and its liveliness token).
    pub fn publisher<M: RosMessage>(
        &mut self,
        topic: &TopicName,
    ) -> Result<RosPublisher<M>, NodeError> {
        let endpoint = self.endpoint::<M>(EndpointKind::Publisher, topic)?;
        let key_expr = endpoint.data_key_expr(self.identity.domain);
        let publisher = self
            .session
            .declare_publisher(key_expr.clone())
            .congestion_control(CongestionControl::Drop)
            .priority(Priority::RealTime)
            .express(true)
            .wait()
            .map_err(|e| NodeError::Declare {
                what: "publisher",
                key_expr: key_expr.clone(),
                message: e.to_string(),
            })?;
        let token = self.identity.endpoint_token(&endpoint);
        self.declare_token(token)?;
        // A stable 16-byte id per publisher: the session id's bytes mixed with the entity id.
        let zid = self.session.zid().to_le_bytes();
        let mut gid = [0u8; 16];
        for (k, g) in gid.iter_mut().enumerate() {
            *g = zid[k % zid.len()] ^ (endpoint.id.0.to_le_bytes()[k % 8]).rotate_left(k as u32);
        }
        Ok(RosPublisher {
            publisher,
            key_expr,
            sequence: 0,
            gid: Gid(gid),
            buf: Vec::new(),
            _message: PhantomData,
        })
    }

    /// Subscribes to `M` on `topic` (any type hash, so a robot on another distribution still
    /// matches), keeping only the newest sample in the returned slot.
    pub fn subscribe_latest<M: RosMessage>(
        &mut self,
        topic: &TopicName,
    ) -> Result<LatestSubscriber, NodeError> {
        let endpoint = self.endpoint::<M>(EndpointKind::Subscription, topic)?;
        let key_expr =
            crate::keys::data_key_expr_any_hash(self.identity.domain, topic, M::DDS_TYPE_NAME);
        let slot = Arc::new(LatestSlot::default());
        let writer = slot.clone();
        let subscriber = self
            .session
            .declare_subscriber(key_expr.clone())
            .callback(move |sample| {
                if sample.kind() == SampleKind::Put {
                    let attachment = sample.attachment().map(|a| a.to_bytes());
                    writer.store(&sample.payload().to_bytes(), attachment.as_deref());
                }
            })
            .wait()
            .map_err(|e| NodeError::Declare {
                what: "subscriber",
                key_expr: key_expr.clone(),
                message: e.to_string(),
            })?;
        let token = self.identity.endpoint_token(&endpoint);
        self.declare_token(token)?;
        Ok(LatestSubscriber {
            _subscriber: subscriber,
            slot,
            key_expr,
        })
    }

    /// Follows how many publishers of `M` on `topic` are alive, from their rmw_zenoh liveliness
    /// tokens (including those declared before this call).
    pub fn watch_publishers<M: RosMessage>(
        &self,
        topic: &TopicName,
    ) -> Result<PublisherWatch, NodeError> {
        let key_expr = liveliness_subscription_key_expr(self.identity.domain);
        let mangled: String = topic
            .as_str()
            .chars()
            .map(|c| if c == '/' { '%' } else { c })
            .collect();
        let alive = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(AtomicU64::new(0));
        let lost = Arc::new(AtomicU64::new(0));
        let own_zid = self.identity.zid.as_str().to_owned();
        let (alive_w, seen_w, lost_w) = (alive.clone(), seen.clone(), lost.clone());
        let live = Arc::new(Mutex::new(std::collections::BTreeSet::<String>::new()));
        let subscriber = self
            .session
            .liveliness()
            .declare_subscriber(key_expr.clone())
            .history(true)
            .callback(move |sample| {
                let key = sample.key_expr().as_str();
                // @ros2_lv/<domain>/<zid>/<nid>/<eid>/MP/<enclave>/<ns>/<node>/<topic>/<type>/...
                let parts: Vec<&str> = key.split('/').collect();
                if parts.len() < 12
                    || parts[5] != "MP"
                    || parts[9] != mangled
                    || parts[10] != M::DDS_TYPE_NAME
                    || parts[2] == own_zid
                {
                    return;
                }
                let Ok(mut live) = live.lock() else {
                    return;
                };
                match sample.kind() {
                    SampleKind::Put => {
                        if live.insert(key.to_owned()) {
                            seen_w.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    SampleKind::Delete => {
                        if live.remove(key) {
                            lost_w.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
                alive_w.store(live.len(), Ordering::SeqCst);
            })
            .wait()
            .map_err(|e| NodeError::Declare {
                what: "liveliness subscriber",
                key_expr,
                message: e.to_string(),
            })?;
        Ok(PublisherWatch {
            _subscriber: subscriber,
            alive,
            seen,
            lost,
        })
    }

    /// Undeclares everything and closes the session (dropping the node does the same, less
    /// politely).
    pub fn close(self) {
        let Self {
            session, tokens, ..
        } = self;
        for token in tokens {
            let _ = token.undeclare().wait();
        }
        let _ = session.close().wait();
    }
}

/// Now, in nanoseconds since the UNIX epoch (ROS time stamps and MCAP log times).
pub fn unix_time_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A publisher of ROS 2 message `M` with rmw_zenoh's attachment on every sample.
pub struct RosPublisher<M> {
    publisher: zenoh::pubsub::Publisher<'static>,
    key_expr: String,
    sequence: i64,
    gid: Gid,
    buf: Vec<u8>,
    _message: PhantomData<fn(&M)>,
}

impl<M: RosMessage> RosPublisher<M> {
    /// Encodes and publishes `msg`; returns the CDR payload that went out (for recording).
    pub fn publish(&mut self, msg: &M) -> Result<&[u8], NodeError> {
        let mut buf = std::mem::take(&mut self.buf);
        msg.encode_into(&mut buf);
        let result = self.publish_raw(&buf);
        self.buf = buf;
        result.map(|()| self.buf.as_slice())
    }

    /// Publishes an already encoded payload (or any bytes: tests use it to send garbage).
    pub fn publish_raw(&mut self, payload: &[u8]) -> Result<(), NodeError> {
        self.sequence += 1;
        let attachment = Attachment {
            sequence_number: self.sequence,
            source_timestamp_ns: unix_time_ns() as i64,
            source_gid: self.gid,
        }
        .encode();
        self.publisher
            .put(payload.to_vec())
            .attachment(attachment.to_vec())
            .wait()
            .map_err(|e| NodeError::Publish {
                key_expr: self.key_expr.clone(),
                message: e.to_string(),
            })
    }

    /// The key expression samples go to.
    pub fn key_expr(&self) -> &str {
        &self.key_expr
    }
}

/// The newest sample of a subscription, written by zenoh's callback, taken by a loop.
#[derive(Default)]
pub struct LatestSlot {
    inner: Mutex<SlotData>,
    arrived: std::sync::Condvar,
    /// Samples received in total.
    received: AtomicU64,
}

#[derive(Default)]
struct SlotData {
    bytes: Vec<u8>,
    counter: u64,
    arrived: Option<Instant>,
    has_attachment: bool,
    sent_ns: Option<i64>,
}

/// What [`LatestSlot::take_newer`] hands over besides the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleInfo {
    /// How many samples had arrived when this one did (1 for the first).
    pub counter: u64,
    /// When it arrived.
    pub arrived: Instant,
    /// Whether it carried an attachment (rmw_zenoh always sends one).
    pub has_attachment: bool,
    /// When the publisher sent it (the attachment's source timestamp, ns since the UNIX epoch,
    /// on the publisher's clock), if the attachment was a valid rmw_zenoh one.
    pub sent_ns: Option<i64>,
}

impl LatestSlot {
    /// Stores a sample's payload and attachment bytes, replacing the previous sample.
    pub fn store(&self, payload: &[u8], attachment: Option<&[u8]>) {
        let sent_ns = attachment
            .and_then(|a| Attachment::decode(a).ok())
            .map(|a| a.source_timestamp_ns);
        let counter = self.received.fetch_add(1, Ordering::SeqCst) + 1;
        if let Ok(mut slot) = self.inner.lock() {
            slot.bytes.clear();
            slot.bytes.extend_from_slice(payload);
            slot.counter = counter;
            slot.arrived = Some(Instant::now());
            slot.has_attachment = attachment.is_some();
            slot.sent_ns = sent_ns;
        }
        self.arrived.notify_all();
    }

    /// Blocks until a sample newer than `last_counter` is there or `deadline` passes, then
    /// behaves as [`LatestSlot::take_newer`].
    pub fn wait_newer(
        &self,
        last_counter: u64,
        deadline: Instant,
        buf: &mut Vec<u8>,
    ) -> Option<SampleInfo> {
        let mut slot = self.inner.lock().ok()?;
        while slot.counter <= last_counter {
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            slot = self.arrived.wait_timeout(slot, deadline - now).ok()?.0;
        }
        let arrived = slot.arrived?;
        std::mem::swap(&mut slot.bytes, buf);
        Some(SampleInfo {
            counter: slot.counter,
            arrived,
            has_attachment: slot.has_attachment,
            sent_ns: slot.sent_ns,
        })
    }

    /// When a sample newer than `last_counter` is there, swaps its bytes into `buf` (whose old
    /// contents the slot reuses) and says which sample it was.
    pub fn take_newer(&self, last_counter: u64, buf: &mut Vec<u8>) -> Option<SampleInfo> {
        let mut slot = self.inner.lock().ok()?;
        if slot.counter <= last_counter {
            return None;
        }
        let arrived = slot.arrived?;
        std::mem::swap(&mut slot.bytes, buf);
        Some(SampleInfo {
            counter: slot.counter,
            arrived,
            has_attachment: slot.has_attachment,
            sent_ns: slot.sent_ns,
        })
    }

    /// Samples received so far (including ones that were replaced before being taken).
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::SeqCst)
    }
}

/// A subscription whose samples land in a [`LatestSlot`]; dropping it undeclares it.
pub struct LatestSubscriber {
    _subscriber: zenoh::pubsub::Subscriber<()>,
    slot: Arc<LatestSlot>,
    key_expr: String,
}

impl LatestSubscriber {
    /// The slot the newest sample is in.
    pub fn slot(&self) -> &LatestSlot {
        &self.slot
    }

    /// The key expression subscribed to.
    pub fn key_expr(&self) -> &str {
        &self.key_expr
    }
}

/// Publishers of one topic and type that are alive, by their liveliness tokens.
pub struct PublisherWatch {
    _subscriber: zenoh::pubsub::Subscriber<()>,
    alive: Arc<AtomicUsize>,
    seen: Arc<AtomicU64>,
    lost: Arc<AtomicU64>,
}

impl PublisherWatch {
    /// Publishers alive now.
    pub fn alive(&self) -> usize {
        self.alive.load(Ordering::SeqCst)
    }

    /// Publishers that appeared since the watch started (including those already there).
    pub fn seen(&self) -> u64 {
        self.seen.load(Ordering::SeqCst)
    }

    /// Publishers that went away since the watch started.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
pub(crate) mod tests;
