//! Lidar scan patterns and per-element noise for range images (lidar scans, depth images).
//!
//! A [`LidarPattern`] is the list of unit ray directions in the sensor frame (x forward, y left,
//! z up), row by row (beam by beam, lowest first), each row sweeping azimuth from its start
//! angle counter-clockwise. The ray casting itself belongs to whoever owns the geometry (the
//! simulator casts against its physics colliders); this crate turns the ranges into points.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::PerceptionError;
use crate::noise::NoiseConfig;

/// Upper bound on rays per scan, so a typo cannot allocate gigabytes.
pub const MAX_RAYS: usize = 1 << 22;

/// Unit ray directions of one scan, in the sensor frame.
#[derive(Debug, Clone, PartialEq)]
pub struct LidarPattern {
    /// Number of beams (rows).
    pub channels: u32,
    /// Samples per row.
    pub samples: u32,
    /// Directions, `channels * samples`, row-major.
    pub directions: Vec<[f32; 3]>,
}

fn elevations(channels: u32, vertical_fov_deg: [f64; 2]) -> impl Iterator<Item = f64> {
    let [lo, hi] = vertical_fov_deg;
    (0..channels).map(move |c| {
        let f = if channels == 1 {
            0.5
        } else {
            f64::from(c) / f64::from(channels - 1)
        };
        (lo + f * (hi - lo)).to_radians()
    })
}

fn check(channels: u32, samples: u32, vertical_fov_deg: [f64; 2]) -> Result<(), PerceptionError> {
    const C: &str = "LidarPattern";
    let invalid = |field, value: f64, reason| PerceptionError::InvalidConfig {
        config: C,
        field,
        value,
        reason,
    };
    if channels == 0 {
        return Err(invalid("channels", 0.0, "must be >= 1"));
    }
    if samples == 0 {
        return Err(invalid("horizontal_samples", 0.0, "must be >= 1"));
    }
    if (channels as usize).saturating_mul(samples as usize) > MAX_RAYS {
        return Err(invalid(
            "horizontal_samples",
            f64::from(samples),
            "channels x horizontal_samples must be <= 4194304",
        ));
    }
    let [lo, hi] = vertical_fov_deg;
    if !(lo.is_finite() && hi.is_finite() && -90.0 <= lo && lo <= hi && hi <= 90.0) {
        return Err(invalid(
            "vertical_fov_deg",
            lo,
            "must be [lowest, highest] within [-90, 90] degrees",
        ));
    }
    Ok(())
}

impl LidarPattern {
    /// A spinning lidar: `channels` beams between the two elevations (degrees), each sampled at
    /// `samples` azimuths evenly spaced over the full turn starting at +x.
    pub fn rotating(
        channels: u32,
        samples: u32,
        vertical_fov_deg: [f64; 2],
    ) -> Result<Self, PerceptionError> {
        check(channels, samples, vertical_fov_deg)?;
        let step = std::f64::consts::TAU / f64::from(samples);
        Ok(Self::grid(channels, samples, vertical_fov_deg, |s| {
            f64::from(s) * step
        }))
    }

    /// A solid-state lidar: a `channels` x `samples` grid over `horizontal_fov_deg` (centred on
    /// +x) and the two elevations, every ray at once.
    pub fn solid_state(
        channels: u32,
        samples: u32,
        vertical_fov_deg: [f64; 2],
        horizontal_fov_deg: f64,
    ) -> Result<Self, PerceptionError> {
        check(channels, samples, vertical_fov_deg)?;
        if !(horizontal_fov_deg.is_finite()
            && horizontal_fov_deg > 0.0
            && horizontal_fov_deg <= 360.0)
        {
            return Err(PerceptionError::InvalidConfig {
                config: "LidarPattern",
                field: "horizontal_fov_deg",
                value: horizontal_fov_deg,
                reason: "must be in (0, 360] degrees",
            });
        }
        let fov = horizontal_fov_deg.to_radians();
        Ok(Self::grid(channels, samples, vertical_fov_deg, |s| {
            let f = if samples == 1 {
                0.5
            } else {
                f64::from(s) / f64::from(samples - 1)
            };
            -0.5 * fov + f * fov
        }))
    }

    fn grid(
        channels: u32,
        samples: u32,
        vertical_fov_deg: [f64; 2],
        azimuth: impl Fn(u32) -> f64,
    ) -> Self {
        let mut directions = Vec::with_capacity(channels as usize * samples as usize);
        for elevation in elevations(channels, vertical_fov_deg) {
            let (se, ce) = elevation.sin_cos();
            for s in 0..samples {
                let (sa, ca) = azimuth(s).sin_cos();
                directions.push([(ce * ca) as f32, (ce * sa) as f32, se as f32]);
            }
        }
        Self {
            channels,
            samples,
            directions,
        }
    }

    /// Number of rays per scan.
    pub fn len(&self) -> usize {
        self.directions.len()
    }

    /// Whether the pattern has no rays (never, once built).
    pub fn is_empty(&self) -> bool {
        self.directions.is_empty()
    }

    /// Points in the sensor frame for the rays with a return (`range > 0`), in ray order,
    /// into `points` (cleared first; no allocation once it has grown to the pattern's size).
    pub fn points(&self, ranges_m: &[f32], points: &mut Vec<[f32; 3]>) {
        points.clear();
        for (d, &r) in self.directions.iter().zip(ranges_m) {
            if r > 0.0 {
                points.push([d[0] * r, d[1] * r, d[2] * r]);
            }
        }
    }
}

/// Per-element noise for range images and scans: each element gets the config's bias, white
/// noise and quantisation, and is dropped (set to 0, no return) with `dropout_probability`.
/// Elements that are already 0 (no return) stay 0. Timing fields (delay, jitter, bias walk,
/// sample rate) do not apply per element and are rejected by [`ElementNoise::new`].
#[derive(Debug, Clone)]
pub struct ElementNoise {
    config: NoiseConfig,
    rng: ChaCha8Rng,
}

impl ElementNoise {
    /// Validates `config` for per-element use and seeds the stream.
    pub fn new(config: &NoiseConfig, seed: u64) -> Result<Self, PerceptionError> {
        config.validate()?;
        for (field, value) in [
            ("delay_secs", config.delay_secs),
            ("delay_jitter_secs", config.delay_jitter_secs),
            (
                "bias_walk_std_per_sqrt_sec",
                config.bias_walk_std_per_sqrt_sec,
            ),
            ("rate_hz", config.rate_hz),
        ] {
            if value != 0.0 {
                return Err(PerceptionError::InvalidConfig {
                    config: "ElementNoise",
                    field,
                    value,
                    reason: "does not apply to per-element (image, scan) noise; set it to 0",
                });
            }
        }
        Ok(Self {
            config: *config,
            rng: ChaCha8Rng::seed_from_u64(seed),
        })
    }

    /// Whether the config changes nothing.
    pub fn is_ideal(&self) -> bool {
        self.config == NoiseConfig::default()
    }

    /// Applies the noise in place. Does not allocate.
    pub fn apply(&mut self, values: &mut [f32]) {
        if self.is_ideal() {
            return;
        }
        let c = self.config;
        for v in values.iter_mut().filter(|v| **v > 0.0) {
            if c.dropout_probability > 0.0 && self.rng.random::<f64>() < c.dropout_probability {
                *v = 0.0;
                continue;
            }
            let mut x = f64::from(*v) + c.bias;
            if c.white_std > 0.0 {
                // Box-Muller, one normal per element.
                let u1: f64 = 1.0 - self.rng.random::<f64>();
                let u2: f64 = self.rng.random::<f64>();
                x += c.white_std * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            }
            if c.quantisation_step > 0.0 {
                x = (x / c.quantisation_step).round() * c.quantisation_step;
            }
            *v = (x as f32).max(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotating_pattern_covers_the_turn_and_the_elevations() {
        let p = LidarPattern::rotating(4, 8, [-15.0, 15.0]).unwrap();
        assert_eq!(p.len(), 32);
        for d in &p.directions {
            let n = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
            assert!((n - 1.0).abs() < 1e-6);
        }
        // First beam lowest, first sample along +x.
        let d0 = p.directions[0];
        assert!((d0[2] - (-15f32).to_radians().sin()).abs() < 1e-6 && d0[1].abs() < 1e-6);
        // Sample 2 of 8 is at 90 degrees: +y.
        assert!(p.directions[2][1] > 0.9);
        let mut points = Vec::new();
        let ranges: Vec<f32> = (0..32)
            .map(|i| if i % 2 == 0 { 2.0 } else { 0.0 })
            .collect();
        p.points(&ranges, &mut points);
        assert_eq!(points.len(), 16);
        assert!((points[0][0] - 2.0 * d0[0]).abs() < 1e-6);
    }

    #[test]
    fn solid_state_is_centred_on_x_and_validated() {
        let p = LidarPattern::solid_state(3, 5, [-10.0, 10.0], 90.0).unwrap();
        let mid = p.directions[5 + 2];
        assert!((mid[0] - 1.0).abs() < 1e-6, "{mid:?}");
        assert!(matches!(
            LidarPattern::solid_state(3, 5, [-10.0, 10.0], 0.0),
            Err(PerceptionError::InvalidConfig {
                field: "horizontal_fov_deg",
                ..
            })
        ));
        assert!(LidarPattern::rotating(0, 5, [0.0, 0.0]).is_err());
        assert!(LidarPattern::rotating(2, 5, [10.0, -10.0]).is_err());
    }

    #[test]
    fn element_noise_is_seeded_and_keeps_no_return() {
        let config = NoiseConfig {
            white_std: 0.01,
            dropout_probability: 0.1,
            quantisation_step: 0.001,
            ..NoiseConfig::default()
        };
        let run = |seed| {
            let mut n = ElementNoise::new(&config, seed).unwrap();
            let mut v = vec![2.0f32; 10_000];
            v[0] = 0.0;
            n.apply(&mut v);
            v
        };
        let (a, b, c) = (run(1), run(1), run(2));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a[0], 0.0);
        let dropped = a.iter().filter(|&&x| x == 0.0).count() as f64 / 10_000.0;
        assert!((dropped - 0.1).abs() < 0.02, "{dropped}");
        let kept: Vec<f64> = a
            .iter()
            .filter(|&&x| x > 0.0)
            .map(|&x| f64::from(x))
            .collect();
        let mean = kept.iter().sum::<f64>() / kept.len() as f64;
        let std = (kept.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / kept.len() as f64).sqrt();
        assert!(
            (mean - 2.0).abs() < 0.001 && (std - 0.01).abs() < 0.001,
            "{mean} {std}"
        );
        let delayed = NoiseConfig {
            delay_secs: 0.1,
            ..NoiseConfig::default()
        };
        assert!(matches!(
            ElementNoise::new(&delayed, 0),
            Err(PerceptionError::InvalidConfig {
                field: "delay_secs",
                ..
            })
        ));
    }
}
