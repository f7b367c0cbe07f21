#!/usr/bin/env python3
"""Rivet's learning stack vs Stable-Baselines3 / Gymnasium / torch, side by side, in one invocation.

Install (once; PyPI only, CPU only; see bench/requirements-learn.txt for why --no-deps):

    python3 -m venv bench/.venv                       # if bench/.venv does not exist yet
    bench/.venv/bin/pip install -r bench/requirements.txt
    bench/.venv/bin/pip install --no-deps -r bench/requirements-learn.txt

PyPI's torch for Linux x86_64 is the CUDA build; plain `--no-deps torch` does not import (its
libraries link libcudart/libcupti/cublas/cudnn...), so requirements-learn.txt pins the whole closure
including the nvidia-* runtime wheels torch links against, minus triton, cusolver, cuda-bindings and
the other pieces `import torch` does not need (~0.5 GB less than a plain install). Nothing runs on a
GPU. The script does the second pip step itself when requirements-learn.txt changed (stamp in
bench/.venv/.requirements-learn.sha256), like physics_vs_mujoco.py does for requirements.txt.

Run:

    cargo build                                        # builds target/debug/rivet
    bench/.venv/bin/python bench/learn_vs_sb3.py [--rivet PATH] [--seeds N] [--json]
    bench/.venv/bin/python bench/learn_vs_sb3.py --skip-rivet   # peer side only

What it measures:
1. Training to a target, per seed 0..N-1:
   - Rivet: `<rivet> train scenes/cartpole.toml --out <tmp> --envs 16 --seed S --target-success 0.95
     --json` (contract keys: wall_secs, env_steps, reached_target, secs_to_target, steps_to_target,
     final.success_rate, final.mean_return);
   - SB3 PPO on Gymnasium's InvertedPendulum-v5 (rl-zoo3's tuned hyperparameters by default), device
     cpu, torch threads 2, until an EvalCallback (every --eval-freq steps, 10 deterministic
     episodes) sees a mean return >= 950 (the env's reward_threshold), capped at --sb3-max-steps.
     Wall time runs from before env/model construction to the end of the evaluation that reached
     the threshold, so it INCLUDES the evaluation time (also reported separately).
2. Env steps/s: Rivet's `bench learn` figures (per number of worlds) vs a single-process Gymnasium
   InvertedPendulum-v5 loop with random actions (resets included), median of --gym-repeats.
3. Policy inference latency: Rivet's `bench learn` figures vs a torch MLP of the same shape
   (obs_dim -> hidden... -> act_dim, tanh on hidden layers, linear output), eval mode under
   torch.inference_mode(), 2 threads, batch 1 and 64, per-call perf_counter_ns, median and p99.

Prints a table with Rivet/peer ratios and goals (wall time to target <= 0.2x SB3, env steps/s >=
10x Gymnasium, batch-1 inference median <= 0.5x torch), or with --json exactly one JSON object on
stdout. Progress goes to stderr.

Exit status: 0 success (a missed goal is still 0); 1 a Rivet command failed or broke its output
contract; 2 setup or usage error (binary or scene missing, venv/pip failure, imports failing).
"""

import argparse
import collections
import contextlib
import gc
import hashlib
import json
import math
import os
import platform
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

pvm.LOG_TAG = "learn_vs_sb3"
log = pvm.log

REPO_ROOT = pvm.REPO_ROOT
LEARN_REQUIREMENTS = BENCH_DIR / "requirements-learn.txt"
LEARN_STAMP = pvm.VENV_DIR / ".requirements-learn.sha256"
INSTALL_HINT = (
    "bench/.venv/bin/pip install -r bench/requirements.txt && "
    "bench/.venv/bin/pip install --no-deps -r bench/requirements-learn.txt"
)

DEFAULT_SCENE = "scenes/cartpole.toml"
DEFAULT_ENVS = 16
DEFAULT_TARGET_SUCCESS = 0.95
GYM_ENV_ID = "InvertedPendulum-v5"
DEFAULT_REWARD_THRESHOLD = 950.0  # InvertedPendulum-v5's registered reward_threshold
DEFAULT_SB3_MAX_STEPS = 300_000
DEFAULT_EVAL_FREQ = 2000
DEFAULT_EVAL_EPISODES = 10
DEFAULT_GYM_STEPS = 20_000
DEFAULT_GYM_REPEATS = 5
DEFAULT_INFER_CALLS = 20_000
DEFAULT_INFER_WARMUP = 2_000
DEFAULT_THREADS = 2
DEFAULT_RIVET_TIMEOUT = 3600.0
# Without Rivet's `inference.network`: InvertedPendulum's dims with SB3's default hidden sizes.
DEFAULT_NETWORK = {"obs_dim": 4, "act_dim": 1, "hidden": [64, 64], "activation": "tanh"}

GOAL_WALL_RATIO_MAX = 0.2  # Rivet secs to target / SB3 secs to threshold
GOAL_ENV_RATIO_MIN = 10.0  # Rivet env steps/s / Gymnasium single-process env steps/s
GOAL_INFER_RATIO_MAX = 0.5  # Rivet batch-1 median / torch batch-1 median

# rl-baselines3-zoo (rl-zoo3) hyperparams/ppo.yml, entry "InvertedPendulum-v2" (the tuned MuJoCo
# set, also used by rl-zoo for later versions of the env): normalize: true (VecNormalize of
# observations and rewards, gamma as below; the eval env gets training=False, norm_reward=False),
# n_envs 1, MlpPolicy (64-64 tanh), n_timesteps 1e6 (here capped by --sb3-max-steps).
RL_ZOO_PPO_INVERTED_PENDULUM = {
    "n_steps": 32,
    "batch_size": 64,
    "gamma": 0.999,
    "learning_rate": 0.000222425,
    "ent_coef": 1.37976e-07,
    "clip_range": 0.4,
    "n_epochs": 5,
    "gae_lambda": 0.9,
    "max_grad_norm": 0.3,
    "vf_coef": 0.19816,
}


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Rivet training / env stepping / policy inference vs Stable-Baselines3 PPO, "
        "Gymnasium and torch, side by side.",
    )
    p.add_argument("--rivet", metavar="PATH",
                   help="Rivet binary (default: $CARGO_TARGET_DIR/debug/rivet if CARGO_TARGET_DIR "
                   "is set, else target/debug/rivet under the repository root)")
    p.add_argument("--seeds", type=pvm.positive_int, default=1, metavar="N",
                   help="train both sides with seeds 0..N-1 and report medians (default 1)")
    p.add_argument("--json", action="store_true",
                   help="print exactly one JSON object on stdout instead of the table")
    p.add_argument("--skip-rivet", "--no-rivet", dest="skip_rivet", action="store_true",
                   help="measure the SB3 / Gymnasium / torch side only (no Rivet binary needed)")
    p.add_argument("--scene", default=DEFAULT_SCENE, metavar="TOML",
                   help="Rivet scene for `train` and `bench learn`, relative to the repository "
                   "root (default %(default)s)")
    p.add_argument("--envs", type=pvm.positive_int, default=DEFAULT_ENVS, metavar="N",
                   help="`rivet train --envs` (default %(default)s)")
    p.add_argument("--target-success", type=float, default=DEFAULT_TARGET_SUCCESS, metavar="X",
                   help="`rivet train --target-success` (default %(default)s)")
    p.add_argument("--sb3-hparams", choices=("zoo", "default"), default="zoo",
                   help="PPO hyperparameters: rl-zoo3's tuned InvertedPendulum set with "
                   "VecNormalize (zoo, default) or SB3's defaults without normalization")
    p.add_argument("--sb3-max-steps", type=pvm.positive_int, default=DEFAULT_SB3_MAX_STEPS,
                   metavar="N", help="stop SB3 after N env steps if the threshold is not reached "
                   "(default %(default)s)")
    p.add_argument("--reward-threshold", type=float, metavar="R",
                   help=f"SB3 stop threshold on the mean eval return (default: {GYM_ENV_ID}'s "
                   f"reward_threshold, {DEFAULT_REWARD_THRESHOLD:g})")
    p.add_argument("--eval-freq", type=pvm.positive_int, default=DEFAULT_EVAL_FREQ, metavar="N",
                   help="SB3 EvalCallback period in env steps (default %(default)s)")
    p.add_argument("--eval-episodes", type=pvm.positive_int, default=DEFAULT_EVAL_EPISODES,
                   metavar="N", help="deterministic episodes per evaluation (default %(default)s)")
    p.add_argument("--gym-steps", type=pvm.positive_int, default=DEFAULT_GYM_STEPS, metavar="N",
                   help="Gymnasium loop steps per repetition (default %(default)s)")
    p.add_argument("--gym-repeats", type=pvm.positive_int, default=DEFAULT_GYM_REPEATS,
                   metavar="R", help="Gymnasium loop repetitions, median reported (default "
                   "%(default)s)")
    p.add_argument("--infer-calls", type=pvm.positive_int, default=DEFAULT_INFER_CALLS,
                   metavar="N", help="timed torch calls per batch size (default %(default)s)")
    p.add_argument("--threads", type=pvm.positive_int, default=DEFAULT_THREADS, metavar="N",
                   help="torch threads for SB3 training and inference (default %(default)s)")
    p.add_argument("--network", metavar="DIMS",
                   help="torch MLP as obs,hidden...,act (e.g. 4,64,64,1) when Rivet's "
                   "inference.network is not available (default with --skip-rivet: 4,64,64,1 tanh)")
    p.add_argument("--work-dir", metavar="DIR",
                   help="keep Rivet's training outputs in DIR/seed<S> (default: a temporary "
                   "directory, removed at the end)")
    p.add_argument("--rivet-timeout", type=float, default=DEFAULT_RIVET_TIMEOUT, metavar="SECS",
                   help="kill a Rivet command after this long (default %(default)g)")
    p.add_argument("--no-venv", action="store_true",
                   help="use the current interpreter (which must have both requirement files "
                   "installed) instead of bench/.venv")
    args = p.parse_args(argv)
    if not 0.0 < args.target_success <= 1.0:
        p.error("--target-success must be in (0, 1]")
    if args.network:
        try:
            dims = [int(x) for x in args.network.split(",")]
        except ValueError:
            p.error(f"--network: expected comma-separated integers, got {args.network!r}")
        if len(dims) < 2 or any(d <= 0 for d in dims):
            p.error("--network: need at least obs,act, all positive")
        args.network = {"obs_dim": dims[0], "act_dim": dims[-1], "hidden": dims[1:-1],
                        "activation": "tanh"}
    return args


# ---------------------------------------------------------------------------------------------
# Environment: venv, imports
# ---------------------------------------------------------------------------------------------


def ensure_learn_requirements():
    """Inside bench/.venv: install requirements-learn.txt (--no-deps) when it changed."""
    if not LEARN_REQUIREMENTS.is_file():
        raise BenchError(f"{LEARN_REQUIREMENTS} is missing")
    wanted = hashlib.sha256(LEARN_REQUIREMENTS.read_bytes()).hexdigest()
    have = LEARN_STAMP.read_text().strip() if LEARN_STAMP.is_file() else None
    if have == wanted:
        return
    log(f"installing {LEARN_REQUIREMENTS.relative_to(REPO_ROOT)} (--no-deps) into "
        f"{pvm.VENV_DIR}; the first time this downloads ~2.3 GB (torch + CUDA runtime wheels)")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-deps", "-r",
         str(LEARN_REQUIREMENTS)],
        stdout=sys.stderr, stderr=sys.stderr,
    )
    if proc.returncode != 0:
        raise BenchError(
            f"pip install --no-deps -r {LEARN_REQUIREMENTS} failed (status {proc.returncode}); "
            f"see pip's output above. By hand: {INSTALL_HINT}"
        )
    LEARN_STAMP.write_text(wanted + "\n")


def import_peers(threads):
    """Import numpy, gymnasium, torch and SB3; set torch's thread counts. Returns a namespace."""
    try:
        import numpy as np
        import gymnasium as gym
        import torch
        import stable_baselines3 as sb3
        from stable_baselines3 import PPO
        from stable_baselines3.common.callbacks import (
            EvalCallback, StopTrainingOnRewardThreshold,
        )
        from stable_baselines3.common.env_util import make_vec_env
        from stable_baselines3.common.vec_env import VecNormalize
        import mujoco
    except ImportError as e:
        raise BenchError(
            f"cannot import the peer side with {sys.executable} ({e}). Install it with: "
            f"{INSTALL_HINT}"
        )
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:
        pass  # only settable before the first parallel op; harmless if already set
    return argparse.Namespace(
        np=np, gym=gym, torch=torch, sb3=sb3, PPO=PPO, EvalCallback=EvalCallback,
        StopTrainingOnRewardThreshold=StopTrainingOnRewardThreshold, make_vec_env=make_vec_env,
        VecNormalize=VecNormalize, mujoco=mujoco,
    )


# ---------------------------------------------------------------------------------------------
# Rivet side
# ---------------------------------------------------------------------------------------------


def resolve_rivet(arg):
    if arg:
        path, source = Path(arg).expanduser(), "--rivet"
        if not path.exists() and os.sep not in arg and shutil.which(arg):
            path = Path(shutil.which(arg))
    elif os.environ.get("CARGO_TARGET_DIR"):
        path = Path(os.environ["CARGO_TARGET_DIR"]).expanduser() / "debug" / "rivet"
        source = "$CARGO_TARGET_DIR"
    else:
        path, source = REPO_ROOT / "target" / "debug" / "rivet", "default"
    if not path.is_absolute():
        path = Path.cwd() / path
    if not path.exists():
        raise BenchError(
            f"Rivet binary not found: {path} (from {source}). Run `cargo build` in the "
            "repository root (builds target/debug/rivet), or pass --rivet PATH, or use "
            "--skip-rivet to measure the SB3/Gymnasium/torch side only."
        )
    if path.is_dir() or not os.access(path, os.X_OK):
        raise BenchError(f"Rivet binary {path} (from {source}) is not an executable file")
    return path


def run_rivet_json(cmd, timeout):
    """Run a Rivet command from the repository root; stderr passes through, stdout must be
    exactly one JSON object. Returns (object, wall seconds of the process)."""
    shown = " ".join(str(c) for c in cmd)
    log(f"running {shown}")
    tail = collections.deque(maxlen=64)
    try:
        proc = subprocess.Popen(
            [str(c) for c in cmd], cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
    except OSError as e:
        raise BenchError(f"could not start Rivet ({shown}): {e}")

    def pump_stderr():
        for line in iter(proc.stderr.readline, b""):
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
        pump.join(timeout=1)
        raise BenchError(f"Rivet timed out after {timeout:g} s and was killed: {shown} "
                         "(raise --rivet-timeout)", status=1)
    elapsed = time.perf_counter() - started
    reader.join()
    pump.join(timeout=5)
    stdout = chunks[0] if chunks else b""
    stderr_tail = "\n".join(f"    {l}" for l in list(tail)[-20:]) or "    (nothing on stderr)"
    if proc.returncode != 0:
        raise BenchError(
            f"Rivet failed: `{shown}` {pvm.describe_status(proc.returncode)} after {elapsed:.1f} "
            f"s. Last lines of its stderr:\n{stderr_tail}", status=1)
    text = stdout.decode("utf-8", "replace").strip()
    excerpt = (text[:400] + ("..." if len(text) > 400 else "")).replace("\n", "\n    ")
    try:
        obj, end = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError as e:
        raise BenchError(
            f"Rivet output is not JSON: `{shown}` exited 0 but stdout did not start with a JSON "
            f"object ({e}). stdout was:\n    {excerpt or '(empty)'}", status=1)
    if text[end:].strip():
        raise BenchError(
            f"Rivet printed more than one JSON object / trailing text on stdout (`{shown}`); the "
            f"contract is exactly one JSON object. stdout was:\n    {excerpt}", status=1)
    if not isinstance(obj, dict):
        raise BenchError(f"Rivet's JSON from `{shown}` is not an object", status=1)
    return obj, elapsed


class Contract:
    """Typed lookups in Rivet's JSON that fail with a message naming the missing/bad key."""

    def __init__(self, obj, shown):
        self.obj, self.shown = obj, shown

    def fail(self, key, why):
        raise BenchError(f"Rivet's JSON from `{self.shown}` {why} key \"{key}\" (see the output "
                         "contract in bench/README.md)", status=1)

    def get(self, key, kind, nullable=False, obj=None, prefix=""):
        src = self.obj if obj is None else obj
        name = prefix + key
        if not isinstance(src, dict) or key not in src:
            self.fail(name, "lacks")
        v = src[key]
        if v is None:
            if nullable:
                return None
            self.fail(name, "has null for")
        if kind == "number":
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                self.fail(name, f"has a non-number ({v!r}) for")
            return float(v)
        if kind == "int":
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v):
                self.fail(name, f"has a non-integer ({v!r}) for")
            return int(v)
        if kind == "bool":
            if not isinstance(v, bool):
                self.fail(name, f"has a non-boolean ({v!r}) for")
            return v
        if kind == "object":
            if not isinstance(v, dict):
                self.fail(name, "has a non-object for")
            return v
        if kind == "list":
            if not isinstance(v, list):
                self.fail(name, "has a non-list for")
            return v
        if kind == "str":
            if not isinstance(v, str):
                self.fail(name, "has a non-string for")
            return v
        raise AssertionError(kind)


def rivet_train(rivet, scene, seed, envs, target, out_dir, timeout):
    cmd = [rivet, "train", scene, "--out", out_dir, "--envs", envs, "--seed", seed,
           "--target-success", target, "--json"]
    obj, elapsed = run_rivet_json(cmd, timeout)
    c = Contract(obj, " ".join(str(x) for x in cmd))
    final = c.get("final", "object")
    res = {
        "seed": seed,
        "wall_secs": c.get("wall_secs", "number"),
        "env_steps": c.get("env_steps", "int"),
        "reached_target": c.get("reached_target", "bool"),
        "secs_to_target": c.get("secs_to_target", "number", nullable=True),
        "steps_to_target": c.get("steps_to_target", "int", nullable=True),
        "final_success_rate": c.get("success_rate", "number", obj=final, prefix="final."),
        "final_mean_return": c.get("mean_return", "number", obj=final, prefix="final."),
        "process_wall_secs": elapsed,
        "command": [str(x) for x in cmd],
        "output": obj,
    }
    if res["reached_target"] and (res["secs_to_target"] is None or res["steps_to_target"] is None):
        c.fail("secs_to_target/steps_to_target", "says reached_target=true but has null for")
    log(f"  rivet seed {seed}: reached={res['reached_target']} secs_to_target="
        f"{res['secs_to_target']} steps_to_target={res['steps_to_target']} (whole run "
        f"{res['wall_secs']:.1f} s, {res['env_steps']} env steps, final success "
        f"{res['final_success_rate']:.3f})")
    return res


def rivet_bench_learn(rivet, scene, timeout):
    cmd = [rivet, "bench", "learn", "--scene", scene, "--json"]
    obj, _ = run_rivet_json(cmd, timeout)
    c = Contract(obj, " ".join(str(x) for x in cmd))
    rates = []
    for i, e in enumerate(c.get("env_steps_per_sec", "list")):
        pre = f"env_steps_per_sec[{i}]."
        if not isinstance(e, dict):
            c.fail(f"env_steps_per_sec[{i}]", "has a non-object for")
        rates.append({"worlds": c.get("worlds", "int", obj=e, prefix=pre),
                      "steps_per_sec": c.get("steps_per_sec", "number", obj=e, prefix=pre)})
    if not rates:
        c.fail("env_steps_per_sec", "has an empty list for")
    inf = c.get("inference", "object")
    out = {"env_steps_per_sec": rates, "inference": {}}
    for b in ("batch1", "batch64"):
        blk = c.get(b, "object", obj=inf, prefix="inference.")
        out["inference"][b] = {k: c.get(k, "number", obj=blk, prefix=f"inference.{b}.")
                               for k in ("median_us", "p99_us")}
    net = c.get("network", "object", obj=inf, prefix="inference.")
    hidden = c.get("hidden", "list", obj=net, prefix="inference.network.")
    if not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden):
        c.fail("inference.network.hidden", "has non-positive-integer entries in")
    out["network"] = {
        "obs_dim": c.get("obs_dim", "int", obj=net, prefix="inference.network."),
        "act_dim": c.get("act_dim", "int", obj=net, prefix="inference.network."),
        "hidden": hidden,
        "activation": c.get("activation", "str", obj=net, prefix="inference.network."),
    }
    out["command"] = [str(x) for x in cmd]
    out["output"] = obj
    return out


# ---------------------------------------------------------------------------------------------
# Peer side: SB3 training
# ---------------------------------------------------------------------------------------------


def sb3_train(P, seed, hparams, threshold, max_steps, eval_freq, eval_episodes, threads):
    """PPO on InvertedPendulum-v5 until the EvalCallback's mean return >= threshold."""
    import warnings

    torch = P.torch
    torch.set_num_threads(threads)

    class Stop(P.StopTrainingOnRewardThreshold):
        hit = None  # (perf_counter, num_timesteps, mean reward) of the eval that reached it

        def _on_step(self):
            cont = super()._on_step()
            if not cont and self.hit is None:
                self.hit = (time.perf_counter(), self.num_timesteps, self.parent.best_mean_reward)
            return cont

    class TimedEval(P.EvalCallback):
        eval_secs = 0.0
        evals = 0
        eval_env_steps = 0

        def _on_step(self):
            if self.eval_freq > 0 and self.n_calls % self.eval_freq == 0:
                t = time.perf_counter()
                cont = super()._on_step()
                self.eval_secs += time.perf_counter() - t
                self.evals += 1
                log(f"  sb3 seed {seed}: {self.num_timesteps} steps, eval mean return "
                    f"{self.last_mean_reward:.1f} (best {self.best_mean_reward:.1f}), "
                    f"{time.perf_counter() - t0:.1f} s")
                return cont
            return super()._on_step()

    zoo = hparams == "zoo"
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        # n_steps * n_envs = 32 < batch_size 64 in the zoo set: SB3 warns and uses one batch of 32.
        warnings.filterwarnings("ignore", message=".*mini-batch size.*")
        t0 = time.perf_counter()
        env = P.make_vec_env(GYM_ENV_ID, n_envs=1, seed=seed)
        eval_env = P.make_vec_env(GYM_ENV_ID, n_envs=1, seed=seed + 10_000)
        if zoo:
            gamma = RL_ZOO_PPO_INVERTED_PENDULUM["gamma"]
            env = P.VecNormalize(env, gamma=gamma)
            eval_env = P.VecNormalize(eval_env, gamma=gamma, training=False, norm_reward=False)
            kwargs = dict(RL_ZOO_PPO_INVERTED_PENDULUM)
        else:
            kwargs = {}
        model = P.PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **kwargs)
        stop = Stop(reward_threshold=threshold, verbose=0)
        cb = TimedEval(eval_env, callback_on_new_best=stop, eval_freq=eval_freq,
                       n_eval_episodes=eval_episodes, deterministic=True, verbose=0, warn=False)
        model.learn(total_timesteps=max_steps, callback=cb)
        t_end = time.perf_counter()
        env.close()
        eval_env.close()
    reached = stop.hit is not None
    res = {
        "seed": seed,
        "reached_threshold": reached,
        "secs_to_threshold": (stop.hit[0] - t0) if reached else None,
        "steps_to_threshold": int(stop.hit[1]) if reached else None,
        "eval_mean_return_at_stop": float(stop.hit[2]) if reached else None,
        "best_eval_mean_return": float(cb.best_mean_reward),
        "wall_secs": t_end - t0,
        "env_steps": int(model.num_timesteps),
        "eval_secs": cb.eval_secs,
        "evaluations": cb.evals,
    }
    log(f"  sb3 seed {seed}: reached={reached} secs_to_threshold={res['secs_to_threshold']} "
        f"steps_to_threshold={res['steps_to_threshold']} (eval time {cb.eval_secs:.1f} s in "
        f"{cb.evals} evaluations)")
    return res


# ---------------------------------------------------------------------------------------------
# Peer side: Gymnasium env loop, torch inference
# ---------------------------------------------------------------------------------------------


def gym_loop(P, steps, repeats, seed=0):
    """Single-process InvertedPendulum-v5 stepping with pre-drawn random actions, resets included
    in the timing (gym.make's default wrappers included)."""
    np, gym = P.np, P.gym
    env = gym.make(GYM_ENV_ID)
    space = env.action_space
    rng = np.random.default_rng(seed)
    actions = rng.uniform(space.low, space.high, size=(steps, *space.shape)).astype(space.dtype)
    env.reset(seed=seed)
    for i in range(min(1000, steps)):  # warm-up
        _, _, term, trunc, _ = env.step(actions[i])
        if term or trunc:
            env.reset()
    rates, episodes = [], []
    step, reset = env.step, env.reset
    for _ in range(repeats):
        reset()
        n_ep = 0
        gc.collect()
        gc.disable()
        t = time.perf_counter()
        for i in range(steps):
            _, _, term, trunc, _ = step(actions[i])
            if term or trunc:
                reset()
                n_ep += 1
        dt = time.perf_counter() - t
        gc.enable()
        rates.append(steps / dt)
        episodes.append(n_ep)
    env.close()
    return {
        "env": GYM_ENV_ID,
        "steps": steps,
        "repeats": repeats,
        "steps_per_sec": statistics.median(rates),
        "samples": rates,
        "episodes_per_repeat": episodes,
        "frame_skip": getattr(env.unwrapped, "frame_skip", None),
        "dt_secs": float(getattr(env.unwrapped, "dt", float("nan"))),
    }


def percentile(sorted_vals, q):
    """Nearest-rank percentile of an ascending list."""
    k = max(0, min(len(sorted_vals) - 1, math.ceil(q / 100.0 * len(sorted_vals)) - 1))
    return sorted_vals[k]


def torch_inference(P, network, calls, threads, warmup=DEFAULT_INFER_WARMUP):
    torch = P.torch
    torch.set_num_threads(threads)
    acts = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}
    act = str(network.get("activation", "tanh")).lower()
    if act not in acts:
        raise BenchError(f"Rivet's inference.network.activation is {act!r}; this script builds "
                         f"the torch MLP with one of {sorted(acts)}")
    dims = [network["obs_dim"], *network["hidden"], network["act_dim"]]
    layers = []
    for i in range(len(dims) - 1):
        layers.append(torch.nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(acts[act]())
    torch.manual_seed(0)
    net = torch.nn.Sequential(*layers).eval()
    ns = time.perf_counter_ns
    out = {"network": {**network, "activation": act}, "threads": torch.get_num_threads(),
           "calls": calls, "warmup_calls": warmup}
    with torch.inference_mode():
        for batch in (1, 64):
            x = torch.randn(batch, dims[0])
            for _ in range(warmup):
                net(x)
            samples = [0] * calls
            gc.collect()
            gc.disable()
            for i in range(calls):
                t = ns()
                net(x)
                samples[i] = ns() - t
            gc.enable()
            samples.sort()
            out[f"batch{batch}"] = {"median_us": statistics.median(samples) / 1000.0,
                                    "p99_us": percentile(samples, 99) / 1000.0,
                                    "min_us": samples[0] / 1000.0}
            log(f"  torch batch {batch}: median {out[f'batch{batch}']['median_us']:.1f} us, p99 "
                f"{out[f'batch{batch}']['p99_us']:.1f} us")
    return out


# ---------------------------------------------------------------------------------------------
# Summary and output
# ---------------------------------------------------------------------------------------------


def median_or_none(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def goal(value, limit, at_most):
    if value is None:
        return None
    return value <= limit if at_most else value >= limit


def summarize(rivet_runs, sb3_runs, rivet_bench, gym, torch_inf):
    s = {}
    r_secs = median_or_none([r["secs_to_target"] for r in rivet_runs if r["reached_target"]])
    r_steps = median_or_none([r["steps_to_target"] for r in rivet_runs if r["reached_target"]])
    p_secs = median_or_none([r["secs_to_threshold"] for r in sb3_runs])
    p_steps = median_or_none([r["steps_to_threshold"] for r in sb3_runs])
    s["training"] = {
        "rivet_median_secs_to_target": r_secs,
        "rivet_median_steps_to_target": r_steps,
        "rivet_reached": sum(r["reached_target"] for r in rivet_runs) if rivet_runs else None,
        "rivet_median_wall_secs": median_or_none([r["wall_secs"] for r in rivet_runs]),
        "sb3_median_secs_to_threshold": p_secs,
        "sb3_median_steps_to_threshold": p_steps,
        "sb3_reached": sum(r["reached_threshold"] for r in sb3_runs),
        "sb3_median_eval_secs": median_or_none(
            [r["eval_secs"] for r in sb3_runs if r["reached_threshold"]]),
        "runs": len(sb3_runs),
        "ratio_secs_rivet_over_sb3": ratio(r_secs, p_secs),
        "ratio_steps_rivet_over_sb3": ratio(r_steps, p_steps),
        "goal_ratio_secs_max": GOAL_WALL_RATIO_MAX,
    }
    s["training"]["goal_met"] = goal(s["training"]["ratio_secs_rivet_over_sb3"],
                                     GOAL_WALL_RATIO_MAX, True)
    one = best = best_worlds = None
    if rivet_bench:
        rates = rivet_bench["env_steps_per_sec"]
        ones = [e["steps_per_sec"] for e in rates if e["worlds"] == 1]
        one = ones[0] if ones else None
        top = max(rates, key=lambda e: e["steps_per_sec"])
        best, best_worlds = top["steps_per_sec"], top["worlds"]
    g = gym["steps_per_sec"]
    s["env_steps_per_sec"] = {
        "rivet": rivet_bench["env_steps_per_sec"] if rivet_bench else None,
        "rivet_1_world": one,
        "rivet_best": best,
        "rivet_best_worlds": best_worlds,
        "gymnasium": g,
        "ratio_1_world": ratio(one, g),
        "ratio_best": ratio(best, g),
        "goal_ratio_min": GOAL_ENV_RATIO_MIN,
    }
    s["env_steps_per_sec"]["goal_met_1_world"] = goal(s["env_steps_per_sec"]["ratio_1_world"],
                                                      GOAL_ENV_RATIO_MIN, False)
    s["env_steps_per_sec"]["goal_met_best"] = goal(s["env_steps_per_sec"]["ratio_best"],
                                                   GOAL_ENV_RATIO_MIN, False)
    inf = {"network": torch_inf["network"], "goal_ratio_batch1_median_max": GOAL_INFER_RATIO_MAX}
    for b in ("batch1", "batch64"):
        for k in ("median_us", "p99_us"):
            rv = rivet_bench["inference"][b][k] if rivet_bench else None
            tv = torch_inf[b][k]
            inf[f"{b}_{k}"] = {"rivet": rv, "torch": tv, "ratio": ratio(rv, tv)}
    inf["goal_met"] = goal(inf["batch1_median_us"]["ratio"], GOAL_INFER_RATIO_MAX, True)
    s["inference"] = inf
    return s


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def fmt_goal(met, text):
    if met is None:
        return text + " (n/a)"
    return text + (" ok" if met else " MISSED")


def print_table(report):
    s = report["summary"]
    t, e, inf = s["training"], s["env_steps_per_sec"], s["inference"]
    n = t["runs"]
    rows = [
        ["wall secs to target", fmt(t["rivet_median_secs_to_target"], ".1f"),
         fmt(t["sb3_median_secs_to_threshold"], ".1f"), "SB3 PPO",
         fmt(t["ratio_secs_rivet_over_sb3"], ".3f"),
         fmt_goal(t["goal_met"], f"<= {GOAL_WALL_RATIO_MAX:g}")],
        ["env steps to target", fmt(t["rivet_median_steps_to_target"], ",.0f"),
         fmt(t["sb3_median_steps_to_threshold"], ",.0f"), "SB3 PPO",
         fmt(t["ratio_steps_rivet_over_sb3"], ".3f"), ""],
        ["env steps/s, 1 world", fmt(e["rivet_1_world"], ",.0f"), fmt(e["gymnasium"], ",.0f"),
         "Gymnasium", fmt(e["ratio_1_world"], ".1f"),
         fmt_goal(e["goal_met_1_world"], f">= {GOAL_ENV_RATIO_MIN:g}")],
        [f"env steps/s, best ({e['rivet_best_worlds'] or '-'} worlds)",
         fmt(e["rivet_best"], ",.0f"), fmt(e["gymnasium"], ",.0f"), "Gymnasium",
         fmt(e["ratio_best"], ".1f"), fmt_goal(e["goal_met_best"], f">= {GOAL_ENV_RATIO_MIN:g}")],
    ]
    for b, label in (("batch1", "batch 1"), ("batch64", "batch 64")):
        for k, kl in (("median_us", "median"), ("p99_us", "p99")):
            c = inf[f"{b}_{k}"]
            g = (fmt_goal(inf["goal_met"], f"<= {GOAL_INFER_RATIO_MAX:g}")
                 if (b, k) == ("batch1", "median_us") else "")
            rows.append([f"inference {label} {kl} (us)", fmt(c["rivet"], ".2f"),
                         fmt(c["torch"], ".2f"), "torch", fmt(c["ratio"], ".3f"), g])
    header = ["metric", "Rivet", "peer", "peer is", "Rivet/peer", "goal"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def line(cells):
        return "  ".join(c.ljust(widths[i]) if i in (0, 3, 5) else c.rjust(widths[i])
                         for i, c in enumerate(cells)).rstrip()

    out = [line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in rows]
    cfg = report["config"]
    out.append("")
    seeds = ", ".join(str(x) for x in cfg["seeds"])
    if report["rivet"]["skipped"]:
        out.append("Rivet: not run (--skip-rivet).")
    else:
        out.append(
            f"Rivet: `rivet train {cfg['scene']} --envs {cfg['envs']} --target-success "
            f"{cfg['target_success']:g}` (seeds {seeds}; reached {t['rivet_reached']}/{n}; "
            f"median whole run {fmt(t['rivet_median_wall_secs'], '.1f')} s); env steps/s and "
            f"inference from `rivet bench learn --scene {cfg['scene']}` (steps/s summed over "
            "all worlds).")
    sb = cfg["sb3"]
    out.append(
        f"SB3 {report['versions']['stable_baselines3']} PPO ({sb['hparams_note']}) on "
        f"{GYM_ENV_ID}, cpu, {cfg['threads']} torch threads, seeds {seeds}: reached mean eval "
        f"return >= {sb['reward_threshold']:g} in {t['sb3_reached']}/{n} runs (cap "
        f"{sb['max_steps']:,} steps). EvalCallback every {sb['eval_freq']} steps, "
        f"{sb['eval_episodes']} deterministic episodes; the wall time includes the evaluations "
        f"(median {fmt(t['sb3_median_eval_secs'], '.1f')} s of it).")
    out.append("Targets differ: Rivet's is its own success rate on its cartpole scene, SB3's the "
               "mean return of Gymnasium's InvertedPendulum; medians over the runs that reached "
               "them.")
    g = report["gymnasium"]
    out.append(
        f"Gymnasium {report['versions']['gymnasium']}: gym.make('{GYM_ENV_ID}'), one process, "
        f"pre-drawn random actions, resets included, median of {g['repeats']} x {g['steps']:,} "
        f"steps (one env step = {g['frame_skip']} MuJoCo {report['versions']['mujoco']} steps, "
        f"dt {g['dt_secs']:g} s).")
    ti = report["torch_inference"]
    net = ti["network"]
    dims = " -> ".join(str(d) for d in [net["obs_dim"], *net["hidden"], net["act_dim"]])
    out.append(
        f"torch {report['versions']['torch']}: MLP {dims} ({net['activation']} hidden, linear "
        f"output){'' if report['rivet']['skipped'] else ', dims from Rivet'}, eval + "
        f"inference_mode, {ti['threads']} threads (OMP_WAIT_POLICY={cfg['omp_wait_policy']}), "
        f"{ti['calls']:,} timed calls per batch size after {ti['warmup_calls']:,} warm-up, "
        "per-call perf_counter_ns.")
    h = report["host"]
    if h["loadavg_start"] is not None:
        out.append(f"Host: {h['cpu']}, {h['logical_cpus']} logical CPUs, load average "
                   f"{h['loadavg_start'][0]:.2f} at start / {h['loadavg_end'][0]:.2f} at end.")
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
    if not args.no_venv:
        pvm.ensure_venv(argv, script=__file__)  # re-execs inside bench/.venv unless already there
        ensure_learn_requirements()

    rivet = None
    if not args.skip_rivet:
        rivet = resolve_rivet(args.rivet)
        scene_path = Path(args.scene)
        if not (scene_path if scene_path.is_absolute() else REPO_ROOT / scene_path).is_file():
            raise BenchError(f"scene {args.scene} not found (relative to {REPO_ROOT}); pass "
                             "--scene or --skip-rivet")

    # libgomp's default active wait makes torch's 2-thread parallel regions 5-10x slower whenever
    # another process is busy on a 2-core host (measured with SB3 PPO here); passive waiting
    # avoids that and costs little on an idle host. Must be set before torch (libgomp) loads.
    omp_wait_policy = os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    P = import_peers(args.threads)
    threshold = args.reward_threshold
    if threshold is None:
        spec_thr = P.gym.spec(GYM_ENV_ID).reward_threshold
        threshold = float(spec_thr) if spec_thr is not None else DEFAULT_REWARD_THRESHOLD
        if threshold != DEFAULT_REWARD_THRESHOLD:
            log(f"note: {GYM_ENV_ID}'s reward_threshold is {threshold:g}, using it")

    host = {"cpu": pvm.cpu_name(), "logical_cpus": os.cpu_count(), "loadavg_start": pvm.loadavg()}
    seeds = list(range(args.seeds))
    rivet_runs, sb3_runs = [], []
    temp = None
    if rivet is not None:
        if args.work_dir:
            work = Path(args.work_dir)
            work.mkdir(parents=True, exist_ok=True)
        else:
            temp = work = Path(tempfile.mkdtemp(prefix="rivet_learn_vs_sb3."))
    try:
        # 1. Training, the two sides alternating per seed so drift on a shared host hits both.
        for seed in seeds:
            if rivet is not None:
                out_dir = work / f"seed{seed}"
                rivet_runs.append(rivet_train(rivet, args.scene, seed, args.envs,
                                              args.target_success, out_dir, args.rivet_timeout))
            log(f"training SB3 PPO on {GYM_ENV_ID}, seed {seed} ({args.sb3_hparams} "
                f"hyperparameters, threshold {threshold:g}, cap {args.sb3_max_steps} steps)")
            sb3_runs.append(sb3_train(P, seed, args.sb3_hparams, threshold, args.sb3_max_steps,
                                      args.eval_freq, args.eval_episodes, args.threads))
        # 2./3. Env stepping and inference.
        rivet_bench = None
        if rivet is not None:
            rivet_bench = rivet_bench_learn(rivet, args.scene, args.rivet_timeout)
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)

    log(f"Gymnasium loop: {args.gym_repeats} x {args.gym_steps} steps of {GYM_ENV_ID}")
    gym = gym_loop(P, args.gym_steps, args.gym_repeats)
    log(f"  {gym['steps_per_sec']:,.0f} steps/s")
    network = (rivet_bench["network"] if rivet_bench else args.network or DEFAULT_NETWORK)
    if rivet_bench and str(network["activation"]).lower() != "tanh":
        log(f"warning: Rivet's network activation is {network['activation']!r}, not tanh")
    log(f"torch inference: {args.infer_calls} calls per batch size")
    torch_inf = torch_inference(P, network, args.infer_calls, args.threads)
    host["loadavg_end"] = pvm.loadavg()

    if args.sb3_hparams == "zoo":
        hp_note = ("rl-zoo3 tuned InvertedPendulum hyperparameters with VecNormalize: "
                   + ", ".join(f"{k}={v:g}" for k, v in RL_ZOO_PPO_INVERTED_PENDULUM.items()))
    else:
        hp_note = "SB3 default hyperparameters, no normalization"
    report = {
        "bench": "learn_vs_sb3",
        "summary": summarize(rivet_runs, sb3_runs, rivet_bench, gym, torch_inf),
        "config": {
            "seeds": seeds,
            "scene": args.scene,
            "envs": args.envs,
            "target_success": args.target_success,
            "threads": args.threads,
            "omp_wait_policy": omp_wait_policy,
            "sb3": {
                "env": GYM_ENV_ID,
                "hparams": args.sb3_hparams,
                "hparams_note": hp_note,
                "hyperparameters": (dict(RL_ZOO_PPO_INVERTED_PENDULUM, normalize=True)
                                    if args.sb3_hparams == "zoo" else "sb3 defaults"),
                "reward_threshold": threshold,
                "max_steps": args.sb3_max_steps,
                "eval_freq": args.eval_freq,
                "eval_episodes": args.eval_episodes,
                "eval_deterministic": True,
                "timing": "from before env/model construction to the end of the evaluation that "
                "reached the threshold; includes evaluation time",
            },
        },
        "rivet": {
            "skipped": rivet is None,
            "binary": str(rivet) if rivet else None,
            "train_runs": rivet_runs,
            "bench_learn": rivet_bench,
        },
        "sb3_runs": sb3_runs,
        "gymnasium": gym,
        "torch_inference": torch_inf,
        "versions": {
            "python": sys.version.split()[0],
            "torch": P.torch.__version__,
            "stable_baselines3": P.sb3.__version__,
            "gymnasium": P.gym.__version__,
            "mujoco": P.mujoco.__version__,
            "numpy": P.np.__version__,
        },
        "host": host,
    }
    if args.json:
        print(json.dumps(json_safe(report), indent=2))
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
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
