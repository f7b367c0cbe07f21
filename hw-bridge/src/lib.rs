//! `rivet-hw-bridge` owns the boundary between Rivet and real robots: the ROS 2 over zenoh
//! (rmw_zenoh) wire format, that is the CDR codec for the messages a ros2_control robot speaks
//! ([`cdr`], [`msgs`]) and the key expressions, liveliness tokens and sample attachment that make
//! a plain zenoh program look like a ROS 2 node ([`keys`]); the robot profile that describes one
//! robot's topics, limits and session ([`profile`]); the zenoh node that publishes and subscribes
//! ROS 2 messages ([`node`]); the fixed-rate deploy loop with its watchdog, e-stop and safety
//! filter ([`deploy`]); and episode recording as rosbag2-compatible MCAP ([`record`]).
//!
//! It depends on `rivet-control` (robot model, safety filter) but never on `rivet-sim` or the
//! internals of `rivet-policies`: what computes commands (a policy, a controller) sits behind
//! [`deploy::CommandSource`], so nothing here knows whether a simulator or a robot answers.
//!
//! Each module returns its own `thiserror` enum ([`cdr::CdrError`], [`keys::KeyError`],
//! [`profile::ProfileError`], [`record::RecordError`], [`node::NodeError`]).

pub mod cdr;
pub mod deploy;
pub mod keys;
pub mod node;
pub mod profile;
pub mod record;

pub use cdr::msgs;
pub use cdr::{CdrError, Endianness, RosMessage};
