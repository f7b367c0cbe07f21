#!/usr/bin/env python3
"""Camera rendering: Rivet's wgpu cameras vs PyBullet's getCameraImage (TinyRenderer), one run.

Runs `<rivet> bench sensors --json`, then renders the same brick scene (the arm from its URDF at
its initial joint positions, every box prop, the ground) with PyBullet at the same resolutions,
field of view and camera poses, RGB + depth + segmentation per call (PyBullet returns all three
from one getCameraImage). 16 cameras in PyBullet are 16 calls: it has no batching. Prints the
frames/s of both and the ratio Rivet/PyBullet per configuration.

  python3 bench/sensors_vs_pybullet.py [--rivet PATH] [--frames N] [--json]

The PyBullet side runs in a venv, ~/.cache/rivet-pybullet-venv, created on first use from
bench/requirements-sensors.txt (pybullet 3.2.7 from PyPI); the script re-runs itself inside it.
Exit status: 0 ok; 1 Rivet failed or broke its output contract; 2 setup or usage error.
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path.home() / ".cache" / "rivet-pybullet-venv"
REQUIREMENTS = ROOT / "bench" / "requirements-sensors.txt"


def ensure_venv(argv):
    if os.environ.get("RIVET_PYBULLET_VENV_ACTIVE") == "1":
        return
    python = VENV / "bin" / "python"
    stamp = VENV / ".requirements.txt"
    wanted = REQUIREMENTS.read_text()
    if not python.exists() or not stamp.exists() or stamp.read_text() != wanted:
        print(f"setting up {VENV} (pybullet from PyPI)", file=sys.stderr)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)], check=True
            )
        except subprocess.CalledProcessError as e:
            print(f"error: venv setup failed: {e}", file=sys.stderr)
            sys.exit(2)
        stamp.write_text(wanted)
    env = dict(os.environ, RIVET_PYBULLET_VENV_ACTIVE="1")
    os.execve(str(python), [str(python), str(Path(__file__).resolve())] + argv, env)


def rivet_binary(arg):
    if arg:
        return Path(arg)
    target = os.environ.get("CARGO_TARGET_DIR")
    return Path(target) / "debug" / "rivet" if target else ROOT / "target" / "debug" / "rivet"


def run_rivet(binary, frames):
    if not binary.exists():
        print(f"error: {binary} not found: run `cargo build` (or pass --rivet)", file=sys.stderr)
        sys.exit(2)
    cmd = [str(binary), "bench", "sensors", "--json", "--frames", str(frames)]
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        print(f"error: {' '.join(cmd)} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        sys.exit(1)
    try:
        out = json.loads(proc.stdout)
        assert out["bench"] == "sensors" and out["cameras"]
    except (ValueError, KeyError, AssertionError):
        print(f"error: rivet did not print one sensors JSON object:\n{proc.stdout[:2000]}", file=sys.stderr)
        sys.exit(1)
    return out


def orbit(k, n):
    """The same camera circle as `rivet bench sensors` (eye, target)."""
    a = 2 * math.pi * k / n - 0.6
    return [0.25 + 1.5 * math.cos(a), 1.5 * math.sin(a), 1.0], [0.25, 0.0, 0.1]


def build_scene(p, scene_path):
    scene = tomllib.loads(scene_path.read_text())
    p.loadURDF(_plane(p), useFixedBase=True)
    for robot in scene.get("robot", []):
        urdf = (scene_path.parent / robot["urdf"]).resolve()
        rid = p.loadURDF(str(urdf), basePosition=robot.get("position", [0, 0, 0]), useFixedBase=True)
        initial = robot.get("initial_joints", {})
        for j in range(p.getNumJoints(rid)):
            name = p.getJointInfo(rid, j)[1].decode()
            if name in initial:
                p.resetJointState(rid, j, initial[name])
    count = 0
    for prop in scene.get("prop", []):
        shape = prop["shape"]
        if "box" not in shape:
            continue
        half = [s / 2 for s in shape["box"]["size"]]
        color = prop.get("color", [0.7, 0.7, 0.7, 1.0])
        vis = p.createVisualShape(p.GEOM_BOX, halfExtents=half, rgbaColor=color)
        col = p.createCollisionShape(p.GEOM_BOX, halfExtents=half)
        p.createMultiBody(0, col, vis, prop.get("position", [0, 0, 0]),
                          p.getQuaternionFromEuler(prop.get("rpy", [0, 0, 0])))
        count += 1
    return count


def _plane(p):
    import pybullet_data
    p.setAdditionalSearchPath(pybullet_data.getDataPath())
    return "plane.urdf"


def pybullet_side(configs, frames, fov_deg):
    import pybullet as p

    client = p.connect(p.DIRECT)
    props = build_scene(p, ROOT / "scenes" / "brick_wall.toml")
    results = []
    for (w, h), n in configs:
        vfov = math.degrees(2 * math.atan(math.tan(math.radians(fov_deg) / 2) * h / w))
        proj = p.computeProjectionMatrixFOV(vfov, w / h, 0.05, 20.0)
        views = [p.computeViewMatrix(*orbit(k, n), [0, 0, 1]) for k in range(n)]
        for view in views[:2]:
            p.getCameraImage(w, h, view, proj, renderer=p.ER_TINY_RENDERER)
        secs = []
        for _ in range(frames):
            t = time.perf_counter()
            for view in views:
                p.getCameraImage(w, h, view, proj, renderer=p.ER_TINY_RENDERER)
            secs.append(time.perf_counter() - t)
        m = statistics.median(secs)
        results.append({"resolution": [w, h], "cameras": n, "median_batch_ms": m * 1e3,
                        "camera_frames_per_sec": n / m})
    p.disconnect(client)
    return results, props


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rivet", help="rivet binary (default $CARGO_TARGET_DIR/debug/rivet or target/debug/rivet)")
    ap.add_argument("--frames", type=int, default=30, help="timed frames per configuration (median)")
    ap.add_argument("--pybullet-frames", type=int, default=10, help="timed PyBullet batches per configuration")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = ap.parse_args()
    ensure_venv(sys.argv[1:])
    rivet = run_rivet(rivet_binary(args.rivet), args.frames)
    configs = [((c["resolution"][0], c["resolution"][1]), c["cameras"]) for c in rivet["cameras"]]
    peer, props = pybullet_side(configs, args.pybullet_frames, 70.0)
    rows = []
    for r, q in zip(rivet["cameras"], peer):
        rows.append({
            "resolution": r["resolution"], "cameras": r["cameras"],
            "rivet_camera_frames_per_sec": r["camera_frames_per_sec"],
            "pybullet_camera_frames_per_sec": q["camera_frames_per_sec"],
            "ratio": r["camera_frames_per_sec"] / q["camera_frames_per_sec"],
        })
    load = os.getloadavg()
    out = {"bench": "sensors_vs_pybullet", "adapter": rivet["adapter"], "rows": rows,
           "pybullet": {"renderer": "ER_TINY_RENDERER", "props": props}, "lidar": rivet["lidar"],
           "load_average": load, "rivet": rivet}
    if args.json:
        print(json.dumps(out))
        return
    a = rivet["adapter"]
    print(f"Rivet adapter: {a['name']} ({a['backend']}, {a['device_type']}); load average {load[0]:.2f}")
    print(f"{'resolution':>10} {'cameras':>7} {'Rivet frames/s':>15} {'PyBullet frames/s':>18} {'Rivet/PyBullet':>15}")
    for row in rows:
        w, h = row["resolution"]
        print(f"{w:>4}x{h:<5} {row['cameras']:>7} {row['rivet_camera_frames_per_sec']:>15.1f} "
              f"{row['pybullet_camera_frames_per_sec']:>18.1f} {row['ratio']:>14.1f}x")
    lidar = rivet["lidar"]
    print(f"lidar: {lidar['rays_per_scan']} rays per scan, {lidar['rays_per_sec']:.3e} rays/s "
          f"on {lidar['threads']} threads")


if __name__ == "__main__":
    main()
