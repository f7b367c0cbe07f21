//! `sensor_msgs`: the joint state ros2_control's `joint_state_broadcaster` publishes.

use super::std_msgs::Header;
use crate::cdr::{CdrError, CdrReader, CdrWriter, RosMessage};

/// `sensor_msgs/msg/JointState`: measured state of a set of joints.
///
/// `name[i]` describes `position[i]`, `velocity[i]` and `effort[i]`; any of the three value
/// vectors may be empty when the robot does not report that quantity. Lengths are not checked
/// against each other here: that is the consumer's job, with its own joint map.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JointState {
    /// Time of the measurement.
    pub header: Header,
    /// Joint names, as in the URDF.
    pub name: Vec<String>,
    /// Positions: rad for revolute joints, m for prismatic ones.
    pub position: Vec<f64>,
    /// Velocities: rad/s or m/s.
    pub velocity: Vec<f64>,
    /// Efforts: N·m or N.
    pub effort: Vec<f64>,
}

impl RosMessage for JointState {
    const ROS_TYPE_NAME: &'static str = "sensor_msgs/msg/JointState";
    const DDS_TYPE_NAME: &'static str = "sensor_msgs::msg::dds_::JointState_";

    fn write_fields(&self, w: &mut CdrWriter<'_>) {
        self.header.write_fields(w);
        w.write_string_seq(&self.name);
        w.write_f64_seq(&self.position);
        w.write_f64_seq(&self.velocity);
        w.write_f64_seq(&self.effort);
    }

    fn read_fields_into(&mut self, r: &mut CdrReader<'_>) -> Result<(), CdrError> {
        r.read_message_into("header", &mut self.header)?;
        r.read_string_seq_into("name", &mut self.name)?;
        r.read_f64_seq_into("position", &mut self.position)?;
        r.read_f64_seq_into("velocity", &mut self.velocity)?;
        r.read_f64_seq_into("effort", &mut self.effort)
    }
}
