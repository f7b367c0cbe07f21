//! The `rivet` command-line contract: exact forms, `--json` printing one object, clear errors.

use std::path::Path;
use std::process::{Command, Output};

use crate::repo;

pub(crate) fn rivet(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rivet"))
        .args(args)
        .current_dir(cwd)
        .env_remove("RIVET_PACKAGE_PATH")
        .env_remove("ROS_PACKAGE_PATH")
        .output()
        .expect("the rivet binary runs")
}

/// Runs `rivet run scenes/<scene> <extra...>` in `cwd` and checks it succeeded.
fn run_scene(scene: &str, cwd: &Path, extra: &[&str]) -> Output {
    let scene = repo().join("scenes").join(scene);
    let mut args = vec!["run", scene.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = rivet(&args, cwd);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `rerun rrd <subcommand> <rrd>`.
pub(crate) fn rerun_rrd(subcommand: &str, rrd: &Path) -> Output {
    Command::new("rerun")
        .args(["rrd", subcommand])
        .arg(rrd)
        .output()
        .expect("the rerun command runs")
}

pub(crate) fn json_stdout(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.trim().lines().count(),
        1,
        "stdout must be exactly one line: {text}"
    );
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn run_json_reports_and_writes_the_recording() {
    let _cpu = crate::not_real_time();
    let dir = tempfile::tempdir().unwrap();
    let rrd = dir.path().join("out.rrd");
    let out = run_scene(
        "brick_wall.toml",
        dir.path(),
        &[
            "--duration",
            "0.5",
            "--seed",
            "3",
            "--record",
            rrd.to_str().unwrap(),
            "--json",
        ],
    );
    let v = json_stdout(&out);
    assert_eq!(v["steps"], 250);
    assert_eq!(v["seed"], 3);
    assert_eq!(v["outcome"], "completed");
    assert!((v["simulated_secs"].as_f64().unwrap() - 0.5).abs() < 1e-9);
    assert!(v["real_time_factor"].as_f64().unwrap() > 0.0);
    assert_eq!(Path::new(v["recording"].as_str().unwrap()), rrd);
    let bytes = std::fs::read(&rrd).unwrap();
    // Rerun's file magic.
    assert_eq!(&bytes[..4], b"RRF2", "not an .rrd file");
    assert!(
        bytes.len() > 10_000,
        "suspiciously small recording: {} bytes",
        bytes.len()
    );
    assert!(!dir.path().join("out.rrd.partial").exists());
}

/// The recording opens in rerun 0.36.3 itself (`rerun rrd verify`). Needs the `rerun` command
/// from `pip install rerun-sdk==0.36.3` on PATH (.ci/run installs it); outside CI it skips with
/// a message when absent.
/// Whether the `rerun` command is on PATH; in CI its absence is a failure. Outside CI the
/// caller skips its rerun checks (with a message).
pub(crate) fn has_rerun() -> bool {
    let has_rerun = Command::new("rerun")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_rerun {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have the rerun command (pip install rerun-sdk==0.36.3)"
        );
        eprintln!("SKIPPED (rerun checks): no `rerun` on PATH (pip install rerun-sdk==0.36.3)");
    }
    has_rerun
}

#[test]
fn recording_verifies_with_the_rerun_tool() {
    let _cpu = crate::not_real_time();
    if !has_rerun() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rrd = dir.path().join("patrol.rrd");
    run_scene(
        "site_patrol.toml",
        dir.path(),
        &["--duration", "1", "--record", rrd.to_str().unwrap()],
    );
    let verify = rerun_rrd("verify", &rrd);
    assert!(
        verify.status.success(),
        "rerun rrd verify failed: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let stats = rerun_rrd("stats", &rrd);
    let text = String::from_utf8_lossy(&stats.stdout);
    let entities: usize = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("num_entity_paths = "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no entity count in: {text}"));
    // Robot links, joints, props, actors, contacts: dozens of entities.
    assert!(entities > 30, "only {entities} entity paths");
}

#[test]
fn run_without_record_writes_under_runs_and_prints_the_path() {
    let _cpu = crate::not_real_time();
    let dir = tempfile::tempdir().unwrap();
    let out = run_scene("site_patrol.toml", dir.path(), &["--duration", "0.2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let written: Vec<_> = std::fs::read_dir(dir.path().join("runs"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(written.len(), 1);
    let name = written[0].file_name().to_string_lossy().into_owned();
    assert!(
        name.starts_with("site_patrol-") && name.ends_with(".rrd"),
        "{name}"
    );
    assert!(
        stderr.contains(&name),
        "the summary must print the path: {stderr}"
    );
}

#[test]
fn check_urdf_prints_the_tree_and_json_counts() {
    let _cpu = crate::not_real_time();
    let dir = tempfile::tempdir().unwrap();
    let urdf = repo().join("scenes/robots/rivet_arm6.urdf");
    let out = rivet(&["check", urdf.to_str().unwrap()], dir.path());
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("shoulder_pan") && text.contains("11 links, 10 joints"),
        "{text}"
    );
    let out = rivet(&["check", urdf.to_str().unwrap(), "--json"], dir.path());
    let v = json_stdout(&out);
    assert_eq!(v["robots"][0]["links"], 11);
    assert_eq!(v["robots"][0]["joints"], 10);
    assert_eq!(v["robots"][0]["actuated_dofs"], 8);
}

#[test]
fn check_resolves_package_uris_with_package_path() {
    let _cpu = crate::not_real_time();
    let Some(shared) = crate::shared_dir() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let urdf = shared.join("example-robot-data/robots/ur_description/urdf/ur5_robot.urdf");
    let out = rivet(&["check", urdf.to_str().unwrap(), "--json"], dir.path());
    assert!(
        !out.status.success(),
        "without a package path the meshes cannot resolve"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("package://example-robot-data"), "{err}");
    let out = rivet(
        &[
            "check",
            urdf.to_str().unwrap(),
            "--package-path",
            shared.to_str().unwrap(),
            "--json",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json_stdout(&out)["robots"][0]["actuated_dofs"], 6);
}

#[test]
fn schema_is_a_json_schema_of_the_scene_format() {
    let _cpu = crate::not_real_time();
    let out = rivet(&["schema"], repo());
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["$schema"].as_str().unwrap().contains("json-schema.org"));
    assert!(v["properties"]["robot"].is_object());
    assert!(v.to_string().contains("timestep_secs"));
}

#[test]
fn bad_scene_fails_with_file_line_and_column() {
    let _cpu = crate::not_real_time();
    let dir = tempfile::tempdir().unwrap();
    let scene = dir.path().join("bad.toml");
    std::fs::write(
        &scene,
        "[world]\ntimestep_secs = 0.002\ngravty = [0, 0, -9.81]\n",
    )
    .unwrap();
    let out = rivet(&["run", scene.to_str().unwrap(), "--json"], dir.path());
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no JSON on failure to start");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:3:1") && err.contains("gravty"),
        "{err}"
    );
    assert!(
        !dir.path().join("runs").exists(),
        "nothing written for a bad scene"
    );
}

#[test]
fn every_command_has_help() {
    let _cpu = crate::not_real_time();
    for args in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["check", "--help"],
        vec!["schema", "--help"],
        vec!["bench", "--help"],
        vec!["bench", "physics", "--help"],
        vec!["bench", "learn", "--help"],
        vec!["bench", "bridge", "--help"],
        vec!["train", "--help"],
        vec!["eval", "--help"],
    ] {
        let out = rivet(&args, repo());
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}

/// `rivet bench bridge --json`: one JSON object with every figure, for the sample counts asked.
/// Checks the shape and that the figures are finite and positive, never the speed.
#[test]
fn bench_bridge_json_reports_every_figure() {
    let _cpu = crate::not_real_time();
    let out = rivet(
        &[
            "bench",
            "bridge",
            "--json",
            "--samples",
            "100",
            "--warmup",
            "10",
            "--rates",
            "200,1000",
        ],
        repo(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json_stdout(&out);
    assert_eq!(v["bench"], "bridge");
    let command = v["command"].as_str().unwrap();
    assert!(
        command.starts_with("rivet bench bridge") && command.contains("--samples 100"),
        "{command}"
    );
    let positive = |x: &serde_json::Value, what: &str| {
        let f = x
            .as_f64()
            .unwrap_or_else(|| panic!("{what} is not a number: {x}"));
        assert!(f.is_finite() && f > 0.0, "{what} = {f}");
        f
    };
    for key in ["joint_state", "float64_multi_array", "rmw_zenoh_attachment"] {
        positive(&v["payload_bytes"][key], key);
    }
    assert_eq!(v["payload_bytes"]["joints"], 6);
    assert_eq!(v["payload_bytes"]["rmw_zenoh_attachment"], 33);
    assert_eq!(v["warmup"], 10);
    let rates: Vec<f64> = v["rates_hz"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_f64().unwrap())
        .collect();
    assert_eq!(rates, [200.0, 1000.0]);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for (r, rate) in results.iter().zip(rates) {
        assert_eq!(r["rate_hz"].as_f64(), Some(rate));
        assert_eq!(r["samples"], 100);
        for path in ["raw_zenoh", "bridge"] {
            let p = &r[path];
            assert_eq!(p["samples"], 100, "{path} at {rate} Hz");
            let received = p["received"].as_u64().unwrap();
            assert!(received > 0 && received <= 100, "{path}: {received}");
            assert_eq!(received + p["lost"].as_u64().unwrap(), 100);
            let mut last = 0.0;
            for q in ["p50_us", "p99_us", "p999_us", "max_us"] {
                let x = positive(&p[q], &format!("{path}.{q} at {rate} Hz"));
                assert!(x >= last, "{path}: percentiles must not decrease");
                last = x;
            }
            positive(&p["mean_us"], "mean");
        }
        // Where the time goes: both raw legs, and the bridge's three stages.
        for (path, stages) in [
            ("raw_zenoh", &["ping_one_way", "pong_one_way"][..]),
            (
                "bridge",
                &["state_to_loop", "loop_work", "command_to_robot"][..],
            ),
        ] {
            let st = &r[path]["stages"];
            assert!(st["samples"].as_u64().unwrap() > 0, "{path}: {st}");
            for stage in stages {
                for q in ["p50_us", "p99_us", "p999_us", "max_us"] {
                    let x = st[stage][q].as_f64().unwrap();
                    assert!(x.is_finite() && x >= 0.0, "{path}.{stage}.{q} = {x}");
                }
            }
        }
        assert_eq!(r["bridge"]["loop"]["trigger"], "state");
        assert!(r["bridge"]["loop"]["states_accepted"].as_u64().unwrap() > 0);
        for q in ["p50", "p99", "p999"] {
            positive(&r["ratio_bridge_over_raw"][q], q);
        }
        let c = &r["clock_loop"];
        assert_eq!(c["cycles_asked"], 100);
        let cycles = c["cycles"].as_u64().unwrap();
        assert!(cycles > 0 && cycles <= 100, "{cycles} cycles");
        assert!(c["deadline_misses"].as_u64().is_some());
        for q in [
            "jitter_p50_us",
            "jitter_p99_us",
            "jitter_p999_us",
            "jitter_max_us",
        ] {
            let x = c[q].as_f64().unwrap();
            assert!(x.is_finite() && x >= 0.0, "{q} = {x}");
        }
    }
    // One round-trip goal per rate, the jitter goal at 1 kHz; each says met or not.
    let goals = v["goals"].as_array().unwrap();
    assert_eq!(goals.len(), 3, "{goals:?}");
    for g in goals {
        positive(&g["measured"], "goal measurement");
        assert!(g["met"].is_boolean());
    }
}
