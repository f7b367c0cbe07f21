//! The actor-critic network: separate actor and critic MLPs over normalised observations, an
//! optional small CNN encoder for an image slice of the observation (shared by both), and a
//! state-independent learnable `log_std` per action dimension (diagonal Gaussian policy).
//!
//! The network works in normalised action units `u`; [`scale_action`] maps them into the
//! environment's action space. Parameters are candle [`Var`]s kept in a fixed order (never a
//! hash map), initialised from a seeded ChaCha RNG, so two networks built with the same seed are
//! bitwise identical. [`PlainActorCritic`] is a copy of the weights as f32 matrices with a
//! plain-Rust forward pass (no candle, no allocation per call), used by rollouts and by
//! deployed policies.

#[cfg(test)]
use candle_core::DType;
use candle_core::{D, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::LearnError;
use crate::space::BoxSpace;

/// Hidden-layer nonlinearity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `tanh(x)` (default).
    #[default]
    Tanh,
    /// `max(x, 0)`.
    Relu,
    /// `x` for `x >= 0`, `exp(x) - 1` otherwise.
    Elu,
}

impl Activation {
    fn apply_tensor(self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Activation::Tanh => x.tanh(),
            Activation::Relu => x.relu(),
            Activation::Elu => x.elu(1.0),
        }
    }

    #[inline]
    fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Tanh => x.tanh(),
            Activation::Relu => x.max(0.0),
            // Same branch as candle's CPU kernel, so both forward passes agree bitwise here.
            Activation::Elu => {
                if x.is_sign_positive() {
                    x
                } else {
                    x.exp() - 1.0
                }
            }
        }
    }
}

/// One convolution of the image encoder: `kernel × kernel`, given stride, no padding, followed
/// by the network's activation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvLayer {
    /// Output channels.
    pub out_channels: usize,
    /// Square kernel size, pixels.
    pub kernel: usize,
    /// Stride, pixels.
    pub stride: usize,
}

/// A small CNN encoder for an image stored inside the observation vector.
///
/// The image is the slice `obs[offset .. offset + channels * height * width]`, channel-major
/// (CHW), fed to the encoder as given: it is not passed through observation normalisation, so
/// the environment should scale pixels to about `[0, 1]`. The convolutions are followed by a
/// linear layer to `features` outputs (with the activation); those features are appended after
/// the remaining (normalised) observation dimensions to form the MLP input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageEncoderSpec {
    /// Index of the first pixel in the observation vector.
    pub offset: usize,
    /// Image channels.
    pub channels: usize,
    /// Image height, pixels.
    pub height: usize,
    /// Image width, pixels.
    pub width: usize,
    /// Convolution layers, applied in order.
    pub conv: Vec<ConvLayer>,
    /// Number of features the encoder outputs.
    pub features: usize,
}

impl ImageEncoderSpec {
    /// Number of observation values the image occupies (`channels * height * width`).
    pub fn pixels(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The observation range holding the image.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.pixels()
    }

    /// `(channels, height, width)` after each convolution, checked.
    pub fn conv_output_shapes(&self) -> Result<Vec<(usize, usize, usize)>, LearnError> {
        let mut shapes = Vec::with_capacity(self.conv.len());
        let (mut h, mut w) = (self.height, self.width);
        for (i, layer) in self.conv.iter().enumerate() {
            if layer.kernel == 0 || layer.stride == 0 || layer.out_channels == 0 {
                return Err(LearnError::InvalidNetwork {
                    reason: format!("conv layer {i}: kernel, stride and channels must be >= 1"),
                });
            }
            if layer.kernel > h || layer.kernel > w {
                return Err(LearnError::InvalidNetwork {
                    reason: format!(
                        "conv layer {i}: kernel {} is larger than its {h}x{w} input",
                        layer.kernel
                    ),
                });
            }
            h = (h - layer.kernel) / layer.stride + 1;
            w = (w - layer.kernel) / layer.stride + 1;
            shapes.push((layer.out_channels, h, w));
        }
        Ok(shapes)
    }

    /// Number of values after the last convolution (input of the encoder's linear layer).
    pub fn flat_dim(&self) -> Result<usize, LearnError> {
        Ok(match self.conv_output_shapes()?.last() {
            Some(&(c, h, w)) => c * h * w,
            None => self.pixels(),
        })
    }
}

/// Architecture of the actor-critic network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkSpec {
    /// Hidden layer widths, used by both the actor and the critic MLP. Default `[64, 64]`.
    pub hidden: Vec<usize>,
    /// Hidden-layer activation (also used by the image encoder). Default `tanh`.
    pub activation: Activation,
    /// Initial log standard deviation of the policy, in normalised action units. Default 0.
    pub init_log_std: f32,
    /// Optional CNN encoder for an image slice of the observation. Default none.
    pub image: Option<ImageEncoderSpec>,
}

impl Default for NetworkSpec {
    fn default() -> Self {
        Self {
            hidden: vec![64, 64],
            activation: Activation::Tanh,
            init_log_std: 0.0,
            image: None,
        }
    }
}

impl NetworkSpec {
    /// Checks the spec against the observation and action dimensions.
    pub fn validate(&self, obs_dim: usize, act_dim: usize) -> Result<(), LearnError> {
        if act_dim == 0 {
            return Err(LearnError::InvalidNetwork {
                reason: "the action space has no dimensions".into(),
            });
        }
        if let Some(i) = self.hidden.iter().position(|&h| h == 0) {
            return Err(LearnError::InvalidNetwork {
                reason: format!("hidden layer {i} has width 0"),
            });
        }
        if !self.init_log_std.is_finite() {
            return Err(LearnError::InvalidNetwork {
                reason: format!("init_log_std {} is not finite", self.init_log_std),
            });
        }
        if let Some(image) = &self.image {
            if image.pixels() == 0 || image.features == 0 {
                return Err(LearnError::InvalidNetwork {
                    reason: "the image encoder has no pixels or no features".into(),
                });
            }
            if image.range().end > obs_dim {
                return Err(LearnError::InvalidNetwork {
                    reason: format!(
                        "image slice {}..{} lies outside the {obs_dim}-dimensional observation",
                        image.range().start,
                        image.range().end
                    ),
                });
            }
            image.conv_output_shapes()?;
        }
        if self.mlp_input_dim(obs_dim) == 0 {
            return Err(LearnError::InvalidNetwork {
                reason: "the observation space has no dimensions".into(),
            });
        }
        Ok(())
    }

    /// Input width of the actor and critic MLPs: the non-image observation dimensions plus the
    /// encoder features.
    pub fn mlp_input_dim(&self, obs_dim: usize) -> usize {
        match &self.image {
            Some(image) => obs_dim.saturating_sub(image.pixels()) + image.features,
            None => obs_dim,
        }
    }

    /// Names and shapes of every parameter tensor, in the network's fixed order. Linear weights
    /// are `[out, in]`, convolution weights `[out, in, k, k]`.
    pub fn tensor_shapes(
        &self,
        obs_dim: usize,
        act_dim: usize,
    ) -> Result<Vec<(String, Vec<usize>)>, LearnError> {
        self.validate(obs_dim, act_dim)?;
        let mut shapes = Vec::new();
        if let Some(image) = &self.image {
            let mut in_c = image.channels;
            for (i, layer) in image.conv.iter().enumerate() {
                shapes.push((
                    format!("encoder.conv{i}.weight"),
                    vec![layer.out_channels, in_c, layer.kernel, layer.kernel],
                ));
                shapes.push((format!("encoder.conv{i}.bias"), vec![layer.out_channels]));
                in_c = layer.out_channels;
            }
            shapes.push((
                "encoder.fc.weight".into(),
                vec![image.features, image.flat_dim()?],
            ));
            shapes.push(("encoder.fc.bias".into(), vec![image.features]));
        }
        for (head, out_name, out_dim) in [("actor", "mean", act_dim), ("critic", "value", 1)] {
            let mut in_dim = self.mlp_input_dim(obs_dim);
            for (i, &h) in self.hidden.iter().enumerate() {
                shapes.push((format!("{head}.hidden{i}.weight"), vec![h, in_dim]));
                shapes.push((format!("{head}.hidden{i}.bias"), vec![h]));
                in_dim = h;
            }
            shapes.push((format!("{head}.{out_name}.weight"), vec![out_dim, in_dim]));
            shapes.push((format!("{head}.{out_name}.bias"), vec![out_dim]));
            if head == "actor" {
                shapes.push(("log_std".into(), vec![act_dim]));
            }
        }
        Ok(shapes)
    }
}

/// Maps normalised actions `u` to the action space: for a dimension with finite bounds,
/// `a = centre + half_width * clamp(u, -1, 1)`; for a dimension with an infinite bound, `u`
/// passes through (clamped to the finite side, if any). `u` and `out` have the space's
/// dimension or a multiple of it (several rows).
pub fn scale_action(space: &BoxSpace, u: &[f32], out: &mut [f32]) {
    let dim = space.dim();
    assert_eq!(
        u.len(),
        out.len(),
        "scale_action: input and output lengths differ"
    );
    if dim == 0 {
        return;
    }
    assert_eq!(
        u.len() % dim,
        0,
        "scale_action: length is not a multiple of the dimension"
    );
    let (low, high) = (space.low(), space.high());
    for (row_u, row_out) in u.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
        for d in 0..dim {
            let (l, h) = (low[d], high[d]);
            row_out[d] = if l.is_finite() && h.is_finite() {
                let centre = 0.5 * (l + h);
                let half = 0.5 * (h - l);
                (centre + half * row_u[d].clamp(-1.0, 1.0)).clamp(l, h)
            } else {
                row_u[d].clamp(l, h)
            };
        }
    }
}

/// Inverse of [`scale_action`]: action-space values to normalised units, clamped to `[-1, 1]`
/// for finite bounds (0 for a dimension of zero width); infinite bounds pass through.
pub fn unscale_action(space: &BoxSpace, a: &[f32], out: &mut [f32]) {
    let dim = space.dim();
    assert_eq!(
        a.len(),
        out.len(),
        "unscale_action: input and output lengths differ"
    );
    if dim == 0 {
        return;
    }
    assert_eq!(
        a.len() % dim,
        0,
        "unscale_action: length is not a multiple of the dimension"
    );
    let (low, high) = (space.low(), space.high());
    for (row_a, row_out) in a.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
        for d in 0..dim {
            let (l, h) = (low[d], high[d]);
            row_out[d] = if l.is_finite() && h.is_finite() {
                let half = 0.5 * (h - l);
                if half > 0.0 {
                    ((row_a[d] - 0.5 * (l + h)) / half).clamp(-1.0, 1.0)
                } else {
                    0.0
                }
            } else {
                row_a[d]
            };
        }
    }
}

/// `0.5 * ln(2π)`.
const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

/// Log density of a diagonal Gaussian, per row: `mean` and `actions` are `[B, A]`, `log_std`
/// is `[A]`; returns `[B]`:
/// `-Σ_a ((x - μ)² / (2σ²) + log σ + ½ ln 2π)`.
pub fn gaussian_log_prob(
    mean: &Tensor,
    log_std: &Tensor,
    actions: &Tensor,
) -> candle_core::Result<Tensor> {
    let act_dim = log_std.dim(0)?;
    let inv_std = log_std.neg()?.exp()?;
    let z = actions.sub(mean)?.broadcast_mul(&inv_std)?;
    let quad = z.sqr()?.sum(D::Minus1)?.affine(-0.5, 0.0)?;
    let norm = log_std
        .sum_all()?
        .affine(1.0, act_dim as f64 * HALF_LN_2PI)?;
    quad.broadcast_sub(&norm)
}

/// Entropy of a diagonal Gaussian with the given `log_std` (`[A]`), a scalar:
/// `Σ_a (log σ + ½ + ½ ln 2π)`.
pub fn gaussian_entropy(log_std: &Tensor) -> candle_core::Result<Tensor> {
    let act_dim = log_std.dim(0)?;
    log_std
        .sum_all()?
        .affine(1.0, act_dim as f64 * (0.5 + HALF_LN_2PI))
}

/// [`gaussian_log_prob`] for one row in plain Rust (f64 accumulation).
pub fn gaussian_log_prob_row(mean: &[f32], log_std: &[f32], action: &[f32]) -> f64 {
    let mut lp = 0.0;
    for ((&m, &ls), &x) in mean.iter().zip(log_std).zip(action) {
        let z = (f64::from(x) - f64::from(m)) * (-f64::from(ls)).exp();
        lp -= 0.5 * z * z + f64::from(ls) + HALF_LN_2PI;
    }
    lp
}

/// A named parameter of the network.
#[derive(Clone, Debug)]
pub struct Param {
    /// Tensor name, e.g. `actor.hidden0.weight`.
    pub name: String,
    /// The trainable variable.
    pub var: Var,
}

/// Outputs of [`ActorCritic::forward`] for a batch of `B` observations.
#[derive(Clone, Debug)]
pub struct PolicyOutput {
    /// Action mean in normalised units, `[B, A]`.
    pub mean: Tensor,
    /// Log standard deviation, `[A]` (the same for every observation).
    pub log_std: Tensor,
    /// State value, `[B]`.
    pub value: Tensor,
}

/// Actor and critic networks over normalised observations (see the module docs).
///
/// `Clone` is shallow: the clone shares the parameters (candle variables are reference
/// counted), so training one trains both. [`ActorCritic::deep_clone`] makes an independent
/// copy.
#[derive(Clone, Debug)]
pub struct ActorCritic {
    obs_dim: usize,
    act_dim: usize,
    spec: NetworkSpec,
    params: Vec<Param>,
}

/// Standard normal samples (Box–Muller in f64) from any RNG.
pub(crate) fn standard_normal(rng: &mut impl Rng) -> f64 {
    loop {
        let u1: f64 = rng.random();
        let u2: f64 = rng.random();
        if u1 > f64::MIN_POSITIVE {
            return (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        }
    }
}

/// A `rows × cols` matrix (row-major) with orthonormal rows (if `rows <= cols`) or columns,
/// times `gain`, from Gram–Schmidt on Gaussian samples.
fn orthogonal(rows: usize, cols: usize, gain: f64, rng: &mut ChaCha8Rng) -> Vec<f32> {
    // Orthonormalise the `n` vectors of length `m` (n <= m), then lay them out.
    let (n, m) = if rows <= cols {
        (rows, cols)
    } else {
        (cols, rows)
    };
    let mut basis: Vec<Vec<f64>> = Vec::with_capacity(n);
    while basis.len() < n {
        let mut v: Vec<f64> = (0..m).map(|_| standard_normal(rng)).collect();
        for b in &basis {
            let dot: f64 = v.iter().zip(b).map(|(x, y)| x * y).sum();
            for (x, y) in v.iter_mut().zip(b) {
                *x -= dot * y;
            }
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 1e-6 {
            v.iter_mut().for_each(|x| *x /= norm);
            basis.push(v);
        }
    }
    let mut out = vec![0.0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            let v = if rows <= cols {
                basis[r][c]
            } else {
                basis[c][r]
            };
            out[r * cols + c] = (gain * v) as f32;
        }
    }
    out
}

fn linear(x: &Tensor, w: &Var, b: &Var) -> candle_core::Result<Tensor> {
    x.matmul(&w.as_tensor().t()?)?.broadcast_add(b.as_tensor())
}

impl ActorCritic {
    /// A freshly initialised network for `obs_dim` observations and `act_dim` actions.
    /// Weights are orthogonal (gain √2 for hidden and encoder layers, 0.01 for the action mean,
    /// 1 for the value), biases 0, `log_std = spec.init_log_std`; all from a ChaCha8 RNG seeded
    /// with `seed`.
    pub fn new(
        obs_dim: usize,
        act_dim: usize,
        spec: &NetworkSpec,
        seed: u64,
    ) -> Result<Self, LearnError> {
        let shapes = spec.tensor_shapes(obs_dim, act_dim)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let tensors = shapes
            .iter()
            .map(|(name, shape)| {
                let len: usize = shape.iter().product();
                if name == "log_std" {
                    vec![spec.init_log_std; len]
                } else if name.ends_with(".bias") {
                    vec![0.0; len]
                } else {
                    let gain = if name == "actor.mean.weight" {
                        0.01
                    } else if name == "critic.value.weight" {
                        1.0
                    } else {
                        std::f64::consts::SQRT_2
                    };
                    orthogonal(shape[0], len / shape[0], gain, &mut rng)
                }
            })
            .collect();
        Self::from_values(obs_dim, act_dim, spec, tensors)
    }

    /// A network from parameter values given in [`NetworkSpec::tensor_shapes`] order.
    pub(crate) fn from_values(
        obs_dim: usize,
        act_dim: usize,
        spec: &NetworkSpec,
        values: Vec<Vec<f32>>,
    ) -> Result<Self, LearnError> {
        let shapes = spec.tensor_shapes(obs_dim, act_dim)?;
        if shapes.len() != values.len() {
            return Err(LearnError::InvalidNetwork {
                reason: format!("{} tensors given, {} expected", values.len(), shapes.len()),
            });
        }
        let mut params = Vec::with_capacity(shapes.len());
        for ((name, shape), data) in shapes.into_iter().zip(values) {
            let var = Var::from_vec(data, shape, &Device::Cpu)?;
            params.push(Param { name, var });
        }
        Ok(Self {
            obs_dim,
            act_dim,
            spec: spec.clone(),
            params,
        })
    }

    /// Observation dimension.
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    /// Action dimension.
    pub fn act_dim(&self) -> usize {
        self.act_dim
    }

    /// The architecture.
    pub fn spec(&self) -> &NetworkSpec {
        &self.spec
    }

    /// Every parameter, in the fixed order of [`NetworkSpec::tensor_shapes`].
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// The parameter called `name`.
    pub fn param(&self, name: &str) -> Option<&Var> {
        self.params.iter().find(|p| p.name == name).map(|p| &p.var)
    }

    fn var(&self, name: &str) -> &Var {
        self.param(name)
            .unwrap_or_else(|| panic!("network has no parameter '{name}'"))
    }

    /// Current parameter values (flattened), in order.
    pub fn values(&self) -> Result<Vec<Vec<f32>>, LearnError> {
        self.params
            .iter()
            .map(|p| Ok(p.var.as_tensor().flatten_all()?.to_vec1::<f32>()?))
            .collect()
    }

    /// Current `log_std` values.
    pub fn log_std(&self) -> Result<Vec<f32>, LearnError> {
        Ok(self.var("log_std").as_tensor().to_vec1::<f32>()?)
    }

    /// The MLP input for normalised observations `obs` (`[B, obs_dim]`): non-image dimensions
    /// then encoder features.
    fn mlp_input(&self, obs: &Tensor) -> candle_core::Result<Tensor> {
        let Some(image) = &self.spec.image else {
            return Ok(obs.clone());
        };
        let batch = obs.dim(0)?;
        let act = self.spec.activation;
        let mut x = obs
            .narrow(1, image.offset, image.pixels())?
            .contiguous()?
            .reshape((batch, image.channels, image.height, image.width))?;
        for (i, layer) in image.conv.iter().enumerate() {
            let w = self.var(&format!("encoder.conv{i}.weight"));
            let b = self.var(&format!("encoder.conv{i}.bias"));
            x = x.conv2d(w.as_tensor(), 0, layer.stride, 1, 1)?;
            x = x.broadcast_add(&b.as_tensor().reshape((1, layer.out_channels, 1, 1))?)?;
            x = act.apply_tensor(&x)?;
        }
        let x = x.flatten_from(1)?;
        let features = act.apply_tensor(&linear(
            &x,
            self.var("encoder.fc.weight"),
            self.var("encoder.fc.bias"),
        )?)?;
        let mut parts = Vec::with_capacity(3);
        if image.offset > 0 {
            parts.push(obs.narrow(1, 0, image.offset)?);
        }
        let end = image.range().end;
        if end < self.obs_dim {
            parts.push(obs.narrow(1, end, self.obs_dim - end)?);
        }
        parts.push(features);
        Tensor::cat(&parts, 1)
    }

    fn head(&self, x: &Tensor, head: &str, out: &str) -> candle_core::Result<Tensor> {
        let mut x = x.clone();
        for i in 0..self.spec.hidden.len() {
            let w = self.var(&format!("{head}.hidden{i}.weight"));
            let b = self.var(&format!("{head}.hidden{i}.bias"));
            x = self.spec.activation.apply_tensor(&linear(&x, w, b)?)?;
        }
        linear(
            &x,
            self.var(&format!("{head}.{out}.weight")),
            self.var(&format!("{head}.{out}.bias")),
        )
    }

    /// Action mean, `log_std` and value for a batch of normalised observations `[B, obs_dim]`.
    pub fn forward(&self, obs: &Tensor) -> Result<PolicyOutput, LearnError> {
        let x = self.mlp_input(obs)?;
        let mean = self.head(&x, "actor", "mean")?;
        let value = self.head(&x, "critic", "value")?.squeeze(1)?;
        Ok(PolicyOutput {
            mean,
            log_std: self.var("log_std").as_tensor().clone(),
            value,
        })
    }

    /// Action mean only (`[B, A]`), skipping the critic.
    pub fn actor_mean(&self, obs: &Tensor) -> Result<Tensor, LearnError> {
        let x = self.mlp_input(obs)?;
        Ok(self.head(&x, "actor", "mean")?)
    }

    /// A plain-Rust copy of the current weights for fast inference.
    pub fn to_plain(&self) -> Result<PlainActorCritic, LearnError> {
        PlainActorCritic::new(self.obs_dim, self.act_dim, &self.spec, &self.values()?)
    }

    /// Overwrites every parameter from `values` (in order, flattened).
    #[cfg_attr(not(test), allow(dead_code, reason = "used by tests and by training"))]
    pub(crate) fn set_values(&self, values: &[Vec<f32>]) -> Result<(), LearnError> {
        for (p, v) in self.params.iter().zip(values) {
            let t = Tensor::from_slice(v, p.var.shape(), &Device::Cpu)?;
            p.var.set(&t)?;
        }
        Ok(())
    }

    /// A deep copy (fresh variables) of this network.
    pub fn deep_clone(&self) -> Result<Self, LearnError> {
        Self::from_values(self.obs_dim, self.act_dim, &self.spec, self.values()?)
    }
}

/// Dot product with eight independent partial sums, so the compiler can keep them in one SIMD
/// register instead of waiting on a single accumulator.
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (a8.remainder(), b8.remainder());
    for (ca, cb) in a8.zip(b8) {
        for j in 0..8 {
            acc[j] += ca[j] * cb[j];
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// A dense layer as a row-major `[out, in]` matrix.
#[derive(Clone, Debug)]
struct PlainLinear {
    in_dim: usize,
    out_dim: usize,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl PlainLinear {
    #[inline]
    fn forward(&self, x: &[f32], out: &mut [f32], act: Option<Activation>) {
        let x = &x[..self.in_dim];
        for (o, y) in out[..self.out_dim].iter_mut().enumerate() {
            let row = &self.weight[o * self.in_dim..(o + 1) * self.in_dim];
            let z = dot(row, x) + self.bias[o];
            *y = match act {
                Some(a) => a.apply(z),
                None => z,
            };
        }
    }
}

/// A valid (unpadded) 2-D convolution.
#[derive(Clone, Debug)]
struct PlainConv {
    in_c: usize,
    in_h: usize,
    in_w: usize,
    out_c: usize,
    out_h: usize,
    out_w: usize,
    kernel: usize,
    stride: usize,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl PlainConv {
    fn forward(&self, x: &[f32], out: &mut [f32], act: Activation) {
        let k = self.kernel;
        for oc in 0..self.out_c {
            for oy in 0..self.out_h {
                for ox in 0..self.out_w {
                    let mut acc = 0.0f32;
                    for ic in 0..self.in_c {
                        let w_base = (oc * self.in_c + ic) * k * k;
                        let x_base = ic * self.in_h * self.in_w;
                        for ky in 0..k {
                            let row =
                                x_base + (oy * self.stride + ky) * self.in_w + ox * self.stride;
                            let w_row = &self.weight[w_base + ky * k..w_base + (ky + 1) * k];
                            for (w, v) in w_row.iter().zip(&x[row..row + k]) {
                                acc += w * v;
                            }
                        }
                    }
                    out[(oc * self.out_h + oy) * self.out_w + ox] = act.apply(acc + self.bias[oc]);
                }
            }
        }
    }
}

/// The next weight and bias (in `tensor_shapes` order) as a layer; `weight` is `[out, ...]`.
fn take_linear<'a>(next: &mut impl Iterator<Item = (&'a Vec<usize>, Vec<f32>)>) -> PlainLinear {
    let (shape, weight) = next.next().expect("a weight per layer");
    let (_, bias) = next.next().expect("a bias per layer");
    PlainLinear {
        in_dim: weight.len() / shape[0],
        out_dim: shape[0],
        weight,
        bias,
    }
}

/// Preallocated buffers for [`PlainActorCritic`] forward passes.
#[derive(Clone, Debug)]
pub struct PlainScratch {
    input: Vec<f32>,
    a: Vec<f32>,
    b: Vec<f32>,
}

/// The actor-critic's weights as plain f32 matrices, with an allocation-free forward pass
/// over one normalised observation at a time. Agrees with [`ActorCritic::forward`] to f32
/// rounding.
#[derive(Clone, Debug)]
pub struct PlainActorCritic {
    obs_dim: usize,
    act_dim: usize,
    activation: Activation,
    image: Option<(ImageEncoderSpec, Vec<PlainConv>, PlainLinear)>,
    actor: Vec<PlainLinear>,
    mean: PlainLinear,
    critic: Vec<PlainLinear>,
    value: PlainLinear,
    log_std: Vec<f32>,
    max_width: usize,
}

impl PlainActorCritic {
    /// Builds from parameter values in [`NetworkSpec::tensor_shapes`] order (shapes checked).
    pub fn new(
        obs_dim: usize,
        act_dim: usize,
        spec: &NetworkSpec,
        values: &[Vec<f32>],
    ) -> Result<Self, LearnError> {
        let shapes = spec.tensor_shapes(obs_dim, act_dim)?;
        if shapes.len() != values.len() {
            return Err(LearnError::InvalidNetwork {
                reason: format!("{} tensors given, {} expected", values.len(), shapes.len()),
            });
        }
        for ((name, shape), v) in shapes.iter().zip(values) {
            if shape.iter().product::<usize>() != v.len() {
                return Err(LearnError::InvalidNetwork {
                    reason: format!("tensor '{name}' has {} values, shape {shape:?}", v.len()),
                });
            }
        }
        let mut next = shapes
            .iter()
            .map(|(_, shape)| shape)
            .zip(values.iter().cloned());
        let mut max_width = spec.mlp_input_dim(obs_dim).max(act_dim);
        let image = match &spec.image {
            Some(image) => {
                let mut convs = Vec::with_capacity(image.conv.len());
                let (mut c, mut h, mut w) = (image.channels, image.height, image.width);
                for (layer, &(oc, oh, ow)) in image.conv.iter().zip(&image.conv_output_shapes()?) {
                    let plain = take_linear(&mut next);
                    convs.push(PlainConv {
                        in_c: c,
                        in_h: h,
                        in_w: w,
                        out_c: oc,
                        out_h: oh,
                        out_w: ow,
                        kernel: layer.kernel,
                        stride: layer.stride,
                        weight: plain.weight,
                        bias: plain.bias,
                    });
                    (c, h, w) = (oc, oh, ow);
                    max_width = max_width.max(c * h * w);
                }
                max_width = max_width.max(image.pixels());
                Some((image.clone(), convs, take_linear(&mut next)))
            }
            None => None,
        };
        let actor: Vec<PlainLinear> = spec.hidden.iter().map(|_| take_linear(&mut next)).collect();
        let mean = take_linear(&mut next);
        let (_, log_std) = next.next().expect("log_std follows the actor");
        let critic: Vec<PlainLinear> = spec.hidden.iter().map(|_| take_linear(&mut next)).collect();
        let value = take_linear(&mut next);
        max_width = spec.hidden.iter().fold(max_width, |m, &h| m.max(h));
        Ok(Self {
            obs_dim,
            act_dim,
            activation: spec.activation,
            image,
            actor,
            mean,
            critic,
            value,
            log_std,
            max_width,
        })
    }

    /// Observation dimension.
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    /// Action dimension.
    pub fn act_dim(&self) -> usize {
        self.act_dim
    }

    /// `log_std` per action dimension.
    pub fn log_std(&self) -> &[f32] {
        &self.log_std
    }

    /// Buffers for [`Self::forward`]; allocate once and reuse.
    pub fn scratch(&self) -> PlainScratch {
        PlainScratch {
            input: vec![0.0; self.max_width],
            a: vec![0.0; self.max_width],
            b: vec![0.0; self.max_width],
        }
    }

    /// Builds the MLP input in `scratch.input`, returns its length.
    fn mlp_input(&self, obs: &[f32], s: &mut PlainScratch) -> usize {
        let Some((image, convs, fc)) = &self.image else {
            s.input[..self.obs_dim].copy_from_slice(obs);
            return self.obs_dim;
        };
        let range = image.range();
        // Convolutions ping-pong between `a` and `b`, starting from the pixels in `a`.
        s.a[..range.len()].copy_from_slice(&obs[range.clone()]);
        let mut in_a = true;
        for conv in convs {
            let (src, dst) = if in_a {
                (&s.a, &mut s.b)
            } else {
                (&s.b, &mut s.a)
            };
            conv.forward(src, dst, self.activation);
            in_a = !in_a;
        }
        let rest = self.obs_dim - range.len();
        s.input[..range.start].copy_from_slice(&obs[..range.start]);
        s.input[range.start..rest].copy_from_slice(&obs[range.end..]);
        let src = if in_a { &s.a } else { &s.b };
        fc.forward(src, &mut s.input[rest..], Some(self.activation));
        rest + fc.out_dim
    }

    fn head(
        &self,
        layers: &[PlainLinear],
        out_layer: &PlainLinear,
        s: &mut PlainScratch,
        out: &mut [f32],
    ) {
        let mut in_input = true;
        let mut in_a = false;
        for layer in layers {
            if in_input {
                layer.forward(&s.input, &mut s.a, Some(self.activation));
                in_input = false;
                in_a = true;
            } else if in_a {
                layer.forward(&s.a, &mut s.b, Some(self.activation));
                in_a = false;
            } else {
                layer.forward(&s.b, &mut s.a, Some(self.activation));
                in_a = true;
            }
        }
        let src = if in_input {
            &s.input
        } else if in_a {
            &s.a
        } else {
            &s.b
        };
        out_layer.forward(src, out, None);
    }

    /// Forward pass for one normalised observation: writes the action mean (normalised units)
    /// into `mean` and returns the value if `with_value`. No allocation.
    pub fn forward(
        &self,
        obs: &[f32],
        scratch: &mut PlainScratch,
        mean: &mut [f32],
        with_value: bool,
    ) -> Option<f32> {
        assert_eq!(obs.len(), self.obs_dim, "observation length");
        assert_eq!(mean.len(), self.act_dim, "action length");
        self.mlp_input(obs, scratch);
        self.head(&self.actor, &self.mean, scratch, mean);
        if with_value {
            let mut v = [0.0f32];
            self.head(&self.critic, &self.value, scratch, &mut v);
            Some(v[0])
        } else {
            None
        }
    }

    /// The value only, for one normalised observation.
    pub fn value(&self, obs: &[f32], scratch: &mut PlainScratch) -> f32 {
        assert_eq!(obs.len(), self.obs_dim, "observation length");
        self.mlp_input(obs, scratch);
        let mut v = [0.0f32];
        self.head(&self.critic, &self.value, scratch, &mut v);
        v[0]
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn random_obs(rows: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..rows * dim)
            .map(|_| (standard_normal(&mut rng) * 1.5) as f32)
            .collect()
    }

    pub(crate) fn image_spec() -> NetworkSpec {
        NetworkSpec {
            hidden: vec![32, 16],
            activation: Activation::Relu,
            init_log_std: -0.5,
            image: Some(ImageEncoderSpec {
                offset: 2,
                channels: 2,
                height: 9,
                width: 8,
                conv: vec![
                    ConvLayer {
                        out_channels: 4,
                        kernel: 3,
                        stride: 2,
                    },
                    ConvLayer {
                        out_channels: 5,
                        kernel: 2,
                        stride: 1,
                    },
                ],
                features: 6,
            }),
        }
    }

    /// Candle forward vs the plain-Rust forward for `rows` random observations.
    fn max_forward_difference(net: &ActorCritic, rows: usize) -> f32 {
        let obs = random_obs(rows, net.obs_dim(), 7);
        let t = Tensor::from_slice(&obs, (rows, net.obs_dim()), &Device::Cpu).unwrap();
        let out = net.forward(&t).unwrap();
        let mean = out.mean.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let value = out.value.to_vec1::<f32>().unwrap();
        let plain = net.to_plain().unwrap();
        let mut scratch = plain.scratch();
        let mut m = vec![0.0; net.act_dim()];
        let mut worst = 0.0f32;
        for r in 0..rows {
            let row = &obs[r * net.obs_dim()..(r + 1) * net.obs_dim()];
            let v = plain.forward(row, &mut scratch, &mut m, true).unwrap();
            worst = worst.max((v - value[r]).abs());
            for a in 0..net.act_dim() {
                worst = worst.max((m[a] - mean[r * net.act_dim() + a]).abs());
            }
            assert_eq!(plain.value(row, &mut scratch), v);
        }
        worst
    }

    #[test]
    fn plain_forward_matches_candle_for_every_activation() {
        for activation in [Activation::Tanh, Activation::Relu, Activation::Elu] {
            let spec = NetworkSpec {
                hidden: vec![64, 32],
                activation,
                ..NetworkSpec::default()
            };
            let net = ActorCritic::new(11, 3, &spec, 5).unwrap();
            // The actor's output layer is initialised small (gain 0.01): scale it up so the
            // comparison is not trivially within tolerance.
            let mut values = net.values().unwrap();
            let idx = net
                .params()
                .iter()
                .position(|p| p.name == "actor.mean.weight")
                .unwrap();
            values[idx].iter_mut().for_each(|w| *w *= 100.0);
            net.set_values(&values).unwrap();
            let diff = max_forward_difference(&net, 50);
            assert!(diff < 1e-5, "{activation:?}: max difference {diff}");
        }
    }

    #[test]
    fn plain_forward_matches_candle_with_cnn_encoder() {
        let spec = image_spec();
        let obs_dim = 2 + 2 * 9 * 8 + 3;
        let net = ActorCritic::new(obs_dim, 2, &spec, 9).unwrap();
        let diff = max_forward_difference(&net, 20);
        assert!(diff < 1e-5, "max difference {diff}");
        // Shapes: [B, A] mean, [A] log_std, [B] value; the encoder feeds the MLP.
        let t = Tensor::zeros((4, obs_dim), DType::F32, &Device::Cpu).unwrap();
        let out = net.forward(&t).unwrap();
        assert_eq!(out.mean.dims(), &[4, 2]);
        assert_eq!(out.log_std.to_vec1::<f32>().unwrap(), vec![-0.5, -0.5]);
        assert_eq!(out.value.dims(), &[4]);
        assert_eq!(spec.mlp_input_dim(obs_dim), 5 + 6);
        let shapes = spec.tensor_shapes(obs_dim, 2).unwrap();
        assert_eq!(shapes[0], ("encoder.conv0.weight".into(), vec![4, 2, 3, 3]));
        // 9x8 -> conv(3, stride 2) -> 4x3 -> conv(2) -> 3x2, times 5 channels.
        assert_eq!(shapes[4], ("encoder.fc.weight".into(), vec![6, 5 * 3 * 2]));
    }

    #[test]
    fn invalid_image_specs_are_rejected() {
        let mut spec = image_spec();
        assert!(matches!(
            ActorCritic::new(100, 2, &spec, 0),
            Err(LearnError::InvalidNetwork { .. })
        ));
        spec.image.as_mut().unwrap().conv[0].kernel = 20;
        let err = ActorCritic::new(200, 2, &spec, 0).unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
    }

    #[test]
    fn initialisation_is_seeded_and_orthogonal() {
        let spec = NetworkSpec::default();
        let a = ActorCritic::new(6, 2, &spec, 1).unwrap().values().unwrap();
        let b = ActorCritic::new(6, 2, &spec, 1).unwrap().values().unwrap();
        let c = ActorCritic::new(6, 2, &spec, 2).unwrap().values().unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        // actor.hidden0.weight is 64x6: orthonormal columns times sqrt(2).
        let w = &a[0];
        for i in 0..6 {
            for j in 0..6 {
                let dot: f32 = (0..64).map(|r| w[r * 6 + i] * w[r * 6 + j]).sum();
                let expected = if i == j { 2.0 } else { 0.0 };
                assert!((dot - expected).abs() < 1e-4, "({i},{j}) {dot}");
            }
        }
    }

    #[test]
    fn gaussian_log_prob_and_entropy_match_closed_form() {
        let dev = Device::Cpu;
        // One dimension: N(1, 2^2) at x = 2: -(1/8) - ln 2 - 0.5 ln(2π).
        let mean = Tensor::new(&[[1.0f32]], &dev).unwrap();
        let log_std = Tensor::new(&[2.0f32.ln()], &dev).unwrap();
        let x = Tensor::new(&[[2.0f32]], &dev).unwrap();
        let lp = gaussian_log_prob(&mean, &log_std, &x)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let expected = -0.125 - 2.0f64.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln();
        assert!(
            (f64::from(lp[0]) - expected).abs() < 1e-6,
            "{lp:?} vs {expected}"
        );
        // Standard normal at its mean: -0.5 ln(2π) = -0.918938...
        let std_lp = gaussian_log_prob_row(&[0.0], &[0.0], &[0.0]);
        assert!((std_lp + 0.918_938_533_204_672_8).abs() < 1e-12);
        // Entropy of N(0, σ²) is 0.5 ln(2πeσ²); for two dims with σ = 0.5 and 3.
        let log_std = Tensor::new(&[0.5f32.ln(), 3.0f32.ln()], &dev).unwrap();
        let h = gaussian_entropy(&log_std)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let two_pi_e = 2.0 * std::f64::consts::PI * std::f64::consts::E;
        let expected = 0.5 * (two_pi_e * 0.25).ln() + 0.5 * (two_pi_e * 9.0).ln();
        assert!((f64::from(h) - expected).abs() < 1e-5, "{h} vs {expected}");
        // Batched rows against the plain version (two dims, three rows).
        let mean_v = [0.1f32, -0.2, 0.3, 0.0, -1.0, 2.0];
        let act_v = [0.5f32, 0.5, -0.3, 0.2, -1.5, 2.5];
        let ls_v = [-0.3f32, 0.4];
        let lp = gaussian_log_prob(
            &Tensor::from_slice(&mean_v, (3, 2), &dev).unwrap(),
            &Tensor::from_slice(&ls_v, 2, &dev).unwrap(),
            &Tensor::from_slice(&act_v, (3, 2), &dev).unwrap(),
        )
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
        for r in 0..3 {
            let row =
                gaussian_log_prob_row(&mean_v[r * 2..r * 2 + 2], &ls_v, &act_v[r * 2..r * 2 + 2]);
            assert!(
                (f64::from(lp[r]) - row).abs() < 1e-5,
                "row {r}: {} vs {row}",
                lp[r]
            );
        }
    }

    #[test]
    fn action_scaling_round_trips_and_clamps() {
        let space = BoxSpace::new(
            vec!["a".into(), "b".into(), "c".into(), "d".into()],
            vec![-2.0, 0.0, f32::NEG_INFINITY, 1.0],
            vec![2.0, 10.0, f32::INFINITY, 1.0],
        )
        .unwrap();
        let mut a = [0.0; 4];
        scale_action(&space, &[0.5, -1.0, 7.0, 0.3], &mut a);
        assert_eq!(a, [1.0, 0.0, 7.0, 1.0]);
        scale_action(&space, &[3.0, 2.0, -7.0, -5.0], &mut a);
        assert_eq!(
            a,
            [2.0, 10.0, -7.0, 1.0],
            "out-of-range u clamps to the bounds"
        );
        let mut u = [0.0; 4];
        unscale_action(&space, &[1.0, 7.5, 3.0, 1.0], &mut u);
        assert_eq!(
            u,
            [0.5, 0.5, 3.0, 0.0],
            "zero-width dimension maps to 0, not NaN"
        );
        unscale_action(&space, &[9.0, -1.0, 3.0, 1.0], &mut u);
        assert_eq!(&u[..2], &[1.0, -1.0]);
    }
}
