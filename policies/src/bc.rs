//! Behaviour cloning: demonstrations (observation/action pairs grouped in episodes, stored as
//! safetensors) and supervised training of the actor's mean action on them.
//!
//! Actions are stored in the environment's action units. Training maps them to the network's
//! normalised units with [`unscale_action`] (clamped to `[-1, 1]` for bounded dimensions) and
//! minimises the mean squared error of the actor mean, with Adam, seeded minibatch shuffling
//! and a validation split by whole episodes. Observation normalisation is fitted on the
//! training split. The critic and `log_std` are left at their initial values (a PPO
//! fine-tune can start from the result with [`Ppo::from_pretrained`](crate::ppo::Ppo)).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{
    CheckpointError, CheckpointSpec, LoadedPolicy, SceneRef, save_checkpoint, write_atomically,
};
use crate::error::LearnError;
use crate::nn::{ActorCritic, NetworkSpec, unscale_action};
use crate::normalize::RunningNorm;
use crate::optim::Adam;
use crate::space::BoxSpace;

/// Metadata key of a demonstrations file; its value is a JSON object.
const DEMO_METADATA_KEY: &str = "rivet-demonstrations";
/// Version of the demonstrations file layout.
const DEMO_FORMAT_VERSION: u32 = 1;

/// Recorded episodes of observation/action pairs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Demonstrations {
    /// Observation dimension.
    pub obs_dim: usize,
    /// Action dimension.
    pub act_dim: usize,
    /// Observations, `steps × obs_dim`, row-major.
    pub observations: Vec<f32>,
    /// Actions taken, in the environment's action units, `steps × act_dim`.
    pub actions: Vec<f32>,
    /// Exclusive end step of each episode, increasing; the last equals the number of steps.
    pub episode_ends: Vec<usize>,
}

/// The JSON object stored in a demonstrations file's metadata.
#[derive(Serialize, Deserialize)]
struct DemoMetadata {
    format_version: u32,
    obs_dim: usize,
    act_dim: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    observation: Option<BoxSpace>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    action: Option<BoxSpace>,
}

impl Demonstrations {
    /// No episodes yet.
    pub fn new(obs_dim: usize, act_dim: usize) -> Self {
        Self {
            obs_dim,
            act_dim,
            ..Self::default()
        }
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.episode_ends.last().copied().unwrap_or(0)
    }

    /// No steps recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of episodes.
    pub fn episodes(&self) -> usize {
        self.episode_ends.len()
    }

    /// Step range of episode `i`.
    pub fn episode(&self, i: usize) -> std::ops::Range<usize> {
        let start = if i == 0 { 0 } else { self.episode_ends[i - 1] };
        start..self.episode_ends[i]
    }

    /// Appends an episode (`observations` is `steps × obs_dim`, `actions` is
    /// `steps × act_dim`, at least one step, all finite).
    pub fn push_episode(
        &mut self,
        observations: &[f32],
        actions: &[f32],
    ) -> Result<(), LearnError> {
        let bad = |reason: String| Err(LearnError::InvalidDemonstrations { reason });
        if self.obs_dim == 0 || self.act_dim == 0 {
            return bad("observation and action dimensions must be at least 1".into());
        }
        if observations.is_empty() || !observations.len().is_multiple_of(self.obs_dim) {
            return bad(format!(
                "{} observation values are not a whole, non-zero number of {}-dimensional rows",
                observations.len(),
                self.obs_dim
            ));
        }
        let steps = observations.len() / self.obs_dim;
        if actions.len() != steps * self.act_dim {
            return bad(format!(
                "{steps} observations but {} action values (expected {})",
                actions.len(),
                steps * self.act_dim
            ));
        }
        if let Some(i) = observations
            .iter()
            .chain(actions)
            .position(|v| !v.is_finite())
        {
            return bad(format!("value {i} of the episode is not finite"));
        }
        self.observations.extend_from_slice(observations);
        self.actions.extend_from_slice(actions);
        self.episode_ends.push(self.len() + steps);
        Ok(())
    }

    /// Checks lengths, episode ends and finiteness.
    pub fn validate(&self) -> Result<(), LearnError> {
        let bad = |reason: String| Err(LearnError::InvalidDemonstrations { reason });
        let steps = self.len();
        if self.obs_dim == 0 || self.act_dim == 0 {
            return bad("observation and action dimensions must be at least 1".into());
        }
        if self.observations.len() != steps * self.obs_dim {
            return bad(format!(
                "{} observation values for {steps} steps of {}",
                self.observations.len(),
                self.obs_dim
            ));
        }
        if self.actions.len() != steps * self.act_dim {
            return bad(format!(
                "{} action values for {steps} steps of {}",
                self.actions.len(),
                self.act_dim
            ));
        }
        let mut prev = 0;
        for (i, &end) in self.episode_ends.iter().enumerate() {
            if end <= prev {
                return bad(format!(
                    "episode {i} ends at step {end}, not after step {prev}"
                ));
            }
            prev = end;
        }
        if let Some(i) = self.observations.iter().position(|v| !v.is_finite()) {
            return bad(format!("observation value {i} is not finite"));
        }
        if let Some(i) = self.actions.iter().position(|v| !v.is_finite()) {
            return bad(format!("action value {i} is not finite"));
        }
        Ok(())
    }

    /// Saves as safetensors: `observations` (F32, `[steps, obs_dim]`), `actions` (F32,
    /// `[steps, act_dim]`), `episode_ends` (U64, `[episodes]`), and a metadata entry with the
    /// dimensions. Written atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), LearnError> {
        self.write(path.as_ref(), None, None)
    }

    /// [`Self::save`], also recording the spaces (names and bounds) in the metadata.
    pub fn save_with_spaces(
        &self,
        path: impl AsRef<Path>,
        observation: &BoxSpace,
        action: &BoxSpace,
    ) -> Result<(), LearnError> {
        if observation.dim() != self.obs_dim || action.dim() != self.act_dim {
            return Err(LearnError::InvalidDemonstrations {
                reason: format!(
                    "spaces are {}→{}, demonstrations {}→{}",
                    observation.dim(),
                    action.dim(),
                    self.obs_dim,
                    self.act_dim
                ),
            });
        }
        self.write(path.as_ref(), Some(observation), Some(action))
    }

    fn write(
        &self,
        path: &Path,
        observation: Option<&BoxSpace>,
        action: Option<&BoxSpace>,
    ) -> Result<(), LearnError> {
        self.validate()?;
        let file_err = |reason: String| LearnError::DemonstrationsFile {
            path: path.to_path_buf(),
            reason,
        };
        let steps = self.len();
        let obs: Vec<u8> = self
            .observations
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let act: Vec<u8> = self.actions.iter().flat_map(|v| v.to_le_bytes()).collect();
        let ends: Vec<u8> = self
            .episode_ends
            .iter()
            .flat_map(|&v| (v as u64).to_le_bytes())
            .collect();
        let views = [
            ("observations", Dtype::F32, vec![steps, self.obs_dim], &obs),
            ("actions", Dtype::F32, vec![steps, self.act_dim], &act),
            ("episode_ends", Dtype::U64, vec![self.episodes()], &ends),
        ]
        .into_iter()
        .map(|(name, dtype, shape, data)| {
            TensorView::new(dtype, shape, data).map(|v| (name.to_string(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(e.to_string()))?;
        let metadata = DemoMetadata {
            format_version: DEMO_FORMAT_VERSION,
            obs_dim: self.obs_dim,
            act_dim: self.act_dim,
            observation: observation.cloned(),
            action: action.cloned(),
        };
        let json = serde_json::to_string(&metadata).map_err(|e| file_err(e.to_string()))?;
        let info: HashMap<String, String> = [(DEMO_METADATA_KEY.to_string(), json)].into();
        let bytes =
            safetensors::serialize(views, Some(info)).map_err(|e| file_err(e.to_string()))?;
        write_atomically(path, &bytes).map_err(|e| file_err(checkpoint_io_reason(e)))
    }

    /// Loads a file written by [`Self::save`], checking every tensor and the episode ends.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, LearnError> {
        Self::load_with_spaces(path).map(|(d, _)| d)
    }

    /// [`Self::load`], also returning the spaces if the file records them.
    pub fn load_with_spaces(
        path: impl AsRef<Path>,
    ) -> Result<(Self, Option<(BoxSpace, BoxSpace)>), LearnError> {
        let path = path.as_ref();
        let file_err = |reason: String| LearnError::DemonstrationsFile {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = fs::read(path).map_err(|e| file_err(e.to_string()))?;
        let (_, header) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| file_err(format!("corrupted or truncated safetensors: {e}")))?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| file_err(format!("corrupted or truncated safetensors: {e}")))?;
        let meta_json = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get(DEMO_METADATA_KEY))
            .ok_or_else(|| {
                file_err(format!(
                    "no '{DEMO_METADATA_KEY}' metadata: not a demonstrations file"
                ))
            })?;
        let meta: DemoMetadata =
            serde_json::from_str(meta_json).map_err(|e| file_err(format!("metadata: {e}")))?;
        if meta.format_version != DEMO_FORMAT_VERSION {
            return Err(file_err(format!(
                "format version {} is not supported (this build reads {DEMO_FORMAT_VERSION})",
                meta.format_version
            )));
        }
        let tensor = |name: &str, dtype: Dtype, width: Option<usize>| {
            let view = st
                .tensor(name)
                .map_err(|_| file_err(format!("missing tensor '{name}'")))?;
            if view.dtype() != dtype {
                return Err(file_err(format!(
                    "tensor '{name}' has dtype {:?}, expected {dtype:?}",
                    view.dtype()
                )));
            }
            let shape = view.shape();
            let ok = match width {
                Some(w) => shape.len() == 2 && shape[1] == w,
                None => shape.len() == 1,
            };
            if !ok {
                return Err(file_err(format!(
                    "tensor '{name}' has shape {shape:?}, expected [_, {}]",
                    width.map_or("".into(), |w| w.to_string())
                )));
            }
            Ok((shape[0], view.data()))
        };
        let f32s = |b: &[u8]| -> Vec<f32> {
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        let (obs_rows, obs) = tensor("observations", Dtype::F32, Some(meta.obs_dim))?;
        let (act_rows, act) = tensor("actions", Dtype::F32, Some(meta.act_dim))?;
        let (_, ends) = tensor("episode_ends", Dtype::U64, None)?;
        if obs_rows != act_rows {
            return Err(file_err(format!(
                "{obs_rows} observation rows but {act_rows} action rows"
            )));
        }
        let episode_ends: Vec<usize> = ends
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as usize)
            .collect();
        let demos = Self {
            obs_dim: meta.obs_dim,
            act_dim: meta.act_dim,
            observations: f32s(obs),
            actions: f32s(act),
            episode_ends,
        };
        demos.validate().map_err(|e| file_err(e.to_string()))?;
        let spaces = match (meta.observation, meta.action) {
            (Some(o), Some(a)) if o.dim() == demos.obs_dim && a.dim() == demos.act_dim => {
                Some((o, a))
            }
            (None, None) => None,
            _ => {
                return Err(file_err(
                    "recorded spaces do not match the dimensions".into(),
                ));
            }
        };
        Ok((demos, spaces))
    }
}

fn checkpoint_io_reason(e: CheckpointError) -> String {
    match e {
        CheckpointError::Io { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

/// Behaviour-cloning hyper-parameters. Missing fields take their defaults when deserialised.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BcConfig {
    /// Passes over the training split. Default 50.
    pub epochs: usize,
    /// Samples per minibatch. Default 256.
    pub batch_size: usize,
    /// Adam learning rate. Default 1e-3.
    pub learning_rate: f64,
    /// Gradients are rescaled so their global L2 norm is at most this; 0 disables clipping.
    /// Default 1.0.
    pub max_grad_norm: f32,
    /// Fraction of episodes held out for validation, in [0, 1). With a single episode there
    /// is no validation split. Default 0.1.
    pub validation_fraction: f32,
    /// Network architecture. Default [`NetworkSpec::default`].
    pub network: NetworkSpec,
    /// Seed of the initialisation, the split and the shuffling. Default 0.
    pub seed: u64,
}

impl Default for BcConfig {
    fn default() -> Self {
        Self {
            epochs: 50,
            batch_size: 256,
            learning_rate: 1e-3,
            max_grad_norm: 1.0,
            validation_fraction: 0.1,
            network: NetworkSpec::default(),
            seed: 0,
        }
    }
}

/// Losses after one behaviour-cloning epoch.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BcProgress {
    /// Epoch, from 1.
    pub epoch: usize,
    /// Total epochs.
    pub epochs: usize,
    /// Mean squared error (normalised action units) over the training minibatches.
    pub train_loss: f32,
    /// Mean squared error on the validation split after the epoch (none without a split).
    pub val_loss: Option<f32>,
    /// Seconds since training started.
    pub wall_secs: f64,
}

/// A behaviour-cloned policy, ready to save or to fine-tune.
#[derive(Debug)]
pub struct BcResult {
    /// The network (actor trained; critic and `log_std` as initialised).
    pub actor_critic: ActorCritic,
    /// Observation normalisation fitted on the training split.
    pub obs_norm: RunningNorm,
    /// Observation space.
    pub observation: BoxSpace,
    /// Action space.
    pub action: BoxSpace,
    /// The configuration used.
    pub config: BcConfig,
    /// Final epoch's training loss.
    pub train_loss: f32,
    /// Final epoch's validation loss.
    pub val_loss: Option<f32>,
    /// Training and validation sample counts.
    pub samples: (usize, usize),
}

impl BcResult {
    /// The deterministic policy.
    pub fn policy(&self) -> Result<LoadedPolicy, LearnError> {
        LoadedPolicy::new(
            self.observation.clone(),
            self.action.clone(),
            &self.actor_critic,
            self.obs_norm.stats(),
        )
    }

    /// The checkpoint spec; `training` records the algorithm, config and losses, with
    /// `results` from the caller under `"results"`.
    pub fn checkpoint_spec(&self, scene: SceneRef, results: serde_json::Value) -> CheckpointSpec {
        let training = serde_json::json!({
            "algorithm": "bc",
            "config": self.config,
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            "train_samples": self.samples.0,
            "val_samples": self.samples.1,
            "results": results,
        });
        CheckpointSpec::new(
            self.observation.clone(),
            self.action.clone(),
            self.obs_norm.stats().clone(),
            self.actor_critic.spec().clone(),
            scene,
            training,
        )
    }

    /// Saves a checkpoint (see [`save_checkpoint`]); returns the `.json` path.
    pub fn save(
        &self,
        path: impl AsRef<Path>,
        scene: SceneRef,
        results: serde_json::Value,
    ) -> Result<PathBuf, CheckpointError> {
        save_checkpoint(
            path,
            &self.actor_critic,
            &self.checkpoint_spec(scene, results),
        )
    }
}

/// Mean squared error of the actor mean on rows `idx` of the prepared data, in chunks.
fn mse(
    network: &ActorCritic,
    obs: &[f32],
    targets: &[f32],
    idx: &[usize],
    chunk: usize,
) -> Result<f32, LearnError> {
    let (od, ad) = (network.obs_dim(), network.act_dim());
    let mut sum = 0.0f64;
    for rows in idx.chunks(chunk.max(1)) {
        let (x, y) = gather(obs, targets, rows, od, ad);
        let m = rows.len();
        let x = Tensor::from_vec(x, (m, od), &Device::Cpu)?;
        let y = Tensor::from_vec(y, (m, ad), &Device::Cpu)?;
        let err = network.actor_mean(&x)?.sub(&y)?.sqr()?.sum_all()?;
        sum += f64::from(err.to_scalar::<f32>()?);
    }
    Ok((sum / (idx.len() * ad).max(1) as f64) as f32)
}

fn gather(
    obs: &[f32],
    targets: &[f32],
    rows: &[usize],
    od: usize,
    ad: usize,
) -> (Vec<f32>, Vec<f32>) {
    let mut x = Vec::with_capacity(rows.len() * od);
    let mut y = Vec::with_capacity(rows.len() * ad);
    for &r in rows {
        x.extend_from_slice(&obs[r * od..(r + 1) * od]);
        y.extend_from_slice(&targets[r * ad..(r + 1) * ad]);
    }
    (x, y)
}

/// Trains the actor mean to reproduce `demos`' actions (see the module docs), calling
/// `on_epoch` after every epoch.
pub fn train_bc(
    demos: &Demonstrations,
    observation: &BoxSpace,
    action: &BoxSpace,
    config: &BcConfig,
    mut on_epoch: impl FnMut(&BcProgress),
) -> Result<BcResult, LearnError> {
    demos.validate()?;
    if demos.obs_dim != observation.dim() {
        return Err(LearnError::SpaceMismatch {
            space: "observation",
            reason: format!(
                "demonstrations have {} dimensions, the space {}",
                demos.obs_dim,
                observation.dim()
            ),
        });
    }
    if demos.act_dim != action.dim() {
        return Err(LearnError::SpaceMismatch {
            space: "action",
            reason: format!(
                "demonstrations have {} dimensions, the space {}",
                demos.act_dim,
                action.dim()
            ),
        });
    }
    if demos.is_empty() {
        return Err(LearnError::InvalidDemonstrations {
            reason: "no steps".into(),
        });
    }
    let bad = |field: &'static str, reason: &str| {
        Err(LearnError::InvalidConfig {
            field,
            reason: reason.into(),
        })
    };
    if config.epochs == 0 {
        return bad("epochs", "must be at least 1");
    }
    if config.batch_size == 0 {
        return bad("batch_size", "must be at least 1");
    }
    if !(config.learning_rate > 0.0 && config.learning_rate.is_finite()) {
        return bad("learning_rate", "must be positive");
    }
    if !(0.0..1.0).contains(&config.validation_fraction) {
        return bad("validation_fraction", "must be in [0, 1)");
    }
    if !(config.max_grad_norm >= 0.0 && config.max_grad_norm.is_finite()) {
        return bad("max_grad_norm", "must be >= 0 (0 disables clipping)");
    }
    let (od, ad) = (demos.obs_dim, demos.act_dim);
    let network = ActorCritic::new(od, ad, &config.network, config.seed)?;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    rng.set_stream(3);

    // Split by whole episodes.
    let mut episodes: Vec<usize> = (0..demos.episodes()).collect();
    for i in (1..episodes.len()).rev() {
        episodes.swap(i, rng.random_range(0..=i));
    }
    let n_val = if demos.episodes() < 2 || config.validation_fraction == 0.0 {
        0
    } else {
        ((config.validation_fraction * demos.episodes() as f32).round() as usize)
            .clamp(1, demos.episodes() - 1)
    };
    let mut val_eps = episodes[..n_val].to_vec();
    let mut train_eps = episodes[n_val..].to_vec();
    val_eps.sort_unstable();
    train_eps.sort_unstable();
    let rows =
        |eps: &[usize]| -> Vec<usize> { eps.iter().flat_map(|&e| demos.episode(e)).collect() };
    let (mut train_idx, val_idx) = (rows(&train_eps), rows(&val_eps));

    // Normalisation from the training split; targets in normalised action units.
    let mut norm = RunningNorm::new(od);
    let train_obs: Vec<f32> = train_idx
        .iter()
        .flat_map(|&r| demos.observations[r * od..(r + 1) * od].iter().copied())
        .collect();
    norm.update(&train_obs);
    let image = config.network.image.as_ref().map(|i| i.range());
    let mut obs = vec![0.0; demos.observations.len()];
    norm.normalize_except(&demos.observations, &mut obs, image);
    let mut targets = vec![0.0; demos.actions.len()];
    unscale_action(action, &demos.actions, &mut targets);

    let mut adam = Adam::new(network.params(), 1e-8);
    let start = Instant::now();
    let mut last = BcProgress {
        epoch: 0,
        epochs: config.epochs,
        train_loss: f32::NAN,
        val_loss: None,
        wall_secs: 0.0,
    };
    for epoch in 1..=config.epochs {
        for i in (1..train_idx.len()).rev() {
            train_idx.swap(i, rng.random_range(0..=i));
        }
        let mut sum = 0.0f64;
        for batch in train_idx.chunks(config.batch_size) {
            let (x, y) = gather(&obs, &targets, batch, od, ad);
            let m = batch.len();
            let x = Tensor::from_vec(x, (m, od), &Device::Cpu)?;
            let y = Tensor::from_vec(y, (m, ad), &Device::Cpu)?;
            let loss = network.actor_mean(&x)?.sub(&y)?.sqr()?.mean_all()?;
            let value = loss.to_scalar::<f32>()?;
            if !value.is_finite() {
                return Err(LearnError::Diverged {
                    update: epoch as u32,
                    what: "behaviour-cloning loss".into(),
                });
            }
            let grads = loss.backward()?;
            adam.step(
                network.params(),
                &grads,
                config.learning_rate,
                config.max_grad_norm,
                epoch as u32,
            )?;
            sum += f64::from(value) * m as f64;
        }
        let val_loss = if val_idx.is_empty() {
            None
        } else {
            Some(mse(&network, &obs, &targets, &val_idx, config.batch_size)?)
        };
        last = BcProgress {
            epoch,
            epochs: config.epochs,
            train_loss: (sum / train_idx.len() as f64) as f32,
            val_loss,
            wall_secs: start.elapsed().as_secs_f64(),
        };
        on_epoch(&last);
    }
    Ok(BcResult {
        actor_critic: network,
        obs_norm: norm,
        observation: observation.clone(),
        action: action.clone(),
        config: config.clone(),
        train_loss: last.train_loss,
        val_loss: last.val_loss,
        samples: (train_idx.len(), val_idx.len()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{Policy, StepResult, VecEnv};
    use crate::nn::{Activation, ConvLayer, ImageEncoderSpec};
    use crate::testenv::{OBS_DIM, PointReach, success_rate};

    /// `episodes` expert episodes on the point-reach task.
    fn expert_demos(episodes: usize, seed: u64) -> Demonstrations {
        let mut env = PointReach::new(1);
        let mut demos = Demonstrations::new(OBS_DIM, 2);
        let mut obs = vec![0.0; OBS_DIM];
        env.reset(seed, &mut obs);
        let mut out = StepResult::with_capacity(1, OBS_DIM);
        let (mut ep_obs, mut ep_act) = (Vec::new(), Vec::new());
        while demos.episodes() < episodes {
            let mut a = [0.0; 2];
            PointReach::expert_action(&obs, &mut a);
            ep_obs.extend_from_slice(&obs);
            ep_act.extend_from_slice(&a);
            env.step(&a, &mut out);
            obs.copy_from_slice(&out.observations);
            if out.terminated[0] || out.truncated[0] {
                demos.push_episode(&ep_obs, &ep_act).unwrap();
                ep_obs.clear();
                ep_act.clear();
            }
        }
        demos
    }

    #[test]
    fn bc_clones_the_point_reach_expert() {
        let demos = expert_demos(150, 4);
        let env = PointReach::new(1);
        let (obs, act) = (env.observation_space().clone(), env.action_space().clone());
        let config = BcConfig {
            epochs: 40,
            batch_size: 128,
            seed: 2,
            ..BcConfig::default()
        };
        let mut history = Vec::new();
        let result = train_bc(&demos, &obs, &act, &config, |p| history.push(p.clone())).unwrap();
        assert_eq!(history.len(), 40);
        assert_eq!(history.last().unwrap().epoch, 40);
        let (first, last) = (&history[0], history.last().unwrap());
        let (first_val, last_val) = (first.val_loss.unwrap(), last.val_loss.unwrap());
        assert!(
            last_val < 0.2 * first_val,
            "validation loss {first_val} -> {last_val}"
        );
        assert!(last.train_loss < 0.02, "train loss {}", last.train_loss);
        // 15 of 150 episodes held out, by episode.
        assert_eq!(result.samples.0 + result.samples.1, demos.len());
        assert!(result.samples.1 > 0);
        let mut policy = result.policy().unwrap();
        let cloned = success_rate(8, 200, 77, |o, a| policy.act(o, a));
        eprintln!(
            "BC point reach: {} samples, val loss {first_val:.4} -> {last_val:.4}, success {cloned:.2}",
            demos.len()
        );
        assert!(cloned > 0.9, "cloned policy success rate {cloned}");

        // Saved and reloaded, the policy acts identically.
        let dir = tempfile::tempdir().unwrap();
        let scene = SceneRef {
            name: "point-reach".into(),
            content_hash: "00".into(),
        };
        let json = result
            .save(
                dir.path().join("bc"),
                scene,
                serde_json::json!({ "success": cloned }),
            )
            .unwrap();
        let ck = crate::checkpoint::load_checkpoint(&json).unwrap();
        assert_eq!(ck.spec.training["algorithm"], "bc");
        let mut reloaded = ck.policy();
        let o = [0.1, -0.2, 0.5, 0.4, 1.0];
        let (mut a1, mut a2) = ([0.0; 2], [0.0; 2]);
        policy.act(&o, &mut a1);
        reloaded.act(&o, &mut a2);
        assert_eq!(a1, a2);
    }

    #[test]
    fn bc_result_seeds_a_ppo_fine_tune() {
        use crate::ppo::{Control, Ppo, PpoConfig};
        let demos = expert_demos(20, 2);
        let mut env = PointReach::new(4);
        let (obs, act) = (env.observation_space().clone(), env.action_space().clone());
        let config = BcConfig {
            epochs: 3,
            ..BcConfig::default()
        };
        let bc = train_bc(&demos, &obs, &act, &config, |_| {}).unwrap();
        let network = bc.actor_critic.deep_clone().unwrap();
        let ppo_config = PpoConfig {
            rollout_steps: 8,
            ..PpoConfig::default()
        };
        let mut ppo =
            Ppo::from_pretrained(&obs, &act, ppo_config.clone(), network, bc.obs_norm.clone())
                .unwrap();
        let o = [0.3, 0.1, -0.5, 0.2, 1.0];
        let (mut a_bc, mut a_ppo) = ([0.0; 2], [0.0; 2]);
        bc.policy().unwrap().act(&o, &mut a_bc);
        ppo.policy().unwrap().act(&o, &mut a_ppo);
        assert_eq!(a_bc, a_ppo);
        ppo.train(&mut env, 32, |_| Control::Continue).unwrap();
        // The fine-tune trained its own copy, not the BC network.
        assert_ne!(
            ppo.actor_critic().values().unwrap(),
            bc.actor_critic.values().unwrap()
        );
        let wrong_norm = RunningNorm::new(3);
        let network = bc.actor_critic.deep_clone().unwrap();
        assert!(matches!(
            Ppo::from_pretrained(&obs, &act, ppo_config, network, wrong_norm),
            Err(LearnError::SpaceMismatch {
                space: "observation",
                ..
            })
        ));
    }

    #[test]
    fn demonstrations_round_trip_and_reject_bad_files() {
        let demos = expert_demos(5, 1);
        assert_eq!(demos.episodes(), 5);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("demos.safetensors");
        demos.save(&path).unwrap();
        assert_eq!(Demonstrations::load(&path).unwrap(), demos);
        let env = PointReach::new(1);
        demos
            .save_with_spaces(&path, env.observation_space(), env.action_space())
            .unwrap();
        let (back, spaces) = Demonstrations::load_with_spaces(&path).unwrap();
        assert_eq!(back, demos);
        assert_eq!(spaces.unwrap().0.names()[4], "bias");

        let good = fs::read(&path).unwrap();
        let reason = |bytes: &[u8]| -> String {
            fs::write(&path, bytes).unwrap();
            match Demonstrations::load(&path) {
                Err(LearnError::DemonstrationsFile { path: p, reason }) => {
                    assert_eq!(p, path);
                    reason
                }
                other => panic!("{other:?}"),
            }
        };
        assert!(reason(&good[..good.len() - 3]).contains("truncated"));
        let mut flipped = good.clone();
        flipped[10] ^= 0x40;
        assert!(reason(&flipped).contains("corrupted"));
        // Episode ends that do not cover the data.
        let mut broken = demos.clone();
        broken.episode_ends[4] -= 1;
        broken.save(&path).unwrap_err();
        let views = vec![
            (
                "observations".to_string(),
                TensorView::new(Dtype::F32, vec![1, 5], &[0u8; 20]).unwrap(),
            ),
            (
                "actions".to_string(),
                TensorView::new(Dtype::F32, vec![1, 2], &[0u8; 8]).unwrap(),
            ),
        ];
        let meta = DemoMetadata {
            format_version: 1,
            obs_dim: 5,
            act_dim: 2,
            observation: None,
            action: None,
        };
        let info: HashMap<String, String> = [(
            DEMO_METADATA_KEY.to_string(),
            serde_json::to_string(&meta).unwrap(),
        )]
        .into();
        let missing = safetensors::serialize(views, Some(info)).unwrap();
        assert!(reason(&missing).contains("missing tensor 'episode_ends'"));
        // Some other safetensors file.
        let other = safetensors::serialize(
            vec![(
                "x".to_string(),
                TensorView::new(Dtype::F32, vec![1], &[0u8; 4]).unwrap(),
            )],
            None,
        )
        .unwrap();
        assert!(reason(&other).contains("not a demonstrations file"));

        let mut d = Demonstrations::new(2, 1);
        assert!(d.push_episode(&[1.0, 2.0, 3.0], &[0.0]).is_err());
        assert!(d.push_episode(&[1.0, 2.0], &[0.0, 1.0]).is_err());
        assert!(d.push_episode(&[1.0, f32::NAN], &[0.0]).is_err());
        d.push_episode(&[1.0, 2.0, 3.0, 4.0], &[0.5, 0.6]).unwrap();
        assert_eq!((d.len(), d.episode(0)), (2, 0..2));
    }

    #[test]
    fn cnn_bc_fits_the_bright_pixel_position() {
        // Observation: [speed, image (1 x 7 x 7)]; the target action is the bright pixel's
        // column, mapped to [-1, 1], times 1.0 (the speed channel is a distractor).
        const SIDE: usize = 7;
        let obs_dim = 1 + SIDE * SIDE;
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut demos = Demonstrations::new(obs_dim, 1);
        for _ in 0..40 {
            let (mut o, mut a) = (Vec::new(), Vec::new());
            for _ in 0..20 {
                let (r, c) = (rng.random_range(0..SIDE), rng.random_range(0..SIDE));
                let mut img = vec![0.0f32; SIDE * SIDE];
                img[r * SIDE + c] = 1.0;
                o.push(rng.random_range(-3.0f32..3.0));
                o.extend_from_slice(&img);
                a.push(c as f32 / (SIDE - 1) as f32 * 2.0 - 1.0);
            }
            demos.push_episode(&o, &a).unwrap();
        }
        let names = |p: &str, n: usize| (0..n).map(|i| format!("{p}{i}")).collect();
        let obs =
            BoxSpace::new(names("o", obs_dim), vec![-3.0; obs_dim], vec![3.0; obs_dim]).unwrap();
        let act = BoxSpace::new(names("a", 1), vec![-1.0], vec![1.0]).unwrap();
        let network = NetworkSpec {
            hidden: vec![32],
            activation: Activation::Relu,
            init_log_std: 0.0,
            image: Some(ImageEncoderSpec {
                offset: 1,
                channels: 1,
                height: SIDE,
                width: SIDE,
                conv: vec![ConvLayer {
                    out_channels: 4,
                    kernel: 3,
                    stride: 1,
                }],
                features: 16,
            }),
        };
        let config = BcConfig {
            epochs: 60,
            batch_size: 64,
            learning_rate: 3e-3,
            network,
            seed: 1,
            ..BcConfig::default()
        };
        let mut history = Vec::new();
        let result = train_bc(&demos, &obs, &act, &config, |p| history.push(p.clone())).unwrap();
        let (first, last) = (&history[0], history.last().unwrap());
        eprintln!(
            "CNN BC: loss {:?} -> {:?}, {:.1} s",
            first.val_loss, last.val_loss, last.wall_secs
        );
        // Predicting the mean column would give the variance of the targets, 0.44.
        assert!(last.val_loss.unwrap() < 0.03, "{last:?}");
        assert!(last.train_loss < 0.03, "{last:?}");
        // The deployed (plain-Rust) CNN policy reads the pixel too.
        let mut policy = result.policy().unwrap();
        let mut o = vec![0.0f32; obs_dim];
        o[1 + 3 * SIDE + 6] = 1.0;
        let mut a = [0.0f32];
        policy.act(&o, &mut a);
        assert!((a[0] - 1.0).abs() < 0.3, "rightmost column: {a:?}");
        o[1 + 3 * SIDE + 6] = 0.0;
        o[1 + 5 * SIDE] = 1.0;
        policy.act(&o, &mut a);
        assert!((a[0] + 1.0).abs() < 0.3, "leftmost column: {a:?}");
    }
}
