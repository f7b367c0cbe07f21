#!/usr/bin/env python3
"""Writes `rosbags_arm_episode.mcap`: an arm episode as a ROS 2 robot records it, written by an
independent tool (the `rosbags` library's rosbag2 writer, MCAP storage, Jazzy type store), for
`rivet gap` to read and score (tests/integration/sysid.rs).

The robot is scenes/arm.toml's 6-DoF arm. Its trajectory controller gets one-point
`trajectory_msgs/msg/JointTrajectory` commands at 50 Hz on
`/joint_trajectory_controller/joint_trajectory` (each reaching its positions 20 ms later); the
commands move shoulder_pan, shoulder_lift and elbow through sines around the scene's initial
pose. `/joint_states` (`sensor_msgs/msg/JointState`, 100 Hz, header stamps on the robot clock)
reports an idealised robot that follows the commands 30 ms late. `/rosout_text`
(`std_msgs/msg/String`) is noise the reader must ignore. Log times are 1 ms after the stamps.

Regenerate (from the repository root):

    python3 -m venv /tmp/mcapvenv
    /tmp/mcapvenv/bin/pip install rosbags
    /tmp/mcapvenv/bin/python tests/gap/gen_rosbags_episode.py tests/gap
"""

from __future__ import annotations

import math
import shutil
import sys
import tempfile
from pathlib import Path

T0 = 1_750_000_000_000_000_000
JOINTS = ["shoulder_pan", "shoulder_lift", "elbow", "wrist_1", "wrist_2", "wrist_3"]
HOME = [0.0, -1.2, 1.2, -1.5708, -1.5708, 0.0]
SECS = 4.0


def commanded(t: float) -> list[float]:
    """Positions the controller commands at time t (s)."""
    q = list(HOME)
    ramp = min(1.0, t / 1.0)
    for j, (amp, period) in enumerate([(0.3, 2.0), (0.2, 2.5), (0.25, 1.6)]):
        q[j] += ramp * amp * math.sin(2 * math.pi * t / period)
    return q


def main(out_dir: Path) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    Time = store.types["builtin_interfaces/msg/Time"]
    Duration = store.types["builtin_interfaces/msg/Duration"]
    Header = store.types["std_msgs/msg/Header"]
    JointState = store.types["sensor_msgs/msg/JointState"]
    JointTrajectory = store.types["trajectory_msgs/msg/JointTrajectory"]
    Point = store.types["trajectory_msgs/msg/JointTrajectoryPoint"]
    String = store.types["std_msgs/msg/String"]
    import numpy as np

    def stamp(ns: int):
        return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)

    messages = []  # (log time ns, topic, message, type name)
    for i in range(int(SECS * 100) + 1):
        t = i * 0.01
        ns = T0 + i * 10_000_000
        q = commanded(max(0.0, t - 0.03))
        q_next = commanded(max(0.0, t - 0.03 + 1e-3))
        qd = [(b - a) / 1e-3 for a, b in zip(q, q_next)]
        msg = JointState(
            header=Header(stamp=stamp(ns), frame_id=""),
            name=JOINTS,
            position=np.array(q, dtype=np.float64),
            velocity=np.array(qd, dtype=np.float64),
            effort=np.array([], dtype=np.float64),
        )
        messages.append((ns + 1_000_000, "/joint_states", msg, JointState.__msgtype__))
    for i in range(int(SECS * 50)):
        t = i * 0.02
        ns = T0 + i * 20_000_000
        msg = JointTrajectory(
            header=Header(stamp=stamp(ns), frame_id=""),
            joint_names=JOINTS,
            points=[
                Point(
                    positions=np.array(commanded(t + 0.02), dtype=np.float64),
                    velocities=np.array([], dtype=np.float64),
                    accelerations=np.array([], dtype=np.float64),
                    effort=np.array([], dtype=np.float64),
                    time_from_start=Duration(sec=0, nanosec=20_000_000),
                )
            ],
        )
        messages.append(
            (ns + 1_000_000, "/joint_trajectory_controller/joint_trajectory", msg,
             JointTrajectory.__msgtype__)
        )
    for i in range(4):
        messages.append((T0 + i * 1_000_000_000 + 500, "/rosout_text", String(data=f"tick {i}"),
                         String.__msgtype__))
    messages.sort(key=lambda m: m[0])

    with tempfile.TemporaryDirectory() as tmp:
        bag = Path(tmp) / "bag"
        with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
            connections = {}
            for log, topic, msg, typename in messages:
                if topic not in connections:
                    connections[topic] = writer.add_connection(topic, typename, typestore=store)
                writer.write(connections[topic], log, store.serialize_cdr(msg, typename))
        (mcap,) = bag.glob("*.mcap")
        shutil.copy(mcap, out_dir / "rosbags_arm_episode.mcap")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "."))
