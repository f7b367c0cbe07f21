#!/usr/bin/env python3
"""Generate the ROS 2 CDR golden vectors used by rivet-hw-bridge's codec tests.

An independent CDR implementation (rosbags, a pure-Python ROS 2 bag library) serializes a fixed
set of example messages; the Rust tests decode each vector, compare it with the field values
recorded here and re-encode it to the identical bytes. The file also records rosbags' RIHS01
type hashes so the Rust hash profile can be checked against them.

Output: hw-bridge/tests/golden/ros2_cdr_vectors.json (deterministic: same rosbags version, same
bytes). Floats that JSON cannot hold are written as the strings "NaN", "Infinity", "-Infinity".

Usage (from the repository root):
    python3 -m venv /tmp/rosbags-venv && /tmp/rosbags-venv/bin/pip install rosbags==0.11.9
    /tmp/rosbags-venv/bin/python tests/golden/gen_ros2_cdr.py           # rewrite the vectors
    /tmp/rosbags-venv/bin/python tests/golden/gen_ros2_cdr.py --check   # fail if they differ
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import sys
from pathlib import Path

import numpy as np
from rosbags.typesys import Stores, get_typestore

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "hw-bridge" / "tests" / "golden" / "ros2_cdr_vectors.json"
TYPESTORE = Stores.ROS2_JAZZY

UR_JOINTS = [
    "shoulder_pan_joint",
    "shoulder_lift_joint",
    "elbow_joint",
    "wrist_1_joint",
    "wrist_2_joint",
    "wrist_3_joint",
]

NAN = float("nan")
INF = float("inf")


def header(sec: int, nanosec: int, frame_id: str) -> dict:
    return {"stamp": {"sec": sec, "nanosec": nanosec}, "frame_id": frame_id}


def point(positions=(), velocities=(), accelerations=(), effort=(), sec=0, nanosec=0) -> dict:
    return {
        "positions": list(positions),
        "velocities": list(velocities),
        "accelerations": list(accelerations),
        "effort": list(effort),
        "time_from_start": {"sec": sec, "nanosec": nanosec},
    }


# (case name, ROS type, field values). Names say what each case guards.
CASES: list[tuple[str, str, dict]] = [
    ("bool_true", "std_msgs/msg/Bool", {"data": True}),
    ("bool_false", "std_msgs/msg/Bool", {"data": False}),
    (
        "header_odd_frame",
        "std_msgs/msg/Header",
        header(1_700_000_000, 5, "tool0"),
    ),
    (
        "joint_state_empty",
        "sensor_msgs/msg/JointState",
        {"header": header(0, 0, ""), "name": [], "position": [], "velocity": [], "effort": []},
    ),
    (
        # The joint_state_broadcaster message of a 6-axis arm.
        "joint_state_ur6",
        "sensor_msgs/msg/JointState",
        {
            "header": header(1_700_000_000, 123_456_789, "base_link"),
            "name": UR_JOINTS,
            "position": [0.0, -1.5707963267948966, 1.5707963267948966, -1.5707963267948966, -1.5707963267948966, 0.0],
            "velocity": [0.01, -0.02, 0.03, -0.04, 0.05, -0.06],
            "effort": [0.5, -12.25, 7.125, 1.0, -0.75, 0.0625],
        },
    ),
    (
        # Names of length 1..5 and a 5-byte frame id: every string ends at a different alignment,
        # and the float64 arrays need 4 bytes of padding.
        "joint_state_odd_padding",
        "sensor_msgs/msg/JointState",
        {
            "header": header(7, 8, "abcde"),
            "name": ["a", "bb", "ccc", "dddd", "eeeee"],
            "position": [1.0, 2.0, 3.0, 4.0, 5.0],
            "velocity": [],
            "effort": [-1.0, -2.0, -3.0, -4.0, -5.0],
        },
    ),
    (
        # Empty float64 arrays whose count lands on an 8-aligned offset: no padding may follow.
        "joint_state_empty_arrays_aligned",
        "sensor_msgs/msg/JointState",
        {
            "header": header(1, 2, "abcde"),
            "name": ["j"],
            "position": [],
            "velocity": [],
            "effort": [2.0],
        },
    ),
    (
        "joint_state_position_only",
        "sensor_msgs/msg/JointState",
        {"header": header(3, 4, "x"), "name": ["j1", "j2", "j3"], "position": [0.5, -0.25, 0.125], "velocity": [], "effort": []},
    ),
    (
        # Values a codec must carry bit for bit even though a controller must reject them.
        "joint_state_special_floats",
        "sensor_msgs/msg/JointState",
        {
            "header": header(-1, 999_999_999, "base"),
            "name": ["nan", "inf", "ninf", "negzero", "subnormal", "max", "tiny"],
            "position": [NAN, INF, -INF, -0.0, 5e-324, 1.7976931348623157e308, -1e-300],
            "velocity": [],
            "effort": [],
        },
    ),
    (
        # Multi-byte UTF-8: lengths count bytes, not characters.
        "joint_state_utf8_names",
        "sensor_msgs/msg/JointState",
        {
            "header": header(10, 20, "caméra_link"),
            "name": ["épaule", "関節2", "ü"],
            "position": [0.1, 0.2, 0.3],
            "velocity": [0.0, 0.0, 0.0],
            "effort": [],
        },
    ),
    (
        "float64_multi_array_empty",
        "std_msgs/msg/Float64MultiArray",
        {"layout": {"dim": [], "data_offset": 0}, "data": []},
    ),
    (
        # What forward_command_controller receives: no layout, one value per joint.
        "float64_multi_array_command6",
        "std_msgs/msg/Float64MultiArray",
        {"layout": {"dim": [], "data_offset": 0}, "data": [0.1, -0.2, 0.3, -0.4, 0.5, -0.6]},
    ),
    (
        "float64_multi_array_2x3",
        "std_msgs/msg/Float64MultiArray",
        {
            "layout": {
                "dim": [
                    {"label": "rows", "size": 2, "stride": 6},
                    {"label": "cols", "size": 3, "stride": 3},
                ],
                "data_offset": 0,
            },
            "data": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        },
    ),
    (
        # Odd and empty labels, a non-zero data offset, an odd number of values.
        "float64_multi_array_odd_labels",
        "std_msgs/msg/Float64MultiArray",
        {
            "layout": {
                "dim": [
                    {"label": "joints", "size": 7, "stride": 7},
                    {"label": "", "size": 1, "stride": 1},
                    {"label": "xyz", "size": 1, "stride": 1},
                ],
                "data_offset": 1,
            },
            "data": [0.0, 1.5, -2.5, 3.25, 1e-9, 1e9, 42.0],
        },
    ),
    (
        "joint_trajectory_empty",
        "trajectory_msgs/msg/JointTrajectory",
        {"header": header(0, 0, ""), "joint_names": [], "points": []},
    ),
    (
        # What a planner sends joint_trajectory_controller: positions and velocities only.
        "joint_trajectory_ur6_3pts",
        "trajectory_msgs/msg/JointTrajectory",
        {
            "header": header(0, 0, ""),
            "joint_names": UR_JOINTS,
            "points": [
                point([0.0, -1.57, 1.57, -1.57, -1.57, 0.0], [0.0] * 6, sec=1),
                point([0.1, -1.47, 1.47, -1.47, -1.47, 0.1], [0.05] * 6, sec=2, nanosec=500_000_000),
                point([0.2, -1.37, 1.37, -1.37, -1.37, 0.2], [0.0] * 6, sec=4),
            ],
        },
    ),
    (
        "joint_trajectory_full_point",
        "trajectory_msgs/msg/JointTrajectory",
        {
            "header": header(12, 34, "world"),
            "joint_names": ["slide", "hinge"],
            "points": [
                point([0.25, 1.0], [0.5, -0.5], [1.0, -1.0], [10.0, 2.5], sec=0, nanosec=500_000_000),
            ],
        },
    ),
    (
        # Points with all arrays empty and one with only an odd-length positions array.
        "joint_trajectory_sparse_points",
        "trajectory_msgs/msg/JointTrajectory",
        {
            "header": header(5, 6, "odd"),
            "joint_names": ["a", "b", "c"],
            "points": [
                point(sec=0),
                point([1.0, 2.0, 3.0], sec=1),
                point(effort=[4.0, 5.0, 6.0], sec=-2, nanosec=1),
            ],
        },
    ),
]

# Cases re-serialized big-endian (`00 00` header) to exercise that decode path.
BIG_ENDIAN_CASES = [
    "bool_true",
    "joint_state_ur6",
    "joint_state_odd_padding",
    "float64_multi_array_2x3",
    "joint_trajectory_ur6_3pts",
]

HASHED_TYPES = [
    "sensor_msgs/msg/JointState",
    "trajectory_msgs/msg/JointTrajectory",
    "std_msgs/msg/Float64MultiArray",
    "std_msgs/msg/Bool",
]


def build(ts, typename: str, value):
    """Turn the JSON-shaped `value` into a rosbags message of `typename`."""
    cls = ts.types[typename]
    msgdef = ts.get_msgdef(typename)
    kwargs = {}
    for name, (kind, sub) in msgdef.fields:
        field_value = value[name]
        kwargs[name] = build_field(ts, kind, sub, field_value)
    return cls(**kwargs)


def build_field(ts, kind, sub, value):
    # rosbags field kinds: BASE (primitive/string), NAME (nested message), SEQUENCE, ARRAY.
    kind_name = getattr(kind, "name", str(kind))
    if kind_name == "BASE":
        return value
    if kind_name == "NAME":
        return build(ts, sub, value)
    if kind_name in ("SEQUENCE", "ARRAY"):
        elem_kind, elem_sub = sub[0]
        elem_kind_name = getattr(elem_kind, "name", str(elem_kind))
        if elem_kind_name == "BASE" and elem_sub[0] == "float64":
            return np.array(value, dtype=np.float64)
        return [build_field(ts, elem_kind, elem_sub, v) for v in value]
    raise ValueError(f"unsupported field kind {kind!r}")


def to_json_floats(value):
    """Replace non-finite floats with strings JSON can hold; keep -0.0 as -0.0."""
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, dict):
        return {k: to_json_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json_floats(v) for v in value]
    return value


def same_bits(a, b) -> bool:
    return np.array_equal(np.asarray(a, dtype=np.float64).view(np.uint64), np.asarray(b, dtype=np.float64).view(np.uint64))


def generate() -> str:
    ts = get_typestore(TYPESTORE)
    by_name = {name: (typename, value) for name, typename, value in CASES}
    cases = []
    plan = [(name, "little") for name, _, _ in CASES] + [(name, "big") for name in BIG_ENDIAN_CASES]
    for name, endianness in plan:
        typename, value = by_name[name]
        msg = build(ts, typename, value)
        cdr = bytes(ts.serialize_cdr(msg, typename, little_endian=(endianness == "little")))
        # Sanity: rosbags reads its own bytes back to the same floats.
        back = ts.deserialize_cdr(cdr, typename)
        if typename == "sensor_msgs/msg/JointState":
            assert same_bits(back.position, value["position"]), name
        cases.append(
            {
                "name": name if endianness == "little" else f"{name}_be",
                "type": typename,
                "endianness": endianness,
                "cdr_hex": cdr.hex(),
                "value": to_json_floats(value),
            }
        )
    doc = {
        "generator": "tests/golden/gen_ros2_cdr.py",
        "rosbags_version": importlib.metadata.version("rosbags"),
        "typestore": TYPESTORE.name,
        "type_hashes": {t: ts.hash_rihs01(t) for t in HASHED_TYPES},
        "cases": cases,
    }
    return json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output JSON file")
    parser.add_argument("--check", action="store_true", help="compare with the existing file instead of writing")
    args = parser.parse_args()
    text = generate()
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is out of date; rerun without --check", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {len(json.loads(text)['cases'])} vectors to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
