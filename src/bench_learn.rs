//! `rivet bench learn`: env steps per second of a scene's task for several world counts, policy
//! inference latency at batch 1 and 64, and PPO samples per second. Measurements, never
//! assertions.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rivet_policies::{Policy, Ppo, PpoConfig, StepResult, VecEnv};
use rivet_sim::Scene;
use serde_json::json;

use crate::PackageArgs;
use crate::learn::{SceneEnv, train_settings};

/// Arguments of `rivet bench learn`.
#[derive(clap::Args, Debug)]
pub struct LearnArgs {
    /// The scene whose task is measured.
    #[arg(long, default_value = "scenes/reach.toml", value_name = "SCENE")]
    pub scene: PathBuf,
    /// World counts to measure.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,8,32,64",
        value_name = "N,.."
    )]
    pub worlds: Vec<usize>,
    /// Worker threads stepping the worlds.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub threads: usize,
    /// Seconds of stepping per world count (split in 5 blocks; the median block is reported).
    #[arg(long, default_value_t = 3.0, value_name = "SECS")]
    pub secs: f64,
    /// Timed inference calls per batch size.
    #[arg(long, default_value_t = 20_000, value_name = "N")]
    pub calls: usize,
    /// PPO updates timed (16 worlds).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub updates: u32,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub packages: PackageArgs,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[i.min(v.len() - 1)]
}

/// Runs the benchmark.
pub fn learn(args: LearnArgs) -> anyhow::Result<()> {
    let scene = Arc::new(Scene::load(&args.scene, &args.packages.resolve())?);
    let settings = train_settings(&scene)?;
    anyhow::ensure!(args.threads >= 1, "--threads must be >= 1");
    anyhow::ensure!(args.secs > 0.0, "--secs must be > 0");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);

    // Env steps per second: uniformly random actions within the bounds.
    let mut rates = Vec::new();
    for &n in &args.worlds {
        anyhow::ensure!(n >= 1, "--worlds entries must be >= 1");
        let mut env = SceneEnv::new(scene.clone(), n, args.threads)?;
        let (obs_dim, act_dim) = (env.observation_space().dim(), env.action_space().dim());
        let (low, high) = (
            env.action_space().low().to_vec(),
            env.action_space().high().to_vec(),
        );
        let mut obs = vec![0.0; n * obs_dim];
        env.reset(0, &mut obs);
        let mut out = StepResult::with_capacity(n, obs_dim);
        let actions: Vec<Vec<f32>> = (0..64)
            .map(|_| {
                (0..n * act_dim)
                    .map(|k| {
                        let (l, h) = (low[k % act_dim], high[k % act_dim]);
                        let (l, h) = (l.max(-1e3), h.min(1e3));
                        if h > l { rng.random_range(l..h) } else { l }
                    })
                    .collect()
            })
            .collect();
        // Warm-up, then 5 timed blocks.
        for a in actions.iter().take(5) {
            env.step(a, &mut out);
        }
        let block_secs = args.secs / 5.0;
        let mut blocks = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let mut steps = 0u64;
            while t.elapsed().as_secs_f64() < block_secs {
                env.step(&actions[steps as usize % actions.len()], &mut out);
                steps += 1;
            }
            blocks.push((steps * n as u64) as f64 / t.elapsed().as_secs_f64());
        }
        let rate = median(&mut blocks);
        if !args.json {
            eprintln!("{n:>4} worlds: {rate:>10.0} env steps/s");
        }
        rates.push(json!({ "worlds": n, "steps_per_sec": rate }));
    }

    // Inference: the task's configured network (untrained weights; the cost does not depend
    // on their values).
    let env = SceneEnv::new(scene.clone(), 1, 1)?;
    let (observation, action) = (env.observation_space().clone(), env.action_space().clone());
    let config: PpoConfig = settings.ppo.clone();
    let ppo = Ppo::new(&observation, &action, config.clone())?;
    let mut policy = ppo.policy()?;
    let mut inference = serde_json::Map::new();
    for batch in [1usize, 64] {
        let obs: Vec<f32> = (0..batch * observation.dim())
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let mut act = vec![0.0; batch * action.dim()];
        for _ in 0..1000 {
            if batch == 1 {
                policy.act(&obs, &mut act);
            } else {
                policy.act_batch(&obs, &mut act);
            }
        }
        let calls = if batch == 1 {
            args.calls
        } else {
            args.calls / 8
        }
        .max(10);
        let mut us = Vec::with_capacity(calls);
        for _ in 0..calls {
            let t = Instant::now();
            if batch == 1 {
                policy.act(&obs, &mut act);
            } else {
                policy.act_batch(&obs, &mut act);
            }
            us.push(t.elapsed().as_secs_f64() * 1e6);
        }
        let (m, p99) = (median(&mut us), percentile(&mut us, 99.0));
        if !args.json {
            eprintln!("inference batch {batch:>2}: median {m:.2} µs, p99 {p99:.2} µs");
        }
        inference.insert(
            format!("batch{batch}"),
            json!({ "median_us": m, "p99_us": p99, "calls": calls }),
        );
    }
    inference.insert(
        "network".into(),
        json!({
            "obs_dim": observation.dim(),
            "act_dim": action.dim(),
            "hidden": config.network.hidden,
            "activation": config.network.activation,
        }),
    );

    // PPO samples per second (16 worlds, rollout + update).
    let mut env = SceneEnv::new(scene.clone(), 16, args.threads)?;
    let mut ppo = Ppo::new(&observation, &action, config.clone())?;
    let per_update = (config.rollout_steps * 16) as u64;
    let mut samples = Vec::new();
    ppo.train(&mut env, per_update * u64::from(args.updates.max(1)), |p| {
        samples.push(p.samples_per_sec);
        rivet_policies::Control::Continue
    })?;
    let ppo_rate = median(&mut samples);
    if !args.json {
        eprintln!(
            "PPO: {ppo_rate:.0} samples/s (16 worlds, median of {} updates)",
            samples.len()
        );
    }
    let report = json!({
        "scene": scene.name,
        "threads": args.threads,
        "env_steps_per_sec": rates,
        "inference": inference,
        "ppo_samples_per_sec": ppo_rate,
        "ppo_worlds": 16,
    });
    if args.json {
        crate::print_json(&report)?;
    }
    Ok(())
}
