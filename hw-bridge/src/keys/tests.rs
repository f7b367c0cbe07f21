//! Key expression, name, hash, token and attachment tests. Expected strings are written out in
//! full from the rmw_zenoh formats, so a formatting change cannot pass silently.

use proptest::prelude::*;

use super::*;
use crate::cdr::RosMessage;
use crate::msgs::sensor_msgs::JointState;
use crate::msgs::std_msgs::{Bool, Float64MultiArray, StringMsg};
use crate::msgs::trajectory_msgs::JointTrajectory;

const JOINT_STATE_HASH: &str =
    "RIHS01_a13ee3a330e346c9d87b5aa18d24e11690752bd33a0350f11c5882bc9179260e";

fn topic(name: &str) -> TopicName {
    TopicName::new(name).expect("valid topic")
}

fn domain(id: u32) -> DomainId {
    DomainId::new(id).expect("valid domain")
}

// ---- data key expressions ------------------------------------------------------------------

#[test]
fn data_key_expr_strips_the_leading_slash_and_keeps_inner_ones() {
    let hash: TypeHash = JOINT_STATE_HASH.parse().unwrap();
    assert_eq!(
        data_key_expr(
            domain(0),
            &topic("/arm/joint_states"),
            JointState::DDS_TYPE_NAME,
            &hash
        ),
        format!("0/arm/joint_states/sensor_msgs::msg::dds_::JointState_/{JOINT_STATE_HASH}")
    );
    assert_eq!(
        data_key_expr(
            domain(42),
            &topic("/chatter"),
            "std_msgs::msg::dds_::String_",
            &TypeHash::NotSupported
        ),
        "42/chatter/std_msgs::msg::dds_::String_/TypeHashNotSupported"
    );
}

#[test]
fn strip_slashes_removes_one_slash_at_each_end() {
    assert_eq!(strip_slashes("/a/b/"), "a/b");
    assert_eq!(strip_slashes("/a/b"), "a/b");
    assert_eq!(strip_slashes("a/b"), "a/b");
}

#[test]
fn any_hash_key_expr_has_a_star_in_the_hash_position() {
    assert_eq!(
        data_key_expr_any_hash(
            domain(0),
            &topic("/forward_position_controller/commands"),
            Float64MultiArray::DDS_TYPE_NAME
        ),
        "0/forward_position_controller/commands/std_msgs::msg::dds_::Float64MultiArray_/*"
    );
}

// ---- names ---------------------------------------------------------------------------------

#[test]
fn valid_topic_names() {
    for name in [
        "/joint_states",
        "/arm/joint_states",
        "/joint_trajectory_controller/joint_trajectory",
        "/a1/_b/C_2",
    ] {
        assert_eq!(topic(name).as_str(), name);
    }
}

#[test]
fn invalid_topic_names_say_why() {
    use KeyError::*;
    let err = |name: &str| TopicName::new(name).unwrap_err();
    assert!(matches!(
        err(""),
        EmptyName {
            kind: NameKind::Topic
        }
    ));
    assert!(matches!(
        err("/"),
        EmptyName {
            kind: NameKind::Topic
        }
    ));
    assert!(matches!(err("joint_states"), NotAbsolute { .. }));
    assert!(matches!(err("/joint_states/"), EndsWithSlash { .. }));
    assert!(matches!(
        err("/arm//joint_states"),
        RepeatedSlash { index: 5, .. }
    ));
    assert!(matches!(
        err("/arm/joint-states"),
        InvalidCharacter {
            character: '-',
            index: 10,
            ..
        }
    ));
    assert!(matches!(err("~/cmd"), NotAbsolute { .. }));
    assert!(matches!(
        err("/{node}/cmd"),
        InvalidCharacter { character: '{', .. }
    ));
    assert!(matches!(
        err("/arm/é"),
        InvalidCharacter {
            character: 'é', ..
        }
    ));
    assert!(matches!(
        err("/arm/2nd"),
        TokenStartsWithDigit { index: 5, .. }
    ));
    assert!(matches!(
        err("/1arm"),
        TokenStartsWithDigit { index: 1, .. }
    ));
    let long = format!("/{}", "a".repeat(247));
    assert!(matches!(
        err(&long),
        NameTooLong {
            len: 248,
            max: 247,
            ..
        }
    ));
    assert!(TopicName::new(&long[..247]).is_ok());

    assert_eq!(
        err("/arm/joint-states").to_string(),
        "topic name `/arm/joint-states` has the character '-' at byte 10; allowed are A-Z, \
         a-z, 0-9, `_` and `/` (expand `~` and `{}` substitutions first)"
    );
}

#[test]
fn namespaces_allow_the_root_and_follow_topic_rules() {
    assert_eq!(Namespace::new("/").unwrap(), Namespace::root());
    assert_eq!(Namespace::default().as_str(), "/");
    assert!(Namespace::new("/site/arm").is_ok());
    assert!(matches!(
        Namespace::new("arm"),
        Err(KeyError::NotAbsolute {
            kind: NameKind::Namespace,
            ..
        })
    ));
    assert!(matches!(
        Namespace::new("/arm/"),
        Err(KeyError::EndsWithSlash { .. })
    ));
    assert!(matches!(
        Namespace::new(""),
        Err(KeyError::EmptyName { .. })
    ));
}

#[test]
fn node_names_have_no_slashes_and_no_leading_digit() {
    assert!(NodeName::new("rivet_bridge").is_ok());
    assert!(matches!(
        NodeName::new("rivet/bridge"),
        Err(KeyError::InvalidCharacter {
            character: '/',
            kind: NameKind::Node,
            ..
        })
    ));
    assert!(matches!(
        NodeName::new("2bridge"),
        Err(KeyError::TokenStartsWithDigit { index: 0, .. })
    ));
    assert!(matches!(NodeName::new(""), Err(KeyError::EmptyName { .. })));
    assert!(
        !NodeName::new("a-b")
            .unwrap_err()
            .to_string()
            .contains("and `/`")
    );
}

#[test]
fn domain_ids_are_0_to_232() {
    assert_eq!(domain(0).get(), 0);
    assert_eq!("232".parse::<DomainId>().unwrap().get(), 232);
    assert_eq!(
        DomainId::new(233),
        Err(KeyError::DomainIdOutOfRange {
            value: 233,
            max: 232
        })
    );
    assert!(matches!(
        "-1".parse::<DomainId>(),
        Err(KeyError::DomainIdNotANumber { .. })
    ));
    assert!(matches!(
        "".parse::<DomainId>(),
        Err(KeyError::DomainIdNotANumber { .. })
    ));
}

#[test]
fn zids_are_lowercase_hex() {
    assert!(Zid::new("a1b2c3d4e5f60718293a4b5c6d7e8f90").is_ok());
    assert!(Zid::new("1").is_ok());
    for bad in ["", "A1", "xyz", "a1b2c3d4e5f60718293a4b5c6d7e8f901", "a/b"] {
        assert!(
            matches!(Zid::new(bad), Err(KeyError::InvalidZid { .. })),
            "{bad}"
        );
    }
}

// ---- type hashes ---------------------------------------------------------------------------

#[test]
fn type_hashes_parse_and_print() {
    let hash: TypeHash = JOINT_STATE_HASH.parse().unwrap();
    assert_eq!(hash.to_string(), JOINT_STATE_HASH);
    let upper = JOINT_STATE_HASH.replace("a13ee3", "A13EE3");
    assert_eq!(upper.parse::<TypeHash>().unwrap(), hash);
    assert_eq!(
        "TypeHashNotSupported".parse::<TypeHash>(),
        Ok(TypeHash::NotSupported)
    );
    assert_eq!(TypeHash::NotSupported.to_string(), "TypeHashNotSupported");
    for bad in [
        "",
        "RIHS01_",
        "RIHS02_a13ee3a330e346c9d87b5aa18d24e11690752bd33a0350f11c5882bc9179260e",
        "RIHS01_a13ee3a330e346c9d87b5aa18d24e11690752bd33a0350f11c5882bc9179260",
        "RIHS01_a13ee3a330e346c9d87b5aa18d24e11690752bd33a0350f11c5882bc9179260e0",
        "RIHS01_g13ee3a330e346c9d87b5aa18d24e11690752bd33a0350f11c5882bc9179260e",
        "RIHS01_a13ee3a330e346c9d87b5aa18d24e11690752bd33a0350f11c5882bc917926é",
    ] {
        assert!(
            matches!(
                bad.parse::<TypeHash>(),
                Err(KeyError::InvalidTypeHash { .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn jazzy_profile_knows_the_bridge_messages() {
    let profile = TypeHashProfile::new(RosDistro::Jazzy);
    assert_eq!(
        profile.hash_of::<JointState>().unwrap().to_string(),
        JOINT_STATE_HASH
    );
    assert_eq!(
        profile.hash_of::<JointTrajectory>().unwrap().to_string(),
        "RIHS01_179b33eba59d676f6d967ac71fe35e7ca2f64b2f3928f4a018cec115e213796e"
    );
    assert_eq!(
        profile.hash_of::<Float64MultiArray>().unwrap().to_string(),
        "RIHS01_1025ddc6b9552d191f89ef1a8d2f60f3d373e28b283d8891ddcc974e8c55397f"
    );
    assert_eq!(
        profile.hash_of::<Bool>().unwrap().to_string(),
        "RIHS01_feb91e995ff9ebd09c0cb3d2aed18b11077585839fb5db80193b62d74528f6c9"
    );
    assert_eq!(
        profile.hash_of::<StringMsg>().unwrap().to_string(),
        "RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18"
    );
    let err = profile.get("std_msgs/msg/Int32").unwrap_err();
    assert_eq!(
        err.to_string(),
        "no type hash for `std_msgs/msg/Int32` in the jazzy profile; add it to the configuration"
    );
}

#[test]
fn humble_profile_has_no_hashes() {
    let profile = TypeHashProfile::new(RosDistro::Humble);
    assert_eq!(profile.hash_of::<JointState>(), Ok(TypeHash::NotSupported));
    assert_eq!(
        profile.get("any_pkg/msg/Anything"),
        Ok(TypeHash::NotSupported)
    );
}

#[test]
fn overrides_from_configuration_win() {
    let mut profile: TypeHashProfile = TypeHashProfile::new("Jazzy".parse().unwrap());
    let custom: TypeHash =
        "RIHS01_0000000000000000000000000000000000000000000000000000000000000001"
            .parse()
            .unwrap();
    assert_eq!(
        profile.set_override(JointState::ROS_TYPE_NAME, custom),
        None
    );
    assert_eq!(profile.hash_of::<JointState>(), Ok(custom));
    profile.set_override("std_msgs/msg/String", TypeHash::NotSupported);
    assert_eq!(
        profile.get("std_msgs/msg/String"),
        Ok(TypeHash::NotSupported)
    );
    assert!(matches!(
        "iron".parse::<RosDistro>(),
        Err(KeyError::UnknownDistro { .. })
    ));
}

// ---- liveliness tokens ---------------------------------------------------------------------

fn bridge_node() -> NodeIdentity {
    NodeIdentity {
        domain: domain(0),
        zid: Zid::new("8f1c2d3e4a5b6c7d8e9fa0b1c2d3e4f5").unwrap(),
        node_id: EntityId(0),
        enclave: Namespace::root(),
        namespace: Namespace::root(),
        name: NodeName::new("rivet_bridge").unwrap(),
    }
}

#[test]
fn node_token_matches_the_rmw_zenoh_layout() {
    assert_eq!(
        bridge_node().liveliness_token(),
        "@ros2_lv/0/8f1c2d3e4a5b6c7d8e9fa0b1c2d3e4f5/0/0/NN/%/%/rivet_bridge"
    );
    let node = NodeIdentity {
        domain: domain(7),
        node_id: EntityId(3),
        namespace: Namespace::new("/site/arm").unwrap(),
        ..bridge_node()
    };
    assert_eq!(
        node.liveliness_token(),
        "@ros2_lv/7/8f1c2d3e4a5b6c7d8e9fa0b1c2d3e4f5/3/3/NN/%/%site%arm/rivet_bridge"
    );
}

#[test]
fn endpoint_tokens_match_the_rmw_zenoh_layout() {
    let profile = TypeHashProfile::new(RosDistro::Jazzy);
    let subscription = Endpoint::new::<JointState>(
        EntityId(1),
        EndpointKind::Subscription,
        topic("/arm/joint_states"),
        profile.hash_of::<JointState>().unwrap(),
        QosProfile::default(),
    );
    assert_eq!(
        bridge_node().endpoint_token(&subscription),
        format!(
            "@ros2_lv/0/8f1c2d3e4a5b6c7d8e9fa0b1c2d3e4f5/0/1/MS/%/%/rivet_bridge/%arm%joint_states/\
             sensor_msgs::msg::dds_::JointState_/{JOINT_STATE_HASH}/::,10:,:,:,,"
        )
    );
    assert_eq!(
        subscription.data_key_expr(domain(0)),
        format!("0/arm/joint_states/sensor_msgs::msg::dds_::JointState_/{JOINT_STATE_HASH}")
    );

    let publisher = Endpoint::new::<Float64MultiArray>(
        EntityId(2),
        EndpointKind::Publisher,
        topic("/forward_position_controller/commands"),
        TypeHash::NotSupported,
        QosProfile::sensor_data(),
    );
    assert_eq!(
        bridge_node().endpoint_token(&publisher),
        "@ros2_lv/0/8f1c2d3e4a5b6c7d8e9fa0b1c2d3e4f5/0/2/MP/%/%/rivet_bridge/\
         %forward_position_controller%commands/std_msgs::msg::dds_::Float64MultiArray_/\
         TypeHashNotSupported/2::,5:,:,:,,"
    );
}

#[test]
fn qos_segments_omit_rmw_zenoh_defaults() {
    assert_eq!(QosProfile::default().liveliness_segment(), "::,10:,:,:,,");
    let qos = |reliability, durability, history| QosProfile {
        reliability,
        durability,
        history,
    };
    use Durability::*;
    use Reliability::*;
    assert_eq!(
        qos(Reliable, Volatile, History::KeepLast { depth: 42 }).liveliness_segment(),
        "::,:,:,:,,"
    );
    assert_eq!(
        qos(Reliable, Volatile, History::KeepLast { depth: 0 }).liveliness_segment(),
        "::,:,:,:,,"
    );
    assert_eq!(
        qos(BestEffort, TransientLocal, History::KeepLast { depth: 1 }).liveliness_segment(),
        "2:1:,1:,:,:,,"
    );
    assert_eq!(
        qos(Reliable, TransientLocal, History::KeepAll).liveliness_segment(),
        ":1:2,:,:,:,,"
    );
}

#[test]
fn liveliness_subscription_covers_the_domain() {
    assert_eq!(liveliness_subscription_key_expr(domain(5)), "@ros2_lv/5/**");
}

// ---- attachment ----------------------------------------------------------------------------

#[test]
fn attachment_layout_is_33_bytes_with_a_gid_length_byte() {
    let attachment = Attachment {
        sequence_number: 1,
        source_timestamp_ns: 1_700_000_000_123_456_789,
        source_gid: Gid(core::array::from_fn(|i| i as u8 + 0xA0)),
    };
    let bytes = attachment.encode();
    assert_eq!(bytes.len(), ATTACHMENT_LEN);
    assert_eq!(bytes[..8], [1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(bytes[8..16], 1_700_000_000_123_456_789i64.to_le_bytes());
    assert_eq!(bytes[16], 0x10);
    assert_eq!(bytes[17], 0xA0);
    assert_eq!(bytes[32], 0xAF);
    assert_eq!(Attachment::decode(&bytes), Ok(attachment));
}

#[test]
fn malformed_attachments_are_rejected() {
    let bytes = Attachment {
        sequence_number: 5,
        source_timestamp_ns: 6,
        source_gid: Gid::default(),
    }
    .encode();
    assert_eq!(
        Attachment::decode(&bytes[..32]),
        Err(KeyError::AttachmentLength {
            len: 32,
            expected: 33
        })
    );
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert!(matches!(
        Attachment::decode(&longer),
        Err(KeyError::AttachmentLength { len: 34, .. })
    ));
    let mut bad = bytes;
    bad[16] = 0x0F;
    assert_eq!(
        Attachment::decode(&bad),
        Err(KeyError::AttachmentGidLength {
            offset: 16,
            found: 0x0F
        })
    );
}

proptest! {
    #[test]
    fn attachments_round_trip(seq in any::<i64>(), ts in any::<i64>(), gid in any::<[u8; 16]>()) {
        let attachment = Attachment {
            sequence_number: seq,
            source_timestamp_ns: ts,
            source_gid: Gid(gid),
        };
        prop_assert_eq!(Attachment::decode(&attachment.encode()), Ok(attachment));
    }

    #[test]
    fn attachment_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let result = Attachment::decode(&bytes);
        prop_assert_eq!(result.is_ok(), bytes.len() == ATTACHMENT_LEN && bytes[16] == 0x10);
    }

    #[test]
    fn valid_topic_names_give_well_formed_key_exprs(
        tokens in proptest::collection::vec("[a-zA-Z_][a-zA-Z0-9_]{0,8}", 1..5),
    ) {
        let name = format!("/{}", tokens.join("/"));
        let key = data_key_expr(domain(0), &topic(&name), "pkg::msg::dds_::T_", &TypeHash::NotSupported);
        prop_assert_eq!(key, format!("0/{}/pkg::msg::dds_::T_/TypeHashNotSupported", tokens.join("/")));
    }

    #[test]
    fn topic_validation_never_panics(name in "(?s).{0,20}") {
        if let Ok(topic) = TopicName::new(&name) {
            prop_assert!(topic.as_str().starts_with('/'));
            prop_assert!(!topic.as_str().contains("//"));
        }
    }
}
