//! `trajectory_msgs`: the joint trajectory ros2_control's `joint_trajectory_controller` takes.

use super::builtin_interfaces::Duration;
use super::std_msgs::Header;
use crate::cdr::{CdrError, CdrReader, CdrWriter, RosMessage};

/// `trajectory_msgs/msg/JointTrajectoryPoint`: the target of every joint at one instant.
///
/// Each non-empty vector has one value per joint of the enclosing trajectory, in its
/// `joint_names` order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JointTrajectoryPoint {
    /// Positions: rad or m.
    pub positions: Vec<f64>,
    /// Velocities: rad/s or m/s.
    pub velocities: Vec<f64>,
    /// Accelerations: rad/s² or m/s².
    pub accelerations: Vec<f64>,
    /// Efforts: N·m or N.
    pub effort: Vec<f64>,
    /// When this point is to be reached, relative to the trajectory's `header.stamp`.
    pub time_from_start: Duration,
}

/// Smallest encoding of a [`JointTrajectoryPoint`]: four empty sequence counts and a duration.
const JOINT_TRAJECTORY_POINT_MIN_BYTES: u64 = 24;

impl RosMessage for JointTrajectoryPoint {
    const ROS_TYPE_NAME: &'static str = "trajectory_msgs/msg/JointTrajectoryPoint";
    const DDS_TYPE_NAME: &'static str = "trajectory_msgs::msg::dds_::JointTrajectoryPoint_";

    fn write_fields(&self, w: &mut CdrWriter<'_>) {
        w.write_f64_seq(&self.positions);
        w.write_f64_seq(&self.velocities);
        w.write_f64_seq(&self.accelerations);
        w.write_f64_seq(&self.effort);
        self.time_from_start.write_fields(w);
    }

    fn read_fields_into(&mut self, r: &mut CdrReader<'_>) -> Result<(), CdrError> {
        r.read_f64_seq_into("positions", &mut self.positions)?;
        r.read_f64_seq_into("velocities", &mut self.velocities)?;
        r.read_f64_seq_into("accelerations", &mut self.accelerations)?;
        r.read_f64_seq_into("effort", &mut self.effort)?;
        r.read_message_into("time_from_start", &mut self.time_from_start)
    }
}

/// `trajectory_msgs/msg/JointTrajectory`: timed waypoints for a set of joints.
///
/// A zero `header.stamp` means "start now" to `joint_trajectory_controller`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JointTrajectory {
    /// Start time of the trajectory (zero: on receipt).
    pub header: Header,
    /// Joints the points refer to, as in the URDF.
    pub joint_names: Vec<String>,
    /// Waypoints, in increasing `time_from_start`.
    pub points: Vec<JointTrajectoryPoint>,
}

impl RosMessage for JointTrajectory {
    const ROS_TYPE_NAME: &'static str = "trajectory_msgs/msg/JointTrajectory";
    const DDS_TYPE_NAME: &'static str = "trajectory_msgs::msg::dds_::JointTrajectory_";

    fn write_fields(&self, w: &mut CdrWriter<'_>) {
        self.header.write_fields(w);
        w.write_string_seq(&self.joint_names);
        w.write_message_seq(&self.points);
    }

    fn read_fields_into(&mut self, r: &mut CdrReader<'_>) -> Result<(), CdrError> {
        r.read_message_into("header", &mut self.header)?;
        r.read_string_seq_into("joint_names", &mut self.joint_names)?;
        r.read_message_seq_into("points", JOINT_TRAJECTORY_POINT_MIN_BYTES, &mut self.points)
    }
}
