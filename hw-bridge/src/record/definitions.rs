//! The `.msg` definitions of the messages the bridge speaks, and the concatenated schema text
//! rosbag2 stores for each type in an MCAP file.
//!
//! # The concatenated format
//! rosbag2 (`rosbag2_cpp::LocalMessageDefinitionSource::get_full_text`, formerly
//! `rosbag2_storage_mcap`'s `MessageDefinitionCache`) writes, as the schema data of a channel,
//! the verbatim `.msg` file of the type (comments and all), then for every dependency not yet
//! written a newline, a line of 80 `=`, a line `MSG: <pkg>/<Type>` and that dependency's own full
//! text, depth first. A type's dependencies are the non-primitive field types found in its text,
//! as written there (`std_msgs/Header`) or prefixed with the type's package when written bare
//! (`JointTrajectoryPoint` in `trajectory_msgs` gives `trajectory_msgs/JointTrajectoryPoint`),
//! visited in sorted order. [`full_text`] reproduces that algorithm over the table below.
//!
//! # Which texts
//! The `.msg` files as installed by ROS 2 Jazzy: `common_interfaces` 5.3 (`std_msgs`,
//! `sensor_msgs`, `trajectory_msgs`) and `rcl_interfaces` 2.0.3 (`builtin_interfaces`, whose
//! `Time` and `Duration` comments were reworded in 2025, rcl_interfaces#176, backported to Jazzy
//! in 2.0.3; the reworded `nanosec` comment line ends in a space, kept here). Comments differ
//! between distributions and patch releases; they change neither decoding nor the type hash, so
//! a reader must never compare them byte for byte.

use std::collections::BTreeSet;

use crate::cdr::RosMessage;

/// One message type's `.msg` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgDefinition {
    /// The ROS 2 interface name, `pkg/msg/Type`.
    pub ros_type: &'static str,
    /// The verbatim file contents, final newline included.
    pub text: &'static str,
}

const TIME: &str = concat!(
    "# This message communicates ROS Time defined here:\n",
    "# https://design.ros2.org/articles/clock_and_time.html\n",
    "\n",
    "# The seconds component, valid over all int32 values.\n",
    "int32 sec\n",
    "\n",
    "# The nanoseconds component, valid in the range [0, 1e9), to be added to the seconds component. \n",
    "# e.g.\n",
    "# The time -1.7 seconds is represented as {sec: -2, nanosec: 3e8}\n",
    "# The time 1.7 seconds is represented as {sec: 1, nanosec: 7e8}\n",
    "uint32 nanosec\n",
);

const DURATION: &str = concat!(
    "# Duration defines a period between two time points.\n",
    "# Messages of this datatype are of ROS Time following this design:\n",
    "# https://design.ros2.org/articles/clock_and_time.html\n",
    "\n",
    "# The seconds component, valid over all int32 values.\n",
    "int32 sec\n",
    "\n",
    "# The nanoseconds component, valid in the range [0, 1e9), to be added to the seconds component. \n",
    "# e.g.\n",
    "# The duration -1.7 seconds is represented as {sec: -2, nanosec: 3e8}\n",
    "# The duration 1.7 seconds is represented as {sec: 1, nanosec: 7e8}\n",
    "uint32 nanosec\n",
);

const HEADER: &str = concat!(
    "# Standard metadata for higher-level stamped data types.\n",
    "# This is generally used to communicate timestamped data\n",
    "# in a particular coordinate frame.\n",
    "\n",
    "# Two-integer timestamp that is expressed as seconds and nanoseconds.\n",
    "builtin_interfaces/Time stamp\n",
    "\n",
    "# Transform frame with which this data is associated.\n",
    "string frame_id\n",
);

/// The deprecation note every `std_msgs` example type starts with (Jazzy wording).
macro_rules! std_msgs_example_preamble {
    () => {
        concat!(
            "# This was originally provided as an example message.\n",
            "# It is deprecated as of Foxy\n",
            "# It is recommended to create your own semantically meaningful message.\n",
            "# However if you would like to continue using this please use the equivalent in example_msgs.\n",
            "\n",
        )
    };
}

const BOOL: &str = concat!(std_msgs_example_preamble!(), "bool data\n");

const STRING: &str = concat!(std_msgs_example_preamble!(), "string data\n");

const MULTI_ARRAY_DIMENSION: &str = concat!(
    std_msgs_example_preamble!(),
    "string label   # label of given dimension\n",
    "uint32 size    # size of given dimension (in type units)\n",
    "uint32 stride  # stride of given dimension\n",
);

const MULTI_ARRAY_LAYOUT: &str = concat!(
    std_msgs_example_preamble!(),
    "# The multiarray declares a generic multi-dimensional array of a\n",
    "# particular data type.  Dimensions are ordered from outer most\n",
    "# to inner most.\n",
    "#\n",
    "# Accessors should ALWAYS be written in terms of dimension stride\n",
    "# and specified outer-most dimension first.\n",
    "#\n",
    "# multiarray(i,j,k) = data[data_offset + dim_stride[1]*i + dim_stride[2]*j + k]\n",
    "#\n",
    "# A standard, 3-channel 640x480 image with interleaved color channels\n",
    "# would be specified as:\n",
    "#\n",
    "# dim[0].label  = \"height\"\n",
    "# dim[0].size   = 480\n",
    "# dim[0].stride = 3*640*480 = 921600  (note dim[0] stride is just size of image)\n",
    "# dim[1].label  = \"width\"\n",
    "# dim[1].size   = 640\n",
    "# dim[1].stride = 3*640 = 1920\n",
    "# dim[2].label  = \"channel\"\n",
    "# dim[2].size   = 3\n",
    "# dim[2].stride = 3\n",
    "#\n",
    "# multiarray(i,j,k) refers to the ith row, jth column, and kth channel.\n",
    "\n",
    "MultiArrayDimension[] dim # Array of dimension properties\n",
    "uint32 data_offset        # padding bytes at front of data\n",
);

const FLOAT64_MULTI_ARRAY: &str = concat!(
    std_msgs_example_preamble!(),
    "# Please look at the MultiArrayLayout message definition for\n",
    "# documentation on all multiarrays.\n",
    "\n",
    "MultiArrayLayout  layout        # specification of data layout\n",
    "float64[]         data          # array of data\n",
);

const JOINT_STATE: &str = concat!(
    "# This is a message that holds data to describe the state of a set of torque controlled joints.\n",
    "#\n",
    "# The state of each joint (revolute or prismatic) is defined by:\n",
    "#  * the position of the joint (rad or m),\n",
    "#  * the velocity of the joint (rad/s or m/s) and\n",
    "#  * the effort that is applied in the joint (Nm or N).\n",
    "#\n",
    "# Each joint is uniquely identified by its name\n",
    "# The header specifies the time at which the joint states were recorded. All the joint states\n",
    "# in one message have to be recorded at the same time.\n",
    "#\n",
    "# This message consists of a multiple arrays, one for each part of the joint state.\n",
    "# The goal is to make each of the fields optional. When e.g. your joints have no\n",
    "# effort associated with them, you can leave the effort array empty.\n",
    "#\n",
    "# All arrays in this message should have the same size, or be empty.\n",
    "# This is the only way to uniquely associate the joint name with the correct\n",
    "# states.\n",
    "\n",
    "std_msgs/Header header\n",
    "\n",
    "string[] name\n",
    "float64[] position\n",
    "float64[] velocity\n",
    "float64[] effort\n",
);

const JOINT_TRAJECTORY: &str = concat!(
    "# The header is used to specify the coordinate frame and the reference time for\n",
    "# the trajectory durations\n",
    "std_msgs/Header header\n",
    "\n",
    "# The names of the active joints in each trajectory point. These names are\n",
    "# ordered and must correspond to the values in each trajectory point.\n",
    "string[] joint_names\n",
    "\n",
    "# Array of trajectory points, which describe the positions, velocities,\n",
    "# accelerations and/or efforts of the joints at each time point.\n",
    "JointTrajectoryPoint[] points\n",
);

const JOINT_TRAJECTORY_POINT: &str = concat!(
    "# Each trajectory point specifies either positions[, velocities[, accelerations]]\n",
    "# or positions[, effort] for the trajectory to be executed.\n",
    "# All specified values are in the same order as the joint names in JointTrajectory.msg.\n",
    "\n",
    "# Single DOF joint positions for each joint relative to their \"0\" position.\n",
    "# The units depend on the specific joint type: radians for revolute or\n",
    "# continuous joints, and meters for prismatic joints.\n",
    "float64[] positions\n",
    "\n",
    "# The rate of change in position of each joint. Units are joint type dependent.\n",
    "# Radians/second for revolute or continuous joints, and meters/second for\n",
    "# prismatic joints.\n",
    "float64[] velocities\n",
    "\n",
    "# Rate of change in velocity of each joint. Units are joint type dependent.\n",
    "# Radians/second^2 for revolute or continuous joints, and meters/second^2 for\n",
    "# prismatic joints.\n",
    "float64[] accelerations\n",
    "\n",
    "# The torque or the force to be applied at each joint. For revolute/continuous\n",
    "# joints effort denotes a torque in newton-meters. For prismatic joints, effort\n",
    "# denotes a force in newtons.\n",
    "float64[] effort\n",
    "\n",
    "# Desired time from the trajectory start to arrive at this trajectory point.\n",
    "builtin_interfaces/Duration time_from_start\n",
);

/// Every definition this crate knows, one per message type of [`crate::msgs`].
pub const DEFINITIONS: &[MsgDefinition] = &[
    MsgDefinition {
        ros_type: "builtin_interfaces/msg/Time",
        text: TIME,
    },
    MsgDefinition {
        ros_type: "builtin_interfaces/msg/Duration",
        text: DURATION,
    },
    MsgDefinition {
        ros_type: "std_msgs/msg/Header",
        text: HEADER,
    },
    MsgDefinition {
        ros_type: "std_msgs/msg/Bool",
        text: BOOL,
    },
    MsgDefinition {
        ros_type: "std_msgs/msg/String",
        text: STRING,
    },
    MsgDefinition {
        ros_type: "std_msgs/msg/MultiArrayDimension",
        text: MULTI_ARRAY_DIMENSION,
    },
    MsgDefinition {
        ros_type: "std_msgs/msg/MultiArrayLayout",
        text: MULTI_ARRAY_LAYOUT,
    },
    MsgDefinition {
        ros_type: "std_msgs/msg/Float64MultiArray",
        text: FLOAT64_MULTI_ARRAY,
    },
    MsgDefinition {
        ros_type: "sensor_msgs/msg/JointState",
        text: JOINT_STATE,
    },
    MsgDefinition {
        ros_type: "trajectory_msgs/msg/JointTrajectory",
        text: JOINT_TRAJECTORY,
    },
    MsgDefinition {
        ros_type: "trajectory_msgs/msg/JointTrajectoryPoint",
        text: JOINT_TRAJECTORY_POINT,
    },
];

/// The primitive field types of the `.msg` format (as rosbag2 lists them): no dependency.
const PRIMITIVE_TYPES: [&str; 14] = [
    "bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32",
    "uint32", "int64", "uint64", "string",
];

/// Splits `pkg/msg/Type` or `pkg/Type` into package and type name.
fn split_type_name(name: &str) -> Option<(&str, &str)> {
    let mut parts = name.split('/');
    let package = parts.next()?;
    let second = parts.next()?;
    let (namespace, type_name) = match parts.next() {
        Some(third) => (Some(second), third),
        None => (None, second),
    };
    let valid = |s: &str| {
        s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if parts.next().is_some()
        || !valid(package)
        || !valid(type_name)
        || namespace.is_some_and(|n| n != "msg")
    {
        return None;
    }
    Some((package, type_name))
}

/// `pkg/Type` or `pkg/msg/Type` as the canonical `pkg/msg/Type`; `None` if it is neither.
pub fn canonical_type_name(name: &str) -> Option<String> {
    split_type_name(name).map(|(package, type_name)| format!("{package}/msg/{type_name}"))
}

/// The verbatim `.msg` text of `ros_type` (`pkg/msg/Type` or `pkg/Type`), if this crate knows it.
pub fn definition(ros_type: &str) -> Option<&'static str> {
    let canonical = canonical_type_name(ros_type)?;
    DEFINITIONS
        .iter()
        .find(|d| d.ros_type == canonical)
        .map(|d| d.text)
}

/// The non-primitive field types of a `.msg` text, as rosbag2 finds them: at the start of each
/// line (after whitespace) a type token of `[A-Za-z0-9_/]`, an optional `[...]` array suffix and
/// whitespace; bare names get `package/` in front. Comment lines never match (`#` is not a type
/// character). Sorted, as rosbag2's `std::set`.
pub fn dependencies(text: &str, package: &str) -> BTreeSet<String> {
    let mut deps = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim_start();
        let token_len = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '/'))
            .unwrap_or(line.len());
        if token_len == 0 {
            continue;
        }
        let (token, mut rest) = line.split_at(token_len);
        if let Some(array) = rest.strip_prefix('[') {
            match array.find(']') {
                Some(end) => rest = &array[end + 1..],
                None => continue,
            }
        }
        if !rest.starts_with(char::is_whitespace) || PRIMITIVE_TYPES.contains(&token) {
            continue;
        }
        if token.contains('/') {
            deps.insert(token.to_owned());
        } else {
            deps.insert(format!("{package}/{token}"));
        }
    }
    deps
}

/// The 80 `=` that separate the sections of a concatenated definition.
pub const SECTION_SEPARATOR: &str =
    "================================================================================";

/// The schema text rosbag2 stores for `ros_type`: its `.msg` text followed by a section for each
/// dependency (see the module docs). `None` if the type or one of its dependencies is unknown.
pub fn full_text(ros_type: &str) -> Option<String> {
    fn append(
        ros_type: &str,
        seen: &mut BTreeSet<String>,
        out: &mut String,
        depth: u32,
    ) -> Option<()> {
        // rosbag2 gives up at 50 levels; the table has no cycles, so this only guards edits.
        if depth == 0 {
            return None;
        }
        let text = definition(ros_type)?;
        let (package, _) = split_type_name(ros_type)?;
        out.push_str(text);
        for dep in dependencies(text, package) {
            if seen.insert(dep.clone()) {
                out.push('\n');
                out.push_str(SECTION_SEPARATOR);
                out.push_str("\nMSG: ");
                out.push_str(&dep);
                out.push('\n');
                append(&dep, seen, out, depth - 1)?;
            }
        }
        Some(())
    }
    let mut out = String::new();
    append(ros_type, &mut BTreeSet::new(), &mut out, 50)?;
    Some(out)
}

/// [`full_text`] of message type `M`.
pub fn full_text_of<M: RosMessage>() -> Option<String> {
    full_text(M::ROS_TYPE_NAME)
}
