//! `std_msgs`: the header every stamped message starts with, the boolean flag, the string (status
//! text, episode annotations) and the `float64` multi-array that ros2_control's forward command
//! controllers take.

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

/// `std_msgs/msg/String`: one UTF-8 string (the type of the ROS 2 `chatter` demo, and of status
/// or annotation topics).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct StringMsg {
    /// The text.
    pub data: String,
}

impl RosMessage for StringMsg {
    const ROS_TYPE_NAME: &'static str = "std_msgs/msg/String";
    const DDS_TYPE_NAME: &'static str = "std_msgs::msg::dds_::String_";

    fn write_fields(&self, w: &mut CdrWriter<'_>) {
        w.write_string(&self.data);
    }

    fn read_fields_into(&mut self, r: &mut CdrReader<'_>) -> Result<(), CdrError> {
        r.read_string_into("data", &mut self.data)
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

#[cfg(test)]
mod tests {
    use super::StringMsg;
    use crate::cdr::{CdrError, Endianness, RosMessage};

    #[test]
    fn string_msg_round_trips_and_matches_the_wire_layout() {
        let msg = StringMsg {
            data: "hello".to_owned(),
        };
        let mut buf = Vec::new();
        msg.encode_into(&mut buf);
        // Encapsulation, uint32 length counting the NUL, the bytes, the NUL.
        assert_eq!(
            buf,
            [0, 1, 0, 0, 6, 0, 0, 0, b'h', b'e', b'l', b'l', b'o', 0]
        );
        assert_eq!(StringMsg::decode(&buf), Ok(msg.clone()));

        let mut big = Vec::new();
        msg.encode_into_with(&mut big, Endianness::Big);
        assert_eq!(StringMsg::decode(&big), Ok(msg));

        let unicode = StringMsg {
            data: "Greifer geöffnet ✓".to_owned(),
        };
        unicode.encode_into(&mut buf);
        assert_eq!(StringMsg::decode(&buf), Ok(unicode));

        let empty = StringMsg::default();
        empty.encode_into(&mut buf);
        assert_eq!(buf, [0, 1, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(StringMsg::decode(&buf), Ok(empty));
    }

    #[test]
    fn string_msg_names_follow_ros_conventions() {
        assert_eq!(StringMsg::ROS_TYPE_NAME, "std_msgs/msg/String");
        assert_eq!(StringMsg::DDS_TYPE_NAME, "std_msgs::msg::dds_::String_");
    }

    #[test]
    fn string_msg_without_its_nul_is_an_error_naming_the_field() {
        let bytes = [0, 1, 0, 0, 2, 0, 0, 0, b'h', b'i'];
        let err = StringMsg::decode(&bytes).unwrap_err();
        assert!(matches!(err, CdrError::MissingNul { .. }), "{err}");
        assert_eq!(err.field(), "data");
    }
}
