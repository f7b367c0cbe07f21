#!/usr/bin/env python3
"""Independent check of a Rivet episode (or any ROS 2 MCAP file).

Opens the file with the PyPI packages `mcap` and `mcap-ros2-support`, which parse the `ros2msg`
schemas stored in the file and decode the CDR payloads without any Rivet code, and prints each
topic's ROS type, message count and first message. It also checks the rosbag2 conventions Rivet
follows (profile `ros2`, schema encoding `ros2msg`, message encoding `cdr`, channel metadata
`offered_qos_profiles` and `topic_type_hash`, a `rosbag2` metadata record whose
`serialized_metadata` is YAML) and, if `rosbags` is installed, reads the file a second time with
its rosbag2 reader and deserializer.

Every decoded message is encoded again with `mcap-ros2-support`'s own encoder and compared with
the recorded bytes (its decoder alone is lenient: a string length past the end of the payload is
silently cut short), so a payload that does not decode exactly, or that Rivet encoded differently
from that independent encoder, fails the check. Exits non-zero if any message fails to decode or
re-encode identically; departures from the rosbag2 conventions (missing channel metadata, a
`rosbag2` record that is not valid YAML) are printed as warnings (`topic_type_hash` only exists
from Iron on, and other writers omit `offered_qos_profiles` although the MCAP `ros2` profile
requires it).

Usage (from the repository root):

    python3 -m venv /tmp/mcapvenv
    /tmp/mcapvenv/bin/pip install mcap mcap-ros2-support pyyaml rosbags
    RIVET_MCAP_OUT=/tmp/rivet_check.mcap CARGO_TARGET_DIR=/work/main/target \
        cargo test -p rivet-hw-bridge --lib record::tests::episode_round_trip
    /tmp/mcapvenv/bin/python hw-bridge/tests/golden/check_mcap.py /tmp/rivet_check.mcap

`pyyaml` and `rosbags` are optional: without them the YAML and rosbags checks are skipped.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path


def summarize(value: object, depth: int = 0) -> object:
    """A decoded message as plain data, long sequences shortened."""
    if hasattr(value, "__slots__") or hasattr(value, "__dict__"):
        names = getattr(value, "__slots__", None) or [
            k for k in vars(value) if not k.startswith("_")
        ]
        return {name: summarize(getattr(value, name), depth + 1) for name in names}
    if isinstance(value, (list, tuple)):
        items = [summarize(v, depth + 1) for v in value[:4]]
        if len(value) > 4:
            items.append(f"... ({len(value)} items)")
        return items
    if hasattr(value, "tolist"):  # numpy arrays (rosbags)
        return summarize(value.tolist(), depth)
    return value


def check_mcap(path: Path, warnings: list[str]) -> list[str]:
    from mcap.reader import make_reader
    from mcap_ros2._dynamic import serialize_dynamic
    from mcap_ros2.decoder import DecoderFactory

    problems: list[str] = []
    counts: Counter[str] = Counter()
    first: dict[str, object] = {}
    types: dict[str, str] = {}
    encoders: dict[int, object] = {}
    mismatches: Counter[str] = Counter()
    with path.open("rb") as f:
        reader = make_reader(f, validate_crcs=True, decoder_factories=[DecoderFactory()])
        header = reader.get_header()
        print(f"file: {path}")
        print(f"profile: {header.profile!r}, library: {header.library!r}")
        if header.profile != "ros2":
            warnings.append(f"profile is {header.profile!r}, not 'ros2'")
        summary = reader.get_summary()
        if summary is None:
            warnings.append("no summary section")
        else:
            for channel in summary.channels.values():
                schema = summary.schemas.get(channel.schema_id)
                if channel.message_encoding != "cdr":
                    problems.append(f"{channel.topic}: message encoding {channel.message_encoding!r}")
                if schema is None or schema.encoding != "ros2msg":
                    problems.append(f"{channel.topic}: schema encoding is not 'ros2msg'")
                for key in ("offered_qos_profiles", "topic_type_hash"):
                    if key not in channel.metadata:
                        warnings.append(f"{channel.topic}: channel metadata lacks {key!r}")
                check_qos_yaml(channel.topic, channel.metadata.get("offered_qos_profiles", ""), warnings)
            compressions = sorted({c.compression for c in summary.chunk_indexes})
            print(f"chunks: {len(summary.chunk_indexes)}, compression: {compressions}")
        try:
            for schema, channel, message, decoded in reader.iter_decoded_messages(log_time_order=True):
                counts[channel.topic] += 1
                types[channel.topic] = schema.name if schema else ""
                if schema is not None:
                    if schema.id not in encoders:
                        encoders[schema.id] = serialize_dynamic(schema.name, schema.data.decode())[
                            schema.name
                        ]
                    again = encoders[schema.id](decoded)
                    # CDR allows up to 3 bytes of trailing padding after the last field.
                    extra = message.data[len(again):]
                    if not message.data.startswith(again) or len(extra) > 3 or any(extra):
                        if mismatches[channel.topic] == 0:
                            problems.append(
                                f"{channel.topic}: message {counts[channel.topic] - 1} (log time "
                                f"{message.log_time}) does not decode exactly: re-encoded "
                                f"{again.hex()} != recorded {message.data.hex()}"
                            )
                        mismatches[channel.topic] += 1
                if channel.topic not in first:
                    first[channel.topic] = (message.log_time, summarize(decoded))
        except Exception as exc:  # noqa: BLE001 - any decode failure fails the check
            problems.append(f"decoding failed after {sum(counts.values())} messages: {exc!r}")
        for record in reader.iter_metadata():
            print(f"metadata record {record.name!r}: keys {sorted(record.metadata)}")
            if record.name == "rosbag2":
                check_rosbag2_metadata(record.metadata.get("serialized_metadata", ""), counts, warnings)
    for topic, n in sorted(mismatches.items()):
        problems.append(f"{topic}: {n} message(s) do not re-encode to the recorded bytes")
    print()
    for topic in sorted(counts):
        log_time, msg = first[topic]
        print(f"{topic}  [{types[topic]}]  {counts[topic]} messages")
        print(f"    first (log time {log_time} ns): {msg}")
    return problems


def check_qos_yaml(topic: str, text: str, problems: list[str]) -> None:
    if text == "":
        return  # rosbag2 accepts an empty string: no recorded offer.
    try:
        import yaml
    except ImportError:
        return
    try:
        profiles = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problems.append(f"{topic}: offered_qos_profiles is not YAML: {exc}")
        return
    if not isinstance(profiles, list) or not all(isinstance(p, dict) for p in profiles):
        problems.append(f"{topic}: offered_qos_profiles is not a list of profiles: {profiles!r}")


def check_rosbag2_metadata(text: str, counts: Counter[str], problems: list[str]) -> None:
    try:
        import yaml
    except ImportError:
        print("  (pyyaml not installed: serialized_metadata not parsed)")
        return
    try:
        meta = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problems.append(f"rosbag2 serialized_metadata is not YAML: {exc}")
        return
    required = [
        "version", "storage_identifier", "duration", "starting_time", "message_count",
        "topics_with_message_count", "compression_format", "compression_mode",
        "relative_file_paths", "files", "custom_data", "ros_distro",
    ]
    missing = [k for k in required if k not in meta]
    if missing:
        problems.append(f"rosbag2 serialized_metadata lacks {missing}")
        return
    print(
        f"  rosbag2 metadata: version {meta['version']}, storage {meta['storage_identifier']!r}, "
        f"{meta['message_count']} messages, distro {meta['ros_distro']!r}"
    )
    recorded = {
        t["topic_metadata"]["name"]: t["message_count"] for t in meta["topics_with_message_count"]
    }
    if recorded != dict(counts) and counts:
        problems.append(f"rosbag2 metadata counts {recorded} differ from the messages {dict(counts)}")


def check_rosbags(path: Path) -> list[str]:
    try:
        from rosbags.rosbag2 import Reader
        from rosbags.typesys import Stores, get_typestore
    except ImportError:
        print("\n(rosbags not installed: skipped)")
        return []
    problems: list[str] = []
    typestore = get_typestore(Stores.ROS2_JAZZY)
    print(f"\nrosbags: reading {path.name} as a bare rosbag2 MCAP file")
    with Reader(path) as reader:
        print(f"  {reader.message_count} messages, duration {reader.duration} ns")
        seen: set[str] = set()
        for connection in reader.connections:
            qos = connection.ext.offered_qos_profiles
            print(
                f"  {connection.topic} [{connection.msgtype}] {connection.msgcount} messages, "
                f"{len(qos)} QoS profile(s): {[(q.history.name, q.reliability.name) for q in qos]}"
            )
        for connection, timestamp, data in reader.messages():
            try:
                msg = typestore.deserialize_cdr(data, connection.msgtype)
            except Exception as exc:  # noqa: BLE001
                problems.append(f"rosbags: {connection.topic} at {timestamp}: {exc!r}")
                break
            if connection.topic not in seen:
                seen.add(connection.topic)
                print(f"  first {connection.topic}: {summarize(msg)}")
    return problems


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    path = Path(sys.argv[1])
    warnings: list[str] = []
    problems = check_mcap(path, warnings)
    problems += check_rosbags(path)
    if warnings:
        print("\nwarnings (rosbag2 conventions):")
        for warning in warnings:
            print(f"  - {warning}")
    if problems:
        print("\nFAILED:")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print("\nOK: every message decoded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
