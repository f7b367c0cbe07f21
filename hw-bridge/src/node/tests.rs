//! Real zenoh sessions on loopback: publish, receive, attachments, liveliness.

use std::time::{Duration, Instant};

use super::*;
use crate::keys::RosDistro;
use crate::msgs::sensor_msgs::JointState;

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub(crate) fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

/// A peer config with multicast scouting off, listening and/or connecting on loopback (the
/// profile's plain peer settings).
pub(crate) fn loopback_config(listen: Option<u16>, connect: Option<u16>) -> zenoh::Config {
    let endpoints = |port: Option<u16>| {
        port.map(|p| format!("tcp/127.0.0.1:{p}"))
            .into_iter()
            .collect::<Vec<_>>()
    };
    crate::profile::SessionSettings::with_endpoints(endpoints(connect), endpoints(listen))
        .zenoh_config()
        .expect("loopback settings are valid")
}

fn settings(name: &str) -> NodeSettings {
    NodeSettings {
        domain: DomainId::new(0).unwrap(),
        namespace: Namespace::root(),
        name: NodeName::new(name).unwrap(),
        hashes: TypeHashProfile::new(RosDistro::Jazzy),
    }
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    // Generous: this bounds a hang, it does not measure speed.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn joint_state_crosses_loopback_with_attachment_and_liveliness() {
    let port = free_port();
    let mut robot = RosNode::open(loopback_config(Some(port), None), settings("robot")).unwrap();
    let mut client = RosNode::open(loopback_config(None, Some(port)), settings("client")).unwrap();
    let topic = TopicName::new("/joint_states").unwrap();
    let subscriber = client.subscribe_latest::<JointState>(&topic).unwrap();
    let watch = client.watch_publishers::<JointState>(&topic).unwrap();
    let mut publisher = robot.publisher::<JointState>(&topic).unwrap();
    assert_eq!(
        publisher.key_expr(),
        "0/joint_states/sensor_msgs::msg::dds_::JointState_/\
         RIHS01_a13ee3a330e346c9d87b5aa18d24e11690752bd33a0350f11c5882bc9179260e"
    );
    wait_until("the publisher's liveliness token", || watch.alive() == 1);

    let msg = JointState {
        name: vec!["a".into(), "b".into()],
        position: vec![0.5, -1.25],
        velocity: vec![0.0, 2.0],
        effort: vec![],
        ..Default::default()
    };
    let mut buf = Vec::new();
    let mut last = 0;
    let mut received = None;
    wait_until("a joint state", || {
        publisher.publish(&msg).unwrap();
        if let Some(info) = subscriber.slot().take_newer(last, &mut buf) {
            last = info.counter;
            received = Some(info);
            true
        } else {
            std::thread::sleep(Duration::from_millis(20));
            false
        }
    });
    let info = received.unwrap();
    assert!(info.has_attachment, "rmw_zenoh requires the attachment");
    let sent = info.sent_ns.expect("the attachment's source timestamp");
    let now = unix_time_ns() as i64;
    assert!(
        sent <= now && now - sent < 60_000_000_000,
        "sent {sent}, now {now}"
    );
    assert_eq!(JointState::decode(&buf).unwrap(), msg);
    // Nothing newer until the next sample.
    let before = subscriber.slot().received();
    assert!(subscriber.slot().take_newer(before, &mut buf).is_none());

    // The robot goes away: its publisher's token is removed at once.
    robot.close();
    wait_until("the publisher's token to go away", || watch.alive() == 0);
    assert_eq!(watch.lost(), 1);
    client.close();
}

#[test]
fn latest_slot_keeps_only_the_newest_and_reuses_buffers() {
    let slot = LatestSlot::default();
    let attachment = Attachment {
        sequence_number: 1,
        source_timestamp_ns: 1_700_000_000_123_456_789,
        source_gid: Gid([7; 16]),
    }
    .encode();
    slot.store(&[1, 2, 3], Some(&attachment));
    let info = slot.take_newer(0, &mut Vec::new()).unwrap();
    assert!(info.has_attachment);
    assert_eq!(info.sent_ns, Some(1_700_000_000_123_456_789));
    slot.store(&[1, 2, 3], Some(&attachment[..20]));
    let info = slot.take_newer(1, &mut Vec::new()).unwrap();
    assert!(info.has_attachment);
    assert_eq!(
        info.sent_ns, None,
        "a malformed attachment gives no send time"
    );
    slot.store(&[4, 5], None);
    let mut buf = Vec::with_capacity(16);
    let info = slot.take_newer(0, &mut buf).unwrap();
    assert_eq!(buf, [4, 5]);
    assert_eq!(info.counter, 3);
    assert!(!info.has_attachment);
    assert_eq!(info.sent_ns, None);
    assert!(slot.take_newer(info.counter, &mut buf).is_none());
    // The slot now holds the caller's old buffer (capacity 16) and reuses it.
    slot.store(&[9; 8], None);
    let mut other = Vec::new();
    slot.take_newer(info.counter, &mut other).unwrap();
    assert_eq!(other, [9; 8]);
    assert!(other.capacity() >= 16);
}
