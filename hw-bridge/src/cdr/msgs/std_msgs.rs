//! `std_msgs`: the header every stamped message starts with, the boolean flag and the
//! `float64` multi-array that ros2_control's forward command controllers take.

use super::builtin_interfaces::Time;
use crate::cdr::{CdrError, CdrReader, CdrWriter, RosMessage};

/// `std_msgs/msg/Header`: when and in which frame data was produced.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Header {
    /// Acquisition time.
    pub stamp: Time,
    /// Coordinate frame the data is expressed in (TF frame name); may be empty.
    pub frame_id: String,
}

impl RosMessage for Header {
    const ROS_TYPE_NAME: &'static str = "std_msgs/msg/Header";
    const DDS_TYPE_NAME: &'static str = "std_msgs::msg::dds_::Header_";

    fn write_fields(&self, w: &mut CdrWriter<'_>) {
        self.stamp.write_fields(w);
        w.write_string(&self.frame_id);
    }

    fn read_fields_into(&mut self, r: &mut CdrReader<'_>) -> Result<(), CdrError> {
        r.read_message_into("stamp", &mut self.stamp)?;
        r.read_string_into("frame_id", &mut self.frame_id)
    }
}

/// `std_msgs/msg/Bool`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Bool {
    /// The value.
    pub data: bool,
}

impl RosMessage for Bool {
    const ROS_TYPE_NAME: &'static str = "std_msgs/msg/Bool";
    const DDS_TYPE_NAME: &'static str = "std_msgs::msg::dds_::Bool_";

    fn write_fields(&self, w: &mut CdrWriter<'_>) {
        w.write_bool(self.data);
    }

    fn read_fields_into(&mut self, r: &mut CdrReader<'_>) -> Result<(), CdrError> {
        self.data = r.read_bool("data")?;
        Ok(())
    }
}

/// `std_msgs/msg/MultiArrayDimension`: one axis of a [`MultiArrayLayout`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct MultiArrayDimension {
    /// Name of the axis (e.g. `joints`); may be empty.
    pub label: String,
    /// Number of elements along this axis.
    pub size: u32,
    /// Number of `data` elements spanned by one step along this axis and all inner axes.
    pub stride: u32,
}

/// Smallest encoding of a [`MultiArrayDimension`]: empty-label length (4), size and stride.
const MULTI_ARRAY_DIMENSION_MIN_BYTES: u64 = 12;

impl RosMessage for MultiArrayDimension {
    const ROS_TYPE_NAME: &'static str = "std_msgs/msg/MultiArrayDimension";
    const DDS_TYPE_NAME: &'static str = "std_msgs::msg::dds_::MultiArrayDimension_";

    fn write_fields(&self, w: &mut CdrWriter<'_>) {
        w.write_string(&self.label);
        w.write_u32(self.size);
        w.write_u32(self.stride);
    }

    fn read_fields_into(&mut self, r: &mut CdrReader<'_>) -> Result<(), CdrError> {
        r.read_string_into("label", &mut self.label)?;
        self.size = r.read_u32("size")?;
        self.stride = r.read_u32("stride")?;
        Ok(())
    }
}

/// `std_msgs/msg/MultiArrayLayout`: how the flat `data` of a multi-array maps to axes.
/// ros2_control's forward command controllers ignore it; it is usually empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct MultiArrayLayout {
    /// Axes, outermost first.
    pub dim: Vec<MultiArrayDimension>,
    /// Number of padding elements at the start of `data`.
    pub data_offset: u32,
}

impl RosMessage for MultiArrayLayout {
    const ROS_TYPE_NAME: &'static str = "std_msgs/msg/MultiArrayLayout";
    const DDS_TYPE_NAME: &'static str = "std_msgs::msg::dds_::MultiArrayLayout_";

    fn write_fields(&self, w: &mut CdrWriter<'_>) {
        w.write_message_seq(&self.dim);
        w.write_u32(self.data_offset);
    }

    fn read_fields_into(&mut self, r: &mut CdrReader<'_>) -> Result<(), CdrError> {
        r.read_message_seq_into("dim", MULTI_ARRAY_DIMENSION_MIN_BYTES, &mut self.dim)?;
        self.data_offset = r.read_u32("data_offset")?;
        Ok(())
    }
}

/// `std_msgs/msg/Float64MultiArray`: the command message of ros2_control's
/// `forward_command_controller` family (one value per commanded joint, in the controller's joint
/// order; radians, rad/s or N·m depending on the controller's interface).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Float64MultiArray {
    /// Shape of `data`; usually empty for joint commands.
    pub layout: MultiArrayLayout,
    /// The values.
    pub data: Vec<f64>,
}

impl RosMessage for Float64MultiArray {
    const ROS_TYPE_NAME: &'static str = "std_msgs/msg/Float64MultiArray";
    const DDS_TYPE_NAME: &'static str = "std_msgs::msg::dds_::Float64MultiArray_";

    fn write_fields(&self, w: &mut CdrWriter<'_>) {
        self.layout.write_fields(w);
        w.write_f64_seq(&self.data);
    }

    fn read_fields_into(&mut self, r: &mut CdrReader<'_>) -> Result<(), CdrError> {
        r.read_message_into("layout", &mut self.layout)?;
        r.read_f64_seq_into("data", &mut self.data)
    }
}
