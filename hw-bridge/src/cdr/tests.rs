//! Codec unit and property tests: malformed input gives located errors and never panics; encode
//! then decode is the identity.

use std::fmt::Debug;

use proptest::collection::vec;
use proptest::prelude::*;

use super::golden_tests::cases;
use super::msgs::builtin_interfaces::{Duration, Time};
use super::msgs::sensor_msgs::JointState;
use super::msgs::std_msgs::{
    Bool, Float64MultiArray, Header, MultiArrayDimension, MultiArrayLayout,
};
use super::msgs::trajectory_msgs::{JointTrajectory, JointTrajectoryPoint};
use super::{CdrError, Endianness, RosMessage};

fn encode<M: RosMessage>(msg: &M) -> Vec<u8> {
    let mut buf = Vec::new();
    msg.encode_into(&mut buf);
    buf
}

fn header(frame_id: &str) -> Header {
    Header {
        stamp: Time { sec: 1, nanosec: 2 },
        frame_id: frame_id.to_owned(),
    }
}

/// Decodes `bytes` as every message type; returns the errors. Asserts the properties every
/// error must have: an offset inside the input and a non-empty field path.
fn decode_as_every_type(bytes: &[u8]) -> Vec<CdrError> {
    fn one<M: RosMessage>(bytes: &[u8], errors: &mut Vec<CdrError>) {
        let mut reused = M::default();
        if let Err(e) = M::decode(bytes) {
            assert!(
                e.offset() <= bytes.len(),
                "{e} beyond {} bytes",
                bytes.len()
            );
            assert!(!e.field().is_empty(), "{e} has no field");
            assert!(e.to_string().contains(e.field()));
            errors.push(e);
        }
        let _ = reused.decode_into(bytes);
    }
    let mut errors = Vec::new();
    one::<Bool>(bytes, &mut errors);
    one::<Time>(bytes, &mut errors);
    one::<Duration>(bytes, &mut errors);
    one::<Header>(bytes, &mut errors);
    one::<JointState>(bytes, &mut errors);
    one::<MultiArrayDimension>(bytes, &mut errors);
    one::<MultiArrayLayout>(bytes, &mut errors);
    one::<Float64MultiArray>(bytes, &mut errors);
    one::<JointTrajectoryPoint>(bytes, &mut errors);
    one::<JointTrajectory>(bytes, &mut errors);
    errors
}

// ---- type names ----------------------------------------------------------------------------

fn assert_type_names<M: RosMessage>() {
    // `pkg/msg/Name` <-> `pkg::msg::dds_::Name_`
    let (package, rest) = M::ROS_TYPE_NAME.split_once("/msg/").expect("pkg/msg/Name");
    assert_eq!(M::DDS_TYPE_NAME, format!("{package}::msg::dds_::{rest}_"));
}

#[test]
fn dds_type_names_follow_the_ros_type_names() {
    assert_type_names::<Bool>();
    assert_type_names::<Time>();
    assert_type_names::<Duration>();
    assert_type_names::<Header>();
    assert_type_names::<JointState>();
    assert_type_names::<MultiArrayDimension>();
    assert_type_names::<MultiArrayLayout>();
    assert_type_names::<Float64MultiArray>();
    assert_type_names::<JointTrajectoryPoint>();
    assert_type_names::<JointTrajectory>();
    assert_eq!(
        JointState::DDS_TYPE_NAME,
        "sensor_msgs::msg::dds_::JointState_"
    );
}

// ---- encoding details ----------------------------------------------------------------------

#[test]
fn encode_into_clears_and_reuses_the_buffer() {
    let mut buf = vec![0xAA; 100];
    let capacity = buf.capacity();
    Bool { data: true }.encode_into(&mut buf);
    assert_eq!(buf, [0x00, 0x01, 0x00, 0x00, 0x01]);
    assert_eq!(buf.capacity(), capacity);
}

#[test]
fn big_endian_encoding_has_a_big_endian_header() {
    let mut buf = Vec::new();
    Time { sec: 1, nanosec: 2 }.encode_into_with(&mut buf, Endianness::Big);
    assert_eq!(buf, [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2]);
    assert_eq!(Time::decode(&buf), Ok(Time { sec: 1, nanosec: 2 }));
}

#[test]
fn alignment_counts_from_the_byte_after_the_header() {
    // frame_id "ab" ends at offset 15 (relative 11); the name count is padded to relative 12;
    // the first float64 lands on relative 24, not absolute 24.
    let msg = JointState {
        header: header("ab"),
        name: vec![],
        position: vec![1.0],
        ..JointState::default()
    };
    let bytes = encode(&msg);
    // header 4 | sec 4 | nanosec 4 | len 4 | "ab\0" 3 + pad 1 | name count 4 | position count 4
    // (relative 20) | pad 4 | 1.0 at relative 24 = absolute 28.
    assert_eq!(bytes[28..36], 1.0f64.to_le_bytes());
    assert_eq!(bytes.len(), 4 + 24 + 8 + 4 + 4);
}

// ---- malformed input -----------------------------------------------------------------------

#[test]
fn empty_input_is_a_truncated_header() {
    let err = Bool::decode(&[]).unwrap_err();
    assert_eq!(
        err,
        CdrError::UnexpectedEnd {
            field: "encapsulation".into(),
            offset: 0,
            needed: 4,
            remaining: 0
        }
    );
}

#[test]
fn xcdr2_encapsulation_is_rejected_clearly() {
    let err = Bool::decode(&[0x00, 0x07, 0x00, 0x00, 0x01]).unwrap_err();
    assert!(matches!(
        err,
        CdrError::UnsupportedEncapsulation {
            found: [0x00, 0x07],
            offset: 0,
            ..
        }
    ));
    assert!(err.to_string().contains("unsupported CDR encapsulation"));
}

#[test]
fn every_truncation_of_every_golden_vector_is_an_error() {
    for case in cases() {
        for len in 0..case.bytes.len() {
            let cut = &case.bytes[..len];
            // Every type may fail, none may panic or report an offset beyond the input.
            decode_as_every_type(cut);
            let failed = match case.ros_type.as_str() {
                Bool::ROS_TYPE_NAME => Bool::decode(cut).is_err(),
                Header::ROS_TYPE_NAME => Header::decode(cut).is_err(),
                JointState::ROS_TYPE_NAME => JointState::decode(cut).is_err(),
                Float64MultiArray::ROS_TYPE_NAME => Float64MultiArray::decode(cut).is_err(),
                JointTrajectory::ROS_TYPE_NAME => JointTrajectory::decode(cut).is_err(),
                other => panic!("unknown type {other}"),
            };
            assert!(failed, "{} cut to {len} bytes still decodes", case.name);
        }
    }
}

#[test]
fn huge_sequence_count_is_rejected_before_allocating() {
    // Empty frame_id: name count at absolute 20, position count at 24.
    let mut bytes = encode(&JointState {
        header: header(""),
        ..JointState::default()
    });
    bytes[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
    let err = JointState::decode(&bytes).unwrap_err();
    assert!(
        matches!(
            &err,
            CdrError::LengthExceedsInput { field, offset: 20, length: u32::MAX, .. } if field == "name"
        ),
        "{err:?}"
    );

    let mut bytes = encode(&JointState {
        header: header(""),
        ..JointState::default()
    });
    bytes[24..28].copy_from_slice(&0x1000_0000u32.to_le_bytes());
    let err = JointState::decode(&bytes).unwrap_err();
    assert_eq!(err.field(), "position");
    assert_eq!(err.offset(), 24);
}

#[test]
fn huge_nested_sequence_count_names_the_nested_field() {
    let mut bytes = encode(&Float64MultiArray::default());
    // layout.dim count is the first field.
    bytes[4..8].copy_from_slice(&0x0FFF_FFFFu32.to_le_bytes());
    let err = Float64MultiArray::decode(&bytes).unwrap_err();
    assert_eq!(err.field(), "layout.dim");
    assert_eq!(err.offset(), 4);
}

#[test]
fn errors_inside_sequence_elements_name_the_element() {
    // Empty frame_id and joint_names: points count at 24, point 0 at 28..52, point 1 at 52.
    let trajectory = JointTrajectory {
        header: header(""),
        joint_names: vec![],
        points: vec![JointTrajectoryPoint::default(); 2],
    };
    let mut bytes = encode(&trajectory);
    // encapsulation 4 | header 16 | joint_names count 4 | points count 4 | 2 points x 24.
    assert_eq!(bytes.len(), 4 + 16 + 4 + 4 + 2 * 24);
    bytes[52..56].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    let err = JointTrajectory::decode(&bytes).unwrap_err();
    assert_eq!(err.field(), "points[1].positions");
    assert_eq!(err.offset(), 52);

    // Point 1 with two positions: count at 52, padding to 60, values 60..76, three empty counts
    // 76..88, time_from_start 88..96. Cut inside its nanosec.
    let trajectory = JointTrajectory {
        points: vec![
            JointTrajectoryPoint::default(),
            JointTrajectoryPoint {
                positions: vec![1.0, 2.0],
                ..JointTrajectoryPoint::default()
            },
        ],
        ..trajectory
    };
    let bytes = encode(&trajectory);
    assert_eq!(bytes.len(), 96);
    let err = JointTrajectory::decode(&bytes[..94]).unwrap_err();
    assert_eq!(err.field(), "points[1].time_from_start.nanosec");
    assert_eq!(err.offset(), 92);

    // Cut so far that the point count cannot fit: rejected at the count, before any element.
    let err = JointTrajectory::decode(&bytes[..60]).unwrap_err();
    assert_eq!(err.field(), "points");
    assert_eq!(err.offset(), 24);
}

#[test]
fn string_without_nul_is_rejected() {
    // frame_id "abc": length at 12, bytes 16..20 = "abc\0".
    let mut bytes = encode(&header("abc"));
    bytes[19] = b'x';
    let err = Header::decode(&bytes).unwrap_err();
    assert_eq!(
        err,
        CdrError::MissingNul {
            field: "frame_id".into(),
            offset: 19
        }
    );
    let err = err.within("header");
    assert_eq!(err.field(), "header.frame_id");
}

#[test]
fn string_element_without_nul_names_the_element() {
    let msg = JointState {
        header: header(""),
        name: vec!["a".into(), "b".into()],
        ..JointState::default()
    };
    let mut bytes = encode(&msg);
    // name count 20, "a": len 24, bytes 28..30 + pad, "b": len 32, bytes 36..38.
    assert_eq!(&bytes[36..38], b"b\0");
    bytes[37] = b'!';
    let err = JointState::decode(&bytes).unwrap_err();
    assert_eq!(err.field(), "name[1]");
    assert_eq!(err.offset(), 37);
}

#[test]
fn invalid_utf8_is_rejected_with_its_offset() {
    // frame_id "abc" at 16..20; break the "b".
    let mut bytes = encode(&header("abc"));
    bytes[17] = 0xFF;
    let err = Header::decode(&bytes).unwrap_err();
    assert!(
        matches!(err, CdrError::InvalidUtf8 { offset: 17, .. }),
        "{err:?}"
    );
    assert_eq!(err.field(), "frame_id");

    let mut bytes = encode(&JointState {
        header: header("abc"),
        ..JointState::default()
    });
    bytes[17] = 0xFF;
    let err = JointState::decode(&bytes).unwrap_err();
    assert_eq!(err.field(), "header.frame_id");
    assert_eq!(err.offset(), 17);
}

#[test]
fn string_length_beyond_the_input_is_rejected() {
    let mut bytes = encode(&header("abc"));
    bytes[12..16].copy_from_slice(&1000u32.to_le_bytes());
    let err = Header::decode(&bytes).unwrap_err();
    assert!(
        matches!(
            &err,
            CdrError::LengthExceedsInput { field, offset: 12, length: 1000, remaining: 4, .. }
                if field == "frame_id"
        ),
        "{err:?}"
    );
}

#[test]
fn zero_length_string_reads_as_empty() {
    // Some serializers write "" as length 0 with no terminator; Fast-CDR reads it as "".
    let bytes = [0, 1, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(Header::decode(&bytes), Ok(header("")));
}

#[test]
fn boolean_bytes_other_than_0_and_1_are_rejected() {
    let err = Bool::decode(&[0, 1, 0, 0, 2]).unwrap_err();
    assert_eq!(
        err,
        CdrError::InvalidBool {
            field: "data".into(),
            offset: 4,
            value: 2
        }
    );
}

#[test]
fn up_to_three_trailing_padding_bytes_are_accepted() {
    assert_eq!(
        Bool::decode(&[0, 1, 0, 0, 1, 0, 0, 0]),
        Ok(Bool { data: true })
    );
    let err = Bool::decode(&[0, 1, 0, 0, 1, 0, 0, 0, 0]).unwrap_err();
    assert_eq!(
        err,
        CdrError::TrailingBytes {
            field: "std_msgs/msg/Bool".into(),
            offset: 5,
            count: 4
        }
    );
}

#[test]
fn a_joint_state_is_not_a_float64_multi_array() {
    let bytes = encode(&JointState {
        header: header("base_link"),
        name: vec!["j1".into()],
        position: vec![0.5],
        velocity: vec![0.0],
        effort: vec![1.0],
    });
    assert!(Float64MultiArray::decode(&bytes).is_err());
}

#[test]
fn error_messages_name_field_and_offset() {
    let err = Bool::decode(&[0, 1, 0, 0]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "field `data` at byte 4: needs 1 bytes but only 0 remain"
    );
}

// ---- properties ----------------------------------------------------------------------------

fn arb_string() -> impl Strategy<Value = String> {
    // Any Unicode scalar, NUL included, so multi-byte lengths and odd paddings are exercised.
    proptest::string::string_regex("(?s).{0,12}").expect("valid regex")
}

fn arb_f64s() -> impl Strategy<Value = Vec<f64>> {
    vec(any::<f64>(), 0..9)
}

fn arb_time() -> impl Strategy<Value = Time> {
    (any::<i32>(), any::<u32>()).prop_map(|(sec, nanosec)| Time { sec, nanosec })
}

fn arb_header() -> impl Strategy<Value = Header> {
    (arb_time(), arb_string()).prop_map(|(stamp, frame_id)| Header { stamp, frame_id })
}

fn arb_joint_state() -> impl Strategy<Value = JointState> {
    (
        arb_header(),
        vec(arb_string(), 0..8),
        arb_f64s(),
        arb_f64s(),
        arb_f64s(),
    )
        .prop_map(|(header, name, position, velocity, effort)| JointState {
            header,
            name,
            position,
            velocity,
            effort,
        })
}

fn arb_float64_multi_array() -> impl Strategy<Value = Float64MultiArray> {
    let dim = (arb_string(), any::<u32>(), any::<u32>()).prop_map(|(label, size, stride)| {
        MultiArrayDimension {
            label,
            size,
            stride,
        }
    });
    (vec(dim, 0..4), any::<u32>(), arb_f64s()).prop_map(|(dim, data_offset, data)| {
        Float64MultiArray {
            layout: MultiArrayLayout { dim, data_offset },
            data,
        }
    })
}

fn arb_joint_trajectory() -> impl Strategy<Value = JointTrajectory> {
    let point = (
        arb_f64s(),
        arb_f64s(),
        arb_f64s(),
        arb_f64s(),
        any::<i32>(),
        any::<u32>(),
    )
        .prop_map(
            |(positions, velocities, accelerations, effort, sec, nanosec)| JointTrajectoryPoint {
                positions,
                velocities,
                accelerations,
                effort,
                time_from_start: Duration { sec, nanosec },
            },
        );
    (arb_header(), vec(arb_string(), 0..7), vec(point, 0..5)).prop_map(
        |(header, joint_names, points)| JointTrajectory {
            header,
            joint_names,
            points,
        },
    )
}

fn arb_endianness() -> impl Strategy<Value = Endianness> {
    prop_oneof![Just(Endianness::Little), Just(Endianness::Big)]
}

/// encode -> decode gives the original (compared through `Debug`, which is exact for floats
/// except NaN payloads) and re-encodes to the same bytes (which covers NaN payloads); decoding
/// into a reused, non-empty message gives the same result.
fn assert_round_trip<M: RosMessage + Debug>(
    msg: &M,
    endianness: Endianness,
    reused: &mut M,
) -> Result<(), TestCaseError> {
    let mut bytes = Vec::new();
    msg.encode_into_with(&mut bytes, endianness);
    let decoded = M::decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(format!("{decoded:?}"), format!("{msg:?}"));
    let mut again = Vec::new();
    decoded.encode_into_with(&mut again, endianness);
    prop_assert_eq!(&again, &bytes);
    reused
        .decode_into(&bytes)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(format!("{reused:?}"), format!("{msg:?}"));
    Ok(())
}

proptest! {
    #[test]
    fn joint_state_round_trips(
        msg in arb_joint_state(),
        mut reused in arb_joint_state(),
        endianness in arb_endianness(),
    ) {
        assert_round_trip(&msg, endianness, &mut reused)?;
    }

    #[test]
    fn float64_multi_array_round_trips(
        msg in arb_float64_multi_array(),
        mut reused in arb_float64_multi_array(),
        endianness in arb_endianness(),
    ) {
        assert_round_trip(&msg, endianness, &mut reused)?;
    }

    #[test]
    fn joint_trajectory_round_trips(
        msg in arb_joint_trajectory(),
        mut reused in arb_joint_trajectory(),
        endianness in arb_endianness(),
    ) {
        assert_round_trip(&msg, endianness, &mut reused)?;
    }

    #[test]
    fn bool_and_header_round_trip(
        data in any::<bool>(),
        header in arb_header(),
        endianness in arb_endianness(),
    ) {
        assert_round_trip(&Bool { data }, endianness, &mut Bool::default())?;
        assert_round_trip(&header, endianness, &mut Header::default())?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..256)) {
        decode_as_every_type(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_header_never_panic(
        big_endian in any::<bool>(),
        body in vec(any::<u8>(), 0..256),
    ) {
        let mut bytes = vec![0, u8::from(!big_endian), 0, 0];
        bytes.extend_from_slice(&body);
        decode_as_every_type(&bytes);
    }

    #[test]
    fn corrupted_golden_vectors_never_panic(
        case_index in any::<prop::sample::Index>(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let all = cases();
        let mut bytes = all[case_index.index(all.len())].bytes.clone();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        decode_as_every_type(&bytes);
        let len = cut.index(bytes.len() + 1);
        decode_as_every_type(&bytes[..len]);
    }
}
