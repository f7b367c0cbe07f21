//! Checkpoints: the network's tensors in `<name>.safetensors` and a readable spec in
//! `<name>.json` (spaces, observation normalisation, architecture, scene reference, training
//! config and results, and a name, shape and SHA-256 per tensor), plus [`LoadedPolicy`], the
//! deployable plain-Rust policy a checkpoint turns into.
//!
//! A checkpoint path is either a directory (holding `policy.json` + `policy.safetensors`) or a
//! stem `<name>` (also accepted with either extension). Saving is atomic per file and rolls
//! back as a pair: both files are written to temporary files in the target directory and
//! fsynced, then the `.safetensors` is renamed into place and the `.json` last; if anything
//! fails, the previous files are restored and no temporary file is left. Loading checks the
//! JSON (errors give line and column), the safetensors framing, every tensor's presence,
//! dtype, shape, checksum and finiteness, and names the file and tensor at fault.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::env::Policy;
use crate::error::LearnError;
use crate::nn::{ActorCritic, NetworkSpec, PlainActorCritic, PlainScratch, scale_action};
use crate::normalize::{NormStats, RunningNorm};
use crate::space::BoxSpace;

/// The checkpoint format this version writes and reads.
pub const CHECKPOINT_FORMAT_VERSION: u32 = 1;

/// File stem used inside a checkpoint directory.
pub const CHECKPOINT_DIR_STEM: &str = "policy";

/// The scene a policy was trained in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SceneRef {
    /// Scene name (e.g. the scene file's stem).
    pub name: String,
    /// Content hash of the compiled scene (hex), compared at deploy time.
    pub content_hash: String,
}

/// Name and shape of one stored tensor, with its checksum.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorInfo {
    /// Tensor name, e.g. `actor.hidden0.weight`.
    pub name: String,
    /// Shape (row-major).
    pub shape: Vec<usize>,
    /// SHA-256 (hex) of the tensor's little-endian f32 bytes, filled by [`save_checkpoint`];
    /// checked on load when present, so flipped bits or a `.json` paired with another save's
    /// `.safetensors` are detected.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
}

/// The readable half of a checkpoint (`<name>.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointSpec {
    /// Format version ([`CHECKPOINT_FORMAT_VERSION`]).
    pub format_version: u32,
    /// Version of Rivet that wrote the checkpoint.
    pub rivet_version: String,
    /// Observation space the policy was trained on.
    pub observation: BoxSpace,
    /// Action space it acts in.
    pub action: BoxSpace,
    /// Observation normalisation statistics.
    pub obs_norm: NormStats,
    /// Network architecture.
    pub network: NetworkSpec,
    /// The training scene.
    pub scene: SceneRef,
    /// Free-form training configuration and results.
    pub training: serde_json::Value,
    /// Stored tensors; [`save_checkpoint`] fills this from the network.
    pub tensors: Vec<TensorInfo>,
}

impl CheckpointSpec {
    /// A spec with the current format and crate version and no tensors listed yet.
    pub fn new(
        observation: BoxSpace,
        action: BoxSpace,
        obs_norm: NormStats,
        network: NetworkSpec,
        scene: SceneRef,
        training: serde_json::Value,
    ) -> Self {
        Self {
            format_version: CHECKPOINT_FORMAT_VERSION,
            rivet_version: env!("CARGO_PKG_VERSION").to_string(),
            observation,
            action,
            obs_norm,
            network,
            scene,
            training,
            tensors: Vec::new(),
        }
    }
}

/// What is wrong with a checkpoint, or between a checkpoint and an environment.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading, writing or renaming a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The `.json` spec is not valid JSON or does not match the spec's schema.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// Line, from 1.
        line: usize,
        /// Column, from 1.
        column: usize,
        /// What the parser says.
        message: String,
    },
    /// The spec has a format version this build cannot read.
    #[error("{}: checkpoint format version {found} is not supported (this build reads {supported})", path.display())]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Version in the file.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// The spec is well-formed JSON but inconsistent (spaces vs normalisation vs network).
    #[error("{}: invalid checkpoint spec: {reason}", path.display())]
    InvalidSpec {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The `.safetensors` file is truncated or its header is corrupted.
    #[error("{}: corrupted or truncated safetensors file: {reason}", path.display())]
    Corrupted {
        /// The file.
        path: PathBuf,
        /// What the parser says.
        reason: String,
    },
    /// A tensor the network needs is not in the file (or not listed in the spec).
    #[error("{}: missing tensor '{tensor}'", path.display())]
    MissingTensor {
        /// The file that should hold it.
        path: PathBuf,
        /// Tensor name.
        tensor: String,
    },
    /// A tensor is not f32.
    #[error("{}: tensor '{tensor}' has dtype {found}, expected F32", path.display())]
    WrongDtype {
        /// The file.
        path: PathBuf,
        /// Tensor name.
        tensor: String,
        /// Dtype found.
        found: String,
    },
    /// A tensor's shape does not match the network spec.
    #[error("{}: tensor '{tensor}' has shape {found:?}, expected {expected:?}", path.display())]
    WrongShape {
        /// The file.
        path: PathBuf,
        /// Tensor name.
        tensor: String,
        /// Shape the network needs.
        expected: Vec<usize>,
        /// Shape found.
        found: Vec<usize>,
    },
    /// A tensor's bytes differ from the checksum in the spec.
    #[error("{}: tensor '{tensor}' does not match its SHA-256 in {} (corrupted, or the two files come from different saves)", path.display(), spec.display())]
    ChecksumMismatch {
        /// The `.safetensors` file.
        path: PathBuf,
        /// The `.json` spec holding the checksum.
        spec: PathBuf,
        /// Tensor name.
        tensor: String,
    },
    /// A weight is NaN or infinite.
    #[error("{}: tensor '{tensor}' holds a non-finite value {value} at index {index}", path.display())]
    NonFinite {
        /// The file (to be) written or read.
        path: PathBuf,
        /// Tensor name.
        tensor: String,
        /// Flat index of the first bad value.
        index: usize,
        /// The value.
        value: f32,
    },
    /// The network and spec given to [`save_checkpoint`] do not fit together.
    #[error("cannot save checkpoint: {reason}")]
    Inconsistent {
        /// What does not fit.
        reason: String,
    },
    /// An environment space has a different number of dimensions than the checkpoint's.
    #[error("{space} space has {found} dimensions, the checkpoint expects {checkpoint}")]
    DimensionMismatch {
        /// `"observation"` or `"action"`.
        space: &'static str,
        /// Dimensions in the checkpoint.
        checkpoint: usize,
        /// Dimensions in the environment.
        found: usize,
    },
    /// A dimension's name differs.
    #[error("{space} dimension {index} is '{found}', the checkpoint expects '{checkpoint}'")]
    NameMismatch {
        /// `"observation"` or `"action"`.
        space: &'static str,
        /// Dimension index.
        index: usize,
        /// Name in the checkpoint.
        checkpoint: String,
        /// Name in the environment.
        found: String,
    },
    /// A dimension's bounds differ.
    #[error(
        "{space} dimension {index} '{name}' has bounds [{found_low}, {found_high}], the checkpoint expects [{low}, {high}]"
    )]
    BoundsMismatch {
        /// `"observation"` or `"action"`.
        space: &'static str,
        /// Dimension index.
        index: usize,
        /// Dimension name.
        name: String,
        /// Lower bound in the checkpoint.
        low: f32,
        /// Upper bound in the checkpoint.
        high: f32,
        /// Lower bound in the environment.
        found_low: f32,
        /// Upper bound in the environment.
        found_high: f32,
    },
    /// The scene's content hash differs from the one trained on.
    #[error(
        "scene content hash {scene} differs from the checkpoint's {checkpoint} (the scene changed since training)"
    )]
    SceneMismatch {
        /// Hash recorded in the checkpoint.
        checkpoint: String,
        /// Hash of the scene now.
        scene: String,
    },
}

/// The two files of a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointPaths {
    /// The readable spec.
    pub json: PathBuf,
    /// The tensors.
    pub safetensors: PathBuf,
}

impl CheckpointPaths {
    /// Resolves a checkpoint path: an existing directory holds `policy.{json,safetensors}`; a
    /// path ending in `.json` or `.safetensors` names one of the pair; anything else is the
    /// stem the two extensions are appended to (so `run.v2` gives `run.v2.json`).
    pub fn resolve(path: &Path) -> Self {
        let stem: PathBuf = if path.is_dir() {
            path.join(CHECKPOINT_DIR_STEM)
        } else {
            match path.extension().and_then(|e| e.to_str()) {
                Some("json") | Some("safetensors") => path.with_extension(""),
                _ => path.to_path_buf(),
            }
        };
        let with = |ext: &str| {
            let mut s = stem.clone().into_os_string();
            s.push(ext);
            PathBuf::from(s)
        };
        Self {
            json: with(".json"),
            safetensors: with(".safetensors"),
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A temporary sibling of `target`: same directory, hidden, unique per process and call.
fn temp_sibling(target: &Path, tag: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.{tag}.{}.{n}", std::process::id()))
}

/// Writes `bytes` to a new temporary file beside `target` and fsyncs it; removes it on error.
fn write_temp(target: &Path, bytes: &[u8]) -> Result<PathBuf, CheckpointError> {
    let tmp = temp_sibling(target, "tmp");
    let result = File::create_new(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .map_err(io_err(&tmp));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| tmp)
}

/// Writes `bytes` to `target` through an fsynced temporary file in the same directory and a
/// rename, so `target` is either the old file or the complete new one.
pub(crate) fn write_atomically(target: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let tmp = write_temp(target, bytes)?;
    fs::rename(&tmp, target).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err(target)(e)
    })
}

/// Saves `network` with `spec` (whose `tensors` list is replaced by the network's) at `path`
/// (a directory, or a stem with or without extension; parent directories are created).
/// Returns the path of the `.json`. On error nothing new is left behind and an existing
/// checkpoint at `path` is kept.
pub fn save_checkpoint(
    path: impl AsRef<Path>,
    network: &ActorCritic,
    spec: &CheckpointSpec,
) -> Result<PathBuf, CheckpointError> {
    let paths = CheckpointPaths::resolve(path.as_ref());
    let inconsistent = |reason: String| Err(CheckpointError::Inconsistent { reason });
    if spec.observation.dim() != network.obs_dim() {
        return inconsistent(format!(
            "observation space has {} dimensions, the network {}",
            spec.observation.dim(),
            network.obs_dim()
        ));
    }
    if spec.action.dim() != network.act_dim() {
        return inconsistent(format!(
            "action space has {} dimensions, the network {}",
            spec.action.dim(),
            network.act_dim()
        ));
    }
    if spec.network != *network.spec() {
        return inconsistent("the spec's network differs from the network's".into());
    }
    if let Err(reason) = spec.obs_norm.validate(network.obs_dim()) {
        return inconsistent(reason);
    }

    let values = network
        .values()
        .map_err(|e| CheckpointError::Inconsistent {
            reason: e.to_string(),
        })?;
    let mut spec = spec.clone();
    spec.tensors.clear();
    let mut bytes = Vec::with_capacity(values.len());
    for (param, v) in network.params().iter().zip(&values) {
        if let Some((index, &value)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(CheckpointError::NonFinite {
                path: paths.safetensors.clone(),
                tensor: param.name.clone(),
                index,
                value,
            });
        }
        let b = f32_bytes(v);
        spec.tensors.push(TensorInfo {
            name: param.name.clone(),
            shape: param.var.dims().to_vec(),
            sha256: sha256_hex(&b),
        });
        bytes.push(b);
    }
    let views = spec
        .tensors
        .iter()
        .zip(&bytes)
        .map(|(info, b)| {
            TensorView::new(Dtype::F32, info.shape.clone(), b).map(|v| (info.name.clone(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CheckpointError::Inconsistent {
            reason: e.to_string(),
        })?;
    // One metadata key only: safetensors writes its metadata map in hash order, so more keys
    // would make the file bytes differ between identical saves.
    let metadata = [("format".to_string(), "rivet-policy".to_string())]
        .into_iter()
        .collect();
    let st_bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| {
        CheckpointError::Inconsistent {
            reason: e.to_string(),
        }
    })?;
    let mut json =
        serde_json::to_string_pretty(&spec).map_err(|e| CheckpointError::Inconsistent {
            reason: format!("spec does not serialise: {e}"),
        })?;
    json.push('\n');

    if let Some(parent) = paths.json.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    commit_pair(&paths, &st_bytes, json.as_bytes())?;
    Ok(paths.json)
}

/// Writes both files through temporaries and renames them into place, `.json` last, rolling
/// back the `.safetensors` if the `.json` cannot be placed.
fn commit_pair(paths: &CheckpointPaths, st: &[u8], json: &[u8]) -> Result<(), CheckpointError> {
    let tmp_st = write_temp(&paths.safetensors, st)?;
    let tmp_json = match write_temp(&paths.json, json) {
        Ok(p) => p,
        Err(e) => {
            let _ = fs::remove_file(&tmp_st);
            return Err(e);
        }
    };
    let cleanup = || {
        let _ = fs::remove_file(&tmp_st);
        let _ = fs::remove_file(&tmp_json);
    };
    // Keep the old tensors until the new spec is in place.
    let backup = if paths.safetensors.is_file() {
        let b = temp_sibling(&paths.safetensors, "bak");
        if let Err(e) = fs::rename(&paths.safetensors, &b) {
            cleanup();
            return Err(io_err(&paths.safetensors)(e));
        }
        Some(b)
    } else {
        None
    };
    let restore = || match &backup {
        Some(b) => {
            let _ = fs::rename(b, &paths.safetensors);
        }
        None => {
            let _ = fs::remove_file(&paths.safetensors);
        }
    };
    if let Err(e) = fs::rename(&tmp_st, &paths.safetensors) {
        restore();
        cleanup();
        return Err(io_err(&paths.safetensors)(e));
    }
    if let Err(e) = fs::rename(&tmp_json, &paths.json) {
        restore();
        cleanup();
        return Err(io_err(&paths.json)(e));
    }
    if let Some(b) = backup {
        let _ = fs::remove_file(b);
    }
    // Make the renames durable (best effort: not every platform can open a directory).
    if let Some(dir) = paths.json.parent()
        && let Ok(d) = File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A loaded, validated checkpoint.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// The spec as read (tensor list included).
    pub spec: CheckpointSpec,
    /// Where it was read from.
    pub paths: CheckpointPaths,
    network: ActorCritic,
    plain: PlainActorCritic,
}

/// Loads and validates the checkpoint at `path` (directory, stem, or either file).
pub fn load_checkpoint(path: impl AsRef<Path>) -> Result<Checkpoint, CheckpointError> {
    let paths = CheckpointPaths::resolve(path.as_ref());
    let json_path = &paths.json;
    let st_path = &paths.safetensors;
    let text = fs::read_to_string(json_path).map_err(io_err(json_path))?;
    let spec: CheckpointSpec = serde_json::from_str(&text).map_err(|e| CheckpointError::Json {
        path: json_path.clone(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    if spec.format_version != CHECKPOINT_FORMAT_VERSION {
        return Err(CheckpointError::UnsupportedVersion {
            path: json_path.clone(),
            found: spec.format_version,
            supported: CHECKPOINT_FORMAT_VERSION,
        });
    }
    let invalid = |reason: String| CheckpointError::InvalidSpec {
        path: json_path.clone(),
        reason,
    };
    let (obs_dim, act_dim) = (spec.observation.dim(), spec.action.dim());
    spec.obs_norm.validate(obs_dim).map_err(invalid)?;
    let expected = spec
        .network
        .tensor_shapes(obs_dim, act_dim)
        .map_err(|e| invalid(e.to_string()))?;

    let bytes = fs::read(st_path).map_err(io_err(st_path))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| CheckpointError::Corrupted {
        path: st_path.clone(),
        reason: e.to_string(),
    })?;
    let mut values = Vec::with_capacity(expected.len());
    for (name, shape) in &expected {
        let Some(info) = spec.tensors.iter().find(|t| &t.name == name) else {
            return Err(CheckpointError::MissingTensor {
                path: json_path.clone(),
                tensor: name.clone(),
            });
        };
        if &info.shape != shape {
            return Err(CheckpointError::WrongShape {
                path: json_path.clone(),
                tensor: name.clone(),
                expected: shape.clone(),
                found: info.shape.clone(),
            });
        }
        let view = st
            .tensor(name)
            .map_err(|_| CheckpointError::MissingTensor {
                path: st_path.clone(),
                tensor: name.clone(),
            })?;
        if view.dtype() != Dtype::F32 {
            return Err(CheckpointError::WrongDtype {
                path: st_path.clone(),
                tensor: name.clone(),
                found: format!("{:?}", view.dtype()),
            });
        }
        if view.shape() != shape.as_slice() {
            return Err(CheckpointError::WrongShape {
                path: st_path.clone(),
                tensor: name.clone(),
                expected: shape.clone(),
                found: view.shape().to_vec(),
            });
        }
        if !info.sha256.is_empty() && sha256_hex(view.data()) != info.sha256 {
            return Err(CheckpointError::ChecksumMismatch {
                path: st_path.clone(),
                spec: json_path.clone(),
                tensor: name.clone(),
            });
        }
        let v: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if let Some((index, &value)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(CheckpointError::NonFinite {
                path: st_path.clone(),
                tensor: name.clone(),
                index,
                value,
            });
        }
        values.push(v);
    }
    let plain = PlainActorCritic::new(obs_dim, act_dim, &spec.network, &values)
        .map_err(|e| invalid(e.to_string()))?;
    let network = ActorCritic::from_values(obs_dim, act_dim, &spec.network, values)
        .map_err(|e| invalid(e.to_string()))?;
    Ok(Checkpoint {
        spec,
        paths,
        network,
        plain,
    })
}

/// Bounds are equal if both are the same infinity or differ by at most 1e-6 relative.
fn bounds_equal(a: f32, b: f32) -> bool {
    a == b
        || (a.is_finite() && b.is_finite() && (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0))
}

fn compare_spaces(
    space: &'static str,
    checkpoint: &BoxSpace,
    found: &BoxSpace,
) -> Result<(), CheckpointError> {
    for (index, (c, f)) in checkpoint.names().iter().zip(found.names()).enumerate() {
        if c != f {
            return Err(CheckpointError::NameMismatch {
                space,
                index,
                checkpoint: c.clone(),
                found: f.clone(),
            });
        }
    }
    if checkpoint.dim() != found.dim() {
        return Err(CheckpointError::DimensionMismatch {
            space,
            checkpoint: checkpoint.dim(),
            found: found.dim(),
        });
    }
    for index in 0..checkpoint.dim() {
        let (low, high) = (checkpoint.low()[index], checkpoint.high()[index]);
        let (found_low, found_high) = (found.low()[index], found.high()[index]);
        if !bounds_equal(low, found_low) || !bounds_equal(high, found_high) {
            return Err(CheckpointError::BoundsMismatch {
                space,
                index,
                name: checkpoint.names()[index].clone(),
                low,
                high,
                found_low,
                found_high,
            });
        }
    }
    Ok(())
}

impl Checkpoint {
    /// The network (candle), e.g. to fine-tune or to compare against.
    pub fn actor_critic(&self) -> &ActorCritic {
        &self.network
    }

    /// The observation normaliser.
    pub fn obs_norm(&self) -> RunningNorm {
        RunningNorm::from_stats(self.spec.obs_norm.clone())
            .expect("normalisation validated at load")
    }

    /// Checks that an environment's spaces match the checkpoint's: names (the first differing
    /// dimension is reported), dimensions, and bounds. Does not look at the scene.
    pub fn check_spaces(
        &self,
        observation: &BoxSpace,
        action: &BoxSpace,
    ) -> Result<(), CheckpointError> {
        compare_spaces("observation", &self.spec.observation, observation)?;
        compare_spaces("action", &self.spec.action, action)
    }

    /// [`Self::check_spaces`], then the scene's content hash. A caller that lets people run a
    /// policy in a changed scene calls [`Self::check_spaces`] alone.
    pub fn check_compatible(
        &self,
        observation: &BoxSpace,
        action: &BoxSpace,
        scene_hash: &str,
    ) -> Result<(), CheckpointError> {
        self.check_spaces(observation, action)?;
        if self.spec.scene.content_hash != scene_hash {
            return Err(CheckpointError::SceneMismatch {
                checkpoint: self.spec.scene.content_hash.clone(),
                scene: scene_hash.to_string(),
            });
        }
        Ok(())
    }

    /// The deployable policy.
    pub fn policy(&self) -> LoadedPolicy {
        LoadedPolicy::from_parts(
            self.spec.observation.clone(),
            self.spec.action.clone(),
            self.plain.clone(),
            &self.spec.obs_norm,
            self.spec.network.image.as_ref().map(|i| i.range()),
        )
    }
}

/// A trained policy for deployment: normalises the observation, runs the actor MLP (and CNN
/// encoder, if any) in plain Rust over f32 weights, and maps the mean action into the action
/// space with [`scale_action`]. Deterministic, no candle, and no allocation per call
/// (including CNN policies).
#[derive(Clone, Debug)]
pub struct LoadedPolicy {
    observation: BoxSpace,
    action: BoxSpace,
    net: PlainActorCritic,
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    clip: f32,
    image: Option<std::ops::Range<usize>>,
    scratch: PlainScratch,
    obs: Vec<f32>,
    u: Vec<f32>,
}

impl LoadedPolicy {
    /// A policy straight from a network and its normalisation (e.g. right after training).
    pub fn new(
        observation: BoxSpace,
        action: BoxSpace,
        network: &ActorCritic,
        obs_norm: &NormStats,
    ) -> Result<Self, LearnError> {
        if observation.dim() != network.obs_dim() || action.dim() != network.act_dim() {
            return Err(LearnError::InvalidNetwork {
                reason: format!(
                    "network is {}→{}, spaces are {}→{}",
                    network.obs_dim(),
                    network.act_dim(),
                    observation.dim(),
                    action.dim()
                ),
            });
        }
        obs_norm
            .validate(network.obs_dim())
            .map_err(|reason| LearnError::InvalidNetwork { reason })?;
        Ok(Self::from_parts(
            observation,
            action,
            network.to_plain()?,
            obs_norm,
            network.spec().image.as_ref().map(|i| i.range()),
        ))
    }

    fn from_parts(
        observation: BoxSpace,
        action: BoxSpace,
        net: PlainActorCritic,
        obs_norm: &NormStats,
        image: Option<std::ops::Range<usize>>,
    ) -> Self {
        let norm = RunningNorm::from_stats(obs_norm.clone()).expect("validated statistics");
        let (mean, inv_std) = norm.f32_coefficients();
        let scratch = net.scratch();
        Self {
            obs: vec![0.0; observation.dim()],
            u: vec![0.0; action.dim()],
            observation,
            action,
            net,
            mean,
            inv_std,
            clip: obs_norm.clip,
            image,
            scratch,
        }
    }

    /// Actions for `N` observations (`obs` is `N × obs_dim`, `actions` is `N × act_dim`), row
    /// by row, without allocating.
    pub fn act_batch(&mut self, obs: &[f32], actions: &mut [f32]) {
        let (od, ad) = (self.observation.dim(), self.action.dim());
        assert_eq!(obs.len() % od.max(1), 0, "observation batch length");
        assert_eq!(
            obs.len() / od.max(1) * ad,
            actions.len(),
            "action batch length does not match the observation batch"
        );
        for (o, a) in obs.chunks_exact(od).zip(actions.chunks_exact_mut(ad)) {
            self.act(o, a);
        }
    }
}

impl Policy for LoadedPolicy {
    fn observation_space(&self) -> &BoxSpace {
        &self.observation
    }

    fn action_space(&self) -> &BoxSpace {
        &self.action
    }

    fn act(&mut self, observation: &[f32], action: &mut [f32]) {
        assert_eq!(observation.len(), self.obs.len(), "observation length");
        assert_eq!(action.len(), self.u.len(), "action length");
        for (i, (o, &x)) in self.obs.iter_mut().zip(observation).enumerate() {
            *o = ((x - self.mean[i]) * self.inv_std[i]).clamp(-self.clip, self.clip);
        }
        if let Some(range) = &self.image {
            self.obs[range.clone()].copy_from_slice(&observation[range.clone()]);
        }
        self.net
            .forward(&self.obs, &mut self.scratch, &mut self.u, false);
        scale_action(&self.action, &self.u, action);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::tests::{image_spec, random_obs};
    use candle_core::{Device, Tensor};

    /// The error of a load that must fail (without printing a whole checkpoint otherwise).
    fn load_err(path: &Path) -> CheckpointError {
        match load_checkpoint(path) {
            Ok(_) => panic!("{} loaded but should not", path.display()),
            Err(e) => e,
        }
    }

    fn space(prefix: &str, low: &[f32], high: &[f32]) -> BoxSpace {
        let names = (0..low.len()).map(|i| format!("{prefix}{i}")).collect();
        BoxSpace::new(names, low.to_vec(), high.to_vec()).unwrap()
    }

    fn obs_space(dim: usize) -> BoxSpace {
        let mut low = vec![-5.0; dim];
        let mut high = vec![5.0; dim];
        low[0] = f32::NEG_INFINITY;
        high[0] = f32::INFINITY;
        space("obs", &low, &high)
    }

    fn act_space() -> BoxSpace {
        space(
            "act",
            &[-2.0, 0.0, f32::NEG_INFINITY],
            &[2.0, 1.0, f32::INFINITY],
        )
    }

    /// A network with non-trivial normalisation and action-mean weights, and its spec.
    fn fixture(obs_dim: usize, network: NetworkSpec) -> (ActorCritic, CheckpointSpec) {
        let net = ActorCritic::new(obs_dim, 3, &network, 3).unwrap();
        let mut values = net.values().unwrap();
        let i = net
            .params()
            .iter()
            .position(|p| p.name == "actor.mean.weight")
            .unwrap();
        values[i].iter_mut().for_each(|w| *w *= 100.0);
        net.set_values(&values).unwrap();
        let mut norm = RunningNorm::new(obs_dim);
        norm.update(&random_obs(64, obs_dim, 11));
        let spec = CheckpointSpec::new(
            obs_space(obs_dim),
            act_space(),
            norm.stats().clone(),
            network,
            SceneRef {
                name: "reach".into(),
                content_hash: "abc123".into(),
            },
            serde_json::json!({ "algorithm": "test" }),
        );
        (net, spec)
    }

    /// Candle forward of `net` on normalised `obs`, mean actions scaled into the action space.
    fn candle_actions(net: &ActorCritic, spec: &CheckpointSpec, obs: &[f32]) -> Vec<f32> {
        let rows = obs.len() / net.obs_dim();
        let norm = RunningNorm::from_stats(spec.obs_norm.clone()).unwrap();
        let mut normed = vec![0.0; obs.len()];
        let raw = spec.network.image.as_ref().map(|i| i.range());
        norm.normalize_except(obs, &mut normed, raw);
        let t = Tensor::from_slice(&normed, (rows, net.obs_dim()), &Device::Cpu).unwrap();
        let u = net
            .actor_mean(&t)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let mut a = vec![0.0; u.len()];
        scale_action(&spec.action, &u, &mut a);
        a
    }

    fn round_trip(obs_dim: usize, network: NetworkSpec) {
        let dir = tempfile::tempdir().unwrap();
        let (net, spec) = fixture(obs_dim, network);
        let json = save_checkpoint(dir.path().join("ckpt.v1"), &net, &spec).unwrap();
        assert_eq!(json, dir.path().join("ckpt.v1.json"));
        assert!(dir.path().join("ckpt.v1.safetensors").is_file());
        let text = fs::read_to_string(&json).unwrap();
        assert!(
            text.contains("\"content_hash\": \"abc123\""),
            "pretty JSON: {text}"
        );
        assert!(text.contains("\"-inf\""));
        // Every accepted spelling of the path loads the same checkpoint.
        for p in ["ckpt.v1", "ckpt.v1.json", "ckpt.v1.safetensors"] {
            let ck = load_checkpoint(dir.path().join(p)).unwrap();
            assert_eq!(ck.actor_critic().values().unwrap(), net.values().unwrap());
        }
        let ck = load_checkpoint(&json).unwrap();
        assert_eq!(ck.spec.tensors.len(), net.params().len());
        assert_eq!(ck.spec.obs_norm, spec.obs_norm);
        let obs = random_obs(16, obs_dim, 5);
        let expected = candle_actions(&net, &spec, &obs);
        let mut policy = ck.policy();
        let mut actions = vec![0.0; expected.len()];
        policy.act_batch(&obs, &mut actions);
        let mut one = [0.0; 3];
        policy.act(&obs[..obs_dim], &mut one);
        assert_eq!(one, actions[..3]);
        let worst = actions
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "LoadedPolicy vs candle: {worst}");
        // The mean action is not trivially the centre of the space.
        assert!(actions.iter().any(|a| a.abs() > 0.05), "{actions:?}");
    }

    #[test]
    fn round_trip_mlp_policy_matches_candle() {
        round_trip(7, NetworkSpec::default());
    }

    #[test]
    fn round_trip_cnn_policy_matches_candle() {
        round_trip(2 + 2 * 9 * 8 + 3, image_spec());
    }

    #[test]
    fn directory_checkpoints_and_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let (net, spec) = fixture(4, NetworkSpec::default());
        let json = save_checkpoint(dir.path(), &net, &spec).unwrap();
        assert_eq!(json, dir.path().join("policy.json"));
        let other = ActorCritic::new(4, 3, &NetworkSpec::default(), 99).unwrap();
        save_checkpoint(dir.path(), &other, &spec).unwrap();
        let ck = load_checkpoint(dir.path()).unwrap();
        assert_eq!(ck.actor_critic().values().unwrap(), other.values().unwrap());
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["policy.json", "policy.safetensors"],
            "no temporaries left"
        );
    }

    fn saved(dir: &Path) -> (PathBuf, PathBuf) {
        let (net, spec) = fixture(4, NetworkSpec::default());
        let json = save_checkpoint(dir.join("c"), &net, &spec).unwrap();
        (json, dir.join("c.safetensors"))
    }

    #[test]
    fn truncated_safetensors_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (_, st) = saved(dir.path());
        let bytes = fs::read(&st).unwrap();
        for len in [bytes.len() - 1, bytes.len() / 2, 5] {
            fs::write(&st, &bytes[..len]).unwrap();
            match load_err(&st) {
                CheckpointError::Corrupted { path, .. } => assert_eq!(path, st),
                other => panic!("truncated to {len}: {other:?}"),
            }
        }
    }

    #[test]
    fn flipped_bytes_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (json, st) = saved(dir.path());
        let good = fs::read(&st).unwrap();
        // In the data: the checksum catches it and names the tensor.
        let mut bytes = good.clone();
        let last = bytes.len() - 2;
        bytes[last] ^= 0x10;
        fs::write(&st, &bytes).unwrap();
        match load_err(&json) {
            CheckpointError::ChecksumMismatch { path, tensor, .. } => {
                assert_eq!(path, st);
                assert!(!tensor.is_empty());
            }
            other => panic!("data flip: {other:?}"),
        }
        // In the header: the framing is rejected.
        let mut bytes = good.clone();
        bytes[12] ^= 0x55;
        fs::write(&st, &bytes).unwrap();
        assert!(matches!(load_err(&json), CheckpointError::Corrupted { .. }));
        // The header length itself.
        let mut bytes = good;
        bytes[0] ^= 0x01;
        fs::write(&st, &bytes).unwrap();
        assert!(matches!(load_err(&json), CheckpointError::Corrupted { .. }));
    }

    /// Rewrites the safetensors file with `edit` applied to the list of (name, shape, values).
    fn rewrite(st: &Path, edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<u8>, Dtype)>)) {
        let bytes = fs::read(st).unwrap();
        let parsed = SafeTensors::deserialize(&bytes).unwrap();
        let mut tensors: Vec<_> = parsed
            .tensors()
            .into_iter()
            .map(|(n, v)| (n, v.shape().to_vec(), v.data().to_vec(), v.dtype()))
            .collect();
        edit(&mut tensors);
        let views: Vec<_> = tensors
            .iter()
            .map(|(n, s, d, t)| (n.clone(), TensorView::new(*t, s.clone(), d).unwrap()))
            .collect();
        fs::write(st, safetensors::serialize(views, None).unwrap()).unwrap();
    }

    #[test]
    fn missing_tensor_wrong_shape_dtype_and_nan_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let (json, st) = saved(dir.path());
        let good = fs::read(&st).unwrap();

        rewrite(&st, |t| t.retain(|(n, ..)| n != "critic.value.bias"));
        match load_err(&json) {
            CheckpointError::MissingTensor { path, tensor } => {
                assert_eq!((path, tensor.as_str()), (st.clone(), "critic.value.bias"));
            }
            other => panic!("missing: {other:?}"),
        }

        fs::write(&st, &good).unwrap();
        rewrite(&st, |t| {
            let e = t
                .iter_mut()
                .find(|(n, ..)| n == "actor.hidden0.weight")
                .unwrap();
            e.1 = vec![e.1[1], e.1[0]];
            assert_ne!(e.1[0], e.1[1]);
        });
        match load_err(&json) {
            e @ CheckpointError::WrongShape { .. } => {
                let msg = e.to_string();
                assert!(
                    msg.contains("actor.hidden0.weight") && msg.contains("c.safetensors"),
                    "{msg}"
                );
            }
            other => panic!("shape: {other:?}"),
        }

        fs::write(&st, &good).unwrap();
        rewrite(&st, |t| {
            let e = t.iter_mut().find(|(n, ..)| n == "log_std").unwrap();
            e.3 = Dtype::I32;
        });
        match load_err(&json) {
            CheckpointError::WrongDtype { tensor, found, .. } => {
                assert_eq!((tensor.as_str(), found.as_str()), ("log_std", "I32"));
            }
            other => panic!("dtype: {other:?}"),
        }

        // A NaN weight in a file whose spec carries no checksums (e.g. edited by hand).
        fs::write(&st, &good).unwrap();
        rewrite(&st, |t| {
            let e = t.iter_mut().find(|(n, ..)| n == "log_std").unwrap();
            e.2[4..8].copy_from_slice(&f32::NAN.to_le_bytes());
        });
        let mut spec: CheckpointSpec =
            serde_json::from_str(&fs::read_to_string(&json).unwrap()).unwrap();
        spec.tensors.iter_mut().for_each(|t| t.sha256.clear());
        fs::write(&json, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
        match load_err(&json) {
            CheckpointError::NonFinite { tensor, index, .. } => {
                assert_eq!((tensor.as_str(), index), ("log_std", 1));
            }
            other => panic!("nan: {other:?}"),
        }
    }

    #[test]
    fn json_errors_give_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let (json, _) = saved(dir.path());
        let text = fs::read_to_string(&json).unwrap();
        let broken = text.replacen("\"rivet_version\":", "\"rivet_version\" ", 1);
        fs::write(&json, broken).unwrap();
        match load_err(&json) {
            e @ CheckpointError::Json { line: 3, .. } => {
                assert!(
                    e.to_string().starts_with(&format!("{}:3:", json.display())),
                    "{e}"
                );
            }
            other => panic!("{other:?}"),
        }
        let newer = text.replacen("\"format_version\": 1", "\"format_version\": 7", 1);
        fs::write(&json, newer).unwrap();
        assert!(matches!(
            load_err(&json),
            CheckpointError::UnsupportedVersion { found: 7, .. }
        ));
    }

    #[test]
    fn incompatible_spaces_and_scene_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (json, _) = saved(dir.path());
        let ck = load_checkpoint(&json).unwrap();
        let (obs, act) = (obs_space(4), act_space());
        ck.check_compatible(&obs, &act, "abc123").unwrap();

        let mut names = obs.names().to_vec();
        names[2] = "renamed".into();
        let renamed = BoxSpace::new(names, obs.low().to_vec(), obs.high().to_vec()).unwrap();
        match ck.check_compatible(&renamed, &act, "abc123") {
            Err(CheckpointError::NameMismatch {
                space,
                index,
                checkpoint,
                found,
            }) => {
                assert_eq!((space, index), ("observation", 2));
                assert_eq!((checkpoint.as_str(), found.as_str()), ("obs2", "renamed"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            ck.check_compatible(&obs_space(5), &act, "abc123"),
            Err(CheckpointError::DimensionMismatch {
                checkpoint: 4,
                found: 5,
                ..
            })
        ));
        let wider = space(
            "act",
            &[-3.0, 0.0, f32::NEG_INFINITY],
            &[2.0, 1.0, f32::INFINITY],
        );
        match ck.check_compatible(&obs, &wider, "abc123") {
            Err(CheckpointError::BoundsMismatch { space, index, .. }) => {
                assert_eq!((space, index), ("action", 0));
            }
            other => panic!("{other:?}"),
        }
        match ck.check_compatible(&obs, &act, "def456") {
            Err(e @ CheckpointError::SceneMismatch { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("abc123") && msg.contains("def456"), "{msg}");
            }
            other => panic!("{other:?}"),
        }
        // The override: spaces only.
        ck.check_spaces(&obs, &act).unwrap();
    }

    #[test]
    fn failed_saves_leave_no_files() {
        let dir = tempfile::tempdir().unwrap();
        let listing = || {
            let mut v: Vec<_> = fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            v.sort();
            v
        };
        let (net, spec) = fixture(4, NetworkSpec::default());
        // The .json cannot be placed (a non-empty directory is in the way): the already-placed
        // .safetensors is rolled back and no temporary remains.
        fs::create_dir_all(dir.path().join("c.json/blocker")).unwrap();
        let err = save_checkpoint(dir.path().join("c"), &net, &spec).unwrap_err();
        assert!(matches!(err, CheckpointError::Io { .. }), "{err:?}");
        assert_eq!(listing(), ["c.json"]);
        // A NaN weight is refused before anything is written.
        let mut values = net.values().unwrap();
        values[0][3] = f32::NAN;
        net.set_values(&values).unwrap();
        let err = save_checkpoint(dir.path().join("d"), &net, &spec).unwrap_err();
        assert!(
            matches!(&err, CheckpointError::NonFinite { tensor, index: 3, .. } if tensor == "actor.hidden0.weight"),
            "{err:?}"
        );
        // A spec that does not fit the network.
        let (net, mut spec) = fixture(4, NetworkSpec::default());
        spec.observation = obs_space(5);
        assert!(matches!(
            save_checkpoint(dir.path().join("e"), &net, &spec),
            Err(CheckpointError::Inconsistent { .. })
        ));
        assert_eq!(listing(), ["c.json"]);
    }

    #[test]
    fn a_failed_overwrite_keeps_the_old_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let (net, spec) = fixture(4, NetworkSpec::default());
        save_checkpoint(dir.path().join("c"), &net, &spec).unwrap();
        // Make the .json unreplaceable: swap it for a non-empty directory, keep its text.
        let json = dir.path().join("c.json");
        let text = fs::read_to_string(&json).unwrap();
        fs::remove_file(&json).unwrap();
        fs::create_dir_all(json.join("x")).unwrap();
        let other = ActorCritic::new(4, 3, &NetworkSpec::default(), 42).unwrap();
        assert!(save_checkpoint(dir.path().join("c"), &other, &spec).is_err());
        fs::remove_dir_all(&json).unwrap();
        fs::write(&json, text).unwrap();
        let ck = load_checkpoint(&json).unwrap();
        assert_eq!(ck.actor_critic().values().unwrap(), net.values().unwrap());
    }
}
