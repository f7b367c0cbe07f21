//! `rivet-hw-bridge` owns the boundary between Rivet and real robots: today, the ROS 2 over zenoh
//! (rmw_zenoh) wire format, that is the CDR codec for the messages a ros2_control robot speaks
//! ([`cdr`], [`msgs`]) and the key expressions, liveliness tokens and sample attachment that make
//! a plain zenoh program look like a ROS 2 node ([`keys`]); later, the zenoh session and the deploy
//! loop (watchdog, clamping, rate limiting, e-stop) that run controllers and policies on hardware.
//!
//! It may depend on `rivet-control` and, later, on a loaded-policy interface, but never on the
//! internals of `rivet-policies` and never on `rivet-sim`: the simulator and the robot sit behind
//! the same "read state / send command" trait, so nothing here may know which one is running.
//! Zenoh itself is not a dependency yet; the wire format is pure data so it builds and tests fast.
//!
//! Each module returns its own `thiserror` enum ([`cdr::CdrError`], [`keys::KeyError`]): callers
//! of the codec never see key errors and vice versa. A bridge-level error that wraps both comes
//! with the session code.

pub mod cdr;
pub mod keys;

pub use cdr::msgs;
pub use cdr::{CdrError, Endianness, RosMessage};
