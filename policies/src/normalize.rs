//! Running observation normalisation: per-dimension mean and variance accumulated over every
//! observation seen in training (Chan et al.'s parallel merge of batch moments, f64
//! accumulators), applied as `clip((x - mean) / sqrt(var + epsilon), -clip, clip)`.

use serde::{Deserialize, Serialize};

/// Default clip of normalised observations, in standard deviations.
pub const DEFAULT_CLIP: f32 = 10.0;

/// Added to the variance before the square root, so constant dimensions (variance 0, e.g. a
/// dimension whose bounds have zero width) normalise to finite values instead of NaN.
pub const NORM_EPSILON: f64 = 1e-8;

/// The serialisable state of a [`RunningNorm`] (stored in checkpoints).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NormStats {
    /// Mean per dimension.
    pub mean: Vec<f64>,
    /// Population variance per dimension (not yet offset by epsilon).
    pub var: Vec<f64>,
    /// Number of observations (rows) accumulated; 0 means "no data": mean 0, variance 1.
    pub count: f64,
    /// Normalised values are clipped to `[-clip, clip]` (standard deviations).
    pub clip: f32,
}

impl NormStats {
    /// Checks lengths against `dim`, finiteness and signs; the message names the bad entry.
    pub fn validate(&self, dim: usize) -> Result<(), String> {
        if self.mean.len() != dim || self.var.len() != dim {
            return Err(format!(
                "normalisation has {} means and {} variances, expected {dim}",
                self.mean.len(),
                self.var.len()
            ));
        }
        if let Some(i) = self.mean.iter().position(|m| !m.is_finite()) {
            return Err(format!("normalisation mean[{i}] is not finite"));
        }
        if let Some(i) = self.var.iter().position(|v| !v.is_finite() || *v < 0.0) {
            return Err(format!(
                "normalisation var[{i}] = {} is negative or not finite",
                self.var[i]
            ));
        }
        if !(self.count.is_finite() && self.count >= 0.0) {
            return Err(format!("normalisation count {} is invalid", self.count));
        }
        if !(self.clip.is_finite() && self.clip > 0.0) {
            return Err(format!("normalisation clip {} is not positive", self.clip));
        }
        Ok(())
    }
}

/// Running per-dimension mean and variance of observations.
#[derive(Clone, Debug, PartialEq)]
pub struct RunningNorm {
    stats: NormStats,
}

impl RunningNorm {
    /// An empty normaliser for `dim`-dimensional observations (identity until updated) with the
    /// default clip of 10.
    pub fn new(dim: usize) -> Self {
        Self::with_clip(dim, DEFAULT_CLIP)
    }

    /// An empty normaliser with the given clip (standard deviations, > 0).
    pub fn with_clip(dim: usize, clip: f32) -> Self {
        Self {
            stats: NormStats {
                mean: vec![0.0; dim],
                var: vec![1.0; dim],
                count: 0.0,
                clip,
            },
        }
    }

    /// A normaliser continuing from saved statistics (checked: lengths, finite, non-negative).
    pub fn from_stats(stats: NormStats) -> Result<Self, String> {
        stats.validate(stats.mean.len())?;
        Ok(Self { stats })
    }

    /// Observation dimension.
    pub fn dim(&self) -> usize {
        self.stats.mean.len()
    }

    /// The statistics (for checkpoints).
    pub fn stats(&self) -> &NormStats {
        &self.stats
    }

    /// Adds a batch of observations: `batch.len()` must be a multiple of [`Self::dim`], one row
    /// per observation. The batch's moments are computed in two passes in f64 and merged with
    /// the running ones, so the result does not depend on how data is split into batches (up to
    /// rounding).
    pub fn update(&mut self, batch: &[f32]) {
        let dim = self.dim();
        if dim == 0 || batch.is_empty() {
            return;
        }
        assert_eq!(
            batch.len() % dim,
            0,
            "batch of {} values is not a whole number of {dim}-dimensional rows",
            batch.len()
        );
        let rows = batch.len() / dim;
        let n_b = rows as f64;
        let n_a = self.stats.count;
        let total = n_a + n_b;
        for d in 0..dim {
            let mut sum = 0.0f64;
            for r in 0..rows {
                sum += f64::from(batch[r * dim + d]);
            }
            let mean_b = sum / n_b;
            let mut m2_b = 0.0f64;
            for r in 0..rows {
                let e = f64::from(batch[r * dim + d]) - mean_b;
                m2_b += e * e;
            }
            if n_a == 0.0 {
                self.stats.mean[d] = mean_b;
                self.stats.var[d] = m2_b / n_b;
            } else {
                let mean_a = self.stats.mean[d];
                let m2_a = self.stats.var[d] * n_a;
                let delta = mean_b - mean_a;
                let m2 = m2_a + m2_b + delta * delta * n_a * n_b / total;
                self.stats.mean[d] = mean_a + delta * n_b / total;
                self.stats.var[d] = (m2 / total).max(0.0);
            }
        }
        self.stats.count = total;
    }

    /// Normalises one observation (or several rows) into `out` (same length as `obs`, a
    /// multiple of the dimension): `clip((x - mean) / sqrt(var + eps), -clip, clip)`. Finite
    /// inputs always give finite outputs.
    pub fn normalize(&self, obs: &[f32], out: &mut [f32]) {
        assert_eq!(
            obs.len(),
            out.len(),
            "normalize: input and output lengths differ"
        );
        let dim = self.dim();
        if dim == 0 {
            return;
        }
        let clip = self.stats.clip;
        for (row_in, row_out) in obs.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
            for d in 0..dim {
                let z = (f64::from(row_in[d]) - self.stats.mean[d])
                    / (self.stats.var[d] + NORM_EPSILON).sqrt();
                row_out[d] = (z as f32).clamp(-clip, clip);
            }
        }
    }

    /// [`Self::normalize`], except that the values in `raw` (a range within each row, e.g. an
    /// image slice for a CNN encoder) are copied through unchanged.
    pub fn normalize_except(
        &self,
        obs: &[f32],
        out: &mut [f32],
        raw: Option<std::ops::Range<usize>>,
    ) {
        self.normalize(obs, out);
        if let Some(range) = raw {
            let dim = self.dim();
            for (row_in, row_out) in obs.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
                row_out[range.clone()].copy_from_slice(&row_in[range.clone()]);
            }
        }
    }

    /// Mean and `1 / sqrt(var + eps)` as f32, for fast inference loops
    /// (`(x - mean) * inv_std`, then clip).
    pub fn f32_coefficients(&self) -> (Vec<f32>, Vec<f32>) {
        let mean = self.stats.mean.iter().map(|&m| m as f32).collect();
        let inv_std = self
            .stats
            .var
            .iter()
            .map(|&v| (1.0 / (v + NORM_EPSILON).sqrt()) as f32)
            .collect();
        (mean, inv_std)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random_rows(rows: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..rows * dim)
            .map(|i| {
                let scale = [0.01f32, 1.0, 100.0][i % dim % 3];
                let offset = [5.0f32, -3.0, 1000.0][i % dim % 3];
                offset + scale * (rng.random::<f32>() * 2.0 - 1.0)
            })
            .collect()
    }

    fn two_pass(data: &[f32], dim: usize) -> (Vec<f64>, Vec<f64>) {
        let rows = data.len() / dim;
        let mut mean = vec![0.0; dim];
        let mut var = vec![0.0; dim];
        for d in 0..dim {
            mean[d] = (0..rows).map(|r| f64::from(data[r * dim + d])).sum::<f64>() / rows as f64;
            var[d] = (0..rows)
                .map(|r| (f64::from(data[r * dim + d]) - mean[d]).powi(2))
                .sum::<f64>()
                / rows as f64;
        }
        (mean, var)
    }

    fn assert_close(a: &[f64], b: &[f64], rel: f64) {
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= rel * y.abs().max(1e-12),
                "index {i}: {x} vs {y}"
            );
        }
    }

    #[test]
    fn matches_two_pass_statistics() {
        let dim = 5;
        let data = random_rows(1000, dim, 1);
        let mut norm = RunningNorm::new(dim);
        norm.update(&data);
        let (mean, var) = two_pass(&data, dim);
        assert_close(&norm.stats().mean, &mean, 1e-12);
        assert_close(&norm.stats().var, &var, 1e-9);
        assert_eq!(norm.stats().count, 1000.0);
    }

    #[test]
    fn merging_batches_equals_one_batch() {
        let dim = 4;
        let data = random_rows(777, dim, 2);
        let mut whole = RunningNorm::new(dim);
        whole.update(&data);
        let mut parts = RunningNorm::new(dim);
        // Uneven batch sizes, including a single row.
        let mut start = 0;
        for rows in [1usize, 10, 300, 66, 400] {
            parts.update(&data[start * dim..(start + rows) * dim]);
            start += rows;
        }
        assert_eq!(start, 777);
        assert_close(&parts.stats().mean, &whole.stats().mean, 1e-12);
        assert_close(&parts.stats().var, &whole.stats().var, 1e-9);
        assert_eq!(parts.stats().count, whole.stats().count);
    }

    #[test]
    fn constant_dimensions_give_finite_values() {
        let mut norm = RunningNorm::new(2);
        norm.update(&[3.0, 1.0, 3.0, 2.0, 3.0, 3.0]);
        assert_eq!(norm.stats().var[0], 0.0);
        let mut out = [0.0; 2];
        norm.normalize(&[3.0, 2.0], &mut out);
        assert_eq!(out, [0.0, 0.0]);
        norm.normalize(&[4.0, 2.0], &mut out);
        assert_eq!(
            out[0], DEFAULT_CLIP,
            "a new value in a constant dimension clips"
        );
        norm.normalize(&[-4.0, 100.0], &mut out);
        assert_eq!(out, [-DEFAULT_CLIP, DEFAULT_CLIP]);
    }

    #[test]
    fn normalised_data_has_zero_mean_unit_variance() {
        let dim = 3;
        let data = random_rows(500, dim, 3);
        let mut norm = RunningNorm::new(dim);
        norm.update(&data);
        let mut out = vec![0.0; data.len()];
        norm.normalize(&data, &mut out);
        let (mean, var) = two_pass(&out, dim);
        for d in 0..dim {
            assert!(mean[d].abs() < 1e-4, "{mean:?}");
            assert!((var[d] - 1.0).abs() < 1e-3, "{var:?}");
        }
        let (m, s) = norm.f32_coefficients();
        let z = (data[1] - m[1]) * s[1];
        assert!((z - out[1]).abs() < 1e-5);
    }

    #[test]
    fn stats_round_trip_and_validation() {
        let mut norm = RunningNorm::new(2);
        norm.update(&[1.0, 2.0, 3.0, 5.0]);
        let json = serde_json::to_string(norm.stats()).unwrap();
        let stats: NormStats = serde_json::from_str(&json).unwrap();
        assert_eq!(RunningNorm::from_stats(stats.clone()).unwrap(), norm);
        let mut bad = stats;
        bad.var[1] = -1.0;
        assert!(RunningNorm::from_stats(bad).unwrap_err().contains("var[1]"));
    }
}
