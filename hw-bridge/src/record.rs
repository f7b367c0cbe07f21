//! Episode recording: ROS 2 messages in rosbag2-compatible MCAP files.
//!
//! # Why MCAP, and why rosbag2's flavour of it
//! An episode (one deploy run: joint states in, commands out, flags and annotations) is written as
//! one `.mcap` file laid out exactly as rosbag2's MCAP storage plugin (`ros2 bag record -s mcap`,
//! the default storage since Iron) lays out a bag: `ros2 bag info` / `ros2 bag play` accept it,
//! Foxglove and rerun open it and decode every message from the schemas inside it, and the Python
//! `mcap-ros2-support` and `rosbags` packages read it without ROS installed. The other way round,
//! [`EpisodeReader`] reads bags recorded on a real robot by `ros2 bag record`.
//!
//! # Layout (the MCAP `ros2` profile as rosbag2 writes it)
//! - Header: profile `ros2`.
//! - One schema per ROS type: name `sensor_msgs/msg/JointState`, encoding `ros2msg`, data the
//!   `.msg` text followed by every dependency's text after a line of 80 `=` and
//!   `MSG: std_msgs/Header` (see [`definitions`] for the exact algorithm and the texts, which are
//!   Jazzy's).
//! - One channel per topic: message encoding `cdr`, metadata `offered_qos_profiles` (rosbag2's
//!   YAML, see [`DEFAULT_OFFERED_QOS_PROFILES`]) and `topic_type_hash` (rosbag2 writes it since
//!   Iron: the Jazzy RIHS01 hash when [`TypeHashProfile`] knows it, else an empty string).
//! - Messages: the complete CDR payload, encapsulation header included; log time = when the
//!   recorder received it, publish time = when it was sent (rosbag2's `recv_timestamp` and
//!   `send_timestamp`), both nanoseconds since the UNIX epoch; per-channel sequence numbers from 0.
//! - Chunks of about 1 MiB compressed with **zstd** (level 3), with chunk CRCs, message indexes
//!   and the full summary section. rosbag2's own default is chunked but uncompressed (its
//!   `zstd_fast` / `zstd_small` presets compress with zstd); joint names, headers and smooth
//!   trajectories compress well (the test episode, 500 Hz joint states and commands, shrinks
//!   4.6-fold; noisy measurements less) and every reader above decompresses zstd, so it is the
//!   default here. Compressing a full chunk can take milliseconds inside the
//!   [`EpisodeWriter::write`] call that fills it: record from a thread of its own, not from the
//!   control loop.
//! - Metadata record `rosbag2` with key `serialized_metadata`: the bag metadata YAML
//!   (version 9, as Jazzy writes it at close), which `ros2 bag info` reads to interpret the QoS
//!   strings. Any number of further metadata records ([`EpisodeWriter::write_metadata`], e.g. one
//!   named `rivet` with the profile name and Rivet version).
//!
//! # Crash safety
//! [`EpisodeWriter::create`] writes to `<path>.partial` and only [`EpisodeWriter::finish`] renames
//! it to `<path>`, after writing the summary and footer and syncing the file to disk; the rename
//! is atomic on POSIX file systems. So a file under the final name is always complete, and a crash
//! (or a dropped writer) leaves only the `.partial`. A writer dropped without `finish` still
//! completes the `.partial` on a best-effort basis (the `mcap` writer closes the file in its
//! `Drop`), so the data of an aborted episode can be inspected; a killed process leaves a
//! `.partial` without summary or footer, which [`EpisodeReader`] rejects as truncated.
//!
//! # Reading
//! [`EpisodeReader::open`] reads the whole file into memory, validates it (magic bytes at both
//! ends, record structure, chunk and section CRCs) and decompresses every chunk (zstd, lz4 or
//! none), so any MCAP file works, ours or `ros2 bag record`'s, indexed or not. Messages come back
//! in log-time order (file order among equal times).
//!
//! Damaged or crafted files give errors, never panics or hangs: the `mcap` crate only splits the
//! file into records; the reader decompresses chunks itself, requiring each to decompress to
//! exactly the size its header declares (mcap 0.25's own streaming decompression spins forever
//! when a chunk declares more than it holds, e.g. after a bit flip in the size field). One chunk
//! may make the reader allocate at most the larger of the file's size and 256 MiB.

pub mod definitions;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

use mcap::records::{ChunkHeader, MessageHeader, Metadata, Record, op};
use mcap::sans_io::{LinearReadEvent, LinearReader, LinearReaderOptions};
use mcap::{Compression, McapError, WriteOptions, Writer};

use crate::cdr::{CdrError, RosMessage};
use crate::keys::{RosDistro, TypeHashProfile};

/// The MCAP profile of ROS 2 bags.
pub const MCAP_PROFILE: &str = "ros2";
/// Schema encoding of `.msg` definitions.
pub const SCHEMA_ENCODING: &str = "ros2msg";
/// Message encoding of CDR payloads.
pub const MESSAGE_ENCODING: &str = "cdr";
/// Name of the metadata record rosbag2 writes (and reads back in `ros2 bag info`).
pub const ROSBAG2_METADATA_NAME: &str = "rosbag2";
/// Suggested name for Rivet's own metadata record (profile name, Rivet version, ...).
pub const RIVET_METADATA_NAME: &str = "rivet";
/// Suffix appended to the file name while an episode is being written.
pub const PARTIAL_SUFFIX: &str = ".partial";

/// The `offered_qos_profiles` channel metadata written for every topic: one profile in rosbag2's
/// YAML (metadata version 9: policies as strings, durations as `sec`/`nsec`), the ROS 2 default
/// publisher QoS (keep last 10, reliable, volatile) with infinite deadline, lifespan and lease, as
/// `ros2 bag record` stores a typical offer. The bridge does not learn the publisher's actual QoS,
/// so this is what `ros2 bag play` will offer on replay.
pub const DEFAULT_OFFERED_QOS_PROFILES: &str = "- history: keep_last
  depth: 10
  reliability: reliable
  durability: volatile
  deadline:
    sec: 9223372036
    nsec: 854775807
  lifespan:
    sec: 9223372036
    nsec: 854775807
  liveliness: automatic
  liveliness_lease_duration:
    sec: 9223372036
    nsec: 854775807
  avoid_ros_namespace_conventions: false";

/// The rosbag2 bag metadata version written (Jazzy's).
const ROSBAG2_METADATA_VERSION: u32 = 9;

/// Smallest limit on a chunk's decompressed size, for chunks that decompress to more than the
/// file's size.
const MIN_CHUNK_LIMIT: usize = 256 * 1024 * 1024;

/// Everything that can go wrong writing or reading an episode. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The operating system refused a file operation.
    #[error("{path}: cannot {action}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was attempted (`create`, `read`, `rename to ...`).
        action: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// [`EpisodeWriter::create`] found the episode file or its `.partial` already there.
    #[error(
        "{path}: already exists; episodes are never overwritten (remove it, or recover a \
         `.partial` first)"
    )]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// The file does not start with the MCAP magic bytes.
    #[error("{path}: not an MCAP file (it does not start with the MCAP magic bytes)")]
    NotMcap {
        /// The file.
        path: PathBuf,
    },
    /// The file ends early: the recording was interrupted or the copy is incomplete.
    #[error("{path}: truncated MCAP file ({size} bytes): {detail}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// What is missing.
        detail: String,
    },
    /// The MCAP structure is damaged (bad CRC, inconsistent records, unsupported compression...).
    #[error("{path}: corrupt MCAP file: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the MCAP parser found.
        #[source]
        source: McapError,
    },
    /// The file is well-formed MCAP but its records contradict each other.
    #[error("{path}: inconsistent MCAP file: {detail}")]
    Inconsistent {
        /// The file.
        path: PathBuf,
        /// What contradicts what.
        detail: String,
    },
    /// The `mcap` writer failed.
    #[error("{path}: cannot write MCAP: {source}")]
    Write {
        /// The `.partial` file being written.
        path: PathBuf,
        /// The writer's error.
        #[source]
        source: McapError,
    },
    /// A reader was asked for a topic the file does not have.
    #[error("{path}: no topic `{topic}` in the recording (topics: {available})")]
    UnknownTopic {
        /// The file.
        path: PathBuf,
        /// The topic asked for.
        topic: String,
        /// The recorded topics, comma separated.
        available: String,
    },
    /// A [`TopicId`] that this writer did not hand out.
    #[error("{path}: topic id {id} was not returned by this writer's add_topic")]
    UnknownTopicId {
        /// The `.partial` file being written.
        path: PathBuf,
        /// The id.
        id: u16,
    },
    /// A topic was recorded (or registered) with another ROS type than the one requested.
    #[error("{path}: topic `{topic}` carries `{recorded}`, not the requested `{requested}`")]
    TypeMismatch {
        /// The file.
        path: PathBuf,
        /// The topic.
        topic: String,
        /// Its ROS type in the file (empty if the channel has no schema).
        recorded: String,
        /// The ROS type asked for.
        requested: String,
    },
    /// A topic's messages are not CDR, so they cannot be decoded as ROS 2 messages.
    #[error("{path}: topic `{topic}` has message encoding `{encoding}`, not `cdr`")]
    UnsupportedEncoding {
        /// The file.
        path: PathBuf,
        /// The topic.
        topic: String,
        /// Its message encoding.
        encoding: String,
    },
    /// A recorded message is not valid CDR for its type.
    #[error("{path}: topic `{topic}`, message {index} (log time {log_time_ns} ns): {source}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The topic.
        topic: String,
        /// Position of the message within the topic, in log-time order, from 0.
        index: usize,
        /// Its log time.
        log_time_ns: u64,
        /// The CDR error (field and byte offset).
        #[source]
        source: CdrError,
    },
    /// No `.msg` definition is known for a type the writer was asked to register.
    #[error(
        "{path}: no .msg definition for `{ros_type}` (known: the types of rivet_hw_bridge::msgs)"
    )]
    NoDefinition {
        /// The `.partial` file being written.
        path: PathBuf,
        /// The type.
        ros_type: String,
    },
    /// [`EpisodeWriter::write_metadata`] was given a name the writer manages itself.
    #[error("{path}: metadata name `{name}` is reserved; the writer writes it at finish")]
    ReservedMetadataName {
        /// The `.partial` file being written.
        path: PathBuf,
        /// The name.
        name: String,
    },
}

/// A topic registered with [`EpisodeWriter::add_topic`]; valid only with the writer that
/// returned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TopicId(u16);

/// One topic of an episode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// Topic name, e.g. `/joint_states`.
    pub topic: String,
    /// ROS type as recorded (the schema name), e.g. `sensor_msgs/msg/JointState`; empty when the
    /// channel has no schema.
    pub ros_type: String,
    /// Number of messages.
    pub message_count: u64,
    /// Message encoding (`cdr` for ROS 2).
    pub message_encoding: String,
    /// Schema encoding (`ros2msg` or `ros2idl` for ROS 2; empty without a schema).
    pub schema_encoding: String,
}

/// What [`EpisodeWriter::finish`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpisodeSummary {
    /// The final path of the episode.
    pub path: PathBuf,
    /// Size of the file in bytes.
    pub file_bytes: u64,
    /// Messages on all topics.
    pub message_count: u64,
    /// Earliest log time, `None` without messages.
    pub start_time_ns: Option<u64>,
    /// Latest log time, `None` without messages.
    pub end_time_ns: Option<u64>,
    /// The topics, in registration order.
    pub topics: Vec<TopicInfo>,
}

/// A named set of key/value pairs stored in the file (an MCAP metadata record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataRecord {
    /// Record name, e.g. `rosbag2` or `rivet`.
    pub name: String,
    /// The entries.
    pub entries: BTreeMap<String, String>,
}

/// One recorded message, undecoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawMessage<'a> {
    /// Its topic.
    pub topic: &'a str,
    /// When the recorder received it, nanoseconds since the UNIX epoch.
    pub log_time_ns: u64,
    /// When it was published, nanoseconds since the UNIX epoch (0 if unknown).
    pub publish_time_ns: u64,
    /// The per-channel sequence number.
    pub sequence: u32,
    /// The payload (CDR with its encapsulation header, for ROS 2 topics).
    pub data: &'a [u8],
}

// ---- writer ----------------------------------------------------------------------------------

struct WriterTopic {
    name: String,
    ros_type: String,
    channel_id: u16,
    next_sequence: u32,
    message_count: u64,
    type_hash: String,
}

/// Writes one episode; see the [module docs](self) for the layout and the crash-safety contract.
pub struct EpisodeWriter {
    final_path: PathBuf,
    partial_path: PathBuf,
    mcap: Writer<BufWriter<File>>,
    topics: Vec<WriterTopic>,
    /// Reused CDR buffer of [`EpisodeWriter::write`].
    buf: Vec<u8>,
    time_bounds: Option<(u64, u64)>,
    message_count: u64,
}

impl std::fmt::Debug for EpisodeWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpisodeWriter")
            .field("partial_path", &self.partial_path)
            .field("topics", &self.topics.len())
            .field("message_count", &self.message_count)
            .finish_non_exhaustive()
    }
}

/// `<path>.partial`.
fn partial_path_of(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(PARTIAL_SUFFIX);
    PathBuf::from(name)
}

impl EpisodeWriter {
    /// Starts an episode that [`finish`](Self::finish) will publish at `path` (conventionally
    /// ending in `.mcap`). Writes to `<path>.partial` meanwhile. Fails if either file exists:
    /// episodes are never overwritten, and a leftover `.partial` is the only copy of a crashed run.
    pub fn create(path: &Path) -> Result<Self, RecordError> {
        let final_path = path.to_path_buf();
        let partial_path = partial_path_of(path);
        if final_path.exists() {
            return Err(RecordError::AlreadyExists { path: final_path });
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&partial_path)
            .map_err(|source| {
                if source.kind() == io::ErrorKind::AlreadyExists {
                    RecordError::AlreadyExists {
                        path: partial_path.clone(),
                    }
                } else {
                    RecordError::Io {
                        path: partial_path.clone(),
                        action: "create".to_owned(),
                        source,
                    }
                }
            })?;
        let options = WriteOptions::new()
            .profile(MCAP_PROFILE)
            .library(format!(
                "rivet-hw-bridge {} (mcap-rust {})",
                env!("CARGO_PKG_VERSION"),
                mcap::VERSION
            ))
            .compression(Some(Compression::Zstd))
            .chunk_size(Some(WriteOptions::DEFAULT_CHUNK_SIZE));
        let mcap = options
            .create(BufWriter::new(file))
            .map_err(|source| RecordError::Write {
                path: partial_path.clone(),
                source,
            })?;
        Ok(Self {
            final_path,
            partial_path,
            mcap,
            topics: Vec::new(),
            buf: Vec::new(),
            time_bounds: None,
            message_count: 0,
        })
    }

    /// The path the episode will have after [`finish`](Self::finish).
    pub fn path(&self) -> &Path {
        &self.final_path
    }

    /// The `.partial` file being written.
    pub fn partial_path(&self) -> &Path {
        &self.partial_path
    }

    /// Registers `topic` (a fully qualified ROS name such as `/joint_states`) carrying `M`: its
    /// schema (once per type) and its channel. Registering the same topic again with the same
    /// type returns the same id; with another type it is a [`RecordError::TypeMismatch`].
    pub fn add_topic<M: RosMessage>(&mut self, topic: &str) -> Result<TopicId, RecordError> {
        self.add_topic_named(topic, M::ROS_TYPE_NAME)
    }

    /// [`add_topic`](Self::add_topic) by type name (`pkg/msg/Type`), for topics whose messages
    /// arrive as bytes ([`write_raw`](Self::write_raw)). The type must be one of
    /// [`definitions::DEFINITIONS`].
    pub fn add_topic_named(&mut self, topic: &str, ros_type: &str) -> Result<TopicId, RecordError> {
        if let Some(index) = self.topics.iter().position(|t| t.name == topic) {
            let existing = &self.topics[index];
            if existing.ros_type != ros_type {
                return Err(RecordError::TypeMismatch {
                    path: self.partial_path.clone(),
                    topic: topic.to_owned(),
                    recorded: existing.ros_type.clone(),
                    requested: ros_type.to_owned(),
                });
            }
            return Ok(TopicId(index as u16));
        }
        let no_definition = || RecordError::NoDefinition {
            path: self.partial_path.clone(),
            ros_type: ros_type.to_owned(),
        };
        // Only the canonical `pkg/msg/Type` spelling: it is the schema name rosbag2 writes.
        if definitions::canonical_type_name(ros_type).as_deref() != Some(ros_type) {
            return Err(no_definition());
        }
        let schema_text = definitions::full_text(ros_type).ok_or_else(no_definition)?;
        let write_err = |source| RecordError::Write {
            path: self.partial_path.clone(),
            source,
        };
        let schema_id = self
            .mcap
            .add_schema(ros_type, SCHEMA_ENCODING, schema_text.as_bytes())
            .map_err(write_err)?;
        let type_hash = TypeHashProfile::new(RosDistro::Jazzy)
            .get(ros_type)
            .map(|hash| hash.to_string())
            .unwrap_or_default();
        let metadata = BTreeMap::from([
            (
                "offered_qos_profiles".to_owned(),
                DEFAULT_OFFERED_QOS_PROFILES.to_owned(),
            ),
            ("topic_type_hash".to_owned(), type_hash.clone()),
        ]);
        let index =
            u16::try_from(self.topics.len()).map_err(|_| write_err(McapError::TooManyChannels))?;
        let channel_id = self
            .mcap
            .add_channel(schema_id, topic, MESSAGE_ENCODING, &metadata)
            .map_err(write_err)?;
        self.topics.push(WriterTopic {
            name: topic.to_owned(),
            ros_type: ros_type.to_owned(),
            channel_id,
            next_sequence: 0,
            message_count: 0,
            type_hash,
        });
        Ok(TopicId(index))
    }

    /// Encodes `msg` as CDR (into a buffer the writer reuses) and records it on `topic`, which
    /// must have been registered for `M`. Times are nanoseconds since the UNIX epoch: `log_time_ns`
    /// when the message was received (or produced, for commands), `publish_time_ns` when it was
    /// sent (the rmw_zenoh attachment's source timestamp; pass `log_time_ns` if unknown).
    pub fn write<M: RosMessage>(
        &mut self,
        topic: TopicId,
        log_time_ns: u64,
        publish_time_ns: u64,
        msg: &M,
    ) -> Result<(), RecordError> {
        let index = self.topic_index(topic)?;
        let registered = &self.topics[index];
        if registered.ros_type != M::ROS_TYPE_NAME {
            return Err(RecordError::TypeMismatch {
                path: self.partial_path.clone(),
                topic: registered.name.clone(),
                recorded: registered.ros_type.clone(),
                requested: M::ROS_TYPE_NAME.to_owned(),
            });
        }
        let mut buf = std::mem::take(&mut self.buf);
        msg.encode_into(&mut buf);
        let result = self.write_at(index, log_time_ns, publish_time_ns, &buf);
        self.buf = buf;
        result
    }

    /// Records a payload received off the wire on `topic`: the complete CDR bytes, encapsulation
    /// header included (a zenoh sample's payload as is). The bytes are not checked.
    pub fn write_raw(
        &mut self,
        topic: TopicId,
        log_time_ns: u64,
        publish_time_ns: u64,
        cdr_bytes: &[u8],
    ) -> Result<(), RecordError> {
        let index = self.topic_index(topic)?;
        self.write_at(index, log_time_ns, publish_time_ns, cdr_bytes)
    }

    /// Writes a metadata record (e.g. [`RIVET_METADATA_NAME`] with the profile name and Rivet
    /// version). Any name but `rosbag2`, which [`finish`](Self::finish) writes.
    pub fn write_metadata(
        &mut self,
        name: &str,
        entries: BTreeMap<String, String>,
    ) -> Result<(), RecordError> {
        if name == ROSBAG2_METADATA_NAME {
            return Err(RecordError::ReservedMetadataName {
                path: self.partial_path.clone(),
                name: name.to_owned(),
            });
        }
        self.mcap
            .write_metadata(&Metadata {
                name: name.to_owned(),
                metadata: entries,
            })
            .map_err(|source| RecordError::Write {
                path: self.partial_path.clone(),
                source,
            })
    }

    /// Writes the `rosbag2` metadata, the summary and the footer, syncs the file and renames it
    /// from `<path>.partial` to `<path>`.
    pub fn finish(mut self) -> Result<EpisodeSummary, RecordError> {
        let serialized = self.rosbag2_metadata_yaml();
        let partial_path = self.partial_path.clone();
        let write_err = |source| RecordError::Write {
            path: partial_path.clone(),
            source,
        };
        self.mcap
            .write_metadata(&Metadata {
                name: ROSBAG2_METADATA_NAME.to_owned(),
                metadata: BTreeMap::from([("serialized_metadata".to_owned(), serialized)]),
            })
            .map_err(write_err)?;
        self.mcap.finish().map_err(write_err)?;

        let EpisodeWriter {
            final_path,
            partial_path,
            mcap,
            topics,
            time_bounds,
            message_count,
            ..
        } = self;
        let io_err = |path: &Path, action: &str, source| RecordError::Io {
            path: path.to_path_buf(),
            action: action.to_owned(),
            source,
        };
        let file = mcap
            .into_inner()
            .into_inner()
            .map_err(|e| io_err(&partial_path, "flush", e.into_error()))?;
        file.sync_all()
            .map_err(|e| io_err(&partial_path, "sync", e))?;
        let file_bytes = file
            .metadata()
            .map_err(|e| io_err(&partial_path, "stat", e))?
            .len();
        drop(file);
        fs::rename(&partial_path, &final_path).map_err(|e| {
            io_err(
                &partial_path,
                &format!("rename to {}", final_path.display()),
                e,
            )
        })?;
        sync_parent_dir(&final_path);
        Ok(EpisodeSummary {
            path: final_path,
            file_bytes,
            message_count,
            start_time_ns: time_bounds.map(|(start, _)| start),
            end_time_ns: time_bounds.map(|(_, end)| end),
            topics: topics
                .into_iter()
                .map(|t| TopicInfo {
                    topic: t.name,
                    ros_type: t.ros_type,
                    message_count: t.message_count,
                    message_encoding: MESSAGE_ENCODING.to_owned(),
                    schema_encoding: SCHEMA_ENCODING.to_owned(),
                })
                .collect(),
        })
    }

    fn topic_index(&self, topic: TopicId) -> Result<usize, RecordError> {
        let index = usize::from(topic.0);
        if index < self.topics.len() {
            Ok(index)
        } else {
            Err(RecordError::UnknownTopicId {
                path: self.partial_path.clone(),
                id: topic.0,
            })
        }
    }

    fn write_at(
        &mut self,
        index: usize,
        log_time_ns: u64,
        publish_time_ns: u64,
        data: &[u8],
    ) -> Result<(), RecordError> {
        let topic = &mut self.topics[index];
        let header = MessageHeader {
            channel_id: topic.channel_id,
            sequence: topic.next_sequence,
            log_time: log_time_ns,
            publish_time: publish_time_ns,
        };
        self.mcap
            .write_to_known_channel(&header, data)
            .map_err(|source| RecordError::Write {
                path: self.partial_path.clone(),
                source,
            })?;
        topic.next_sequence = topic.next_sequence.wrapping_add(1);
        topic.message_count += 1;
        self.message_count += 1;
        self.time_bounds = Some(match self.time_bounds {
            None => (log_time_ns, log_time_ns),
            Some((start, end)) => (start.min(log_time_ns), end.max(log_time_ns)),
        });
        Ok(())
    }

    /// The YAML rosbag2 stores under `serialized_metadata` (its `BagMetadata`, version 9).
    fn rosbag2_metadata_yaml(&self) -> String {
        let (start, end) = self.time_bounds.unwrap_or((0, 0));
        let duration = end - start;
        let file_name = self
            .final_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut y = String::new();
        let mut line = |text: &str| {
            y.push_str(text);
            y.push('\n');
        };
        line(&format!("version: {ROSBAG2_METADATA_VERSION}"));
        line("storage_identifier: mcap");
        line("duration:");
        line(&format!("  nanoseconds: {duration}"));
        line("starting_time:");
        line(&format!("  nanoseconds_since_epoch: {start}"));
        line(&format!("message_count: {}", self.message_count));
        if self.topics.is_empty() {
            line("topics_with_message_count: []");
        } else {
            line("topics_with_message_count:");
        }
        for topic in &self.topics {
            line("  - topic_metadata:");
            line(&format!("      name: {}", yaml_quote(&topic.name)));
            line(&format!("      type: {}", yaml_quote(&topic.ros_type)));
            line(&format!("      serialization_format: {MESSAGE_ENCODING}"));
            line("      offered_qos_profiles:");
            for qos_line in DEFAULT_OFFERED_QOS_PROFILES.lines() {
                line(&format!("        {qos_line}"));
            }
            line(&format!(
                "      type_description_hash: {}",
                yaml_quote(&topic.type_hash)
            ));
            line(&format!("    message_count: {}", topic.message_count));
        }
        line("compression_format: \"\"");
        line("compression_mode: \"\"");
        line("relative_file_paths:");
        line(&format!("  - {}", yaml_quote(&file_name)));
        line("files:");
        line(&format!("  - path: {}", yaml_quote(&file_name)));
        line("    starting_time:");
        line(&format!("      nanoseconds_since_epoch: {start}"));
        line("    duration:");
        line(&format!("      nanoseconds: {duration}"));
        line(&format!("    message_count: {}", self.message_count));
        line("custom_data: {}");
        line(&format!("ros_distro: {}", RosDistro::Jazzy));
        y
    }
}

/// A YAML double-quoted scalar (JSON string escaping, which is valid YAML).
fn yaml_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Makes the rename durable (POSIX); best effort, as some file systems refuse to sync directories.
fn sync_parent_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(handle) = File::open(dir) {
            let _ = handle.sync_all();
        }
    }
}

// ---- reader ----------------------------------------------------------------------------------

struct ReaderSchema {
    name: String,
    encoding: String,
    data: Vec<u8>,
}

struct ReaderChannel {
    topic: String,
    schema_id: u16,
    message_encoding: String,
    metadata: BTreeMap<String, String>,
}

struct StoredMessage {
    channel_id: u16,
    sequence: u32,
    log_time: u64,
    publish_time: u64,
    data: Vec<u8>,
}

/// A whole MCAP file, read and decompressed into memory; see the [module docs](self).
pub struct EpisodeReader {
    path: PathBuf,
    profile: String,
    library: String,
    schemas: HashMap<u16, ReaderSchema>,
    channels: BTreeMap<u16, ReaderChannel>,
    /// In log-time order.
    messages: Vec<StoredMessage>,
    metadata: Vec<MetadataRecord>,
}

impl std::fmt::Debug for EpisodeReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpisodeReader")
            .field("path", &self.path)
            .field("channels", &self.channels.len())
            .field("messages", &self.messages.len())
            .finish_non_exhaustive()
    }
}

/// Accumulates the records of the linear pass.
struct Collector {
    path: PathBuf,
    profile: String,
    library: String,
    schemas: HashMap<u16, ReaderSchema>,
    channels: BTreeMap<u16, ReaderChannel>,
    messages: Vec<StoredMessage>,
    metadata: Vec<MetadataRecord>,
}

impl Collector {
    fn inconsistent(&self, detail: String) -> RecordError {
        RecordError::Inconsistent {
            path: self.path.clone(),
            detail,
        }
    }

    fn corrupt(&self, source: McapError) -> RecordError {
        RecordError::Corrupt {
            path: self.path.clone(),
            source,
        }
    }

    /// Handles one record of the file (`chunk_limit: Some`) or of a chunk (`None`: no nested
    /// chunks). Only the kinds the reader needs are parsed at all.
    fn record(
        &mut self,
        opcode: u8,
        body: &[u8],
        chunk_limit: Option<usize>,
    ) -> Result<(), RecordError> {
        if opcode == op::CHUNK {
            return match chunk_limit {
                Some(limit) => self.chunk(body, limit),
                None => Err(self.inconsistent("a chunk inside a chunk".to_owned())),
            };
        }
        if !matches!(
            opcode,
            op::HEADER | op::SCHEMA | op::CHANNEL | op::MESSAGE | op::METADATA
        ) {
            return Ok(());
        }
        let record = mcap::parse_record(opcode, body).map_err(|e| self.corrupt(e))?;
        match record {
            Record::Header(header) => {
                self.profile = header.profile;
                self.library = header.library;
            }
            Record::Schema { header, data } => {
                if header.id == 0 {
                    return Err(self.inconsistent(format!(
                        "schema `{}` has id 0, which means \"no schema\"",
                        header.name
                    )));
                }
                if let Some(existing) = self.schemas.get(&header.id) {
                    if existing.name != header.name
                        || existing.encoding != header.encoding
                        || existing.data != *data
                    {
                        return Err(self.inconsistent(format!(
                            "two different schemas with id {} (`{}` and `{}`)",
                            header.id, existing.name, header.name
                        )));
                    }
                } else {
                    self.schemas.insert(
                        header.id,
                        ReaderSchema {
                            name: header.name,
                            encoding: header.encoding,
                            data: data.into_owned(),
                        },
                    );
                }
            }
            Record::Channel(channel) => {
                if channel.schema_id != 0 && !self.schemas.contains_key(&channel.schema_id) {
                    return Err(self.inconsistent(format!(
                        "channel {} (`{}`) refers to schema {}, which comes nowhere before it",
                        channel.id, channel.topic, channel.schema_id
                    )));
                }
                if let Some(existing) = self.channels.get(&channel.id) {
                    if existing.topic != channel.topic
                        || existing.schema_id != channel.schema_id
                        || existing.message_encoding != channel.message_encoding
                        || existing.metadata != channel.metadata
                    {
                        return Err(self.inconsistent(format!(
                            "two different channels with id {} (`{}` and `{}`)",
                            channel.id, existing.topic, channel.topic
                        )));
                    }
                } else {
                    self.channels.insert(
                        channel.id,
                        ReaderChannel {
                            topic: channel.topic,
                            schema_id: channel.schema_id,
                            message_encoding: channel.message_encoding,
                            metadata: channel.metadata,
                        },
                    );
                }
            }
            Record::Message { header, data } => {
                if !self.channels.contains_key(&header.channel_id) {
                    return Err(self.inconsistent(format!(
                        "a message (log time {} ns) refers to channel {}, which comes nowhere \
                         before it",
                        header.log_time, header.channel_id
                    )));
                }
                self.messages.push(StoredMessage {
                    channel_id: header.channel_id,
                    sequence: header.sequence,
                    log_time: header.log_time,
                    publish_time: header.publish_time,
                    data: data.into_owned(),
                });
            }
            Record::Metadata(metadata) => self.metadata.push(MetadataRecord {
                name: metadata.name,
                entries: metadata.metadata,
            }),
            _ => {}
        }
        Ok(())
    }

    /// Decompresses and checks one chunk, then handles the records inside it.
    fn chunk(&mut self, body: &[u8], limit: usize) -> Result<(), RecordError> {
        let record = mcap::parse_record(op::CHUNK, body).map_err(|e| self.corrupt(e))?;
        let Record::Chunk { header, data } = record else {
            return Ok(());
        };
        let records = decompress_chunk(&header, &data, limit).map_err(|e| self.corrupt(e))?;
        let options = LinearReaderOptions::default()
            .with_skip_start_magic(true)
            .with_skip_end_magic(true)
            .with_emit_chunks(true)
            .with_record_length_limit(records.len());
        match for_each_record(&records, options, |opcode, body| {
            self.record(opcode, body, None)
        }) {
            Ok(()) => Ok(()),
            Err(ScanError::Record(e)) => Err(e),
            Err(ScanError::Mcap(McapError::UnexpectedEof)) => {
                Err(self.corrupt(McapError::UnexpectedEoc))
            }
            Err(ScanError::Mcap(e)) => Err(self.corrupt(e)),
        }
    }
}

/// Why [`for_each_record`] stopped.
enum ScanError {
    /// The record handler failed.
    Record(RecordError),
    /// The MCAP structure is broken.
    Mcap(McapError),
}

/// Runs mcap's sans-io record splitter over `buf`, handing every record to `on_record`. The
/// options must emit chunks whole: their decompression is [`decompress_chunk`]'s job.
fn for_each_record(
    buf: &[u8],
    options: LinearReaderOptions,
    mut on_record: impl FnMut(u8, &[u8]) -> Result<(), RecordError>,
) -> Result<(), ScanError> {
    let mut reader = LinearReader::new_with_options(options);
    let mut remaining = buf;
    while let Some(event) = reader.next_event() {
        match event {
            Ok(LinearReadEvent::ReadRequest(need)) => {
                // Never more than the data left: a bogus length asks for more than there is.
                let n = need.min(remaining.len());
                let (now, later) = remaining.split_at(n);
                reader.insert(n).copy_from_slice(now);
                reader.notify_read(n);
                remaining = later;
            }
            Ok(LinearReadEvent::Record { opcode, data }) => {
                on_record(opcode, data).map_err(ScanError::Record)?;
            }
            Err(e) => return Err(ScanError::Mcap(e)),
        }
    }
    Ok(())
}

/// The records of a chunk: its data decompressed to exactly the declared size (at most `limit`)
/// and checked against its CRC when it has one.
fn decompress_chunk<'a>(
    header: &ChunkHeader,
    data: &'a [u8],
    limit: usize,
) -> Result<std::borrow::Cow<'a, [u8]>, McapError> {
    use std::borrow::Cow;
    let size = usize::try_from(header.uncompressed_size)
        .ok()
        .filter(|&size| size <= limit)
        .ok_or(McapError::ChunkTooLarge(header.uncompressed_size))?;
    let records = match header.compression.as_str() {
        "" if data.len() == size => Cow::Borrowed(data),
        "" => {
            return Err(McapError::BadChunkLength {
                header: header.uncompressed_size,
                available: data.len() as u64,
            });
        }
        "zstd" => Cow::Owned(zstd_decompress(data, size)?),
        "lz4" => Cow::Owned(lz4_decompress(data, size)?),
        other => return Err(McapError::UnsupportedCompression(other.to_owned())),
    };
    if header.uncompressed_crc != 0 {
        let calculated = crc32fast::hash(&records);
        if calculated != header.uncompressed_crc {
            return Err(McapError::BadChunkCrc {
                saved: header.uncompressed_crc,
                calculated,
            });
        }
    }
    Ok(records)
}

/// Decompresses zstd frames until `size` bytes came out; fewer is an error. Bytes after that are
/// ignored, as compressors may pad the chunk.
fn zstd_decompress(data: &[u8], size: usize) -> Result<Vec<u8>, McapError> {
    use zstd::stream::raw::{Decoder, Operation};
    let error = |e: io::Error| McapError::DecompressionError(format!("zstd: {e}"));
    let mut decoder = Decoder::new().map_err(error)?;
    let mut out = vec![0u8; size];
    let (mut read, mut written) = (0, 0);
    while written < size {
        let input = data.get(read..).unwrap_or_default();
        let output = out.get_mut(written..).unwrap_or_default();
        let status = decoder.run_on_buffers(input, output).map_err(error)?;
        read += status.bytes_read;
        written += status.bytes_written;
        if status.bytes_read == 0 && status.bytes_written == 0 {
            break; // Input exhausted (or a finished frame with nothing after it).
        }
    }
    if written != size {
        return Err(McapError::DecompressionError(format!(
            "zstd: the chunk decompresses to {written} bytes, its header declares {size}"
        )));
    }
    Ok(out)
}

/// Decompresses an lz4 frame into exactly `size` bytes; fewer is an error.
fn lz4_decompress(data: &[u8], size: usize) -> Result<Vec<u8>, McapError> {
    use std::io::Read;
    let error = |e: io::Error| McapError::DecompressionError(format!("lz4: {e}"));
    let mut decoder = lz4::Decoder::new(data).map_err(error)?;
    let mut out = vec![0u8; size];
    decoder.read_exact(&mut out).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            McapError::DecompressionError(format!(
                "lz4: the chunk decompresses to fewer bytes than the {size} its header declares"
            ))
        } else {
            error(e)
        }
    })?;
    Ok(out)
}

impl EpisodeReader {
    /// Reads and validates the MCAP file at `path`.
    pub fn open(path: &Path) -> Result<Self, RecordError> {
        let bytes = fs::read(path).map_err(|source| RecordError::Io {
            path: path.to_path_buf(),
            action: "read".to_owned(),
            source,
        })?;
        Self::from_bytes(path, &bytes)
    }

    /// Parses `bytes` as the content of `path` (which only names the file in errors).
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Self, RecordError> {
        let path_buf = path.to_path_buf();
        let size = bytes.len() as u64;
        let magic = mcap::MAGIC;
        let truncated = |detail: &str| RecordError::Truncated {
            path: path_buf.clone(),
            size,
            detail: detail.to_owned(),
        };
        if bytes.len() < magic.len() {
            return Err(if magic.starts_with(bytes) {
                truncated("it ends inside the leading magic bytes")
            } else {
                RecordError::NotMcap { path: path_buf }
            });
        }
        if !bytes.starts_with(magic) {
            return Err(RecordError::NotMcap { path: path_buf });
        }
        if bytes.len() < 2 * magic.len() || !bytes.ends_with(magic) {
            return Err(truncated(
                "no footer (it does not end with the MCAP magic bytes): the recording was \
                 interrupted or the copy is incomplete",
            ));
        }

        let mut collector = Collector {
            path: path_buf.clone(),
            profile: String::new(),
            library: String::new(),
            schemas: HashMap::new(),
            channels: BTreeMap::new(),
            messages: Vec::new(),
            metadata: Vec::new(),
        };
        // Chunks are emitted whole and decompressed by `Collector::chunk`, never by mcap.
        let options = LinearReaderOptions::default()
            .with_emit_chunks(true)
            .with_record_length_limit(bytes.len())
            .with_validate_data_section_crc(true)
            .with_validate_summary_section_crc(true)
            .with_check_finishes_after_end_magic(true);
        let chunk_limit = bytes.len().max(MIN_CHUNK_LIMIT);
        match for_each_record(bytes, options, |opcode, body| {
            collector.record(opcode, body, Some(chunk_limit))
        }) {
            Ok(()) => {}
            Err(ScanError::Record(e)) => return Err(e),
            Err(ScanError::Mcap(McapError::UnexpectedEof)) => {
                return Err(truncated("it ends in the middle of a record"));
            }
            Err(ScanError::Mcap(source)) => {
                return Err(RecordError::Corrupt {
                    path: path_buf,
                    source,
                });
            }
        }

        let Collector {
            profile,
            library,
            schemas,
            channels,
            mut messages,
            metadata,
            ..
        } = collector;
        // Stable: file order among equal log times.
        messages.sort_by_key(|m| m.log_time);
        Ok(Self {
            path: path_buf,
            profile,
            library,
            schemas,
            channels,
            messages,
            metadata,
        })
    }

    /// The file this reader read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The MCAP profile of the file (`ros2` for ROS 2 bags).
    pub fn profile(&self) -> &str {
        &self.profile
    }

    /// The library that wrote the file, as it says in the MCAP header.
    pub fn library(&self) -> &str {
        &self.library
    }

    /// The topics, sorted by name; a topic recorded with two types appears twice.
    pub fn topics(&self) -> Vec<TopicInfo> {
        let mut counts: HashMap<u16, u64> = HashMap::new();
        for m in &self.messages {
            *counts.entry(m.channel_id).or_default() += 1;
        }
        let mut topics: BTreeMap<(&str, &str), TopicInfo> = BTreeMap::new();
        for (id, channel) in &self.channels {
            let schema = self.schemas.get(&channel.schema_id);
            let ros_type = schema.map(|s| s.name.as_str()).unwrap_or("");
            let entry = topics
                .entry((channel.topic.as_str(), ros_type))
                .or_insert_with(|| TopicInfo {
                    topic: channel.topic.clone(),
                    ros_type: ros_type.to_owned(),
                    message_count: 0,
                    message_encoding: channel.message_encoding.clone(),
                    schema_encoding: schema.map(|s| s.encoding.clone()).unwrap_or_default(),
                });
            entry.message_count += counts.get(id).copied().unwrap_or(0);
        }
        topics.into_values().collect()
    }

    /// The schema data (for ROS 2: the concatenated `.msg` text) of `topic`, if it has one.
    pub fn schema_data(&self, topic: &str) -> Option<&[u8]> {
        self.channels
            .values()
            .find(|c| c.topic == topic)
            .and_then(|c| self.schemas.get(&c.schema_id))
            .map(|s| s.data.as_slice())
    }

    /// The metadata of `topic`'s channel (for rosbag2: `offered_qos_profiles`,
    /// `topic_type_hash`).
    pub fn channel_metadata(&self, topic: &str) -> Option<&BTreeMap<String, String>> {
        self.channels
            .values()
            .find(|c| c.topic == topic)
            .map(|c| &c.metadata)
    }

    /// The metadata records, in file order.
    pub fn metadata(&self) -> &[MetadataRecord] {
        &self.metadata
    }

    /// Every message of every topic, undecoded, in log-time order.
    pub fn all_raw_messages(&self) -> impl Iterator<Item = RawMessage<'_>> + '_ {
        self.messages.iter().filter_map(|m| {
            self.channels.get(&m.channel_id).map(|c| RawMessage {
                topic: &c.topic,
                log_time_ns: m.log_time,
                publish_time_ns: m.publish_time,
                sequence: m.sequence,
                data: &m.data,
            })
        })
    }

    /// The messages of `topic`, undecoded, in log-time order.
    pub fn raw_messages(&self, topic: &str) -> Result<Vec<RawMessage<'_>>, RecordError> {
        self.topic_channels(topic)?;
        Ok(self
            .all_raw_messages()
            .filter(|m| m.topic == topic)
            .collect())
    }

    /// The messages of `topic` decoded as `M`, with their log times (ns), in log-time order.
    ///
    /// Fails if the topic is missing, was recorded with another ROS type (`pkg/Type` and
    /// `pkg/msg/Type` spellings are the same type), is not CDR, or if any message does not
    /// decode (the error names the message's index and the CDR field and offset).
    pub fn messages<M: RosMessage>(&self, topic: &str) -> Result<Vec<(u64, M)>, RecordError> {
        for channel in self.topic_channels(topic)? {
            let recorded = self
                .schemas
                .get(&channel.schema_id)
                .map(|s| s.name.as_str())
                .unwrap_or("");
            if definitions::canonical_type_name(recorded).as_deref() != Some(M::ROS_TYPE_NAME) {
                return Err(RecordError::TypeMismatch {
                    path: self.path.clone(),
                    topic: topic.to_owned(),
                    recorded: recorded.to_owned(),
                    requested: M::ROS_TYPE_NAME.to_owned(),
                });
            }
            if channel.message_encoding != MESSAGE_ENCODING {
                return Err(RecordError::UnsupportedEncoding {
                    path: self.path.clone(),
                    topic: topic.to_owned(),
                    encoding: channel.message_encoding.clone(),
                });
            }
        }
        self.all_raw_messages()
            .filter(|m| m.topic == topic)
            .enumerate()
            .map(|(index, raw)| {
                M::decode(raw.data)
                    .map(|msg| (raw.log_time_ns, msg))
                    .map_err(|source| RecordError::Decode {
                        path: self.path.clone(),
                        topic: topic.to_owned(),
                        index,
                        log_time_ns: raw.log_time_ns,
                        source,
                    })
            })
            .collect()
    }

    /// The channels of `topic`, or [`RecordError::UnknownTopic`].
    fn topic_channels(&self, topic: &str) -> Result<Vec<&ReaderChannel>, RecordError> {
        let channels: Vec<&ReaderChannel> = self
            .channels
            .values()
            .filter(|c| c.topic == topic)
            .collect();
        if channels.is_empty() {
            let mut names: Vec<&str> = self.channels.values().map(|c| c.topic.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            let available = if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            };
            return Err(RecordError::UnknownTopic {
                path: self.path.clone(),
                topic: topic.to_owned(),
                available,
            });
        }
        Ok(channels)
    }
}
