#!/usr/bin/env python3
"""Rivet's kinematics and dynamics vs Pinocchio, side by side, in one invocation.

Runs `rivet bench control --json --dump-samples FILE` (Rivet's side: rivet-control's RobotTree),
then times Pinocchio on the same URDF files with the same random configurations (Rivet writes its
seeded samples to FILE, the peer reads them), and prints a table of both sides' per-call medians
and p99s with the ratio Rivet / Pinocchio per operation (or, with --json, exactly one JSON object
on stdout). IK has no Pinocchio counterpart: Rivet's IK median is reported against the target of
50 us.

| Rivet op        | Pinocchio                                                             |
|-----------------|-----------------------------------------------------------------------|
| fk              | forwardKinematics(model, data, q)                                     |
| fk_all_frames   | framesForwardKinematics(model, data, q)                               |
| jacobian        | computeFrameJacobian(model, data, q, tool, LOCAL_WORLD_ALIGNED, J)    |
| rnea            | rnea(model, data, q, v, a)                                            |
| mass_matrix     | crba(model, data, q) (default convention; upper triangle only)        |

The peer is a C++ program compiled against the headers and libraries that the `pin` wheel ships
(site-packages/cmeel.prefix), with g++ -O3 (no -march=native: the wheel's libraries are built for
baseline x86-64 and Eigen's alignment must match them; Rivet is also built for baseline x86-64).
Pinocchio's algorithms are compiled from its headers into the harness (not its precompiled
template instantiations). The harness is compiled once and cached (keyed by its source, flags,
compiler and Pinocchio version). Both sides time blocks of 100 consecutive calls cycling through
the same samples after one warm-up pass, and report the median and p99 of the per-call figure
over blocks. If no C++ compiler can build it (or with --peer python), Pinocchio is timed from
Python instead; the binding and loop overhead per call is then measured (the same call on an
empty model) and subtracted, and the output says so.

The first few samples' results (tool pose, Jacobian, joint torques, mass matrix) are compared
between the two sides, to show both compute the same thing.

Unless --no-venv is given, the script creates (or reuses) bench/.venv, installs
bench/requirements.txt into it and re-runs itself with that interpreter. Progress and diagnostics
go to stderr; stdout carries only the table or the JSON object.

Exit status: 0 success (targets missed is still success: this measures, it does not assert),
1 the Rivet command or the Pinocchio harness failed or broke its output contract, 2 setup or usage
error.
"""

import argparse
import collections
import hashlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))
sys.dont_write_bytecode = True  # no bench/__pycache__ from importing the sibling script

import physics_vs_mujoco as pvm  # noqa: E402  (venv handling, logging, host info)
from physics_vs_mujoco import BenchError  # noqa: E402

pvm.LOG_TAG = "control_vs_pinocchio"
log = pvm.log

REPO_ROOT = BENCH_DIR.parent
DEFAULT_RIVET_TIMEOUT = 1800.0
DEFAULT_HARNESS_TIMEOUT = 600.0
DEFAULT_ROUNDS = 5
OPS = ["fk", "fk_all_frames", "jacobian", "rnea", "mass_matrix"]
PIN_FUNCTION = {
    "fk": "forwardKinematics",
    "fk_all_frames": "framesForwardKinematics",
    "jacobian": "computeFrameJacobian (LOCAL_WORLD_ALIGNED)",
    "rnea": "rnea",
    "mass_matrix": "crba",
}
RATIO_TARGET = 2.0  # Rivet within 2x of Pinocchio (RNEA, FK)
IK_TARGET_US = 50.0  # Rivet IK median
AGREEMENT_TOL = 1e-6  # max |difference| that counts as the same result
CXX_FLAGS = [
    "-O3", "-DNDEBUG", "-std=c++17",
    # From pinocchioTargets.cmake (pinocchio_headers and pinocchio_parsers interface).
    "-DBOOST_MPL_LIMIT_LIST_SIZE=30", "-DBOOST_MPL_LIMIT_VECTOR_SIZE=30",
    "-DBOOST_MPL_CFG_NO_PREPROCESSED_HEADERS", "-DBOOST_FUSION_INVOKE_MAX_ARITY=12",
    "-DPINOCCHIO_WITH_URDFDOM", "-DPINOCCHIO_URDFDOM_HEADERS_MAJOR_VERSION=3",
    "-DPINOCCHIO_URDFDOM_HEADERS_MINOR_VERSION=0", "-DPINOCCHIO_URDFDOM_HEADERS_PATCH_VERSION=0",
]
CXX_LIBS = ["-lpinocchio_parsers", "-lpinocchio_default", "-lurdfdom_model"]

CPP_SOURCE = r"""
// Pinocchio timing harness of bench/control_vs_pinocchio.py (written and compiled by the script).
// usage: harness URDF FRAME SAMPLES_FILE CALLS MIMIC(0|1); prints one JSON object.
#include <pinocchio/parsers/urdf.hpp>
#include <pinocchio/algorithm/kinematics.hpp>
#include <pinocchio/algorithm/frames.hpp>
#include <pinocchio/algorithm/jacobian.hpp>
#include <pinocchio/algorithm/rnea.hpp>
#include <pinocchio/algorithm/crba.hpp>
#include <pinocchio/algorithm/joint-configuration.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace pin = pinocchio;
using Clock = std::chrono::steady_clock;

// Keeps the compiler from dropping a result (like std::hint::black_box on the Rivet side).
template<typename T> inline void keep(T const & value) { asm volatile("" : : "r,m"(value) : "memory"); }

struct Stats { double median_us, p99_us; size_t calls; };

static Stats summarize(std::vector<double> v, size_t calls) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  double med = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  size_t rank = (size_t)std::ceil(0.99 * n);
  rank = std::min(std::max<size_t>(rank, 1), n);
  return {med, v[rank - 1], calls};
}

// The scheme of `rivet bench control`: one warm-up pass over the samples, then blocks of 100
// consecutive calls cycling through the samples; one per-call figure per block.
template<typename F> static Stats time_blocks(size_t calls, size_t samples, F op) {
  const size_t BLOCK = 100;
  size_t block = std::max<size_t>(1, std::min(BLOCK, calls));
  size_t blocks = (calls + block - 1) / block;
  size_t i = 0;
  for (size_t k = 0; k < std::max(samples, block); ++k) { op(i); i = (i + 1) % samples; }
  std::vector<double> per_call;
  per_call.reserve(blocks);
  for (size_t b = 0; b < blocks; ++b) {
    auto t0 = Clock::now();
    for (size_t k = 0; k < block; ++k) { op(i); if (++i == samples) i = 0; }
    auto t1 = Clock::now();
    per_call.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count() / block);
  }
  return summarize(per_call, blocks * block);
}

static void print_stats(std::ostream & out, const char * name, const Stats & s, bool last = false) {
  out << "\"" << name << "\":{\"median_us\":" << s.median_us << ",\"p99_us\":" << s.p99_us
      << ",\"calls\":" << s.calls << "}" << (last ? "" : ",");
}

int main(int argc, char ** argv) {
  if (argc != 6) {
    std::cerr << "usage: " << argv[0] << " URDF FRAME SAMPLES_FILE CALLS MIMIC(0|1)\n";
    return 2;
  }
  const std::string urdf = argv[1], frame_name = argv[2], samples_file = argv[3];
  const size_t calls = std::stoul(argv[4]);
  const bool mimic = std::string(argv[5]) == "1";
  pin::Model model;
  pin::urdf::buildModel(urdf, model, false, mimic);
  pin::Data data(model);
  if (!model.existFrame(frame_name)) { std::cerr << "no frame " << frame_name << "\n"; return 2; }
  const pin::FrameIndex frame = model.getFrameId(frame_name);

  // Samples file: n, n joint names, S, then S*n q, S*n qd, S*n qdd (Rivet's coordinate order).
  std::ifstream in(samples_file);
  size_t n = 0, S = 0;
  in >> n;
  std::vector<std::string> names(n);
  for (auto & s : names) in >> s;
  in >> S;
  std::vector<double> rq(S * n), rqd(S * n), rqdd(S * n);
  for (auto & x : rq) in >> x;
  for (auto & x : rqd) in >> x;
  for (auto & x : rqdd) in >> x;
  if (!in || S == 0) { std::cerr << "cannot read " << samples_file << "\n"; return 2; }

  // Rivet's coordinates onto Pinocchio's q (nq) and v (nv), by joint name.
  struct Map { int idx_q, nq, idx_v; };
  std::vector<Map> map(n);
  for (size_t d = 0; d < n; ++d) {
    if (!model.existJointName(names[d])) { std::cerr << "no joint " << names[d] << "\n"; return 2; }
    auto j = model.getJointId(names[d]);
    map[d] = {model.idx_qs[j], model.nqs[j], model.idx_vs[j]};
    if (model.nvs[j] != 1 || (map[d].nq != 1 && map[d].nq != 2)) {
      std::cerr << "joint " << names[d] << " is not a one-DoF joint in Pinocchio\n";
      return 2;
    }
  }
  std::vector<Eigen::VectorXd> Q(S, pin::neutral(model)), V(S, Eigen::VectorXd::Zero(model.nv)),
    A(S, Eigen::VectorXd::Zero(model.nv));
  for (size_t s = 0; s < S; ++s)
    for (size_t d = 0; d < n; ++d) {
      double x = rq[s * n + d];
      if (map[d].nq == 1) Q[s][map[d].idx_q] = x;
      else { Q[s][map[d].idx_q] = std::cos(x); Q[s][map[d].idx_q + 1] = std::sin(x); }
      V[s][map[d].idx_v] = rqd[s * n + d];
      A[s][map[d].idx_v] = rqdd[s * n + d];
    }

  pin::Data::Matrix6x J = pin::Data::Matrix6x::Zero(6, model.nv);
  Stats fk = time_blocks(calls, S, [&](size_t i) {
    pin::forwardKinematics(model, data, Q[i]); keep(data.oMi.back()); });
  Stats fkf = time_blocks(calls, S, [&](size_t i) {
    pin::framesForwardKinematics(model, data, Q[i]); keep(data.oMf.back()); });
  Stats jac = time_blocks(calls, S, [&](size_t i) {
    pin::computeFrameJacobian(model, data, Q[i], frame, pin::LOCAL_WORLD_ALIGNED, J); keep(J(0, 0)); });
  Stats rnea = time_blocks(calls, S, [&](size_t i) {
    pin::rnea(model, data, Q[i], V[i], A[i]); keep(data.tau[0]); });
  Stats crba = time_blocks(calls, S, [&](size_t i) {
    pin::crba(model, data, Q[i]); keep(data.M(0, 0)); });
  Stats crba_w = time_blocks(calls, S, [&](size_t i) {
    pin::crba(model, data, Q[i], pin::Convention::WORLD); keep(data.M(0, 0)); });
  std::vector<double> dummy(S);
  Stats overhead = time_blocks(calls, S, [&](size_t i) { keep(dummy[i]); });

  std::ostringstream out;
  out.precision(17);
  out << "{\"nq\":" << model.nq << ",\"nv\":" << model.nv << ",\"njoints\":" << model.njoints
      << ",\"nframes\":" << model.nframes << ",\"timing_overhead_us\":" << overhead.median_us
      << ",\"ops\":{";
  print_stats(out, "fk", fk);
  print_stats(out, "fk_all_frames", fkf);
  print_stats(out, "jacobian", jac);
  print_stats(out, "rnea", rnea);
  print_stats(out, "mass_matrix", crba);
  print_stats(out, "mass_matrix_world_convention", crba_w, true);
  out << "},\"checks\":[";
  // Results for the first samples, in Rivet's coordinate order (mass matrix symmetrised).
  for (size_t s = 0; s < std::min<size_t>(3, S); ++s) {
    pin::framesForwardKinematics(model, data, Q[s]);
    const pin::SE3 M = data.oMf[frame];
    J.setZero();
    pin::computeFrameJacobian(model, data, Q[s], frame, pin::LOCAL_WORLD_ALIGNED, J);
    pin::rnea(model, data, Q[s], V[s], A[s]);
    Eigen::VectorXd tau = data.tau;
    pin::crba(model, data, Q[s]);
    Eigen::MatrixXd Mm = data.M;
    Mm.triangularView<Eigen::StrictlyLower>() = Mm.transpose();
    out << (s ? "," : "") << "{\"sample\":" << s << ",\"tool_pose\":{\"translation\":["
        << M.translation()[0] << "," << M.translation()[1] << "," << M.translation()[2]
        << "],\"rotation\":[";
    for (int r = 0; r < 3; ++r)
      out << (r ? "," : "") << "[" << M.rotation()(r, 0) << "," << M.rotation()(r, 1) << ","
          << M.rotation()(r, 2) << "]";
    out << "]},\"jacobian\":[";
    for (int r = 0; r < 6; ++r) {
      out << (r ? "," : "") << "[";
      for (size_t d = 0; d < n; ++d) out << (d ? "," : "") << J(r, map[d].idx_v);
      out << "]";
    }
    out << "],\"tau\":[";
    for (size_t d = 0; d < n; ++d) out << (d ? "," : "") << tau[map[d].idx_v];
    out << "],\"mass_matrix\":[";
    for (size_t a = 0; a < n; ++a) {
      out << (a ? "," : "") << "[";
      for (size_t b = 0; b < n; ++b) out << (b ? "," : "") << Mm(map[a].idx_v, map[b].idx_v);
      out << "]";
    }
    out << "]}";
  }
  out << "]}";
  std::cout << out.str() << std::endl;
  return 0;
}
"""


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Rivet vs Pinocchio: FK, frame poses, frame Jacobian, RNEA and CRBA per "
        "call on the same URDFs and configurations, plus Rivet's IK against its target.",
    )
    p.add_argument(
        "--rivet",
        metavar="PATH",
        help="Rivet binary to run (default: `cargo run -q -- bench control ...` in the "
        "repository root, i.e. the dev profile)",
    )
    p.add_argument("--iterations", type=pvm.positive_int, metavar="N",
                   help="calls per operation on both sides (Rivet's default when omitted)")
    p.add_argument("--ik-targets", type=pvm.positive_int, metavar="N",
                   help="IK solves per robot (passed to Rivet)")
    p.add_argument("--samples", type=pvm.positive_int, metavar="N",
                   help="distinct random configurations per robot (passed to Rivet)")
    p.add_argument("--seed", type=int, metavar="SEED", help="seed (passed to Rivet)")
    p.add_argument("--urdf", action="append", default=[], metavar="PATH[@FRAME]",
                   help="robot file and tool frame (repeatable; passed to Rivet; default UR5 "
                   "and Panda from ../shared/example-robot-data)")
    p.add_argument("--rounds", type=pvm.positive_int, default=DEFAULT_ROUNDS, metavar="R",
                   help="run Rivet and Pinocchio alternately R times and report, per op, the "
                   "median over rounds of each side's median and p99 (default %(default)s; "
                   "shared machines drift, alternating keeps the drift out of the ratio)")
    p.add_argument("--json", action="store_true",
                   help="print exactly one JSON object on stdout instead of the table")
    p.add_argument("--peer", choices=["auto", "cpp", "python"], default="auto",
                   help="how Pinocchio is timed: C++ harness (cpp), Python bindings with the "
                   "binding overhead subtracted (python), or cpp falling back to python when it "
                   "cannot be built (auto, the default)")
    p.add_argument("--cxx", default=os.environ.get("CXX", "g++"), metavar="CXX",
                   help="C++ compiler for the harness (default $CXX or g++)")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="where the compiled harness is kept (default bench/.venv/cache when "
                   "running in bench/.venv, else ~/.cache/rivet-bench)")
    p.add_argument("--no-mimic", action="store_true",
                   help="load URDF <mimic> joints into Pinocchio as independent joints (by "
                   "default they are mimic joints, as in Rivet, so both have the same "
                   "coordinates)")
    p.add_argument("--no-venv", action="store_true",
                   help="use the current interpreter instead of creating/reusing bench/.venv")
    p.add_argument("--rivet-timeout", type=float, default=DEFAULT_RIVET_TIMEOUT,
                   metavar="SECS",
                   help="give up on the Rivet command (including cargo's build) after this many "
                   "seconds (default %(default)g)")
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------------
# Rivet side
# ---------------------------------------------------------------------------------------------


def rivet_command(args, dump_path):
    if args.rivet:
        path = Path(args.rivet).expanduser()
        if not path.exists() and os.sep not in args.rivet and shutil.which(args.rivet):
            path = Path(shutil.which(args.rivet))
        if not path.is_absolute():
            path = Path.cwd() / path
        if not path.is_file() or not os.access(path, os.X_OK):
            raise BenchError(f"Rivet binary {path} (from --rivet) is not an executable file")
        cmd = [str(path)]
    else:
        cargo = shutil.which("cargo")
        if not cargo:
            raise BenchError("cargo not found on PATH; install Rust or pass --rivet PATH")
        cmd = [cargo, "run", "-q", "--"]
    cmd += ["bench", "control", "--json", "--dump-samples", str(dump_path)]
    for flag, value in (("--iterations", args.iterations), ("--ik-targets", args.ik_targets),
                        ("--samples", args.samples), ("--seed", args.seed)):
        if value is not None:
            cmd += [flag, str(value)]
    for u in args.urdf:
        cmd += ["--urdf", str(u)]
    return cmd


def run_json_command(cmd, what, timeout, cwd=None, pass_stderr=True):
    """Runs `cmd`, passing its stderr through, and returns the one JSON object on its stdout."""
    shown = " ".join(cmd)
    log(f"running {shown}")
    tail = collections.deque(maxlen=64)
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    except OSError as e:
        raise BenchError(f"could not start {what} ({shown}): {e}")

    def pump_stderr():
        for line in iter(proc.stderr.readline, b""):
            if pass_stderr:
                sys.stderr.buffer.write(line)
                sys.stderr.buffer.flush()
            tail.append(line.decode("utf-8", "replace").rstrip("\n"))

    chunks = []
    pump = threading.Thread(target=pump_stderr, daemon=True)
    reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()), daemon=True)
    pump.start()
    reader.start()
    started = time.perf_counter()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise BenchError(f"{what} timed out after {timeout:g} s and was killed: {shown}",
                         status=1)
    elapsed = time.perf_counter() - started
    reader.join()
    pump.join(timeout=5)
    stdout = chunks[0] if chunks else b""
    stderr_tail = "\n".join(f"    {l}" for l in list(tail)[-20:]) or "    (nothing on stderr)"
    if proc.returncode != 0:
        raise BenchError(f"{what} failed: `{shown}` {pvm.describe_status(proc.returncode)} "
                         f"after {elapsed:.1f} s. Last lines of its stderr:\n{stderr_tail}",
                         status=1)
    text = stdout.decode("utf-8", "replace").strip()
    excerpt = text[:400] + ("..." if len(text) > 400 else "")
    try:
        obj, end = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError as e:
        raise BenchError(f"{what} output is not JSON ({e}): `{shown}` printed:\n    "
                         f"{excerpt or '(empty)'}", status=1)
    if text[end:].strip() or not isinstance(obj, dict):
        raise BenchError(f"{what} must print exactly one JSON object on stdout (`{shown}`); "
                         f"it printed:\n    {excerpt}", status=1)
    return obj, elapsed


def validate_rivet(obj, dump):
    def bad(why):
        raise BenchError(f"`rivet bench control --json` broke its output contract: {why}",
                         status=1)

    if obj.get("bench") != "control" or not isinstance(obj.get("robots"), list):
        bad('expected {"bench":"control","robots":[...]}')
    if not obj["robots"]:
        bad("no robots")
    for r in obj["robots"]:
        for key in ("robot", "urdf", "dof", "tool_frame", "ops"):
            if key not in r:
                bad(f"a robot lacks '{key}'")
        for op in OPS + ["ik"]:
            o = r["ops"].get(op)
            if not isinstance(o, dict) or not all(k in o for k in ("median_us", "p99_us",
                                                                   "calls")):
                bad(f"{r['robot']}: ops.{op} lacks median_us/p99_us/calls")
        if "success_rate" not in r["ops"]["ik"]:
            bad(f"{r['robot']}: ops.ik lacks success_rate")
    names = [r["robot"] for r in obj["robots"]]
    if [r.get("robot") for r in dump.get("robots", [])] != names:
        bad("--dump-samples does not list the same robots as the JSON output")


# ---------------------------------------------------------------------------------------------
# Pinocchio side
# ---------------------------------------------------------------------------------------------


def import_pinocchio():
    try:
        import numpy as np
        import pinocchio as pin
    except ImportError as e:
        raise BenchError(f"cannot import pinocchio ({e}); install bench/requirements.txt "
                         "(PyPI package `pin`) or run without --no-venv")
    return np, pin


def cmeel_prefix(pin):
    for parent in Path(pin.__file__).resolve().parents:
        if parent.name == "cmeel.prefix":
            return parent
    return None


def cache_dir(args):
    if args.cache_dir:
        return Path(args.cache_dir).expanduser()
    if pvm.running_in_bench_venv():
        return pvm.VENV_DIR / "cache"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rivet-bench"


def build_harness(args, pin):
    """Compiles the C++ harness (cached); returns (path, description) or raises BenchError."""
    prefix = cmeel_prefix(pin)
    if prefix is None:
        raise BenchError("the pinocchio module is not in a cmeel prefix (no C++ headers)")
    inc = prefix / "include"
    missing = [str(p) for p in (inc / "pinocchio" / "algorithm" / "rnea.hpp",
                                inc / "eigen3" / "Eigen" / "Core",
                                inc / "urdfdom_headers" / "urdf_model" / "model.h",
                                inc / "boost" / "version.hpp",
                                prefix / "lib" / "libpinocchio_default.so")
               if not p.exists()]
    if missing:
        raise BenchError("the pin wheel's prefix lacks " + ", ".join(missing)
                         + " (install bench/requirements.txt: cmeel-eigen, "
                         "cmeel-urdfdom-headers)")
    cxx = shutil.which(args.cxx)
    if not cxx:
        raise BenchError(f"C++ compiler {args.cxx!r} not found")
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    version = version.splitlines()[0] if version else args.cxx
    flags = CXX_FLAGS + [f"-I{inc}", f"-I{inc / 'eigen3'}", f"-I{inc / 'urdfdom_headers'}"]
    libs = [f"-L{prefix / 'lib'}", f"-Wl,-rpath,{prefix / 'lib'}"] + CXX_LIBS
    key = hashlib.sha256("\n".join([CPP_SOURCE, cxx, version, pin.__version__, str(prefix)]
                                   + flags + libs).encode()).hexdigest()[:16]
    out_dir = cache_dir(args)
    exe = out_dir / f"pinocchio_timing_{key}"
    desc = (f"C++ harness, {version}, {' '.join(CXX_FLAGS[:3])}, Pinocchio {pin.__version__} "
            "algorithms compiled from its headers")
    if exe.is_file() and os.access(exe, os.X_OK):
        log(f"using cached harness {exe}")
        return exe, desc, [cxx] + flags + ["<source>", "-o", str(exe)] + libs
    out_dir.mkdir(parents=True, exist_ok=True)
    src = out_dir / f"pinocchio_timing_{key}.cpp"
    src.write_text(CPP_SOURCE)
    tmp = out_dir / f".pinocchio_timing_{key}.{os.getpid()}"
    cmd = [cxx] + flags + [str(src), "-o", str(tmp)] + libs
    log(f"compiling the Pinocchio harness (once, about 2 minutes on 2 cores): {' '.join(cmd)}")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        tail = "\n".join(f"    {l}" for l in proc.stderr.splitlines()[-15:])
        raise BenchError(f"compiling the Pinocchio harness failed:\n{tail}")
    os.replace(tmp, exe)
    return exe, desc, cmd


def write_samples_file(robot, path):
    with open(path, "w") as f:
        f.write(f"{robot['dof']}\n{' '.join(robot['joint_names'])}\n{len(robot['q'])}\n")
        for key in ("q", "qd", "qdd"):
            for row in robot[key]:
                f.write(" ".join(repr(float(x)) for x in row) + "\n")


def measure_cpp(exe, robot, samples_path, calls, mimic):
    cmd = [str(exe), robot["urdf"], robot["tool_frame"], str(samples_path), str(calls),
           "1" if mimic else "0"]
    obj, _ = run_json_command(cmd, "the Pinocchio harness", DEFAULT_HARNESS_TIMEOUT)
    return obj


def measure_python(np, pin, robot, calls, mimic):
    """Times Pinocchio through its Python bindings, in blocks of 100 calls, and the same loop
    around the same call on an empty model (the binding + loop overhead), which is subtracted."""
    model = pin.buildModelFromUrdf(robot["urdf"], mimic)
    data = model.createData()
    frame = model.getFrameId(robot["tool_frame"])
    names = robot["joint_names"]
    S = len(robot["q"])
    Q = [pin.neutral(model) for _ in range(S)]
    V = [np.zeros(model.nv) for _ in range(S)]
    A = [np.zeros(model.nv) for _ in range(S)]
    cols = []
    for d, name in enumerate(names):
        j = model.getJointId(name)
        iq, nq, iv = model.idx_qs[j], model.nqs[j], model.idx_vs[j]
        cols.append(iv)
        for s in range(S):
            x = robot["q"][s][d]
            if nq == 1:
                Q[s][iq] = x
            else:
                Q[s][iq], Q[s][iq + 1] = math.cos(x), math.sin(x)
            V[s][iv] = robot["qd"][s][d]
            A[s][iv] = robot["qdd"][s][d]

    def time_blocks(op):
        block = min(100, calls)
        blocks = -(-calls // block)
        i = 0
        for _ in range(max(S, block)):
            op(i)
            i = (i + 1) % S
        per_call = []
        for _ in range(blocks):
            t0 = time.perf_counter_ns()
            for _ in range(block):
                op(i)
                i += 1
                if i == S:
                    i = 0
            per_call.append((time.perf_counter_ns() - t0) / 1e3 / block)
        per_call.sort()
        n = len(per_call)
        med = per_call[n // 2] if n % 2 else 0.5 * (per_call[n // 2 - 1] + per_call[n // 2])
        return {"median_us": med, "p99_us": per_call[max(1, math.ceil(0.99 * n)) - 1],
                "calls": blocks * block}

    empty = pin.Model()
    empty_data = empty.createData()
    q0 = np.zeros(0)
    overhead = time_blocks(lambda i: pin.forwardKinematics(empty, empty_data, q0))
    lwa = pin.ReferenceFrame.LOCAL_WORLD_ALIGNED
    raw = {
        "fk": time_blocks(lambda i: pin.forwardKinematics(model, data, Q[i])),
        "fk_all_frames": time_blocks(lambda i: pin.framesForwardKinematics(model, data, Q[i])),
        "jacobian": time_blocks(lambda i: pin.computeFrameJacobian(model, data, Q[i], frame,
                                                                   lwa)),
        "rnea": time_blocks(lambda i: pin.rnea(model, data, Q[i], V[i], A[i])),
        "mass_matrix": time_blocks(lambda i: pin.crba(model, data, Q[i])),
    }
    ops = {}
    for op, st in raw.items():
        ops[op] = {"median_us": max(st["median_us"] - overhead["median_us"], 0.0),
                   "p99_us": max(st["p99_us"] - overhead["median_us"], 0.0),
                   "calls": st["calls"], "raw_median_us": st["median_us"],
                   "raw_p99_us": st["p99_us"]}
    checks = []
    for s in range(min(3, S)):
        pin.framesForwardKinematics(model, data, Q[s])
        M = data.oMf[frame]
        J = pin.computeFrameJacobian(model, data, Q[s], frame, lwa)
        tau = pin.rnea(model, data, Q[s], V[s], A[s]).copy()
        mm = pin.crba(model, data, Q[s]).copy()
        mm = np.triu(mm) + np.triu(mm, 1).T
        checks.append({
            "sample": s,
            "tool_pose": {"translation": M.translation.tolist(), "rotation": M.rotation.tolist()},
            "jacobian": [[float(J[r, c]) for c in cols] for r in range(6)],
            "tau": [float(tau[c]) for c in cols],
            "mass_matrix": [[float(mm[a, b]) for b in cols] for a in cols],
        })
    return {"nq": model.nq, "nv": model.nv, "njoints": model.njoints, "nframes": model.nframes,
            "binding_overhead_us": overhead["median_us"], "ops": ops, "checks": checks}


def max_abs_diff(a, b):
    if isinstance(a, list):
        if not isinstance(b, list) or len(a) != len(b):
            return math.inf
        return max((max_abs_diff(x, y) for x, y in zip(a, b)), default=0.0)
    return abs(float(a) - float(b))


def agreement(rivet_checks, pin_checks):
    out = {}
    pairs = list(zip(rivet_checks, pin_checks))
    if not pairs:
        return None
    for key in ("tool_pose", "jacobian", "tau", "mass_matrix"):
        if key == "tool_pose":
            out[key] = max(max(max_abs_diff(r[key]["translation"], p[key]["translation"]),
                               max_abs_diff(r[key]["rotation"], p[key]["rotation"]))
                           for r, p in pairs)
        else:
            out[key] = max(max_abs_diff(r[key], p[key]) for r, p in pairs)
    out["samples"] = len(pairs)
    out["agree"] = all(v <= AGREEMENT_TOL for k, v in out.items() if k not in ("samples",))
    return out


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def fmt_us(v):
    if v is None:
        return "-"
    return f"{v:.3f}" if v < 100 else f"{v:,.1f}"


def fmt_ratio(v):
    return "-" if v is None else f"{v:.2f}x"


def targets_report(rows, ik_rows):
    targets = []
    for name, ops in (("RNEA within 2x of Pinocchio", ["rnea"]),
                      ("FK within 2x of Pinocchio (fk and fk_all_frames)",
                       ["fk", "fk_all_frames"])):
        got = [(r["robot"], r["op"], r["ratio_rivet_over_pinocchio"]) for r in rows
               if r["op"] in ops and r["ratio_rivet_over_pinocchio"] is not None]
        targets.append({"target": name, "limit": f"ratio <= {RATIO_TARGET:g}", "unit": "x",
                        "measured": {f"{rb}/{op}": v for rb, op, v in got},
                        "met": bool(got) and all(v <= RATIO_TARGET for _, _, v in got)})
    targets.append({"target": f"IK median under {IK_TARGET_US:g} us",
                    "limit": f"median_us < {IK_TARGET_US:g}", "unit": " us",
                    "measured": {r["robot"]: r["median_us"] for r in ik_rows},
                    "met": bool(ik_rows) and all(r["median_us"] < IK_TARGET_US
                                                 for r in ik_rows)})
    return targets


def print_table(report):
    peer = report["peer"]
    out = []
    out.append(f"Rivet vs Pinocchio {report['pinocchio_version']}: per call, microseconds "
               "(median and p99 over blocks of 100 calls; median over "
               f"{report['rounds']} alternating rounds), same URDFs and configurations.")
    out.append(f"Pinocchio: {peer['description']}.")
    head = (f"{'robot':<8} {'op':<14} {'Pinocchio function':<42} {'Rivet med':>10} "
            f"{'Rivet p99':>10} {'Pin med':>10} {'Pin p99':>10} {'Rivet/Pin':>10}")
    out.append(head)
    out.append("-" * len(head))
    for r in report["rows"]:
        per_round = [v for v in r["ratio_per_round"] if v is not None]
        spread = (f"  (rounds {min(per_round):.2f}-{max(per_round):.2f}x)"
                  if len(per_round) > 1 else "")
        out.append(f"{r['robot']:<8} {r['op']:<14} {r['pinocchio_function']:<42} "
                   f"{fmt_us(r['rivet_median_us']):>10} {fmt_us(r['rivet_p99_us']):>10} "
                   f"{fmt_us(r['pinocchio_median_us']):>10} "
                   f"{fmt_us(r['pinocchio_p99_us']):>10} "
                   f"{fmt_ratio(r['ratio_rivet_over_pinocchio']):>10}{spread}")
    for r in report["ik"]:
        out.append(f"{r['robot']:<8} {'ik':<14} {'(none; target: median < 50 us)':<42} "
                   f"{fmt_us(r['median_us']):>10} {fmt_us(r['p99_us']):>10} {'-':>10} "
                   f"{'-':>10} {'-':>10}  success {100 * r['success_rate']:.1f}% of "
                   f"{r['calls']}")
    out.append("")
    for t in report["targets"]:
        vals = ", ".join(f"{k} {v:.2f}{t['unit']}" for k, v in t["measured"].items())
        out.append(f"Target: {t['target']}: {'MET' if t['met'] else 'NOT MET'} ({vals})")
    for robot, a in report["agreement"].items():
        if a is None:
            continue
        out.append(f"Agreement {robot} (first {a['samples']} samples, max |Rivet - Pinocchio|): "
                   f"tool pose {a['tool_pose']:.1e}, Jacobian {a['jacobian']:.1e}, "
                   f"tau {a['tau']:.1e}, mass matrix {a['mass_matrix']:.1e}"
                   + ("" if a["agree"] else "  <-- DIFFERENT RESULTS"))
    for note in report["notes"]:
        out.append(f"Note: {note}")
    h = report["host"]
    out.append(f"Host: {h['cpu']}, {h['logical_cpus']} logical CPUs, load average "
               f"{h['loadavg_start'][0]:.2f} at start / {h['loadavg_end'][0]:.2f} at end."
               if h.get("loadavg_start") and h.get("loadavg_end") else
               f"Host: {h['cpu']}, {h['logical_cpus']} logical CPUs.")
    out.append("Rivet: " + " ".join(report["rivet_command"]))
    print("\n".join(out))


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def main(argv):
    args = parse_args(argv)
    if not args.no_venv:
        pvm.ensure_venv(argv, script=__file__)  # re-execs inside bench/.venv unless already there
    np, pin = import_pinocchio()
    host = {"cpu": pvm.cpu_name(), "logical_cpus": os.cpu_count(),
            "loadavg_start": pvm.loadavg()}
    notes = []

    # Build the peer first: a compile failure should not cost a Rivet run.
    harness, peer_desc, compile_cmd, peer_kind = None, None, None, args.peer
    if args.peer in ("auto", "cpp"):
        try:
            harness, peer_desc, compile_cmd = build_harness(args, pin)
            peer_kind = "cpp"
        except BenchError as e:
            if args.peer == "cpp":
                raise
            log(f"warning: {e}; timing Pinocchio from Python instead")
            notes.append(f"C++ harness unavailable ({str(e).splitlines()[0]}); Pinocchio timed "
                         "from Python with the binding overhead subtracted")
            peer_kind = "python"
    if peer_kind == "python":
        peer_desc = (f"Python bindings (pin {pin.__version__}), per-call binding and loop "
                     "overhead (forwardKinematics on an empty model) measured and SUBTRACTED; "
                     "raw figures in the JSON")

    rivet_runs, pin_runs, dump, cmd = [], [], None, None
    with tempfile.TemporaryDirectory(prefix="control_vs_pinocchio_") as tmp:
        dump_path = Path(tmp) / "samples.json"
        for k in range(args.rounds):
            log(f"round {k + 1} of {args.rounds}")
            cmd = rivet_command(args, dump_path)
            rivet_obj, _ = run_json_command(cmd, "Rivet benchmark", args.rivet_timeout,
                                            cwd=REPO_ROOT)
            try:
                dump_k = json.loads(dump_path.read_text())
            except (OSError, ValueError) as e:
                raise BenchError(f"Rivet did not write --dump-samples {dump_path}: {e}",
                                 status=1)
            validate_rivet(rivet_obj, dump_k)
            if dump is None:
                dump = dump_k
            elif [r["q"] for r in dump_k["robots"]] != [r["q"] for r in dump["robots"]]:
                raise BenchError("Rivet's samples changed between rounds", status=1)
            rivet_runs.append(rivet_obj)
            pin_round = {}
            for robot in dump["robots"]:
                calls = next(r for r in rivet_obj["robots"]
                             if r["robot"] == robot["robot"])["ops"]["fk"]["calls"]
                log(f"measuring Pinocchio on {robot['robot']} ({robot['urdf']}, {calls} calls "
                    f"per op, {peer_kind})")
                if peer_kind == "cpp":
                    samples = Path(tmp) / f"{robot['robot']}.samples.txt"
                    write_samples_file(robot, samples)
                    pin_round[robot["robot"]] = measure_cpp(harness, robot, samples, calls,
                                                            not args.no_mimic)
                else:
                    pin_round[robot["robot"]] = measure_python(np, pin, robot, calls,
                                                               not args.no_mimic)
            pin_runs.append(pin_round)
    cmd = [c if c != str(dump_path) else "<tmp>/samples.json" for c in cmd]

    def mid(values):
        return statistics.median(values) if values else None

    rows, ik_rows, agree = [], [], {}
    for r in rivet_runs[0]["robots"]:
        name = r["robot"]
        r_all = [next(x for x in run["robots"] if x["robot"] == name) for run in rivet_runs]
        p_all = [run[name] for run in pin_runs]
        p = p_all[0]
        d = next(x for x in dump["robots"] if x["robot"] == name)
        if p["nv"] != r["dof"]:
            notes.append(f"{name}: Pinocchio has nv={p['nv']}, Rivet {r['dof']} "
                         "coordinates (mimic joints?); the extra ones stay at zero")
        for op in OPS:
            rm = mid([x["ops"][op]["median_us"] for x in r_all])
            pm = mid([x["ops"][op]["median_us"] for x in p_all])
            rows.append({
                "robot": name, "dof": r["dof"], "op": op,
                "pinocchio_function": PIN_FUNCTION[op],
                "rivet_median_us": rm,
                "rivet_p99_us": mid([x["ops"][op]["p99_us"] for x in r_all]),
                "rivet_calls": r["ops"][op]["calls"],
                "pinocchio_median_us": pm,
                "pinocchio_p99_us": mid([x["ops"][op]["p99_us"] for x in p_all]),
                "pinocchio_calls": p["ops"][op]["calls"],
                "ratio_rivet_over_pinocchio": rm / pm if pm else None,
                "ratio_per_round": [x["ops"][op]["median_us"] / y["ops"][op]["median_us"]
                                    if y["ops"][op]["median_us"] else None
                                    for x, y in zip(r_all, p_all)],
                "rivet_median_per_round_us": [x["ops"][op]["median_us"] for x in r_all],
                "pinocchio_median_per_round_us": [x["ops"][op]["median_us"] for x in p_all],
            })
        iks = [x["ops"]["ik"] for x in r_all]
        ik_med = mid([x["median_us"] for x in iks])
        ik_rows.append({"robot": name, "dof": r["dof"], "median_us": ik_med,
                        "p99_us": mid([x["p99_us"] for x in iks]), "calls": iks[0]["calls"],
                        "success_rate": min(x["success_rate"] for x in iks),
                        "median_per_round_us": [x["median_us"] for x in iks],
                        "target_median_us": IK_TARGET_US,
                        "met": ik_med < IK_TARGET_US})
        agree[name] = agreement(d.get("checks", []), p.get("checks", []))
        if agree[name] and not agree[name]["agree"]:
            notes.append(f"{name}: Rivet's and Pinocchio's results differ by more than "
                         f"{AGREEMENT_TOL:g}; the timings may not compare like with like")
    host["loadavg_end"] = pvm.loadavg()
    report = {
        "bench": "control_vs_pinocchio",
        "pinocchio_version": pin.__version__,
        "peer": {"kind": peer_kind, "description": peer_desc, "compile_command": compile_cmd,
                 "mimic_joints": not args.no_mimic},
        "rows": rows,
        "ik": ik_rows,
        "targets": targets_report(rows, ik_rows),
        "agreement": agree,
        "notes": notes,
        "python": sys.version.split()[0],
        "host": host,
        "rounds": args.rounds,
        "rivet_command": cmd,
        "rivet_output": rivet_runs,
        "pinocchio_output": [{k: {kk: vv for kk, vv in v.items() if kk != "checks"}
                              for k, v in run.items()} for run in pin_runs],
    }
    if args.json:
        print(json.dumps(report))
    else:
        print_table(report)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.status)
    except KeyboardInterrupt:
        sys.exit(130)
