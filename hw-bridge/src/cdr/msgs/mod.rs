//! The ROS 2 message types the bridge exchanges with ros2_control, as plain Rust structs with
//! the ROS field names, grouped by ROS package. Each implements [`RosMessage`](super::RosMessage);
//! nested types do too, so a `std_msgs/msg/Header` can be published on its own.
//!
//! Field order in the structs is the CDR field order. Units follow ROS (REP 103): SI units and
//! radians.

pub mod builtin_interfaces;
pub mod sensor_msgs;
pub mod std_msgs;
pub mod trajectory_msgs;
