#!/usr/bin/env python3
"""Writes the two small ROS 2 MCAP files that `record::tests` reads as "written by another tool".

- `rosbags_jazzy.mcap`: written by `rosbags` (its rosbag2 writer, MCAP storage, metadata version 9,
  uncompressed chunks, schema text generated from its Jazzy type store).
- `mcap_ros2_writer.mcap`: written by `mcap-ros2-support`'s writer (zstd chunks, hand-written
  `.msg` schemas), joint states in reverse log-time order.

Both hold the same messages (log time `T0 + i * 10 ms`):
- `/joint_states` (`sensor_msgs/msg/JointState`), i in 0..20: stamp `{sec: 100 + i, nanosec:
  1000 * i}`, frame `base`, names `[a, b]`, position `[0.5 * i, -i]`, velocity `[]`,
  effort `[i]`;
- `/notes` (`std_msgs/msg/String`), i in 0..5: `note {i}`;
- `/commands` (`std_msgs/msg/Float64MultiArray`), i in 0..3: empty layout, data `[i, i + 0.25]`.

Regenerate (from the repository root):

    python3 -m venv /tmp/mcapvenv
    /tmp/mcapvenv/bin/pip install mcap mcap-ros2-support rosbags
    /tmp/mcapvenv/bin/python hw-bridge/tests/golden/gen_foreign_mcap.py hw-bridge/tests/golden
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

T0 = 1_700_000_000_000_000_000
STEP = 10_000_000


def rosbags_file(out: Path) -> None:
    import numpy as np
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_JAZZY)
    JointState = ts.types["sensor_msgs/msg/JointState"]
    Header = ts.types["std_msgs/msg/Header"]
    Time = ts.types["builtin_interfaces/msg/Time"]
    String = ts.types["std_msgs/msg/String"]
    F64 = ts.types["std_msgs/msg/Float64MultiArray"]
    Layout = ts.types["std_msgs/msg/MultiArrayLayout"]

    with tempfile.TemporaryDirectory() as tmp:
        bag = Path(tmp) / "rosbags_jazzy"
        with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as w:
            js = w.add_connection("/joint_states", JointState.__msgtype__, typestore=ts)
            notes = w.add_connection("/notes", String.__msgtype__, typestore=ts)
            cmds = w.add_connection("/commands", F64.__msgtype__, typestore=ts)
            for i in range(20):
                msg = JointState(
                    header=Header(stamp=Time(sec=100 + i, nanosec=1000 * i), frame_id="base"),
                    name=["a", "b"],
                    position=np.array([0.5 * i, -float(i)], dtype=np.float64),
                    velocity=np.array([], dtype=np.float64),
                    effort=np.array([float(i)], dtype=np.float64),
                )
                w.write(js, T0 + i * STEP, ts.serialize_cdr(msg, JointState.__msgtype__))
                if i < 5:
                    w.write(notes, T0 + i * STEP + 1, ts.serialize_cdr(String(data=f"note {i}"), String.__msgtype__))
                if i < 3:
                    cmd = F64(layout=Layout(dim=[], data_offset=0), data=np.array([float(i), i + 0.25]))
                    w.write(cmds, T0 + i * STEP + 2, ts.serialize_cdr(cmd, F64.__msgtype__))
        shutil.copy(bag / "rosbags_jazzy.mcap", out / "rosbags_jazzy.mcap")


def mcap_ros2_file(out: Path) -> None:
    from mcap_ros2.writer import Writer

    time_msg = "int32 sec\nuint32 nanosec\n"
    header_msg = "builtin_interfaces/Time stamp\nstring frame_id\n"
    sep = "=" * 80
    js_text = (
        "std_msgs/Header header\nstring[] name\nfloat64[] position\nfloat64[] velocity\n"
        f"float64[] effort\n{sep}\nMSG: std_msgs/Header\n{header_msg}{sep}\n"
        f"MSG: builtin_interfaces/Time\n{time_msg}"
    )
    f64_text = (
        f"MultiArrayLayout layout\nfloat64[] data\n{sep}\nMSG: std_msgs/MultiArrayLayout\n"
        f"MultiArrayDimension[] dim\nuint32 data_offset\n{sep}\n"
        "MSG: std_msgs/MultiArrayDimension\nstring label\nuint32 size\nuint32 stride\n"
    )
    with (out / "mcap_ros2_writer.mcap").open("wb") as f:
        w = Writer(f)
        js = w.register_msgdef("sensor_msgs/msg/JointState", js_text)
        notes = w.register_msgdef("std_msgs/msg/String", "string data\n")
        cmds = w.register_msgdef("std_msgs/msg/Float64MultiArray", f64_text)
        for i in reversed(range(20)):
            msg = {
                "header": {"stamp": {"sec": 100 + i, "nanosec": 1000 * i}, "frame_id": "base"},
                "name": ["a", "b"],
                "position": [0.5 * i, -float(i)],
                "velocity": [],
                "effort": [float(i)],
            }
            w.write_message("/joint_states", js, msg, log_time=T0 + i * STEP, publish_time=T0 + i * STEP)
        for i in range(5):
            t = T0 + i * STEP + 1
            w.write_message("/notes", notes, {"data": f"note {i}"}, log_time=t, publish_time=t)
        for i in range(3):
            t = T0 + i * STEP + 2
            cmd = {"layout": {"dim": [], "data_offset": 0}, "data": [float(i), i + 0.25]}
            w.write_message("/commands", cmds, cmd, log_time=t, publish_time=t)
        w.finish()


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent
    rosbags_file(out)
    mcap_ros2_file(out)
    for name in ("rosbags_jazzy.mcap", "mcap_ros2_writer.mcap"):
        print(f"{out / name}: {(out / name).stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
