//! Deploy episodes on disk: the MCAP recorder the deploy loop hands its messages to (on its own
//! thread, so compression never stalls a control cycle), and the .rrd made from the MCAP after
//! the run for the rerun viewer.

use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use anyhow::Context;
use rivet_hw_bridge::RosMessage;
use rivet_hw_bridge::deploy::DeployObserver;
use rivet_hw_bridge::msgs::sensor_msgs::JointState;
use rivet_hw_bridge::msgs::std_msgs::{Float64MultiArray, StringMsg};
use rivet_hw_bridge::msgs::trajectory_msgs::JointTrajectory;
use rivet_hw_bridge::profile::{CommandKind, RobotProfile};
use rivet_hw_bridge::record::{EpisodeReader, EpisodeWriter};
use serde_json::json;

/// Topic of the deploy's events (`std_msgs/String`).
pub const EVENTS_TOPIC: &str = "/rivet/events";

/// Metadata keys (record `rivet`) naming the state and command topics, the command joints
/// (comma-separated, in command order) and the task's target (world frame, `x,y,z` in m).
pub const META_STATE_TOPIC: &str = "state_topic";
/// See [`META_STATE_TOPIC`].
pub const META_COMMAND_TOPIC: &str = "command_topic";
/// See [`META_STATE_TOPIC`].
pub const META_COMMAND_JOINTS: &str = "command_joints";
/// See [`META_STATE_TOPIC`].
pub const META_TARGET_WORLD: &str = "target_world";

/// Messages waiting for the writer thread; beyond this the loop drops (and counts) rather than
/// block.
const QUEUE: usize = 8192;

struct Item {
    topic: u8,
    time_ns: u64,
    bytes: Vec<u8>,
}

/// Records a deploy as MCAP: measured states, sent commands, events.
pub struct EpisodeRecorder {
    tx: Option<SyncSender<Item>>,
    /// Buffers coming back from the writer, for reuse.
    spare: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<anyhow::Result<rivet_hw_bridge::record::EpisodeSummary>>>,
    dropped: u64,
}

impl EpisodeRecorder {
    /// Creates the file (as `<path>.partial` until [`EpisodeRecorder::finish`]). `source`
    /// describes the command source (policy or controller); it is kept in the file's metadata,
    /// with the topics, the command joints and the task's target, for `rivet gap`.
    pub fn start(
        path: &Path,
        profile: &RobotProfile,
        source: &serde_json::Value,
    ) -> anyhow::Result<Self> {
        let mut writer = EpisodeWriter::create(path)?;
        let state = writer.add_topic::<JointState>(profile.state.topic.as_str())?;
        let command = match profile.command.kind {
            CommandKind::JointTrajectory => {
                writer.add_topic::<JointTrajectory>(profile.command.topic.as_str())?
            }
            _ => writer.add_topic::<Float64MultiArray>(profile.command.topic.as_str())?,
        };
        let events = writer.add_topic::<StringMsg>(EVENTS_TOPIC)?;
        let mut meta = std::collections::BTreeMap::new();
        meta.insert("profile".to_owned(), profile.name.clone());
        meta.insert(
            "command_kind".to_owned(),
            profile.command.kind.as_str().to_owned(),
        );
        meta.insert("rate_hz".to_owned(), profile.command.rate_hz.to_string());
        meta.insert(
            "rivet_version".to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        );
        meta.insert(
            META_STATE_TOPIC.to_owned(),
            profile.state.topic.as_str().to_owned(),
        );
        meta.insert(
            META_COMMAND_TOPIC.to_owned(),
            profile.command.topic.as_str().to_owned(),
        );
        meta.insert(
            META_COMMAND_JOINTS.to_owned(),
            profile.command.joints.join(","),
        );
        if let Some(target) = source.get("target").and_then(|t| t.as_array())
            && target.len() == 3
        {
            let xyz: Vec<String> = target.iter().map(|v| v.to_string()).collect();
            meta.insert(META_TARGET_WORLD.to_owned(), xyz.join(","));
        }
        meta.insert("source".to_owned(), source.to_string());
        writer.write_metadata("rivet", meta)?;
        let (tx, rx) = sync_channel::<Item>(QUEUE);
        let (spare_tx, spare) = sync_channel::<Vec<u8>>(QUEUE);
        let thread = std::thread::Builder::new()
            .name("rivet-recorder".into())
            .spawn(move || -> anyhow::Result<_> {
                let topics = [state, command, events];
                for item in rx {
                    writer.write_raw(
                        topics[usize::from(item.topic)],
                        item.time_ns,
                        item.time_ns,
                        &item.bytes,
                    )?;
                    let _ = spare_tx.try_send(item.bytes);
                }
                Ok(writer.finish()?)
            })
            .context("cannot start the recorder thread")?;
        Ok(Self {
            tx: Some(tx),
            spare,
            thread: Some(thread),
            dropped: 0,
        })
    }

    fn send(&mut self, topic: u8, time_ns: u64, bytes: &[u8]) {
        let Some(tx) = &self.tx else {
            return;
        };
        let mut buf = self.spare.try_recv().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(bytes);
        match tx.try_send(Item {
            topic,
            time_ns,
            bytes: buf,
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.dropped += 1,
        }
    }

    /// Closes the file (renamed to its final name) and says what it holds.
    pub fn finish(mut self) -> anyhow::Result<serde_json::Value> {
        drop(self.tx.take());
        let summary = self
            .thread
            .take()
            .context("recorder already finished")?
            .join()
            .map_err(|_| anyhow::anyhow!("the recorder thread panicked"))??;
        Ok(json!({
            "path": summary.path,
            "bytes": summary.file_bytes,
            "messages": summary.message_count,
            "dropped": self.dropped,
            "topics": summary.topics.iter().map(|t| json!({
                "topic": t.topic, "type": t.ros_type, "messages": t.message_count,
            })).collect::<Vec<_>>(),
        }))
    }
}

impl DeployObserver for EpisodeRecorder {
    fn state(&mut self, time_ns: u64, cdr: &[u8]) {
        self.send(0, time_ns, cdr);
    }

    fn command(&mut self, time_ns: u64, cdr: &[u8]) {
        self.send(1, time_ns, cdr);
    }

    fn event(&mut self, time_ns: u64, text: &str) {
        let mut bytes = Vec::new();
        StringMsg {
            data: text.to_owned(),
        }
        .encode_into(&mut bytes);
        self.send(2, time_ns, &bytes);
    }
}

/// Writes a rerun recording of a deploy episode: `measured/<joint>/{position,velocity,effort}`
/// and `commanded/<joint>` as scalar series on a `time` timeline (seconds from the first
/// message), events as text. Malformed state messages (recorded as received) are skipped.
pub fn mcap_to_rrd(mcap: &Path, rrd: &Path, profile: &RobotProfile) -> anyhow::Result<()> {
    let reader = EpisodeReader::open(mcap)?;
    let rec = rerun::RecordingStreamBuilder::new("rivet_deploy").save(rrd)?;
    let t0 = reader
        .all_raw_messages()
        .map(|m| m.log_time_ns)
        .min()
        .unwrap_or(0);
    let secs = |t: u64| t.saturating_sub(t0) as f64 * 1e-9;
    let state_topic = profile.state.topic.as_str();
    let command_topic = profile.command.topic.as_str();
    for raw in reader.all_raw_messages() {
        rec.set_duration_secs("time", secs(raw.log_time_ns));
        if raw.topic == state_topic {
            let Ok(msg) = JointState::decode(raw.data) else {
                continue;
            };
            for (i, name) in msg.name.iter().enumerate() {
                if let Some(p) = msg.position.get(i) {
                    rec.log(
                        format!("measured/{name}/position"),
                        &rerun::Scalars::single(*p),
                    )?;
                }
                if let Some(v) = msg.velocity.get(i) {
                    rec.log(
                        format!("measured/{name}/velocity"),
                        &rerun::Scalars::single(*v),
                    )?;
                }
                if let Some(e) = msg.effort.get(i) {
                    rec.log(
                        format!("measured/{name}/effort"),
                        &rerun::Scalars::single(*e),
                    )?;
                }
            }
        } else if raw.topic == command_topic {
            let values = match profile.command.kind {
                CommandKind::JointTrajectory => JointTrajectory::decode(raw.data)
                    .ok()
                    .and_then(|t| t.points.first().map(|p| p.positions.clone())),
                _ => Float64MultiArray::decode(raw.data).ok().map(|m| m.data),
            };
            for (name, v) in profile
                .command
                .joints
                .iter()
                .zip(values.unwrap_or_default())
            {
                rec.log(format!("commanded/{name}"), &rerun::Scalars::single(v))?;
            }
        } else if raw.topic == EVENTS_TOPIC
            && let Ok(msg) = StringMsg::decode(raw.data)
        {
            rec.log("events", &rerun::TextLog::new(msg.data))?;
        }
    }
    rec.flush_blocking()?;
    Ok(())
}
