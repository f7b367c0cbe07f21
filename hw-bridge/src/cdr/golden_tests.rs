//! Golden vectors: guards byte-exact compatibility with another ROS 2 CDR implementation.
//!
//! `hw-bridge/tests/golden/ros2_cdr_vectors.json` holds CDR payloads serialized by rosbags (a
//! pure-Python ROS 2 bag library) together with the field values they encode. Each vector must
//! decode to those values and re-encode to the identical bytes; encoding the values directly must
//! give the same bytes too. Regenerate with `tests/golden/gen_ros2_cdr.py` (see its docstring).

use std::fmt::Debug;
use std::sync::OnceLock;

use serde_json::Value;

use super::msgs::builtin_interfaces::{Duration, Time};
use super::msgs::sensor_msgs::JointState;
use super::msgs::std_msgs::{
    Bool, Float64MultiArray, Header, MultiArrayDimension, MultiArrayLayout,
};
use super::msgs::trajectory_msgs::{JointTrajectory, JointTrajectoryPoint};
use super::{Endianness, RosMessage};
use crate::keys::{RosDistro, TypeHashProfile};

const VECTORS_JSON: &str = include_str!("../../tests/golden/ros2_cdr_vectors.json");

/// One golden vector.
pub(super) struct Case {
    pub name: String,
    pub ros_type: String,
    pub endianness: Endianness,
    pub bytes: Vec<u8>,
    pub value: Value,
}

fn document() -> Value {
    serde_json::from_str(VECTORS_JSON).expect("golden vector file is valid JSON")
}

fn from_hex(hex: &str) -> Vec<u8> {
    assert!(hex.len().is_multiple_of(2), "odd-length hex");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// All golden vectors, in file order (parsed once).
pub(super) fn cases() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(|| {
        document()["cases"]
            .as_array()
            .expect("`cases` is an array")
            .iter()
            .map(|case| Case {
                name: case["name"].as_str().expect("name").to_owned(),
                ros_type: case["type"].as_str().expect("type").to_owned(),
                endianness: match case["endianness"].as_str() {
                    Some("little") => Endianness::Little,
                    Some("big") => Endianness::Big,
                    other => panic!("bad endianness {other:?}"),
                },
                bytes: from_hex(case["cdr_hex"].as_str().expect("cdr_hex")),
                value: case["value"].clone(),
            })
            .collect()
    })
}

// ---- expected values from JSON -------------------------------------------------------------

fn f64_of(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().expect("finite number"),
        Value::String(s) if s == "NaN" => f64::NAN,
        Value::String(s) if s == "Infinity" => f64::INFINITY,
        Value::String(s) if s == "-Infinity" => f64::NEG_INFINITY,
        other => panic!("not a float: {other}"),
    }
}

fn f64s_of(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("float array")
        .iter()
        .map(f64_of)
        .collect()
}

fn strings_of(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("string array")
        .iter()
        .map(|s| s.as_str().expect("string").to_owned())
        .collect()
}

fn i32_of(v: &Value) -> i32 {
    i32::try_from(v.as_i64().expect("integer")).expect("fits i32")
}

fn u32_of(v: &Value) -> u32 {
    u32::try_from(v.as_u64().expect("unsigned integer")).expect("fits u32")
}

fn time_of(v: &Value) -> Time {
    Time {
        sec: i32_of(&v["sec"]),
        nanosec: u32_of(&v["nanosec"]),
    }
}

fn duration_of(v: &Value) -> Duration {
    Duration {
        sec: i32_of(&v["sec"]),
        nanosec: u32_of(&v["nanosec"]),
    }
}

fn header_of(v: &Value) -> Header {
    Header {
        stamp: time_of(&v["stamp"]),
        frame_id: v["frame_id"].as_str().expect("frame_id").to_owned(),
    }
}

fn bool_of(v: &Value) -> Bool {
    Bool {
        data: v["data"].as_bool().expect("bool"),
    }
}

fn joint_state_of(v: &Value) -> JointState {
    JointState {
        header: header_of(&v["header"]),
        name: strings_of(&v["name"]),
        position: f64s_of(&v["position"]),
        velocity: f64s_of(&v["velocity"]),
        effort: f64s_of(&v["effort"]),
    }
}

fn float64_multi_array_of(v: &Value) -> Float64MultiArray {
    let layout = &v["layout"];
    Float64MultiArray {
        layout: MultiArrayLayout {
            dim: layout["dim"]
                .as_array()
                .expect("dim")
                .iter()
                .map(|d| MultiArrayDimension {
                    label: d["label"].as_str().expect("label").to_owned(),
                    size: u32_of(&d["size"]),
                    stride: u32_of(&d["stride"]),
                })
                .collect(),
            data_offset: u32_of(&layout["data_offset"]),
        },
        data: f64s_of(&v["data"]),
    }
}

fn joint_trajectory_of(v: &Value) -> JointTrajectory {
    JointTrajectory {
        header: header_of(&v["header"]),
        joint_names: strings_of(&v["joint_names"]),
        points: v["points"]
            .as_array()
            .expect("points")
            .iter()
            .map(|p| JointTrajectoryPoint {
                positions: f64s_of(&p["positions"]),
                velocities: f64s_of(&p["velocities"]),
                accelerations: f64s_of(&p["accelerations"]),
                effort: f64s_of(&p["effort"]),
                time_from_start: duration_of(&p["time_from_start"]),
            })
            .collect(),
    }
}

// ---- checks --------------------------------------------------------------------------------

/// Decodes, compares, re-encodes; also decodes into `reused`, which still holds the previous
/// vector of the same type, to exercise storage reuse.
fn check<M: RosMessage + Debug>(case: &Case, expected: &M, reused: &mut M) {
    let name = &case.name;
    let decoded = M::decode(&case.bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    // Debug output compares floats exactly (shortest round-trip form, sign of zero included);
    // NaN payloads are covered by the byte comparisons below.
    assert_eq!(
        format!("{decoded:?}"),
        format!("{expected:?}"),
        "{name}: decoded value"
    );

    let mut buf = Vec::new();
    decoded.encode_into_with(&mut buf, case.endianness);
    assert_eq!(buf, case.bytes, "{name}: re-encoding the decoded value");

    expected.encode_into_with(&mut buf, case.endianness);
    assert_eq!(buf, case.bytes, "{name}: encoding the expected value");

    reused
        .decode_into(&case.bytes)
        .unwrap_or_else(|e| panic!("{name}: decode_into: {e}"));
    assert_eq!(
        format!("{reused:?}"),
        format!("{expected:?}"),
        "{name}: decode_into"
    );
}

#[derive(Default)]
struct Reused {
    bool_: Bool,
    header: Header,
    joint_state: JointState,
    float64_multi_array: Float64MultiArray,
    joint_trajectory: JointTrajectory,
}

#[test]
fn golden_vectors_decode_compare_and_reencode_identically() {
    let cases = cases();
    let mut reused = Reused::default();
    let mut checked = std::collections::BTreeMap::<&str, usize>::new();
    for case in cases {
        let v = &case.value;
        match case.ros_type.as_str() {
            Bool::ROS_TYPE_NAME => check(case, &bool_of(v), &mut reused.bool_),
            Header::ROS_TYPE_NAME => check(case, &header_of(v), &mut reused.header),
            JointState::ROS_TYPE_NAME => {
                check(case, &joint_state_of(v), &mut reused.joint_state);
            }
            Float64MultiArray::ROS_TYPE_NAME => check(
                case,
                &float64_multi_array_of(v),
                &mut reused.float64_multi_array,
            ),
            JointTrajectory::ROS_TYPE_NAME => {
                check(case, &joint_trajectory_of(v), &mut reused.joint_trajectory);
            }
            other => panic!("{}: no decoder for {other}", case.name),
        }
        *checked.entry(case.ros_type.as_str()).or_default() += 1;
    }
    // Every message type has vectors, little- and big-endian ones both exist.
    for ros_type in [
        Bool::ROS_TYPE_NAME,
        JointState::ROS_TYPE_NAME,
        Float64MultiArray::ROS_TYPE_NAME,
        JointTrajectory::ROS_TYPE_NAME,
    ] {
        assert!(
            checked.get(ros_type).copied().unwrap_or(0) >= 2,
            "{ros_type}"
        );
    }
    assert!(cases.iter().any(|c| c.endianness == Endianness::Big));
    assert!(cases.len() >= 20, "only {} golden vectors", cases.len());
}

#[test]
fn golden_joint_state_has_six_named_joints() {
    let case = cases()
        .iter()
        .find(|c| c.name == "joint_state_ur6")
        .expect("joint_state_ur6 vector");
    let msg = JointState::decode(&case.bytes).expect("decodes");
    assert_eq!(msg.name.len(), 6);
    assert_eq!(msg.name[0], "shoulder_pan_joint");
    assert_eq!(msg.position.len(), 6);
    assert_eq!(msg.header.frame_id, "base_link");
}

#[test]
fn builtin_jazzy_hashes_match_the_golden_generator() {
    let doc = document();
    let hashes = doc["type_hashes"].as_object().expect("type_hashes");
    assert_eq!(hashes.len(), 4);
    let profile = TypeHashProfile::new(RosDistro::Jazzy);
    for (ros_type, hash) in hashes {
        let builtin = profile.get(ros_type).expect("built-in hash");
        assert_eq!(
            builtin.to_string(),
            hash.as_str().expect("hash string"),
            "{ros_type}"
        );
    }
}
