#!/usr/bin/env python3
"""Rivet's accuracy against MuJoCo as a function of solver iterations, in one invocation.

Dumps MuJoCo's trajectories once (2 s from the default initial state, zero control, recorded after
every step; the dump of physics_vs_mujoco.py --dump-trajectories), then runs

    <rivet> bench physics --json --trajectories <work>/iters<N> --solver-iterations N

for each solver iteration count N (default 1 2 4 8) and compares, per MJCF model and N: Rivet's
steps/s, the joint-position RMSE against MuJoCo (per joint and the max over joints; rad or m), the
max absolute joint error, the body-position RMSE (m) over bodies matched by name, and the
divergence time: when the first joint deviates from MuJoCo by more than --threshold (0.05 rad or
m). Chaotic models diverge eventually, so the divergence time is the useful accuracy figure.

--mujoco-dir / --rivet-dir compare existing dump folders instead of running MuJoCo / Rivet.

Prints a table, or with --json exactly one JSON object on stdout. Progress and diagnostics go to
stderr.

Exit status: 0 success; 1 a Rivet run failed or broke its output contract, or a dump was unreadable
or malformed (the other results are still printed); 2 setup or usage error.
"""

import argparse
import json
import math
import os
import re
import shutil
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))
sys.dont_write_bytecode = True  # no bench/__pycache__ from importing the sibling script

import physics_vs_mujoco as pvm  # noqa: E402  (venv, Rivet runner, MuJoCo trajectory dump)
from physics_vs_mujoco import BenchError  # noqa: E402

pvm.LOG_TAG = "solver_accuracy"
log = pvm.log

DEFAULT_ITERATIONS = [1, 2, 4, 8]
DEFAULT_THRESHOLD = 0.05
BODY_OFFSET_NOTE_M = 0.01  # note bodies that already differ this much after the first step
RIVET_BENCH_FILE = "rivet_bench.json"  # Rivet's stdout, kept next to its trajectories
GENERATED_NAME = {"body": re.compile(r"^body\d+$"), "joint": re.compile(r"^joint\d+$")}


class DumpError(Exception):
    """A trajectory file that cannot be used (unreadable, not JSON, wrong shape)."""


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def positive_float(text):
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Rivet vs MuJoCo trajectory accuracy (joint/body RMSE, divergence time) and "
        "Rivet steps/s for several solver iteration counts.",
    )
    p.add_argument(
        "--iterations", "--solver-iterations", dest="iterations", type=pvm.positive_int,
        nargs="+", metavar="N",
        help="solver iteration counts to run Rivet with (default: "
        f"{' '.join(map(str, DEFAULT_ITERATIONS))})",
    )
    p.add_argument(
        "--rivet", metavar="PATH",
        help="Rivet binary (default: $CARGO_TARGET_DIR/release/rivet if CARGO_TARGET_DIR is "
        "set, else target/release/rivet under the repository root)",
    )
    p.add_argument(
        "--steps", type=pvm.positive_int, metavar="N",
        help="passed to `rivet bench physics --steps N` (steps per timing repetition; the "
        "trajectories are always 2 s)",
    )
    p.add_argument(
        "--repeats", type=pvm.positive_int, metavar="N",
        help="passed to `rivet bench physics --repeats N`",
    )
    p.add_argument(
        "--threshold", type=positive_float, default=DEFAULT_THRESHOLD, metavar="X",
        help="a joint has diverged once |Rivet - MuJoCo| exceeds X (rad or m; default "
        "%(default)g)",
    )
    p.add_argument("--json", action="store_true",
                   help="print exactly one JSON object on stdout instead of the table")
    p.add_argument(
        "--mjcf-dir", metavar="DIR",
        help="MJCF models to dump in MuJoCo (default: $RIVET_MJCF_DIR or "
        f"{pvm.DEFAULT_MJCF_DIR}); when given (or $RIVET_MJCF_DIR is set) it is also passed to "
        "Rivet as --mjcf-dir",
    )
    p.add_argument(
        "--mujoco-dir", metavar="DIR",
        help="use the existing MuJoCo dumps DIR/<model>.mujoco.json instead of running MuJoCo "
        "(no venv needed)",
    )
    p.add_argument(
        "--rivet-dir", metavar="DIR", action="append",
        help="use existing Rivet dumps instead of running Rivet: DIR/<model>.rivet.json and/or "
        "DIR/iters<N>/<model>.rivet.json (as --work-dir leaves them); repeatable",
    )
    p.add_argument(
        "--work-dir", metavar="DIR",
        help="write the dumps to DIR/mujoco and DIR/iters<N> and keep them (default: a "
        "temporary directory, removed at exit)",
    )
    p.add_argument("--no-venv", action="store_true",
                   help="use the current interpreter instead of creating/reusing bench/.venv")
    p.add_argument(
        "--rivet-timeout", type=float, default=pvm.DEFAULT_RIVET_TIMEOUT, metavar="SECS",
        help="give up on each Rivet run after this many seconds (default %(default)g)",
    )
    args = p.parse_args(argv)
    if args.rivet_dir and (args.iterations or args.steps or args.repeats or args.rivet):
        p.error("--rivet-dir compares existing dumps; --iterations/--steps/--repeats/--rivet "
                "only apply when Rivet is run")
    if args.iterations:
        args.iterations = list(dict.fromkeys(args.iterations))  # drop repeats, keep order
    else:
        args.iterations = list(DEFAULT_ITERATIONS)
    return args


# ---------------------------------------------------------------------------------------------
# Loading dumps
# ---------------------------------------------------------------------------------------------


def _number(v, where):
    """A JSON number or null (serde_json writes NaN/inf as null) as a float."""
    if v is None:
        return math.nan
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise DumpError(f"{where} is {v!r}, not a number")
    return float(v)


def _names(doc, key, path):
    names = doc.get(key)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise DumpError(f"{path}: \"{key}\" is missing or not a list of strings")
    return names


def load_trajectory(path):
    """Read and check a <model>.mujoco.json / <model>.rivet.json file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise DumpError(f"cannot read {path}: {e.strerror or e}")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise DumpError(f"{path} is not JSON ({e})")
    if not isinstance(doc, dict):
        raise DumpError(f"{path}: top level is not an object")
    dt = doc.get("timestep_secs")
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not (math.isfinite(dt)
                                                                         and dt > 0):
        raise DumpError(f"{path}: \"timestep_secs\" is {dt!r}, not a positive number")
    joint_names = _names(doc, "joint_names", path)
    body_names = _names(doc, "body_names", path)
    qpos_raw, body_raw = doc.get("qpos"), doc.get("body_pos")
    if not isinstance(qpos_raw, list):
        raise DumpError(f"{path}: \"qpos\" is missing or not a list")
    if not isinstance(body_raw, list):
        raise DumpError(f"{path}: \"body_pos\" is missing or not a list")
    qpos = []
    for i, row in enumerate(qpos_raw):
        if not isinstance(row, list) or len(row) != len(joint_names):
            raise DumpError(f"{path}: qpos[{i}] is not a list of {len(joint_names)} numbers "
                            "(one per joint_names entry)")
        qpos.append([_number(v, f"{path}: qpos[{i}]") for v in row])
    body_pos = []
    for i, row in enumerate(body_raw):
        if not isinstance(row, list) or len(row) != len(body_names):
            raise DumpError(f"{path}: body_pos[{i}] is not a list of {len(body_names)} "
                            "positions (one per body_names entry)")
        step = []
        for b, xyz in enumerate(row):
            if not isinstance(xyz, list) or len(xyz) != 3:
                raise DumpError(f"{path}: body_pos[{i}][{b}] is not [x, y, z]")
            step.append([_number(v, f"{path}: body_pos[{i}][{b}]") for v in xyz])
        body_pos.append(step)
    notes = []
    nsteps = len(qpos)
    if len(body_pos) != len(qpos):
        nsteps = min(len(qpos), len(body_pos))
        notes.append(f"{path.name}: qpos has {len(qpos)} steps but body_pos {len(body_pos)}; "
                     f"using the first {nsteps}")
    if nsteps == 0:
        raise DumpError(f"{path}: no steps recorded")
    declared = doc.get("steps")
    if isinstance(declared, int) and not isinstance(declared, bool) and declared != len(qpos):
        notes.append(f"{path.name}: \"steps\" says {declared} but qpos has {len(qpos)} rows")
    times = doc.get("time_secs")
    if not (isinstance(times, list) and len(times) >= nsteps
            and all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in times)):
        times = [(i + 1) * dt for i in range(nsteps)]  # recorded after every step
    iters = doc.get("solver_iterations")
    return {
        "path": str(path),
        "model": doc.get("model") if isinstance(doc.get("model"), str) else None,
        "engine": doc.get("engine"),
        "file": doc.get("file") if isinstance(doc.get("file"), str) else None,
        "timestep_secs": float(dt),
        "solver_iterations": iters if isinstance(iters, int) and not isinstance(iters, bool)
        else None,
        "stayed_finite": doc.get("stayed_finite") if isinstance(doc.get("stayed_finite"), bool)
        else None,
        "joint_names": joint_names,
        "qpos": qpos[:nsteps],
        "body_names": body_names,
        "body_pos": body_pos[:nsteps],
        "times": [float(t) for t in times[:nsteps]],
        "notes": notes,
    }


def mjcf_names(path):
    """Names the MJCF itself gives to bodies and joints, and joints' non-zero `ref`.

    Returns None when the file cannot be read; the caller then cannot tell a real name like
    reacher's `body0` from a generated one.
    """
    if not path:
        return None
    try:
        root = ET.parse(str(path)).getroot()
    except (OSError, ET.ParseError):
        return None
    if root.tag != "mujoco":
        return None
    bodies = {b.get("name") for b in root.iter("body") if b.get("name")}
    joints, refs = set(), {}
    for tag in ("joint", "freejoint"):
        for j in root.iter(tag):
            name = j.get("name")
            if name:
                joints.add(name)
                try:
                    ref = float(j.get("ref", "0"))
                except ValueError:
                    ref = None
                if ref:
                    refs[name] = j.get("ref")
    return {"body": bodies, "joint": joints, "ref": refs}


# ---------------------------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------------------------


def match_names(mj_names, rv_names, kind, explicit):
    """Match by exact name. Names like body<N>/joint<N> that the MJCF does not itself use are
    generated (MuJoCo's body<id>, Rivet's body<i> may differ for the same body): never matched."""

    def generated(n):
        return bool(GENERATED_NAME[kind].match(n)) and (explicit is None or n not in explicit)

    # A name that occurs twice on one side (e.g. MuJoCo's generated body2 next to a body the
    # MJCF calls body2) is ambiguous: not matched either.
    ambiguous = {n for names in (mj_names, rv_names) for n, c in Counter(names).items() if c > 1}
    rv_index = {n: i for i, n in enumerate(rv_names)}
    mj_set = set(mj_names)

    def usable(n):
        return not generated(n) and n not in ambiguous

    matched = [(n, i, rv_index[n]) for i, n in enumerate(mj_names)
               if n in rv_index and usable(n)]
    return {
        "matched": matched,
        "only_mujoco": [n for n in mj_names if n not in rv_index and usable(n)],
        "only_rivet": [n for n in rv_names if n not in mj_set and usable(n)],
        "generated_mujoco": [n for n in mj_names if generated(n) and n not in ambiguous],
        "generated_rivet": [n for n in rv_names if generated(n) and n not in ambiguous],
        "ambiguous": sorted(ambiguous),
    }


def align(mj, rv):
    """Sample plan [(time, mujoco_step, rivet_step0, rivet_step1, weight)] over the common span.

    Equal timesteps: step by step over the common prefix. Different timesteps: Rivet linearly
    interpolated at MuJoCo's sample times inside Rivet's recorded span.
    """
    notes = []
    dt_m, dt_r = mj["timestep_secs"], rv["timestep_secs"]
    n_m, n_r = len(mj["qpos"]), len(rv["qpos"])
    expected = round(pvm.TRAJECTORY_SECONDS / dt_m)
    if math.isclose(dt_m, dt_r, rel_tol=1e-9, abs_tol=1e-15):
        n = min(n_m, n_r)
        plan = [(mj["times"][i], i, i, i, 0.0) for i in range(n)]
        if n_m != n_r:
            notes.append(f"step counts differ (MuJoCo {n_m}, Rivet {n_r}); compared the common "
                         f"prefix of {n} steps ({n * dt_m:g} s)")
        elif n != expected:
            notes.append(f"both sides recorded {n} steps ({n * dt_m:g} s), not the expected "
                         f"{expected} ({pvm.TRAJECTORY_SECONDS:g} s)")
        return plan, notes
    t_r = [(j + 1) * dt_r for j in range(n_r)]
    eps = 1e-9 * max(dt_m, dt_r)
    plan = []
    j = 0
    for i, t in enumerate(mj["times"]):
        if t < t_r[0] - eps or t > t_r[-1] + eps:
            continue
        while j + 1 < n_r and t_r[j + 1] < t - eps:
            j += 1
        if j + 1 < n_r and t > t_r[j] + eps:
            w = (t - t_r[j]) / (t_r[j + 1] - t_r[j])
            plan.append((t, i, j, j + 1, min(max(w, 0.0), 1.0)))
        else:
            plan.append((t, i, j, j, 0.0))
    span = f"{plan[0][0]:g}..{plan[-1][0]:g} s" if plan else "nothing"
    notes.append(f"timesteps differ (MuJoCo {dt_m:g} s, Rivet {dt_r:g} s): Rivet's trajectory "
                 f"was linearly interpolated at MuJoCo's {len(plan)} sample times in the common "
                 f"span ({span})")
    return plan, notes


def _interp(a, b, w):
    return a if w == 0.0 else a + (b - a) * w


def _fin(x):
    return x if x is not None and math.isfinite(x) else None


def _t(x):
    """A sample time without the float noise of MuJoCo's accumulated d.time."""
    return None if x is None else round(x, 9)


def compare_trajectories(mj, rv, threshold=DEFAULT_THRESHOLD, mjcf=None):
    """Compare one Rivet trajectory with MuJoCo's (both as returned by load_trajectory).

    `mjcf` is mjcf_names() of the model (None if unknown). Returns a JSON-ready dict; metrics
    that cannot be computed (nothing matched, non-finite state) are None.
    """
    notes = list(mj["notes"]) + list(rv["notes"])
    joints = match_names(mj["joint_names"], rv["joint_names"], "joint",
                         mjcf["joint"] if mjcf else None)
    bodies = match_names(mj["body_names"], rv["body_names"], "body",
                         mjcf["body"] if mjcf else None)
    plan, align_notes = align(mj, rv)
    notes += align_notes
    if mjcf is None and (joints["generated_mujoco"] or bodies["generated_mujoco"]
                         or joints["generated_rivet"] or bodies["generated_rivet"]):
        notes.append("MJCF file not readable: body<N>/joint<N> names could be real or generated, "
                     "so they were not matched")
    for kind, m in (("joints", joints), ("bodies", bodies)):
        if m["only_mujoco"]:
            notes.append(f"{kind} only in MuJoCo's dump: {', '.join(m['only_mujoco'])}")
        if m["only_rivet"]:
            notes.append(f"{kind} only in Rivet's dump: {', '.join(m['only_rivet'])}")
        if m["ambiguous"]:
            notes.append(f"{kind} not compared because a dump names them more than once: "
                         f"{', '.join(m['ambiguous'])}")
        if m["generated_mujoco"] or m["generated_rivet"]:
            notes.append(f"unnamed {kind} not compared (generated names: MuJoCo "
                         f"{', '.join(m['generated_mujoco']) or '-'}; Rivet "
                         f"{', '.join(m['generated_rivet']) or '-'})")
    if mjcf:
        for name, _, _ in joints["matched"]:
            if name in mjcf["ref"]:
                notes.append(f"joint {name} has ref={mjcf['ref'][name]} in the MJCF: MuJoCo's "
                             "qpos starts at ref, Rivet's must too")

    n = len(plan)
    qm, qr = mj["qpos"], rv["qpos"]
    joint_rmse, joint_maxabs, joint_div = {}, {}, {}
    divergence_t, divergence_joint, divergence_err, nonfinite_t = None, None, None, None
    first_step_err = {}
    for name, mi, ri in joints["matched"]:
        sq, mx, finite = 0.0, 0.0, True
        prev, wrapped = None, False
        for k, (t, i, j0, j1, w) in enumerate(plan):
            e = _interp(qr[j0][ri], qr[j1][ri], w) - qm[i][mi]
            if not math.isfinite(e):
                finite = False
                if nonfinite_t is None or t < nonfinite_t:
                    nonfinite_t = t
                if name not in joint_div:
                    joint_div[name] = t
                break
            if k == 0:
                first_step_err[name] = abs(e)
            sq += e * e
            mx = max(mx, abs(e))
            if name not in joint_div and abs(e) > threshold:
                joint_div[name] = t
            if prev is not None and abs(abs(e - prev) - 2 * math.pi) < 0.5:
                wrapped = True
            prev = e
        joint_rmse[name] = math.sqrt(sq / n) if finite and n else None
        joint_maxabs[name] = mx if finite and n else None
        if wrapped:
            notes.append(f"joint {name}: the error jumps by about 2π between two steps; one side "
                         "probably wraps angles to (-π, π]")
    for name, t in joint_div.items():
        if divergence_t is None or t < divergence_t:
            divergence_t, divergence_joint = t, name
    if divergence_joint is not None:
        k = next(k for k, p in enumerate(plan) if p[0] == divergence_t)
        _, i, j0, j1, w = plan[k]
        mi, ri = next((mi, ri) for nm, mi, ri in joints["matched"] if nm == divergence_joint)
        divergence_err = _fin(abs(_interp(qr[j0][ri], qr[j1][ri], w) - qm[i][mi]))
    if nonfinite_t is not None:
        notes.append(f"non-finite joint positions from t = {nonfinite_t:g} s (RMSE undefined)")
    if n and joints["matched"] and first_step_err:
        worst = max(first_step_err, key=first_step_err.get)
        if first_step_err[worst] > threshold:
            notes.append(f"joint {worst} is already off by {first_step_err[worst]:.3g} after the "
                         "first step: an initial-state or convention mismatch rather than "
                         "integration error?")

    bm, br = mj["body_pos"], rv["body_pos"]
    body_rmse, body_sq_total, body_finite, body_first = {}, 0.0, True, {}
    for name, mi, ri in bodies["matched"]:
        sq, finite = 0.0, True
        for k, (t, i, j0, j1, w) in enumerate(plan):
            d2 = 0.0
            for c in range(3):
                d = _interp(br[j0][ri][c], br[j1][ri][c], w) - bm[i][mi][c]
                d2 += d * d
            if not math.isfinite(d2):
                finite = False
                break
            if k == 0:
                body_first[name] = math.sqrt(d2)
            sq += d2
        body_rmse[name] = math.sqrt(sq / n) if finite and n else None
        body_finite &= finite
        body_sq_total += sq
    nb = len(bodies["matched"])
    body_rmse_all = (math.sqrt(body_sq_total / (n * nb)) if nb and n and body_finite else None)
    if body_first and max(body_first.values()) > BODY_OFFSET_NOTE_M:
        worst = max(body_first, key=body_first.get)
        notes.append(f"body {worst} is already {body_first[worst]:.3g} m off after the first "
                     "step: different body frames (e.g. link origin vs. centre of mass) or "
                     "initial pose?")
    if not body_finite:
        bad = [k for k, v in body_rmse.items() if v is None]
        notes.append(f"non-finite body positions ({', '.join(bad)}): body RMSE undefined")
    if not joints["matched"]:
        notes.append("no joints matched by name: no joint RMSE or divergence time")
    if not nb:
        notes.append("no bodies matched by name: no body RMSE")
    if rv.get("stayed_finite") is False:
        notes.append("Rivet reports stayed_finite = false for this trajectory")

    rmse_vals = {k: v for k, v in joint_rmse.items() if v is not None}
    max_vals = {k: v for k, v in joint_maxabs.items() if v is not None}
    all_finite = len(rmse_vals) == len(joint_rmse)
    compared_secs = plan[-1][0] if plan else 0.0
    return {
        "mujoco_timestep_secs": mj["timestep_secs"],
        "rivet_timestep_secs": rv["timestep_secs"],
        "mujoco_steps": len(mj["qpos"]),
        "rivet_steps": len(rv["qpos"]),
        "samples_compared": n,
        "compared_secs": _t(compared_secs),
        "joints_matched": [nm for nm, _, _ in joints["matched"]],
        "joints_only_mujoco": joints["only_mujoco"],
        "joints_only_rivet": joints["only_rivet"],
        "joints_unnamed_mujoco": joints["generated_mujoco"],
        "joints_unnamed_rivet": joints["generated_rivet"],
        "joints_ambiguous": joints["ambiguous"],
        "joint_rmse": {k: _fin(v) for k, v in joint_rmse.items()},
        "joint_rmse_max": (max(rmse_vals.values()) if rmse_vals and all_finite else None),
        "joint_rmse_max_joint": (max(rmse_vals, key=rmse_vals.get)
                                 if rmse_vals and all_finite else None),
        "joint_max_abs_error": {k: _fin(v) for k, v in joint_maxabs.items()},
        "joint_max_abs_error_max": (max(max_vals.values()) if max_vals and all_finite
                                    else None),
        "joint_divergence_time_secs": {nm: _t(joint_div.get(nm))
                                       for nm, _, _ in joints["matched"]},
        "bodies_matched": [nm for nm, _, _ in bodies["matched"]],
        "bodies_only_mujoco": bodies["only_mujoco"],
        "bodies_only_rivet": bodies["only_rivet"],
        "bodies_unnamed_mujoco": bodies["generated_mujoco"],
        "bodies_unnamed_rivet": bodies["generated_rivet"],
        "bodies_ambiguous": bodies["ambiguous"],
        "body_rmse_m": body_rmse_all,
        "body_rmse_per_body_m": {k: _fin(v) for k, v in body_rmse.items()},
        "body_offset_after_first_step_max_m": (max(body_first.values()) if body_first
                                               else None),
        "threshold": threshold,
        "diverged": divergence_t is not None,
        "divergence_time_secs": _t(divergence_t),
        "divergence_joint": divergence_joint,
        "divergence_error": divergence_err,
        "nonfinite_time_secs": _t(nonfinite_t),
        "rivet_stayed_finite": rv.get("stayed_finite"),
        "notes": notes,
    }


# ---------------------------------------------------------------------------------------------
# Dump folders
# ---------------------------------------------------------------------------------------------


def dumps_in(folder, suffix):
    """{model: path} of <model><suffix> files in folder."""
    out = {}
    folder = Path(folder)
    if folder.is_dir():
        for f in sorted(folder.glob(f"*{suffix}")):
            if f.is_file():
                out[f.name[: -len(suffix)]] = f
    return out


def rivet_sets_in(folder):
    """Rivet dump sets under an existing folder: the folder itself if it holds *.rivet.json, and
    each iters<N> subfolder that does. Returns [{"solver_iterations", "dir", "bench"}]."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BenchError(f"--rivet-dir {folder} is not a directory")
    candidates = [(None, folder)]
    for sub in sorted(folder.iterdir(), key=lambda p: p.name):
        m = re.fullmatch(r"iters(\d+)", sub.name)
        if m and sub.is_dir():
            candidates.append((int(m.group(1)), sub))
    sets = []
    for n, d in candidates:
        files = dumps_in(d, ".rivet.json")
        if not files:
            continue
        bench = None
        bench_file = d / RIVET_BENCH_FILE
        if bench_file.is_file():
            try:
                bench = json.loads(bench_file.read_text())
            except (OSError, json.JSONDecodeError) as e:
                log(f"warning: ignoring {bench_file}: {e}")
        if n is None:  # a plain folder: take the count the files (or Rivet's output) report
            counts = []
            for f in files.values():
                try:
                    c = json.loads(f.read_text()).get("solver_iterations")
                except (OSError, json.JSONDecodeError, AttributeError):
                    c = None
                if isinstance(c, int) and not isinstance(c, bool):
                    counts.append(c)
            n = Counter(counts).most_common(1)[0][0] if counts else None
        sets.append({"solver_iterations": n, "dir": str(d.resolve()), "bench": bench,
                     "command": None, "error": None})
    if not sets:
        raise BenchError(f"--rivet-dir {folder}: no *.rivet.json files in it or in its iters<N> "
                         "subfolders")
    return sets


def rivet_results_by_model(bench):
    out = {}
    if isinstance(bench, dict) and isinstance(bench.get("results"), list):
        for r in bench["results"]:
            if isinstance(r, dict) and isinstance(r.get("model"), str):
                out[r["model"]] = r
    return out


def mjcf_path_for(model, mj, rv_result, mjcf_dir):
    for f in ((mj or {}).get("file"), (rv_result or {}).get("file")):
        if f:
            p = Path(f)
            if not p.is_absolute():
                p = pvm.REPO_ROOT / p
            if p.is_file():
                return p
    if mjcf_dir:
        p = Path(mjcf_dir) / f"{model}.xml"
        if p.is_file():
            return p
    return None


def compare_sets(mujoco_dir, sets, threshold, mjcf_dir=None):
    """Compare every Rivet dump set with the MuJoCo dumps in mujoco_dir.

    Usable on its own, on existing folders. `sets` is a list of {"solver_iterations", "dir",
    "bench" (Rivet's stdout object or None), "error" (a failed run) or None}. Returns (rows,
    errors): one row per (model, set), and messages for unreadable or malformed dumps and failed
    runs.
    """
    mj_files = dumps_in(mujoco_dir, ".mujoco.json")
    mj_cache, errors = {}, []

    def mujoco_doc(model):
        if model not in mj_cache:
            try:
                mj_cache[model] = (load_trajectory(mj_files[model]), None)
            except DumpError as e:
                mj_cache[model] = (None, str(e))
                errors.append(str(e))
        return mj_cache[model]

    rows = []
    for s in sets:
        n_iter = s["solver_iterations"]
        results = rivet_results_by_model(s.get("bench"))
        rv_files = dumps_in(s["dir"], ".rivet.json") if s.get("dir") else {}
        # Models of this set: MuJoCo's, the ones Rivet dumped, and MJCF models Rivet reported.
        models = list(mj_files)
        for m in rv_files:
            if m not in models:
                models.append(m)
        for m, r in results.items():
            f = r.get("file")
            if m not in models and isinstance(f, str) and f.lower().endswith(".xml"):
                models.append(m)
        for model in models:
            r = results.get(model)
            row = {
                "model": model,
                "solver_iterations": n_iter,
                "status": "ok",
                "rivet_steps_per_sec": (float(r["steps_per_sec"])
                                        if r and isinstance(r.get("steps_per_sec"), (int, float))
                                        else None),
                "rivet_bench_stayed_finite": r.get("stayed_finite") if r else None,
                "mujoco_file": str(mj_files[model]) if model in mj_files else None,
                "rivet_file": str(rv_files[model]) if model in rv_files else None,
                "error": None,
                "notes": [],
            }
            if r and isinstance(r.get("solver_iterations"), int) and n_iter is not None \
                    and r["solver_iterations"] != n_iter:
                row["notes"].append(f"Rivet's results report solver_iterations "
                                    f"{r['solver_iterations']}, not {n_iter}")
            rows.append(row)
            if s.get("error"):
                row["status"] = "rivet_failed"
                row["error"] = "the Rivet run failed"
                continue
            if model not in mj_files:
                row["status"] = "no_mujoco"
                row["notes"].append(f"no {model}.mujoco.json in {mujoco_dir}")
                continue
            if model not in rv_files:
                row["status"] = "no_rivet"
                if r is not None:
                    msg = (f"{model}: Rivet reported the model (solver iterations {n_iter}) but "
                           f"wrote no {model}.rivet.json in {s['dir']}")
                    row["status"], row["error"] = "error", msg
                    errors.append(msg)
                else:
                    row["notes"].append(f"no {model}.rivet.json in {s['dir']}")
                continue
            mj, err = mujoco_doc(model)
            if mj is None:
                row["status"], row["error"] = "error", err
                continue
            try:
                rv = load_trajectory(rv_files[model])
            except DumpError as e:
                row["status"], row["error"] = "error", str(e)
                errors.append(str(e))
                continue
            if rv["solver_iterations"] is not None and n_iter is not None \
                    and rv["solver_iterations"] != n_iter:
                row["notes"].append(f"{Path(rv['path']).name} says solver_iterations "
                                    f"{rv['solver_iterations']}, the run asked for {n_iter}")
            if row["solver_iterations"] is None:
                row["solver_iterations"] = rv["solver_iterations"]
            for side, doc in (("MuJoCo", mj), ("Rivet", rv)):
                if doc["model"] and doc["model"] != model:
                    row["notes"].append(f"{side}'s dump of {model} says \"model\": "
                                        f"{doc['model']!r}")
            mjcf = mjcf_names(mjcf_path_for(model, mj, r, mjcf_dir))
            cmp = compare_trajectories(mj, rv, threshold, mjcf)
            row["notes"] += cmp.pop("notes")
            row.update(cmp)
    return rows, errors


# ---------------------------------------------------------------------------------------------
# Running MuJoCo and Rivet
# ---------------------------------------------------------------------------------------------


def dump_mujoco(mjcf_dir, out_dir):
    """MuJoCo trajectories of every MJCF file in mjcf_dir (physics_vs_mujoco's dump)."""
    np, mujoco, _ = pvm.import_mujoco()
    files = [f for f in sorted(Path(mjcf_dir).glob("*.xml")) if pvm.is_mjcf(f)]
    if not files:
        raise BenchError(f"no MJCF models in {mjcf_dir} (set --mjcf-dir)")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    errors = []
    for f in files:
        try:
            out = pvm.dump_trajectory(np, mujoco, f.resolve(), f.stem, out_dir)
            log(f"wrote {out}")
        except Exception as e:  # one model MuJoCo rejects should not sink the others
            msg = f"MuJoCo could not dump {f}: {e}"
            log(f"warning: {msg}")
            errors.append(msg)
    return f"mujoco {mujoco.__version__}", errors


def run_rivet_sets(args, work, mjcf_dir_for_rivet):
    path, source = pvm.resolve_rivet(args.rivet)
    sets = []
    for n in args.iterations:
        d = (work / f"iters{n}").resolve()
        d.mkdir(parents=True, exist_ok=True)
        stale = list(d.glob("*.rivet.json")) + list(d.glob(RIVET_BENCH_FILE))
        if stale:
            log(f"removing {len(stale)} old dump(s) from {d}")
            for f in stale:
                f.unlink()
        extra = ["--trajectories", str(d), "--solver-iterations", str(n)]
        if args.repeats is not None:
            extra += ["--repeats", str(args.repeats)]
        if mjcf_dir_for_rivet is not None:
            extra += ["--mjcf-dir", str(mjcf_dir_for_rivet)]
        entry = {"solver_iterations": n, "dir": str(d), "bench": None, "command": None,
                 "error": None}
        try:
            cmd, obj = pvm.run_rivet(path, source, args.steps, args.rivet_timeout, extra)
            entry["command"], entry["bench"] = cmd, obj
            (d / RIVET_BENCH_FILE).write_text(json.dumps(obj, indent=2) + "\n")
        except BenchError as e:
            if e.status != 1:
                raise
            log(f"warning: solver iterations {n}: {e}")
            entry["error"] = str(e)
        sets.append(entry)
    return sets, [str(path), source]


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def print_table(report):
    header = ["model", "iters", "Rivet steps/s", "joint RMSE max", "worst joint", "joint max err",
              "body RMSE (m)", "diverges at (s)"]
    lines, notes = [], []
    for r in report["results"]:
        if r["status"] == "ok":
            if r["diverged"]:
                div = f"{r['divergence_time_secs']:.3f} ({r['divergence_joint']})"
            elif r["joints_matched"]:
                div = f">{r['compared_secs']:.3f}"
            else:
                div = "-"
            rmse = fmt(r["joint_rmse_max"], ".4g")
            if r["joints_matched"] and r["joint_rmse_max"] is None:
                rmse = "non-finite"
            lines.append([r["model"], fmt(r["solver_iterations"], "d"),
                          fmt(r["rivet_steps_per_sec"], ",.0f"), rmse,
                          r["joint_rmse_max_joint"] or "-",
                          fmt(r["joint_max_abs_error_max"], ".4g"), fmt(r["body_rmse_m"], ".4g"),
                          div])
        else:
            what = {"rivet_failed": "Rivet run failed", "no_mujoco": "no MuJoCo dump",
                    "no_rivet": "no Rivet dump", "error": "error (see below)"}[r["status"]]
            lines.append([r["model"], fmt(r["solver_iterations"], "d"),
                          fmt(r["rivet_steps_per_sec"], ",.0f"), what, "", "", "", ""])
        for note in r["notes"]:
            text = f"{r['model']}: {note}"
            if text not in notes:
                notes.append(text)
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h)
              for i, h in enumerate(header)]

    def row(cells):
        return "  ".join(c.ljust(widths[i]) if i in (0, 4) else c.rjust(widths[i])
                         for i, c in enumerate(cells)).rstrip()

    out = [row(header), "  ".join("-" * w for w in widths)] + [row(l) for l in lines]
    out.append("")
    out.append(
        f"Against {report['mujoco']['engine'] or 'MuJoCo'}: {pvm.TRAJECTORY_SECONDS:g} s from "
        "the default initial state, zero control. Joint errors in rad (hinge) or m (slide), RMSE "
        "over all recorded steps; body RMSE = RMS of the position distance over matched bodies "
        f"and steps; diverges at = first time a joint is off by more than "
        f"{report['threshold']:g} ('>T': not within the T s compared)."
    )
    for s in report["rivet"]["runs"]:
        if s.get("command"):
            out.append(f"Rivet: {' '.join(s['command'])}")
        elif s.get("error"):
            out.append(f"Rivet, solver iterations {s['solver_iterations']}: FAILED")
    for e in report["errors"]:
        out.append(f"error: {e}")
    out.extend(notes)
    if report.get("work_dir"):
        out.append(f"Dumps kept in {report['work_dir']}")
    print("\n".join(out))


def json_safe(x):
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def main(argv):
    args = parse_args(argv)
    need_mujoco = args.mujoco_dir is None
    if need_mujoco and not args.no_venv:
        pvm.ensure_venv(argv, script=__file__)  # re-execs inside bench/.venv unless already there

    explicit_mjcf = args.mjcf_dir or os.environ.get("RIVET_MJCF_DIR")
    mjcf_dir = Path(args.mjcf_dir or pvm.DEFAULT_MJCF_DIR).expanduser()
    if need_mujoco and not mjcf_dir.is_dir():
        raise BenchError(f"MJCF directory {mjcf_dir} does not exist (set --mjcf-dir)")
    if args.mujoco_dir and not Path(args.mujoco_dir).is_dir():
        raise BenchError(f"--mujoco-dir {args.mujoco_dir} is not a directory")
    if args.rivet_dir:
        sets = []
        for d in args.rivet_dir:
            sets += rivet_sets_in(d)
        rivet_info = {"binary": None, "source": "--rivet-dir", "runs": sets}
    else:
        path, source = pvm.resolve_rivet(args.rivet)
        if not path.exists():
            raise BenchError(
                f"Rivet binary not found: {path} (from {source}). Build it with `cargo build "
                "--release`, pass --rivet PATH or set CARGO_TARGET_DIR; or compare existing "
                "dumps with --rivet-dir DIR"
            )
        pvm.check_rivet_binary(path, source)

    temp, work = None, None
    if not need_mujoco and args.rivet_dir:
        if args.work_dir:
            log("note: --work-dir is not used when both --mujoco-dir and --rivet-dir are given")
    elif args.work_dir:
        work = Path(args.work_dir).expanduser().resolve()
        try:
            work.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BenchError(f"cannot create --work-dir {work}: {e}")
    else:
        temp = tempfile.mkdtemp(prefix="rivet-solver-accuracy-")
        work = Path(temp)
    keep_temp = False
    try:
        errors = []
        if need_mujoco:
            mujoco_dir = work / "mujoco"
            engine, mj_errors = dump_mujoco(mjcf_dir, mujoco_dir)
            errors += mj_errors
            mujoco_info = {"dir": str(mujoco_dir), "source": "dumped", "engine": engine}
        else:
            mujoco_dir = Path(args.mujoco_dir).resolve()
            engines = set()
            for f in dumps_in(mujoco_dir, ".mujoco.json").values():
                try:
                    engines.add(json.loads(f.read_text()).get("engine"))
                except (OSError, json.JSONDecodeError, AttributeError):
                    pass
            engines.discard(None)
            if not dumps_in(mujoco_dir, ".mujoco.json"):
                raise BenchError(f"--mujoco-dir {mujoco_dir}: no *.mujoco.json files")
            mujoco_info = {"dir": str(mujoco_dir), "source": "--mujoco-dir",
                           "engine": ", ".join(sorted(map(str, engines))) or None}

        if not args.rivet_dir:
            sets, (binary, source) = run_rivet_sets(
                args, work, mjcf_dir.resolve() if explicit_mjcf else None)
            rivet_info = {"binary": binary, "source": source, "runs": sets}
        errors += [f"Rivet, solver iterations {s['solver_iterations']}: {s['error']}"
                   for s in sets if s.get("error")]

        rows, cmp_errors = compare_sets(mujoco_dir, sets, args.threshold,
                                        mjcf_dir if mjcf_dir.is_dir() else None)
        errors += cmp_errors
        rows.sort(key=lambda r: (r["model"], r["solver_iterations"] is None,
                                 r["solver_iterations"] or 0))
        if temp is not None and errors:
            keep_temp = True  # something failed: leave the dumps for a look
            log(f"errors occurred; keeping the dumps in {work}")
        report = {
            "bench": "solver_accuracy",
            "threshold": args.threshold,
            "trajectory_secs": pvm.TRAJECTORY_SECONDS,
            "iterations": sorted({s["solver_iterations"] for s in sets
                                  if s["solver_iterations"] is not None}),
            "mujoco": mujoco_info,
            "rivet": rivet_info,
            "work_dir": str(work) if work and (temp is None or keep_temp) else None,
            "host": {"cpu": pvm.cpu_name(), "logical_cpus": os.cpu_count(),
                     "loadavg": pvm.loadavg()},
            "results": rows,
            "errors": errors,
        }
        if args.json:
            print(json.dumps(json_safe(report), indent=2, allow_nan=False))
        else:
            print_table(report)
        return 1 if errors else 0
    finally:
        if temp is not None and not keep_temp:
            shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.status)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
