//! Learning end to end through the CLI: `rivet train` solves the shipped tasks (the issue's
//! acceptance criteria, asserted on seeded, deterministic runs), `rivet eval` scores the
//! checkpoints over 100 episodes, `rivet run --policy` acts with them, and checkpoints that do
//! not fit a scene, or are damaged, are refused with a clear message.

use std::path::{Path, PathBuf};

use crate::cli::{has_rerun, json_stdout, rerun_rrd, rivet};
use crate::repo;

fn scene(name: &str) -> String {
    repo()
        .join("scenes")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn ok(out: std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    json_stdout(&out)
}

/// Trains `scene` into `dir` with the scene's own settings, seed 0 and `extra` flags.
fn train(scene_name: &str, dir: &Path, extra: &[&str]) -> serde_json::Value {
    let out = dir.to_string_lossy().into_owned();
    let path = scene(scene_name);
    let mut args = vec!["train", &path, "--out", &out, "--seed", "0", "--json"];
    args.extend_from_slice(extra);
    ok(rivet(&args, dir))
}

fn eval(scene_path: &str, policy: &Path, episodes: &str, extra: &[&str]) -> std::process::Output {
    let policy = policy.to_string_lossy().into_owned();
    let mut args = vec![
        "eval",
        scene_path,
        "--policy",
        &policy,
        "--episodes",
        episodes,
        "--json",
    ];
    args.extend_from_slice(extra);
    rivet(&args, repo())
}

fn check_training_outputs(dir: &Path, report: &serde_json::Value) -> PathBuf {
    let checkpoint = PathBuf::from(report["checkpoint"].as_str().unwrap());
    assert!(checkpoint.is_file());
    assert!(dir.join("policy.safetensors").is_file());
    let csv = std::fs::read_to_string(dir.join("learning_curve.csv")).unwrap();
    assert!(csv.lines().count() >= 3, "{csv}");
    assert!(dir.join("training.rrd").is_file());
    if has_rerun() {
        let verified = rerun_rrd("verify", &dir.join("training.rrd"));
        assert!(
            verified.status.success(),
            "{}",
            String::from_utf8_lossy(&verified.stderr)
        );
    }
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&checkpoint).unwrap()).unwrap();
    assert!(spec["scene"]["content_hash"].as_str().unwrap().len() == 64);
    assert!(spec["observation"]["names"].as_array().unwrap().len() > 1);
    checkpoint
}

#[test]
fn cartpole_is_balanced_in_95_percent_of_100_episodes() {
    let _cpu = crate::not_real_time();
    let dir = tempfile::tempdir().unwrap();
    // A fixed budget (about three times what the first deterministic 20/20 evaluation
    // needs) rather than stopping at the first success: the 100-episode criterion wants a
    // policy that is robust, not one that just passed.
    let report = train("cartpole.toml", dir.path(), &["--steps", "60000"]);
    assert_eq!(report["env_steps"], 60416, "{report}");
    let checkpoint = check_training_outputs(dir.path(), &report);

    let result = ok(eval(&scene("cartpole.toml"), &checkpoint, "100", &[]));
    assert_eq!(result["episodes"], 100);
    let rate = result["success_rate"].as_f64().unwrap();
    assert!(rate >= 0.95, "success rate {rate}: {result}");
    assert!(result["mean_return"].as_f64().unwrap() >= 950.0);

    // The policy acts in `rivet run` and its episode is recorded.
    let rrd = dir.path().join("run.rrd");
    let run = ok(rivet(
        &[
            "run",
            &scene("cartpole.toml"),
            "--policy",
            checkpoint.to_str().unwrap(),
            "--record",
            rrd.to_str().unwrap(),
            "--json",
        ],
        dir.path(),
    ));
    assert_eq!(run["policy"]["success"], true, "{run}");
    assert!(rrd.is_file());

    // `--record` writes the first episode for rerun.
    let eval_rrd = dir.path().join("eval.rrd");
    let recorded = ok(eval(
        &scene("cartpole.toml"),
        &checkpoint,
        "2",
        &["--record", eval_rrd.to_str().unwrap()],
    ));
    assert_eq!(recorded["episodes"], 2);
    assert!(eval_rrd.is_file());
    if has_rerun() {
        let verified = rerun_rrd("verify", &eval_rrd);
        assert!(verified.status.success());
    }

    // Wrong scene: the spaces differ, and the message names the first differing dimension.
    let wrong = eval(&scene("reach.toml"), &checkpoint, "1", &[]);
    assert!(!wrong.status.success());
    let message = String::from_utf8_lossy(&wrong.stderr);
    assert!(message.contains("cartpole"), "{message}");

    // The same task in an edited scene file: refused unless the change is accepted.
    let edited = dir.path().join("cartpole_edited.toml");
    let text = std::fs::read_to_string(scene("cartpole.toml"))
        .unwrap()
        .replace(
            "robots/rivet_cartpole.urdf",
            &repo()
                .join("scenes/robots/rivet_cartpole.urdf")
                .to_string_lossy(),
        )
        + "\n# edited\n";
    std::fs::write(&edited, text).unwrap();
    let refused = eval(edited.to_str().unwrap(), &checkpoint, "1", &[]);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("hash"), "{message}");
    ok(eval(
        edited.to_str().unwrap(),
        &checkpoint,
        "2",
        &["--allow-scene-change"],
    ));

    // A truncated weights file is a clear error naming the file.
    let weights = dir.path().join("policy.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let broken = eval(&scene("cartpole.toml"), &checkpoint, "1", &[]);
    assert!(!broken.status.success());
    let message = String::from_utf8_lossy(&broken.stderr);
    assert!(message.contains("policy.safetensors"), "{message}");
}

#[test]
fn the_arm_reaches_targets_in_95_percent_of_100_episodes() {
    let _cpu = crate::not_real_time();
    let dir = tempfile::tempdir().unwrap();
    let report = train("reach.toml", dir.path(), &["--target-success", "0.95"]);
    assert_eq!(report["reached_target"], true, "{report}");
    let checkpoint = check_training_outputs(dir.path(), &report);
    let result = ok(eval(&scene("reach.toml"), &checkpoint, "100", &[]));
    let rate = result["success_rate"].as_f64().unwrap();
    assert!(rate >= 0.95, "success rate {rate}: {result}");
}

#[test]
fn behaviour_cloning_sets_the_brick_down_in_80_percent_of_100_episodes() {
    let _cpu = crate::not_real_time();
    let dir = tempfile::tempdir().unwrap();
    let report = train("brick_pick.toml", dir.path(), &[]);
    assert_eq!(report["algorithm"], "bc");
    assert_eq!(report["demonstrations"], 200);
    assert!(dir.path().join("demonstrations.safetensors").is_file());
    let checkpoint = check_training_outputs(dir.path(), &report);
    let result = ok(eval(&scene("brick_pick.toml"), &checkpoint, "100", &[]));
    let rate = result["success_rate"].as_f64().unwrap();
    assert!(rate >= 0.8, "success rate {rate}: {result}");
}
