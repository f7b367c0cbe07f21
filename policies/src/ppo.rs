//! Proximal Policy Optimisation (Schulman et al. 2017, clipped objective) with GAE, from any
//! [`VecEnv`].
//!
//! Each update collects `rollout_steps` steps from every world with the current policy
//! (sampling in normalised action units from the diagonal Gaussian, noise from the learner's
//! own seeded RNG), computes GAE advantages (truncated episodes are bootstrapped with the value
//! of their final observation, terminated ones are not), then runs `epochs` passes of shuffled
//! minibatch Adam steps on the clipped surrogate, value and entropy losses, with global
//! gradient-norm clipping. Observation statistics are frozen during a rollout and updated from
//! its observations afterwards (so stored observations and log-probabilities stay consistent).
//!
//! Rollout inference runs the plain-Rust forward pass ([`PlainActorCritic`]) row by row for
//! fewer than [`CANDLE_ROLLOUT_MIN_ENVS`] worlds or a CNN policy, and one batched candle
//! forward per step otherwise, whichever measured faster (`rollout_inference_timings`, an
//! ignored test, measures both). Training runs in candle. The same seed, environment and thread count give bitwise-identical results.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{CheckpointError, CheckpointSpec, LoadedPolicy, SceneRef, save_checkpoint};
use crate::env::{StepResult, VecEnv};
use crate::error::LearnError;
use crate::nn::{
    ActorCritic, NetworkSpec, PlainActorCritic, gaussian_entropy, gaussian_log_prob,
    gaussian_log_prob_row, scale_action, standard_normal,
};
use crate::normalize::RunningNorm;
use crate::optim::Adam;
use crate::space::BoxSpace;

/// From this many worlds on, MLP policies run rollout inference as one batched candle forward
/// per step instead of the plain-Rust forward row by row. Measured on the 2-core dev machine
/// (tanh 64x64 actor and critic, dev profile): plain 232 / 343 / 951 / 2968 µs per step at
/// 16 / 32 / 64 / 256 worlds, candle 338 / 395 / 539 / 2223 µs. CNN policies always use the
/// plain forward: candle's CPU convolution was 10x slower at every batch size.
pub const CANDLE_ROLLOUT_MIN_ENVS: usize = 48;

/// How the learning rate changes over a call to [`Ppo::train`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// `learning_rate` throughout (default).
    #[default]
    Constant,
    /// From `learning_rate` down to 0, linearly in env steps over the `train` call.
    Linear,
}

/// PPO hyper-parameters. Missing fields take their defaults when deserialised.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PpoConfig {
    /// Steps collected per world per update. Default 128.
    pub rollout_steps: usize,
    /// Passes over each rollout. Default 10.
    pub epochs: usize,
    /// Minibatches per epoch (the rollout of `rollout_steps × num_envs` samples is split into
    /// this many). Default 4.
    pub minibatches: usize,
    /// Discount factor per step, in [0, 1]. Default 0.99.
    pub gamma: f32,
    /// GAE λ, in [0, 1]. Default 0.95.
    pub gae_lambda: f32,
    /// Clip range of the probability ratio (ε). Default 0.2.
    pub clip_range: f32,
    /// Weight of the entropy bonus. Default 0.
    pub entropy_coef: f32,
    /// Weight of the value loss (mean squared error to the GAE returns). Default 0.5.
    pub value_coef: f32,
    /// Adam learning rate. Default 3e-4.
    pub learning_rate: f64,
    /// Learning-rate schedule. Default constant.
    pub lr_schedule: LrSchedule,
    /// Gradients are rescaled so their global L2 norm is at most this; 0 disables clipping.
    /// Default 0.5.
    pub max_grad_norm: f32,
    /// Stop an update's epochs early when the approximate KL divergence of a minibatch
    /// exceeds 1.5 × this. Default none.
    pub target_kl: Option<f32>,
    /// Normalise advantages to zero mean, unit variance per minibatch. Default true.
    pub normalize_advantages: bool,
    /// Network architecture. Default [`NetworkSpec::default`].
    pub network: NetworkSpec,
    /// Seed of the network initialisation, action noise, minibatch shuffling and the
    /// environment reset. Default 0.
    pub seed: u64,
}

impl Default for PpoConfig {
    fn default() -> Self {
        Self {
            rollout_steps: 128,
            epochs: 10,
            minibatches: 4,
            gamma: 0.99,
            gae_lambda: 0.95,
            clip_range: 0.2,
            entropy_coef: 0.0,
            value_coef: 0.5,
            learning_rate: 3e-4,
            lr_schedule: LrSchedule::Constant,
            max_grad_norm: 0.5,
            target_kl: None,
            normalize_advantages: true,
            network: NetworkSpec::default(),
            seed: 0,
        }
    }
}

impl PpoConfig {
    fn validate(&self) -> Result<(), LearnError> {
        let bad = |field: &'static str, reason: &str| {
            Err(LearnError::InvalidConfig {
                field,
                reason: reason.to_string(),
            })
        };
        if self.rollout_steps == 0 {
            return bad("rollout_steps", "must be at least 1");
        }
        if self.epochs == 0 {
            return bad("epochs", "must be at least 1");
        }
        if self.minibatches == 0 {
            return bad("minibatches", "must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.gamma) {
            return bad("gamma", "must be in [0, 1]");
        }
        if !(0.0..=1.0).contains(&self.gae_lambda) {
            return bad("gae_lambda", "must be in [0, 1]");
        }
        if !(self.clip_range > 0.0 && self.clip_range.is_finite()) {
            return bad("clip_range", "must be positive");
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad("learning_rate", "must be positive");
        }
        if !(self.max_grad_norm >= 0.0 && self.max_grad_norm.is_finite()) {
            return bad("max_grad_norm", "must be >= 0 (0 disables clipping)");
        }
        if !(self.entropy_coef.is_finite() && self.value_coef.is_finite()) {
            return bad("entropy_coef", "coefficients must be finite");
        }
        if let Some(kl) = self.target_kl
            && !(kl > 0.0 && kl.is_finite())
        {
            return bad("target_kl", "must be positive");
        }
        Ok(())
    }
}

/// What the caller wants after an update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Keep training.
    Continue,
    /// Stop now (e.g. the success rate reached a threshold).
    Stop,
}

/// Statistics of one PPO update (rollout plus optimisation).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PpoProgress {
    /// Update number within this `train` call, from 1.
    pub update: u32,
    /// Env steps (over all worlds) so far in this `train` call.
    pub env_steps: u64,
    /// Episodes finished so far in this `train` call.
    pub episodes: u64,
    /// Mean undiscounted return of the episodes finished in this rollout (none if none did).
    pub mean_return: Option<f32>,
    /// Fraction of the episodes finished in this rollout whose last step reported success.
    pub success_rate: Option<f32>,
    /// Mean length, in steps, of the episodes finished in this rollout.
    pub mean_episode_length: Option<f32>,
    /// Mean clipped surrogate loss over the minibatches run.
    pub policy_loss: f32,
    /// Mean value loss (MSE) over the minibatches run.
    pub value_loss: f32,
    /// Entropy of the policy (nats) after the update.
    pub entropy: f32,
    /// Mean approximate KL divergence, `E[(r - 1) - ln r]`, over the minibatches run.
    pub approx_kl: f32,
    /// Fraction of samples whose ratio was clipped.
    pub clip_fraction: f32,
    /// `1 - Var(returns - values) / Var(returns)` over the rollout (1 is perfect).
    pub explained_variance: f32,
    /// Learning rate used.
    pub learning_rate: f64,
    /// Env steps per second over this update, rollout and optimisation included.
    pub samples_per_sec: f64,
    /// Seconds since the start of this `train` call.
    pub wall_secs: f64,
}

/// The outcome of [`Ppo::train`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PpoSummary {
    /// Updates run.
    pub updates: u32,
    /// Env steps taken.
    pub env_steps: u64,
    /// Episodes finished.
    pub episodes: u64,
    /// The callback asked to stop before the step budget was used.
    pub stopped_early: bool,
    /// Seconds spent.
    pub wall_secs: f64,
    /// The last update's statistics.
    pub last: Option<PpoProgress>,
}

/// Per-world state carried between updates and `train` calls.
#[derive(Clone, Debug)]
struct EnvState {
    num_envs: usize,
    obs: Vec<f32>,
    episode_return: Vec<f64>,
    episode_length: Vec<u32>,
}

/// A PPO learner: the network, observation normaliser, optimiser and RNG state.
#[derive(Debug)]
pub struct Ppo {
    observation: BoxSpace,
    action: BoxSpace,
    config: PpoConfig,
    network: ActorCritic,
    norm: RunningNorm,
    adam: Adam,
    noise_rng: ChaCha8Rng,
    shuffle_rng: ChaCha8Rng,
    env_state: Option<EnvState>,
    total_env_steps: u64,
    total_updates: u32,
}

fn stream_rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

fn check_space(space: &'static str, learner: &BoxSpace, env: &BoxSpace) -> Result<(), LearnError> {
    if learner != env {
        let reason = if learner.dim() != env.dim() {
            format!(
                "learner has {} dimensions, environment has {}",
                learner.dim(),
                env.dim()
            )
        } else {
            "names or bounds differ".to_string()
        };
        return Err(LearnError::SpaceMismatch { space, reason });
    }
    Ok(())
}

/// Mean and population variance.
fn mean_var(x: &[f32]) -> (f64, f64) {
    let n = x.len().max(1) as f64;
    let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = x
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean, var)
}

impl Ppo {
    /// A learner with a freshly initialised network (seeded by `config.seed`).
    pub fn new(
        observation: &BoxSpace,
        action: &BoxSpace,
        config: PpoConfig,
    ) -> Result<Self, LearnError> {
        config.validate()?;
        let network = ActorCritic::new(
            observation.dim(),
            action.dim(),
            &config.network,
            config.seed,
        )?;
        let norm = RunningNorm::new(observation.dim());
        Self::from_pretrained(observation, action, config, network, norm)
    }

    /// A learner that starts from a trained network and its normalisation (e.g. behaviour
    /// cloning, or a checkpoint to fine-tune). `config.network` is replaced by the network's.
    pub fn from_pretrained(
        observation: &BoxSpace,
        action: &BoxSpace,
        mut config: PpoConfig,
        network: ActorCritic,
        norm: RunningNorm,
    ) -> Result<Self, LearnError> {
        config.validate()?;
        config.network = network.spec().clone();
        if network.obs_dim() != observation.dim() || norm.dim() != observation.dim() {
            return Err(LearnError::SpaceMismatch {
                space: "observation",
                reason: format!(
                    "network takes {}, normaliser {}, space has {} dimensions",
                    network.obs_dim(),
                    norm.dim(),
                    observation.dim()
                ),
            });
        }
        if network.act_dim() != action.dim() {
            return Err(LearnError::SpaceMismatch {
                space: "action",
                reason: format!(
                    "network outputs {}, space has {} dimensions",
                    network.act_dim(),
                    action.dim()
                ),
            });
        }
        let adam = Adam::new(network.params(), 1e-5);
        Ok(Self {
            observation: observation.clone(),
            action: action.clone(),
            noise_rng: stream_rng(config.seed, 1),
            shuffle_rng: stream_rng(config.seed, 2),
            config,
            network,
            norm,
            adam,
            env_state: None,
            total_env_steps: 0,
            total_updates: 0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PpoConfig {
        &self.config
    }

    /// The network being trained.
    pub fn actor_critic(&self) -> &ActorCritic {
        &self.network
    }

    /// The observation normaliser.
    pub fn obs_norm(&self) -> &RunningNorm {
        &self.norm
    }

    /// Env steps over every `train` call so far.
    pub fn total_env_steps(&self) -> u64 {
        self.total_env_steps
    }

    /// The current deterministic policy (mean action), for evaluation.
    pub fn policy(&self) -> Result<LoadedPolicy, LearnError> {
        LoadedPolicy::new(
            self.observation.clone(),
            self.action.clone(),
            &self.network,
            self.norm.stats(),
        )
    }

    /// The checkpoint spec of the current state. `training` records the algorithm, config and
    /// step counts, with `results` (free-form, from the caller) under `"results"`.
    pub fn checkpoint_spec(&self, scene: SceneRef, results: serde_json::Value) -> CheckpointSpec {
        let training = serde_json::json!({
            "algorithm": "ppo",
            "config": self.config,
            "env_steps": self.total_env_steps,
            "updates": self.total_updates,
            "results": results,
        });
        CheckpointSpec::new(
            self.observation.clone(),
            self.action.clone(),
            self.norm.stats().clone(),
            self.network.spec().clone(),
            scene,
            training,
        )
    }

    /// Saves a checkpoint of the current state (see [`save_checkpoint`]); returns the `.json`
    /// path.
    pub fn save(
        &self,
        path: impl AsRef<Path>,
        scene: SceneRef,
        results: serde_json::Value,
    ) -> Result<PathBuf, CheckpointError> {
        save_checkpoint(path, &self.network, &self.checkpoint_spec(scene, results))
    }

    /// Trains for `total_env_steps` env steps (over all worlds; rounded up to whole updates)
    /// on `env`, calling `on_update` after every update. The environment is reset (with
    /// `config.seed`) on the first call and continued on later ones.
    pub fn train(
        &mut self,
        env: &mut dyn VecEnv,
        total_env_steps: u64,
        mut on_update: impl FnMut(&PpoProgress) -> Control,
    ) -> Result<PpoSummary, LearnError> {
        check_space("observation", &self.observation, env.observation_space())?;
        check_space("action", &self.action, env.action_space())?;
        let n = env.num_envs();
        if n == 0 {
            return Err(LearnError::InvalidConfig {
                field: "num_envs",
                reason: "the environment has no worlds".into(),
            });
        }
        let (od, ad, t_max) = (
            self.observation.dim(),
            self.action.dim(),
            self.config.rollout_steps,
        );
        if t_max * n < self.config.minibatches {
            return Err(LearnError::InvalidConfig {
                field: "minibatches",
                reason: format!(
                    "{} minibatches from {} samples per rollout",
                    self.config.minibatches,
                    t_max * n
                ),
            });
        }
        if self.env_state.as_ref().is_none_or(|s| s.num_envs != n) {
            let mut obs = vec![0.0; n * od];
            env.reset(self.config.seed, &mut obs);
            self.env_state = Some(EnvState {
                num_envs: n,
                obs,
                episode_return: vec![0.0; n],
                episode_length: vec![0; n],
            });
        }
        let mut buf = Rollout::new(t_max, n, od, ad);
        let mut step = StepResult::with_capacity(n, od);
        let start = Instant::now();
        let mut summary = PpoSummary {
            updates: 0,
            env_steps: 0,
            episodes: 0,
            stopped_early: false,
            wall_secs: 0.0,
            last: None,
        };
        while summary.env_steps < total_env_steps {
            let update_start = Instant::now();
            let update = summary.updates + 1;
            let lr = match self.config.lr_schedule {
                LrSchedule::Constant => self.config.learning_rate,
                LrSchedule::Linear => {
                    self.config.learning_rate
                        * (1.0 - summary.env_steps as f64 / total_env_steps as f64).max(0.0)
                }
            };
            let episodes = self.collect(env, &mut buf, &mut step)?;
            summary.env_steps += (t_max * n) as u64;
            summary.episodes += episodes.count as u64;
            self.total_env_steps += (t_max * n) as u64;
            self.norm.update(&buf.raw_obs);
            let explained_variance = buf.advantages_and_returns(&self.config);
            let stats = self.optimise(&buf, lr, update)?;
            self.total_updates += 1;
            summary.updates = update;
            let progress = PpoProgress {
                update,
                env_steps: summary.env_steps,
                episodes: summary.episodes,
                mean_return: episodes.mean(|e| e.0),
                success_rate: episodes.mean(|e| if e.2 { 1.0 } else { 0.0 }),
                mean_episode_length: episodes.mean(|e| f64::from(e.1)),
                policy_loss: stats.policy_loss,
                value_loss: stats.value_loss,
                entropy: stats.entropy,
                approx_kl: stats.approx_kl,
                clip_fraction: stats.clip_fraction,
                explained_variance,
                learning_rate: lr,
                samples_per_sec: (t_max * n) as f64 / update_start.elapsed().as_secs_f64(),
                wall_secs: start.elapsed().as_secs_f64(),
            };
            let control = on_update(&progress);
            summary.last = Some(progress);
            if control == Control::Stop {
                summary.stopped_early = summary.env_steps < total_env_steps;
                break;
            }
        }
        summary.wall_secs = start.elapsed().as_secs_f64();
        Ok(summary)
    }

    /// One rollout into `buf` with the current policy and frozen normalisation.
    fn collect(
        &mut self,
        env: &mut dyn VecEnv,
        buf: &mut Rollout,
        step: &mut StepResult,
    ) -> Result<Episodes, LearnError> {
        let plain: PlainActorCritic = self.network.to_plain()?;
        let mut scratch = plain.scratch();
        let image = self.config.network.image.as_ref().map(|i| i.range());
        let state = self.env_state.as_mut().expect("reset before collecting");
        let (n, od, ad) = (state.num_envs, self.observation.dim(), self.action.dim());
        let log_std = plain.log_std().to_vec();
        let std: Vec<f32> = log_std.iter().map(|l| l.exp()).collect();
        let batched = n >= CANDLE_ROLLOUT_MIN_ENVS && self.config.network.image.is_none();
        let mut means = vec![0.0; n * ad];
        let mut u = vec![0.0; n * ad];
        let mut actions = vec![0.0; n * ad];
        let mut final_norm = vec![0.0; od];
        let mut episodes = Episodes::default();
        for t in 0..buf.steps {
            let rows = t * n..(t + 1) * n;
            let obs_n = &mut buf.obs[rows.start * od..rows.end * od];
            self.norm.normalize_except(&state.obs, obs_n, image.clone());
            buf.raw_obs[rows.start * od..rows.end * od].copy_from_slice(&state.obs);
            let values = &mut buf.values[rows.clone()];
            if batched {
                candle_rollout_forward(&self.network, obs_n, n, &mut means, values)?;
            } else {
                for (i, v) in values.iter_mut().enumerate() {
                    let row = &obs_n[i * od..(i + 1) * od];
                    let m = &mut means[i * ad..(i + 1) * ad];
                    *v = plain
                        .forward(row, &mut scratch, m, true)
                        .expect("value requested");
                }
            }
            for i in 0..n {
                let mean = &means[i * ad..(i + 1) * ad];
                let ui = &mut u[i * ad..(i + 1) * ad];
                for a in 0..ad {
                    ui[a] = mean[a] + std[a] * standard_normal(&mut self.noise_rng) as f32;
                }
                buf.log_probs[rows.start + i] = gaussian_log_prob_row(mean, &log_std, ui) as f32;
            }
            buf.actions[rows.start * ad..rows.end * ad].copy_from_slice(&u);
            scale_action(&self.action, &u, &mut actions);
            env.step(&actions, step);
            for i in 0..n {
                let k = rows.start + i;
                let r = step.rewards[i];
                if !r.is_finite() {
                    return Err(LearnError::NonFiniteReward { env: i, value: r });
                }
                let row = &step.observations[i * od..(i + 1) * od];
                if let Some(d) = row.iter().position(|v| !v.is_finite()) {
                    return Err(LearnError::NonFiniteObservation {
                        env: i,
                        dimension: self.observation.names()[d].clone(),
                        value: row[d],
                    });
                }
                buf.rewards[k] = r;
                let (term, trunc) = (step.terminated[i], step.truncated[i]);
                buf.dones[k] = term || trunc;
                buf.bootstrap[k] = 0.0;
                state.episode_return[i] += f64::from(r);
                state.episode_length[i] += 1;
                if trunc && !term {
                    let fin = &step.final_observations[i * od..(i + 1) * od];
                    self.norm
                        .normalize_except(fin, &mut final_norm, image.clone());
                    buf.bootstrap[k] = plain.value(&final_norm, &mut scratch);
                }
                if term || trunc {
                    episodes.finished.push((
                        state.episode_return[i],
                        state.episode_length[i],
                        step.success[i],
                    ));
                    episodes.count += 1;
                    state.episode_return[i] = 0.0;
                    state.episode_length[i] = 0;
                }
            }
            state.obs.copy_from_slice(&step.observations);
        }
        // Values of the observations after the rollout, for the last step's bootstrap.
        let mut last = vec![0.0; od];
        for i in 0..n {
            self.norm
                .normalize_except(&state.obs[i * od..(i + 1) * od], &mut last, image.clone());
            buf.last_values[i] = plain.value(&last, &mut scratch);
        }
        Ok(episodes)
    }

    /// Epochs of minibatch updates on the rollout.
    fn optimise(&mut self, buf: &Rollout, lr: f64, update: u32) -> Result<TrainStats, LearnError> {
        let cfg = &self.config;
        let (od, ad) = (self.observation.dim(), self.action.dim());
        let total = buf.len();
        let mut order: Vec<usize> = (0..total).collect();
        let mut acc = TrainStats::default();
        let mut batches = 0usize;
        let (mut mb_obs, mut mb_act) = (Vec::new(), Vec::new());
        let (mut mb_logp, mut mb_adv, mut mb_ret) = (Vec::new(), Vec::new(), Vec::new());
        'epochs: for _ in 0..cfg.epochs {
            for i in (1..total).rev() {
                let j = self.shuffle_rng.random_range(0..=i);
                order.swap(i, j);
            }
            for b in 0..cfg.minibatches {
                let idx = &order[b * total / cfg.minibatches..(b + 1) * total / cfg.minibatches];
                let m = idx.len();
                mb_obs.clear();
                mb_act.clear();
                mb_logp.clear();
                mb_adv.clear();
                mb_ret.clear();
                for &k in idx {
                    mb_obs.extend_from_slice(&buf.obs[k * od..(k + 1) * od]);
                    mb_act.extend_from_slice(&buf.actions[k * ad..(k + 1) * ad]);
                    mb_logp.push(buf.log_probs[k]);
                    mb_adv.push(buf.advantages[k]);
                    mb_ret.push(buf.returns[k]);
                }
                if cfg.normalize_advantages && m > 1 {
                    let (mean, var) = mean_var(&mb_adv);
                    let inv = 1.0 / (var.sqrt() + 1e-8);
                    mb_adv
                        .iter_mut()
                        .for_each(|a| *a = ((f64::from(*a) - mean) * inv) as f32);
                }
                let dev = &Device::Cpu;
                let obs = Tensor::from_slice(&mb_obs, (m, od), dev)?;
                let act = Tensor::from_slice(&mb_act, (m, ad), dev)?;
                let old_logp = Tensor::from_slice(&mb_logp, m, dev)?;
                let adv = Tensor::from_slice(&mb_adv, m, dev)?;
                let ret = Tensor::from_slice(&mb_ret, m, dev)?;

                let out = self.network.forward(&obs)?;
                let logp = gaussian_log_prob(&out.mean, &out.log_std, &act)?;
                let log_ratio = logp.sub(&old_logp)?;
                let ratio = log_ratio.exp()?;
                let clipped = ratio.clamp(1.0 - cfg.clip_range, 1.0 + cfg.clip_range)?;
                let surrogate = ratio.mul(&adv)?.minimum(&clipped.mul(&adv)?)?;
                let policy_loss = surrogate.mean_all()?.neg()?;
                let value_loss = out.value.sub(&ret)?.sqr()?.mean_all()?;
                let entropy = gaussian_entropy(&out.log_std)?;
                let loss = policy_loss
                    .add(&value_loss.affine(f64::from(cfg.value_coef), 0.0)?)?
                    .sub(&entropy.affine(f64::from(cfg.entropy_coef), 0.0)?)?;

                let ratio_v = ratio.detach().to_vec1::<f32>()?;
                let log_ratio_v = log_ratio.detach().to_vec1::<f32>()?;
                let approx_kl = ratio_v
                    .iter()
                    .zip(&log_ratio_v)
                    .map(|(&r, &lr)| f64::from(r - 1.0) - f64::from(lr))
                    .sum::<f64>()
                    / m as f64;
                let clip_fraction = ratio_v
                    .iter()
                    .filter(|&&r| (r - 1.0).abs() > cfg.clip_range)
                    .count() as f64
                    / m as f64;
                let loss_v = loss.to_scalar::<f32>()?;
                if !loss_v.is_finite() {
                    return Err(LearnError::Diverged {
                        update,
                        what: "PPO loss".into(),
                    });
                }
                if let Some(target) = cfg.target_kl
                    && approx_kl > 1.5 * f64::from(target)
                {
                    acc.approx_kl += approx_kl as f32;
                    batches += 1;
                    break 'epochs;
                }
                let grads = loss.backward()?;
                self.adam
                    .step(self.network.params(), &grads, lr, cfg.max_grad_norm, update)?;
                acc.policy_loss += policy_loss.to_scalar::<f32>()?;
                acc.value_loss += value_loss.to_scalar::<f32>()?;
                acc.approx_kl += approx_kl as f32;
                acc.clip_fraction += clip_fraction as f32;
                batches += 1;
            }
        }
        let b = batches.max(1) as f32;
        let log_std = Tensor::from_vec(self.network.log_std()?, ad, &Device::Cpu)?;
        Ok(TrainStats {
            policy_loss: acc.policy_loss / b,
            value_loss: acc.value_loss / b,
            approx_kl: acc.approx_kl / b,
            clip_fraction: acc.clip_fraction / b,
            entropy: gaussian_entropy(&log_std)?.to_scalar::<f32>()?,
        })
    }
}

/// One batched candle forward for `n` normalised observations: means `[n × A]`, values `[n]`.
fn candle_rollout_forward(
    network: &ActorCritic,
    obs: &[f32],
    n: usize,
    means: &mut [f32],
    values: &mut [f32],
) -> Result<(), LearnError> {
    let x = Tensor::from_slice(obs, (n, network.obs_dim()), &Device::Cpu)?;
    let out = network.forward(&x)?;
    means.copy_from_slice(&out.mean.flatten_all()?.to_vec1::<f32>()?);
    values.copy_from_slice(&out.value.to_vec1::<f32>()?);
    Ok(())
}

#[derive(Default)]
struct TrainStats {
    policy_loss: f32,
    value_loss: f32,
    entropy: f32,
    approx_kl: f32,
    clip_fraction: f32,
}

/// Episodes finished during one rollout: (return, length, success).
#[derive(Default)]
struct Episodes {
    count: usize,
    finished: Vec<(f64, u32, bool)>,
}

impl Episodes {
    fn mean(&self, f: impl Fn(&(f64, u32, bool)) -> f64) -> Option<f32> {
        if self.finished.is_empty() {
            None
        } else {
            Some((self.finished.iter().map(f).sum::<f64>() / self.finished.len() as f64) as f32)
        }
    }
}

/// Rollout buffers, time-major (`[t][env]`), reused across updates.
struct Rollout {
    steps: usize,
    num_envs: usize,
    obs: Vec<f32>,
    raw_obs: Vec<f32>,
    actions: Vec<f32>,
    log_probs: Vec<f32>,
    values: Vec<f32>,
    rewards: Vec<f32>,
    dones: Vec<bool>,
    /// Value of the final observation of a truncated episode (0 otherwise).
    bootstrap: Vec<f32>,
    last_values: Vec<f32>,
    advantages: Vec<f32>,
    returns: Vec<f32>,
}

impl Rollout {
    fn new(steps: usize, num_envs: usize, od: usize, ad: usize) -> Self {
        let len = steps * num_envs;
        Self {
            steps,
            num_envs,
            obs: vec![0.0; len * od],
            raw_obs: vec![0.0; len * od],
            actions: vec![0.0; len * ad],
            log_probs: vec![0.0; len],
            values: vec![0.0; len],
            rewards: vec![0.0; len],
            dones: vec![false; len],
            bootstrap: vec![0.0; len],
            last_values: vec![0.0; num_envs],
            advantages: vec![0.0; len],
            returns: vec![0.0; len],
        }
    }

    fn len(&self) -> usize {
        self.steps * self.num_envs
    }

    /// GAE(γ, λ): `δ_t = r_t + γ V_next − V(s_t)` where `V_next` is the next state's value
    /// while the episode continues, the final observation's value for a truncated episode, and
    /// 0 for a terminated one; the advantage recursion stops at every episode end. Returns the
    /// explained variance of the rollout values.
    fn advantages_and_returns(&mut self, cfg: &PpoConfig) -> f32 {
        let (gamma, lambda) = (f64::from(cfg.gamma), f64::from(cfg.gae_lambda));
        let n = self.num_envs;
        for i in 0..n {
            let mut next_adv = 0.0f64;
            for t in (0..self.steps).rev() {
                let k = t * n + i;
                let next_value = if self.dones[k] {
                    f64::from(self.bootstrap[k])
                } else if t + 1 < self.steps {
                    f64::from(self.values[k + n])
                } else {
                    f64::from(self.last_values[i])
                };
                let delta =
                    f64::from(self.rewards[k]) + gamma * next_value - f64::from(self.values[k]);
                let carry = if self.dones[k] { 0.0 } else { next_adv };
                next_adv = delta + gamma * lambda * carry;
                self.advantages[k] = next_adv as f32;
                self.returns[k] = (next_adv + f64::from(self.values[k])) as f32;
            }
        }
        let (_, var_ret) = mean_var(&self.returns);
        let residual: Vec<f32> = self
            .returns
            .iter()
            .zip(&self.values)
            .map(|(r, v)| r - v)
            .collect();
        let (_, var_res) = mean_var(&residual);
        if var_ret > 0.0 {
            (1.0 - var_res / var_ret) as f32
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::Policy;
    use crate::testenv::{PointReach, success_rate};

    fn reach_config(seed: u64) -> PpoConfig {
        PpoConfig {
            rollout_steps: 64,
            epochs: 5,
            minibatches: 4,
            learning_rate: 1e-3,
            network: NetworkSpec {
                hidden: vec![64, 64],
                ..NetworkSpec::default()
            },
            seed,
            ..PpoConfig::default()
        }
    }

    /// Success rate of a policy over 200 evaluation episodes on 8 worlds.
    fn evaluate(policy: &mut impl Policy) -> f32 {
        success_rate(8, 200, 77, |o, a| policy.act(o, a))
    }

    #[test]
    fn ppo_learns_point_reach() {
        let mut env = PointReach::new(16);
        let (obs, act) = (env.observation_space().clone(), env.action_space().clone());
        let mut ppo = Ppo::new(&obs, &act, reach_config(1)).unwrap();
        let untrained = evaluate(&mut ppo.policy().unwrap());
        let mut history = Vec::new();
        let summary = ppo
            .train(&mut env, 60 * 16 * 64, |p| {
                history.push(p.clone());
                Control::Continue
            })
            .unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let random = success_rate(8, 200, 77, |_, a| {
            a.iter_mut().for_each(|x| *x = rng.random_range(-0.5..0.5));
        });
        let trained = evaluate(&mut ppo.policy().unwrap());
        let last = summary.last.as_ref().unwrap();
        eprintln!(
            "PPO point reach: {} env steps, {} updates in {:.1} s ({:.0} steps/s); \
             success: untrained {untrained:.2}, random {random:.2}, trained {trained:.2}, \
             last rollout {:?}",
            summary.env_steps,
            summary.updates,
            summary.wall_secs,
            summary.env_steps as f64 / summary.wall_secs,
            last.success_rate
        );
        assert_eq!((summary.updates, summary.env_steps), (60, 61_440));
        assert_eq!(history.len(), 60);
        // Baselines: the initial policy's mean action and uniform random actions fail.
        assert!(
            untrained < 0.1,
            "untrained policy already succeeds: {untrained}"
        );
        assert!(random < 0.15, "random actions succeed too often: {random}");
        assert!(
            trained > 0.9,
            "trained deterministic success rate {trained}"
        );
        assert!(last.success_rate.unwrap() > 0.9, "{last:?}");
        // The stochastic policy improved over training, and learning signals make sense.
        let first = &history[0];
        assert!(first.success_rate.unwrap_or(0.0) < 0.5, "{first:?}");
        assert!(last.mean_episode_length.unwrap() < first.mean_episode_length.unwrap());
        assert!(last.explained_variance > 0.5, "{last:?}");
        assert!(
            history
                .iter()
                .all(|p| p.approx_kl.is_finite() && p.value_loss.is_finite())
        );
        assert_eq!(ppo.obs_norm().stats().count, 61_440.0);
    }

    /// Runs `updates` PPO updates and returns the weights and normaliser statistics.
    fn short_run(
        seed: u64,
        updates: u64,
        num_envs: usize,
    ) -> (Vec<Vec<f32>>, crate::normalize::NormStats) {
        let mut env = PointReach::new(num_envs);
        let (obs, act) = (env.observation_space().clone(), env.action_space().clone());
        let config = PpoConfig {
            rollout_steps: 16,
            ..reach_config(seed)
        };
        let mut ppo = Ppo::new(&obs, &act, config).unwrap();
        let steps = updates * num_envs as u64 * 16;
        ppo.train(&mut env, steps, |_| Control::Continue).unwrap();
        (
            ppo.actor_critic().values().unwrap(),
            ppo.obs_norm().stats().clone(),
        )
    }

    #[test]
    fn same_seed_gives_bitwise_identical_training() {
        let a = short_run(5, 2, 4);
        let b = short_run(5, 2, 4);
        let bits =
            |v: &Vec<Vec<f32>>| -> Vec<u32> { v.iter().flatten().map(|x| x.to_bits()).collect() };
        assert_eq!(bits(&a.0), bits(&b.0));
        assert_eq!(a.1, b.1);
        let c = short_run(6, 2, 4);
        assert_ne!(
            bits(&a.0),
            bits(&c.0),
            "a different seed trains differently"
        );
        // Training changed the weights.
        let init = ActorCritic::new(5, 2, &reach_config(5).network, 5).unwrap();
        assert_ne!(bits(&a.0), bits(&init.values().unwrap()));
        // The batched candle rollout path (many worlds) is deterministic too.
        const { assert!(64 >= CANDLE_ROLLOUT_MIN_ENVS) };
        let d = short_run(5, 1, 64);
        let e = short_run(5, 1, 64);
        assert_eq!(bits(&d.0), bits(&e.0));
        assert_eq!(d.1, e.1);
    }

    #[test]
    fn callback_stops_training_and_train_continues() {
        let mut env = PointReach::new(2);
        let (obs, act) = (env.observation_space().clone(), env.action_space().clone());
        let config = PpoConfig {
            rollout_steps: 8,
            epochs: 1,
            minibatches: 2,
            lr_schedule: LrSchedule::Linear,
            target_kl: Some(0.01),
            ..reach_config(0)
        };
        let mut ppo = Ppo::new(&obs, &act, config).unwrap();
        let mut lrs = Vec::new();
        let summary = ppo
            .train(&mut env, 1_000, |p| {
                lrs.push(p.learning_rate);
                if p.update == 3 {
                    Control::Stop
                } else {
                    Control::Continue
                }
            })
            .unwrap();
        assert_eq!((summary.updates, summary.env_steps), (3, 48));
        assert!(summary.stopped_early);
        assert_eq!(lrs[0], 1e-3);
        assert!(
            lrs[1] < lrs[0] && lrs[2] < lrs[1],
            "linear schedule: {lrs:?}"
        );
        // A second call continues from where the first stopped.
        let again = ppo.train(&mut env, 16, |_| Control::Continue).unwrap();
        assert_eq!(again.updates, 1);
        assert!(!again.stopped_early);
        assert_eq!(ppo.total_env_steps(), 64);
    }

    #[test]
    fn mismatched_environment_and_bad_config_are_errors() {
        let mut env = PointReach::new(2);
        let (obs, act) = (env.observation_space().clone(), env.action_space().clone());
        let wrong = BoxSpace::new(vec!["u".into()], vec![-1.0], vec![1.0]).unwrap();
        let mut ppo = Ppo::new(&obs, &wrong, reach_config(0)).unwrap();
        match ppo.train(&mut env, 10, |_| Control::Continue) {
            Err(LearnError::SpaceMismatch {
                space: "action",
                reason,
            }) => {
                assert!(reason.contains("1 dimensions"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let bad = PpoConfig {
            gamma: 1.5,
            ..PpoConfig::default()
        };
        assert!(matches!(
            Ppo::new(&obs, &act, bad),
            Err(LearnError::InvalidConfig { field: "gamma", .. })
        ));
        // Partial JSON configs fill in defaults.
        let cfg: PpoConfig =
            serde_json::from_str(r#"{"epochs": 3, "lr_schedule": "linear"}"#).unwrap();
        assert_eq!(
            (cfg.epochs, cfg.lr_schedule, cfg.rollout_steps),
            (3, LrSchedule::Linear, 128)
        );
    }

    #[test]
    fn gae_bootstraps_truncation_but_not_termination() {
        let cfg = PpoConfig {
            gamma: 0.5,
            gae_lambda: 1.0,
            ..PpoConfig::default()
        };
        // One world, three steps: step 0 truncates (final value 4), step 1 terminates,
        // step 2 continues into a state of value 8.
        let mut r = Rollout::new(3, 1, 1, 1);
        r.rewards.copy_from_slice(&[1.0, 2.0, 3.0]);
        r.values.copy_from_slice(&[10.0, 20.0, 30.0]);
        r.dones.copy_from_slice(&[true, true, false]);
        r.bootstrap.copy_from_slice(&[4.0, 0.0, 0.0]);
        r.last_values[0] = 8.0;
        r.advantages_and_returns(&cfg);
        assert_eq!(r.returns, vec![1.0 + 0.5 * 4.0, 2.0, 3.0 + 0.5 * 8.0]);
        assert_eq!(r.advantages, vec![3.0 - 10.0, 2.0 - 20.0, 7.0 - 30.0]);
        // With λ = 1 and no episode ends, returns are discounted sums bootstrapped at the end.
        let mut r = Rollout::new(2, 1, 1, 1);
        r.rewards.copy_from_slice(&[1.0, 1.0]);
        r.values.copy_from_slice(&[0.0, 0.0]);
        r.last_values[0] = 4.0;
        r.advantages_and_returns(&cfg);
        assert_eq!(
            r.returns,
            vec![1.0 + 0.5 * (1.0 + 0.5 * 4.0), 1.0 + 0.5 * 4.0]
        );
    }

    /// Measures rollout inference: the plain-Rust forward row by row against one batched
    /// candle forward per step, for an MLP (tanh, 64x64) and a CNN policy. Run with
    /// `cargo test -p rivet-policies rollout_inference_timings -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing measurement, prints numbers"]
    fn rollout_inference_timings() {
        let cnn = crate::nn::tests::image_spec();
        let cnn_dim = 2 + 2 * 9 * 8 + 3;
        for (label, spec, od) in [("mlp", NetworkSpec::default(), 5), ("cnn", cnn, cnn_dim)] {
            let net = ActorCritic::new(od, 2, &spec, 0).unwrap();
            let plain = net.to_plain().unwrap();
            let mut scratch = plain.scratch();
            for n in [1usize, 16, 32, 64, 256] {
                let obs = crate::nn::tests::random_obs(n, od, 1);
                let reps = 20_000 / n + 50;
                let mut mean = [0.0f32; 2];
                let mut sink = 0.0f32;
                let t = Instant::now();
                for _ in 0..reps {
                    for i in 0..n {
                        let row = &obs[i * od..(i + 1) * od];
                        sink += plain.forward(row, &mut scratch, &mut mean, true).unwrap();
                    }
                }
                let plain_us = t.elapsed().as_secs_f64() * 1e6 / reps as f64;
                let mut means = vec![0.0; n * 2];
                let mut values = vec![0.0; n];
                let t = Instant::now();
                for _ in 0..reps {
                    candle_rollout_forward(&net, &obs, n, &mut means, &mut values).unwrap();
                    sink += values[0];
                }
                let candle_us = t.elapsed().as_secs_f64() * 1e6 / reps as f64;
                eprintln!(
                    "{label} {n:4} envs: plain {plain_us:8.1} us/step, candle {candle_us:8.1} \
                     us/step ({sink})"
                );
            }
        }
    }
}
