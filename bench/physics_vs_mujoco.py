#!/usr/bin/env python3
"""Rivet physics vs MuJoCo, side by side, in one invocation.

Runs `rivet bench physics --json` (Rivet's side: rapier3d), then measures MuJoCo on the same MJCF
files at each model's own timestep, one thread, from the default initial state with zero controls,
and prints a table (or, with --json, exactly one JSON object on stdout) with the ratio
Rivet / MuJoCo. The headline MuJoCo figure is `mujoco.rollout` (as in
shared/reference/peers-measured.md); a plain Python `mujoco.mj_step` loop is reported next to it.

With --dump-trajectories DIR it also writes DIR/<model>.mujoco.json: 2 s of simulated time from the
default initial state with zero control, recorded after every step, for accuracy comparisons.

Unless --no-venv is given, the script creates (or reuses) bench/.venv, installs
bench/requirements.txt into it and re-runs itself with that interpreter. Progress and diagnostics
go to stderr; stdout carries only the table or the JSON object.

Exit status: 0 success, 1 the Rivet command failed or broke its output contract, 2 setup or usage
error (missing binary, missing MJCF files, venv/pip failure, MuJoCo not importable).
"""

import argparse
import collections
import gc
import hashlib
import inspect
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
VENV_DIR = BENCH_DIR / ".venv"
REQUIREMENTS = BENCH_DIR / "requirements.txt"
VENV_STAMP = VENV_DIR / ".requirements.sha256"
DEFAULT_MJCF_DIR = os.environ.get("RIVET_MJCF_DIR", "/work/shared/mjcf")
DEFAULT_STEPS = 20000
DEFAULT_REPEATS = 5
DEFAULT_RIVET_TIMEOUT = 3600.0
TRAJECTORY_SECONDS = 2.0
WARMUP_STEPS = 1000
LOG_TAG = "physics_vs_mujoco"  # importers (e.g. solver_accuracy.py) set their own


class BenchError(Exception):
    """A failure reported as one clear message, with an exit status."""

    def __init__(self, message, status=2):
        super().__init__(message)
        self.status = status


def log(msg):
    print(f"[{LOG_TAG}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def positive_int(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Rivet (rapier3d) vs MuJoCo physics throughput on the same MJCF models, "
        "one thread, side by side.",
    )
    p.add_argument(
        "--rivet",
        metavar="PATH",
        help="Rivet binary (default: $CARGO_TARGET_DIR/release/rivet if CARGO_TARGET_DIR is "
        "set, else target/release/rivet under the repository root)",
    )
    p.add_argument(
        "--steps",
        type=positive_int,
        metavar="N",
        help=f"steps per repetition (default {DEFAULT_STEPS}); also passed to "
        "`rivet bench physics --steps N`",
    )
    p.add_argument(
        "--repeats",
        type=positive_int,
        default=DEFAULT_REPEATS,
        metavar="R",
        help=f"MuJoCo repetitions per model and method; the median is reported "
        f"(default {DEFAULT_REPEATS})",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print exactly one JSON object on stdout instead of the table",
    )
    p.add_argument(
        "--dump-trajectories",
        metavar="DIR",
        help=f"write DIR/<model>.mujoco.json: {TRAJECTORY_SECONDS:g} s from the default initial "
        "state, zero control, recorded after every step",
    )
    p.add_argument(
        "--mjcf-dir",
        default=DEFAULT_MJCF_DIR,
        metavar="DIR",
        help="directory of MJCF models measured in MuJoCo in addition to the MJCF files Rivet "
        "reports (default: $RIVET_MJCF_DIR or %(default)s)",
    )
    p.add_argument(
        "--no-venv",
        action="store_true",
        help="use the current interpreter instead of creating/reusing bench/.venv",
    )
    p.add_argument(
        "--no-rivet",
        action="store_true",
        help="skip the Rivet command; measure (and dump) MuJoCo only",
    )
    p.add_argument(
        "--rivet-timeout",
        type=float,
        default=DEFAULT_RIVET_TIMEOUT,
        metavar="SECS",
        help="give up on the Rivet command after this many seconds (default %(default)g)",
    )
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------------
# Virtualenv
# ---------------------------------------------------------------------------------------------


def venv_python():
    if os.name == "nt":
        return VENV_DIR / "Scripts" / "python.exe"
    return VENV_DIR / "bin" / "python"


def running_in_bench_venv():
    try:
        return Path(sys.prefix).resolve() == VENV_DIR.resolve()
    except OSError:
        return False


def ensure_venv(argv, script=None):
    """Create/refresh bench/.venv, then re-exec `script` (default: this file) inside it (no
    return) if needed."""
    if not REQUIREMENTS.is_file():
        raise BenchError(f"{REQUIREMENTS} is missing")
    in_venv = running_in_bench_venv()
    py = Path(sys.executable) if in_venv else venv_python()
    if not in_venv and not py.exists():
        log(f"creating virtualenv {VENV_DIR}")
        proc = subprocess.run(
            [sys.executable, "-m", "venv", str(VENV_DIR)], stdout=sys.stderr, stderr=sys.stderr
        )
        if proc.returncode != 0 or not py.exists():
            raise BenchError(
                f"`{sys.executable} -m venv {VENV_DIR}` failed (status {proc.returncode}); "
                "install the venv module (e.g. apt-get install python3-venv) or use --no-venv"
            )
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    have = VENV_STAMP.read_text().strip() if VENV_STAMP.is_file() else None
    if have != wanted:
        log(f"installing {REQUIREMENTS.relative_to(REPO_ROOT)} into {VENV_DIR}")
        proc = subprocess.run(
            [str(py), "-m", "pip", "install", "--disable-pip-version-check", "-r",
             str(REQUIREMENTS)],
            stdout=sys.stderr,
            stderr=sys.stderr,
        )
        if proc.returncode != 0:
            raise BenchError(
                f"pip install -r {REQUIREMENTS} into {VENV_DIR} failed (status "
                f"{proc.returncode}); see pip's output above"
            )
        VENV_STAMP.write_text(wanted + "\n")
    if not in_venv:
        sys.stdout.flush()
        sys.stderr.flush()
        script = Path(script or __file__).resolve()
        os.execv(str(py), [str(py), str(script), *argv])


# ---------------------------------------------------------------------------------------------
# Rivet side
# ---------------------------------------------------------------------------------------------


def resolve_rivet(arg):
    if arg:
        path, source = Path(arg).expanduser(), "--rivet"
        if not path.exists() and os.sep not in arg and shutil.which(arg):
            path = Path(shutil.which(arg))
    elif os.environ.get("CARGO_TARGET_DIR"):
        path = Path(os.environ["CARGO_TARGET_DIR"]).expanduser() / "release" / "rivet"
        source = "$CARGO_TARGET_DIR"
    else:
        path, source = REPO_ROOT / "target" / "release" / "rivet", "default"
    if not path.is_absolute():
        path = Path.cwd() / path
    return path, source


def describe_status(returncode):
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    text = f"exited with status {returncode}"
    if returncode == 101:
        text += " (a Rust panic)"
    return text


def check_rivet_binary(path, source):
    """Raise BenchError unless `path` is an executable file."""
    if not path.exists():
        raise BenchError(
            f"Rivet binary not found: {path} (from {source}). Build it with "
            "`cargo build --release` in the repository root, pass --rivet PATH, set "
            "CARGO_TARGET_DIR, or use --no-rivet to measure MuJoCo only."
        )
    if path.is_dir() or not os.access(path, os.X_OK):
        raise BenchError(f"Rivet binary {path} (from {source}) is not an executable file")


def run_rivet(path, source, steps, timeout, extra_args=()):
    """Run `rivet bench physics --json [--steps N] [extra_args...]`; return (command, parsed
    object)."""
    check_rivet_binary(path, source)
    cmd = [str(path), "bench", "physics", "--json"]
    if steps is not None:
        cmd += ["--steps", str(steps)]
    cmd += [str(a) for a in extra_args]
    shown = " ".join(cmd)
    log(f"running {shown}")

    # Rivet's stderr is passed through live (progress, warnings, panics) and its tail is kept for
    # the failure message; stdout is captured and must hold exactly one JSON object.
    tail = collections.deque(maxlen=64)
    try:
        proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError as e:
        raise BenchError(f"could not start Rivet ({shown}): {e}")

    def pump_stderr():
        for line in iter(proc.stderr.readline, b""):
            sys.stderr.buffer.write(line)
            sys.stderr.buffer.flush()
            tail.append(line.decode("utf-8", "replace").rstrip("\n"))

    chunks = []

    def read_stdout():
        chunks.append(proc.stdout.read())

    pump = threading.Thread(target=pump_stderr, daemon=True)
    reader = threading.Thread(target=read_stdout, daemon=True)
    pump.start()
    reader.start()
    started = time.perf_counter()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()  # the binary itself; children of a wrapper script may linger briefly
        proc.wait()
        pump.join(timeout=1)
        raise BenchError(
            f"Rivet benchmark timed out after {timeout:g} s and was killed: {shown} "
            "(raise --rivet-timeout or lower --steps)",
            status=1,
        )
    elapsed = time.perf_counter() - started
    reader.join()
    pump.join(timeout=5)
    stdout = chunks[0] if chunks else b""
    stderr_tail = "\n".join(f"    {l}" for l in list(tail)[-20:]) or "    (nothing on stderr)"

    if proc.returncode != 0:
        raise BenchError(
            f"Rivet benchmark failed: `{shown}` {describe_status(proc.returncode)} after "
            f"{elapsed:.1f} s. Last lines of its stderr:\n{stderr_tail}",
            status=1,
        )
    text = stdout.decode("utf-8", "replace").strip()
    excerpt = (text[:400] + ("..." if len(text) > 400 else "")).replace("\n", "\n    ")
    try:
        obj, end = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError as e:
        raise BenchError(
            f"Rivet benchmark output is not JSON: `{shown}` exited 0 but stdout did not start "
            f"with a JSON object ({e}). stdout was:\n    {excerpt or '(empty)'}",
            status=1,
        )
    if text[end:].strip():
        raise BenchError(
            f"Rivet benchmark printed more than one JSON object / trailing text on stdout "
            f"(`{shown}`); the contract is exactly one JSON object. stdout was:\n    {excerpt}",
            status=1,
        )
    validate_rivet(obj, shown)
    return cmd, obj


def validate_rivet(obj, shown):
    def bad(why):
        raise BenchError(
            f"Rivet benchmark output breaks the contract ({why}) in the output of `{shown}`; "
            'expected {"bench":"physics","threads":1,"results":[{"model":...,"file":...,'
            '"timestep_secs":...,"steps":...,"wall_secs":...,"steps_per_sec":...},...]}',
            status=1,
        )

    if not isinstance(obj, dict):
        bad("top level is not an object")
    if obj.get("bench") != "physics":
        bad(f'"bench" is {obj.get("bench")!r}, not "physics"')
    results = obj.get("results")
    if not isinstance(results, list):
        bad('"results" is missing or not a list')
    seen = set()
    for i, r in enumerate(results):
        if not isinstance(r, dict):
            bad(f"results[{i}] is not an object")
        if not isinstance(r.get("model"), str) or not r["model"]:
            bad(f'results[{i}] has no string "model"')
        if r["model"] in seen:
            bad(f'model {r["model"]!r} appears twice')
        seen.add(r["model"])
        for key in ("steps_per_sec", "timestep_secs"):
            v = r.get(key)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                bad(f'results[{i}] ({r["model"]}) has no finite number "{key}"')
    if obj.get("threads") != 1:
        log(f'warning: Rivet reports "threads": {obj.get("threads")!r}; MuJoCo is measured on 1')


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


def is_mjcf(path):
    """True for an XML file whose root element is <mujoco> (URDF etc. is not a counterpart)."""
    try:
        if not path.is_file() or path.suffix.lower() != ".xml":
            return False
        for _, elem in ET.iterparse(str(path), events=("start",)):
            return elem.tag == "mujoco"
    except (OSError, ET.ParseError):
        return False
    return False


def plan_rows(rivet_obj, mjcf_dir):
    """One row per model: Rivet results in Rivet's order, then MJCF files Rivet did not report."""
    dir_files = {}
    if mjcf_dir is not None:
        for f in sorted(Path(mjcf_dir).glob("*.xml")):
            if is_mjcf(f):
                dir_files[f.stem] = f.resolve()
    rows, used = [], set()
    for r in (rivet_obj or {}).get("results", []):
        mjcf = None
        f = r.get("file")
        if isinstance(f, str) and f:
            fp = Path(f)
            if not fp.is_absolute():
                fp = REPO_ROOT / fp
            if is_mjcf(fp):
                mjcf = fp.resolve()
        if mjcf is None and r["model"] in dir_files:
            mjcf = dir_files[r["model"]]
        if mjcf is not None:
            used.add(mjcf)
        rows.append({"model": r["model"], "mjcf": mjcf, "rivet": r})
    taken = {row["model"] for row in rows}
    for stem, f in dir_files.items():
        if f not in used and stem not in taken:
            rows.append({"model": stem, "mjcf": f, "rivet": None})
    return rows


# ---------------------------------------------------------------------------------------------
# MuJoCo side
# ---------------------------------------------------------------------------------------------


def import_mujoco():
    try:
        import numpy as np
        import mujoco
        from mujoco import rollout
    except ImportError as e:
        raise BenchError(
            f"cannot import MuJoCo with {sys.executable} ({e}); run without --no-venv, or "
            f"pip install -r {REQUIREMENTS}"
        )
    return np, mujoco, rollout


def rollout_single_thread_kwargs(rollout):
    """Keyword arguments that make mujoco.rollout.rollout run on one thread.

    mujoco >= 3.3 takes the thread count from the number of MjData passed (one MjData: no pool,
    the rollout runs on the calling thread); some releases had an explicit `nthread` argument.
    """
    params = inspect.signature(rollout.rollout).parameters
    return {"nthread": 1} if "nthread" in params else {}


def mujoco_warnings(mujoco, d):
    out = {}
    for i in range(len(d.warning)):
        n = int(d.warning[i].number)
        if n:
            out[mujoco.mjtWarning(i).name] = n
    return out


def measure_mujoco(np, mujoco, rollout, path, nsteps, repeats):
    m = mujoco.MjModel.from_xml_path(str(path))
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    nstate = mujoco.mj_stateSize(m, spec)
    kw = rollout_single_thread_kwargs(rollout)

    # rollout: one MjData => one thread. Inputs and outputs preallocated outside the timing.
    d = mujoco.MjData(m)
    mujoco.mj_resetData(m, d)
    x0 = np.empty(nstate)
    mujoco.mj_getState(m, d, x0, spec)
    x0 = x0[None, :]
    ctrl = np.zeros((1, nsteps, m.nu))
    state = np.empty((1, nsteps, nstate))
    sens = np.empty((1, nsteps, m.nsensordata))
    w = min(WARMUP_STEPS, nsteps)
    rollout.rollout(m, d, x0, ctrl[:, :w], state=state[:, :w], sensordata=sens[:, :w], **kw)
    rollout_rates = []
    for _ in range(repeats):
        gc.collect()
        gc.disable()
        t0 = time.perf_counter()
        rollout.rollout(m, d, x0, ctrl, state=state, sensordata=sens, **kw)
        dt = time.perf_counter() - t0
        gc.enable()
        rollout_rates.append(nsteps / dt)
    final_ok = bool(np.all(np.isfinite(state[0, -1])))

    # plain mj_step loop from Python, reset to the default initial state before each repetition.
    d = mujoco.MjData(m)
    step = mujoco.mj_step
    mujoco.mj_resetData(m, d)
    for _ in range(w):
        step(m, d)
    step_rates = []
    for _ in range(repeats):
        mujoco.mj_resetData(m, d)
        d.ctrl[:] = 0.0
        gc.collect()
        gc.disable()
        t0 = time.perf_counter()
        for _ in range(nsteps):
            step(m, d)
        dt = time.perf_counter() - t0
        gc.enable()
        step_rates.append(nsteps / dt)
    warnings = mujoco_warnings(mujoco, d)
    final_ok = final_ok and bool(np.all(np.isfinite(d.qpos)))

    return {
        "timestep_secs": float(m.opt.timestep),
        "steps": nsteps,
        "repeats": repeats,
        "rollout_steps_per_sec": statistics.median(rollout_rates),
        "rollout_samples": rollout_rates,
        "mj_step_steps_per_sec": statistics.median(step_rates),
        "mj_step_samples": step_rates,
        "finite": final_ok,
        "warnings": warnings,
    }


def dump_trajectory(np, mujoco, path, model_name, out_dir):
    m = mujoco.MjModel.from_xml_path(str(path))
    d = mujoco.MjData(m)
    mujoco.mj_resetData(m, d)
    d.ctrl[:] = 0.0
    nsteps = int(round(TRAJECTORY_SECONDS / m.opt.timestep))
    hinge_slide = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
    joints = [j for j in range(m.njnt) if int(m.jnt_type[j]) in hinge_slide]
    joint_names = [m.joint(j).name or f"joint{j}" for j in joints]
    qadr = np.array([m.jnt_qposadr[j] for j in joints], dtype=int)
    bodies = list(range(1, m.nbody))  # body 0 is the world
    body_names = [m.body(b).name or f"body{b}" for b in bodies]
    qpos, body_pos, times = [], [], []
    for _ in range(nsteps):
        mujoco.mj_step(m, d)
        # mj_step leaves xpos from the start of the step; recompute it for the new qpos. This only
        # writes derived quantities, so the trajectory itself is unchanged.
        mujoco.mj_kinematics(m, d)
        times.append(float(d.time))
        qpos.append(d.qpos[qadr].tolist())
        body_pos.append(d.xpos[1:].tolist())
    doc = {
        "model": model_name,
        "timestep_secs": float(m.opt.timestep),
        "joint_names": joint_names,
        "qpos": qpos,
        "body_names": body_names,
        "body_pos": body_pos,
        "engine": f"mujoco {mujoco.__version__}",
        "file": str(path),
        "steps": nsteps,
        "time_secs": times,
        "notes": "state after every step from the default initial state (qpos0), zero control; "
        "qpos of hinge/slide joints in file order (free/ball joints skipped); body_pos is each "
        "body's frame origin in world coordinates (MuJoCo xpos), world body excluded; unnamed "
        "bodies are called body<MuJoCo body id>",
    }
    out = Path(out_dir) / f"{model_name}.mujoco.json"
    out.write_text(json.dumps(doc) + "\n")
    return out


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


def fmt_rate(v):
    return "-" if v is None else f"{v:,.0f}"


def fmt_ratio(v):
    return "-" if v is None else f"{v:.2f}x"


def print_table(rows, meta):
    header = ["model", "dt (s)", "Rivet steps/s", "MuJoCo rollout", "MuJoCo mj_step",
              "Rivet/MuJoCo"]
    lines = []
    notes = []
    for r in rows:
        dt = r["timestep_secs"]
        dt_text = "-" if dt is None else f"{dt:g}"
        if r["timestep_mismatch"]:
            dt_text += "*"
            notes.append(
                f"* {r['model']}: Rivet ran at dt {r['rivet_timestep_secs']:g} s, MuJoCo at the "
                f"model's {r['mujoco_timestep_secs']:g} s"
            )
        if r.get("mujoco_note"):
            notes.append(f"{r['model']}: {r['mujoco_note']}")
        lines.append([
            r["model"], dt_text, fmt_rate(r["rivet_steps_per_sec"]),
            fmt_rate(r["mujoco_rollout_steps_per_sec"]), fmt_rate(r["mujoco_mj_step_steps_per_sec"]),
            fmt_ratio(r["ratio_rivet_over_mujoco"]),
        ])
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h)
              for i, h in enumerate(header)]

    def row(cells):
        return "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i])
                         for i, c in enumerate(cells))

    out = [row(header), "  ".join("-" * w for w in widths)] + [row(l) for l in lines]
    out.append("")
    out.append(
        f"MuJoCo {meta['mujoco_version']}, 1 thread, median of {meta['repeats']} x "
        f"{meta['steps']} steps per model from the default initial state, zero control. "
        "Rivet/MuJoCo uses the mujoco.rollout figure; '-' = no counterpart or not measured."
    )
    if meta["rivet_command"]:
        out.append(f"Rivet: {' '.join(meta['rivet_command'])}")
    else:
        out.append("Rivet: not run (--no-rivet)")
    la0, la1 = meta["host"]["loadavg_start"], meta["host"]["loadavg_end"]
    if la0 is not None:
        out.append(
            f"Host: {meta['host']['cpu']}, {meta['host']['logical_cpus']} logical CPUs, load "
            f"average {la0[0]:.2f} at start / {la1[0]:.2f} at end (other load skews both sides)."
        )
    out.extend(notes)
    if meta.get("trajectories"):
        out.append(f"Trajectories written to {meta['trajectories']['dir']}: "
                   + ", ".join(Path(f).name for f in meta["trajectories"]["files"]))
    print("\n".join(out))


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def loadavg():
    try:
        return list(os.getloadavg())
    except (AttributeError, OSError):
        return None


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def main(argv):
    args = parse_args(argv)
    if not args.no_venv:
        ensure_venv(argv)  # re-execs inside bench/.venv unless already there
    np, mujoco, rollout = import_mujoco()
    nsteps = args.steps or DEFAULT_STEPS
    host = {"cpu": cpu_name(), "logical_cpus": os.cpu_count(), "loadavg_start": loadavg()}

    mjcf_dir = Path(args.mjcf_dir) if args.mjcf_dir else None
    if mjcf_dir is not None and not mjcf_dir.is_dir():
        if args.no_rivet:
            raise BenchError(f"MJCF directory {mjcf_dir} does not exist (set --mjcf-dir)")
        log(f"warning: MJCF directory {mjcf_dir} does not exist; using Rivet's files only")
        mjcf_dir = None

    if args.dump_trajectories:
        # Fail on an unwritable directory before spending minutes benchmarking.
        try:
            Path(args.dump_trajectories).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BenchError(f"cannot create --dump-trajectories directory: {e}")

    rivet_cmd, rivet_obj = None, None
    if not args.no_rivet:
        path, source = resolve_rivet(args.rivet)
        rivet_cmd, rivet_obj = run_rivet(path, source, args.steps, args.rivet_timeout)

    plan = plan_rows(rivet_obj, mjcf_dir)
    if not any(p["mjcf"] for p in plan):
        raise BenchError(
            "no MJCF models to measure in MuJoCo (none in --mjcf-dir "
            f"{args.mjcf_dir!r}, none among Rivet's files)"
        )

    rows = []
    for p in plan:
        r = p["rivet"]
        row = {
            "model": p["model"],
            "file": str(p["mjcf"]) if p["mjcf"] else (r or {}).get("file"),
            "timestep_secs": None,
            "rivet_timestep_secs": r["timestep_secs"] if r else None,
            "rivet_steps": r.get("steps") if r else None,
            "rivet_wall_secs": r.get("wall_secs") if r else None,
            "rivet_steps_per_sec": float(r["steps_per_sec"]) if r else None,
            "mujoco_timestep_secs": None,
            "mujoco_steps": None,
            "mujoco_rollout_steps_per_sec": None,
            "mujoco_rollout_samples": None,
            "mujoco_mj_step_steps_per_sec": None,
            "mujoco_mj_step_samples": None,
            "ratio_rivet_over_mujoco": None,
            "ratio_rivet_over_mujoco_mj_step": None,
            "timestep_mismatch": False,
        }
        if p["mjcf"]:
            log(f"measuring MuJoCo on {p['mjcf']} ({args.repeats} x {nsteps} steps, rollout "
                "and mj_step)")
            try:
                mj = measure_mujoco(np, mujoco, rollout, p["mjcf"], nsteps, args.repeats)
            except Exception as e:  # a model MuJoCo rejects should not sink the other rows
                log(f"warning: MuJoCo failed on {p['mjcf']}: {e}")
                row["mujoco_note"] = f"MuJoCo failed: {e}"
                mj = None
            if mj:
                row.update({
                    "mujoco_timestep_secs": mj["timestep_secs"],
                    "mujoco_steps": mj["steps"],
                    "mujoco_rollout_steps_per_sec": mj["rollout_steps_per_sec"],
                    "mujoco_rollout_samples": mj["rollout_samples"],
                    "mujoco_mj_step_steps_per_sec": mj["mj_step_steps_per_sec"],
                    "mujoco_mj_step_samples": mj["mj_step_samples"],
                    "mujoco_finite": mj["finite"],
                    "mujoco_warnings": mj["warnings"],
                })
                if not mj["finite"] or mj["warnings"]:
                    row["mujoco_note"] = (f"MuJoCo finite={mj['finite']}, "
                                          f"warnings={mj['warnings']}")
                log(f"  {p['model']}: rollout {mj['rollout_steps_per_sec']:,.0f} steps/s, "
                    f"mj_step {mj['mj_step_steps_per_sec']:,.0f} steps/s")
        row["timestep_secs"] = (row["mujoco_timestep_secs"]
                                if row["mujoco_timestep_secs"] is not None
                                else row["rivet_timestep_secs"])
        if r and row["mujoco_rollout_steps_per_sec"]:
            row["ratio_rivet_over_mujoco"] = (row["rivet_steps_per_sec"]
                                              / row["mujoco_rollout_steps_per_sec"])
            row["ratio_rivet_over_mujoco_mj_step"] = (row["rivet_steps_per_sec"]
                                                      / row["mujoco_mj_step_steps_per_sec"])
            rdt, mdt = row["rivet_timestep_secs"], row["mujoco_timestep_secs"]
            if not math.isclose(rdt, mdt, rel_tol=1e-9, abs_tol=1e-15):
                row["timestep_mismatch"] = True
                log(f"warning: {p['model']}: Rivet dt {rdt:g} s != MuJoCo dt {mdt:g} s; the "
                    "ratio compares different timesteps")
        rows.append(row)

    trajectories = None
    if args.dump_trajectories:
        files = []
        for p in plan:
            if p["mjcf"]:
                try:
                    out = dump_trajectory(np, mujoco, p["mjcf"], p["model"],
                                          args.dump_trajectories)
                except Exception as e:
                    raise BenchError(f"writing the MuJoCo trajectory of {p['model']} failed: {e}")
                log(f"wrote {out}")
                files.append(str(Path(out).resolve()))
        trajectories = {"dir": str(Path(args.dump_trajectories).resolve()), "files": files,
                        "duration_secs": TRAJECTORY_SECONDS}

    host["loadavg_end"] = loadavg()
    meta = {
        "bench": "physics_vs_mujoco",
        "threads": 1,
        "steps": nsteps,
        "repeats": args.repeats,
        "headline": "mujoco_rollout_steps_per_sec",
        "mujoco_version": mujoco.__version__,
        "mujoco_rollout": "mujoco.rollout.rollout with one MjData (no thread pool: runs on the "
        "calling thread), preallocated outputs, FULLPHYSICS state recorded every step",
        "mujoco_mj_step": "Python loop of mujoco.mj_step(m, d), one call per step",
        "python": sys.version.split()[0],
        "host": host,
        "rivet_command": rivet_cmd,
        "rivet_output": rivet_obj,
        "trajectories": trajectories,
    }
    if args.json:
        print(json.dumps({**meta, "results": rows}, indent=2))
    else:
        print_table(rows, meta)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.status)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
