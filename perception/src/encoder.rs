//! Incremental joint encoders: a true joint position (rad for revolute joints, m for prismatic
//! joints) becomes an integer count, a quantised position, and a velocity estimated by finite
//! difference of counts over a window of steps.
//!
//! Counts are `floor(position / units_per_count)`, as a quadrature encoder counts line
//! crossings: the measured position is never above the true one and is within one count below
//! it, with no double-width bin at zero. Counts are multi-turn and unbounded (`i64`, saturating
//! far beyond any physical range). Add white noise or delay by feeding the readings through a
//! [`crate::SensorChannel`].

use std::f64::consts::TAU;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::PerceptionError;
use crate::error::positive;

/// Upper bound on [`EncoderConfig::velocity_window_steps`], so a typo cannot allocate gigabytes.
pub const MAX_VELOCITY_WINDOW_STEPS: u32 = 1 << 20;

/// Resolution of an encoder, by joint type.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EncoderResolution {
    /// Rotary encoder on a revolute joint; positions in rad.
    Rotary {
        /// Counts per revolution (2π rad), after any quadrature multiplication. Must be >= 1.
        counts_per_rev: u32,
    },
    /// Linear encoder on a prismatic joint; positions in m.
    Linear {
        /// Counts per metre of travel. Must be finite and > 0.
        counts_per_metre: f64,
    },
}

impl Default for EncoderResolution {
    /// A 4096 counts-per-revolution rotary encoder (a common 12-bit magnetic encoder).
    fn default() -> Self {
        Self::Rotary {
            counts_per_rev: 4096,
        }
    }
}

impl EncoderResolution {
    /// Size of one count: rad per count for [`Self::Rotary`], m per count for [`Self::Linear`].
    /// Meaningful once [`EncoderConfig::validate`] has passed.
    pub fn units_per_count(&self) -> f64 {
        match *self {
            Self::Rotary { counts_per_rev } => TAU / f64::from(counts_per_rev),
            Self::Linear { counts_per_metre } => 1.0 / counts_per_metre,
        }
    }

    /// Count for a true position (rad or m): `floor(position / units_per_count)`, saturating at
    /// the `i64` range.
    pub fn counts(&self, position: f64) -> i64 {
        // `as` saturates, and maps NaN to 0; `Encoder::update` rejects NaN before this.
        (position / self.units_per_count()).floor() as i64
    }

    /// Position (rad or m) of the start of a count's bin.
    pub fn position_from_counts(&self, counts: i64) -> f64 {
        counts as f64 * self.units_per_count()
    }

    /// The measured, quantised position (rad or m) for a true position.
    pub fn quantise(&self, position: f64) -> f64 {
        self.position_from_counts(self.counts(position))
    }
}

/// Encoder model. Default: 4096 counts/rev rotary, velocity over 10 steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EncoderConfig {
    /// Counts per revolution (revolute joint) or per metre (prismatic joint). Default:
    /// `{ "kind": "rotary", "counts_per_rev": 4096 }`.
    pub resolution: EncoderResolution,
    /// Velocity is `(counts now - counts W steps ago) * units_per_count / (W * dt_secs)` with
    /// `W` this many simulation steps (fewer until that much history exists). Longer windows
    /// trade lag for resolution: the velocity quantum is `units_per_count / (W * dt_secs)`.
    /// Must be in 1..=1048576. Default: 10.
    pub velocity_window_steps: u32,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self {
            resolution: EncoderResolution::default(),
            velocity_window_steps: 10,
        }
    }
}

impl EncoderConfig {
    /// Checks every field; the error names the first offending field and its value.
    pub fn validate(&self) -> Result<(), PerceptionError> {
        const C: &str = "EncoderConfig";
        match self.resolution {
            EncoderResolution::Rotary { counts_per_rev } => {
                if counts_per_rev == 0 {
                    return Err(PerceptionError::InvalidConfig {
                        config: C,
                        field: "resolution.counts_per_rev",
                        value: 0.0,
                        reason: "must be >= 1",
                    });
                }
            }
            EncoderResolution::Linear { counts_per_metre } => {
                positive(C, "resolution.counts_per_metre", counts_per_metre)?;
                if !self.resolution.units_per_count().is_finite() {
                    return Err(PerceptionError::InvalidConfig {
                        config: C,
                        field: "resolution.counts_per_metre",
                        value: counts_per_metre,
                        reason: "must give a finite metres per count",
                    });
                }
            }
        }
        if !(1..=MAX_VELOCITY_WINDOW_STEPS).contains(&self.velocity_window_steps) {
            return Err(PerceptionError::InvalidConfig {
                config: C,
                field: "velocity_window_steps",
                value: f64::from(self.velocity_window_steps),
                reason: "must be in 1..=1048576",
            });
        }
        Ok(())
    }
}

/// One encoder reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EncoderReading {
    /// Raw count since position 0.
    pub counts: i64,
    /// Measured (quantised) position: rad for rotary, m for linear encoders.
    pub position: f64,
    /// Estimated velocity, rad/s or m/s; `None` on the first update after construction or
    /// reset, when there is no history to difference.
    pub velocity: Option<f64>,
}

/// Runtime state of one encoder: the history of counts for the velocity estimate.
#[derive(Debug, Clone)]
pub struct Encoder {
    config: EncoderConfig,
    dt_secs: f64,
    /// Ring of the last `window + 1` counts.
    history: Vec<i64>,
    /// Index of the slot the next count goes into.
    next: usize,
    /// How many slots hold counts.
    filled: usize,
}

impl Encoder {
    /// Builds an encoder updated once per `dt_secs` seconds. Fails if the config is invalid or
    /// `dt_secs` is not finite and > 0.
    pub fn new(config: &EncoderConfig, dt_secs: f64) -> Result<Self, PerceptionError> {
        config.validate()?;
        positive("Encoder", "dt_secs", dt_secs)?;
        // In range: validate bounds the window by MAX_VELOCITY_WINDOW_STEPS.
        let slots = config.velocity_window_steps as usize + 1;
        Ok(Self {
            config: *config,
            dt_secs,
            history: vec![0; slots],
            next: 0,
            filled: 0,
        })
    }

    /// Forgets the count history (the next reading has no velocity). Does not allocate.
    pub fn reset(&mut self) {
        self.next = 0;
        self.filled = 0;
    }

    /// Reads the encoder at the true joint position (rad or m) of this step. Fails if the
    /// position is not finite.
    pub fn update(&mut self, true_position: f64) -> Result<EncoderReading, PerceptionError> {
        if !true_position.is_finite() {
            return Err(PerceptionError::NonFiniteInput {
                input: "true_position",
                index: 0,
                value: true_position,
            });
        }
        let resolution = self.config.resolution;
        let counts = resolution.counts(true_position);
        let slots = self.history.len();
        self.history[self.next] = counts;
        self.next = (self.next + 1) % slots;
        self.filled = (self.filled + 1).min(slots);

        let velocity = (self.filled > 1).then(|| {
            let steps = self.filled - 1;
            // The oldest count in the ring, `steps` updates ago.
            let oldest = self.history[(self.next + slots - self.filled) % slots];
            let delta = counts.saturating_sub(oldest) as f64;
            delta * resolution.units_per_count() / (steps as f64 * self.dt_secs)
        });
        Ok(EncoderReading {
            counts,
            position: resolution.position_from_counts(counts),
            velocity,
        })
    }

    /// The validated config.
    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DT: f64 = 0.001;

    fn rotary(counts_per_rev: u32, window: u32) -> Encoder {
        let config = EncoderConfig {
            resolution: EncoderResolution::Rotary { counts_per_rev },
            velocity_window_steps: window,
        };
        Encoder::new(&config, DT).unwrap()
    }

    #[test]
    fn rotary_quantisation() {
        let mut enc = rotary(4096, 10);
        let rad_per_count = TAU / 4096.0;
        let r = enc.update(0.001).unwrap();
        assert_eq!(r.counts, 0);
        assert_eq!(r.position, 0.0);
        assert_eq!(r.velocity, None);
        let r = enc.update(2.5 * rad_per_count).unwrap();
        assert_eq!(r.counts, 2);
        assert!((r.position - 2.0 * rad_per_count).abs() < 1e-15);
        // Negative positions floor too: no double-width bin around zero.
        assert_eq!(enc.update(-0.0001).unwrap().counts, -1);
        // Multi-turn: three revolutions are 3 * 4096 counts.
        assert_eq!(enc.update(3.0 * TAU + 1e-9).unwrap().counts, 3 * 4096);
    }

    #[test]
    fn linear_counts_per_metre() {
        let config = EncoderConfig {
            resolution: EncoderResolution::Linear {
                counts_per_metre: 100_000.0,
            },
            velocity_window_steps: 1,
        };
        let mut enc = Encoder::new(&config, DT).unwrap();
        let r = enc.update(0.123_456).unwrap();
        assert_eq!(r.counts, 12_345);
        assert!((r.position - 0.123_45).abs() < 1e-12);
        // 1 mm in one 1 ms step is 1 m/s.
        let r = enc.update(0.124_456).unwrap();
        assert!((r.velocity.unwrap() - 1.0).abs() < 1e-9, "{r:?}");
    }

    #[test]
    fn velocity_over_window_tracks_constant_rate() {
        let (rate, window) = (2.0, 10);
        let mut enc = rotary(4096, window);
        let quantum = TAU / 4096.0 / (f64::from(window) * DT);
        for i in 0..200 {
            let r = enc.update(0.3 + rate * i as f64 * DT).unwrap();
            if i >= window as usize {
                let v = r.velocity.unwrap();
                assert!((v - rate).abs() <= quantum + 1e-12, "step {i}: {v}");
            }
        }
    }

    #[test]
    fn velocity_uses_shorter_history_until_window_fills_and_reset_clears_it() {
        let mut enc = rotary(1000, 4);
        let rad_per_count = TAU / 1000.0;
        enc.update(0.0).unwrap();
        // One count in one step.
        let v = enc.update(1.5 * rad_per_count).unwrap().velocity.unwrap();
        assert!((v - rad_per_count / DT).abs() < 1e-9);
        enc.reset();
        assert_eq!(enc.update(0.0).unwrap().velocity, None);
    }

    #[test]
    fn validation_errors() {
        let zero_cpr = EncoderConfig {
            resolution: EncoderResolution::Rotary { counts_per_rev: 0 },
            ..EncoderConfig::default()
        };
        assert!(matches!(
            zero_cpr.validate(),
            Err(PerceptionError::InvalidConfig {
                field: "resolution.counts_per_rev",
                ..
            })
        ));
        for counts_per_metre in [0.0, -5.0, f64::NAN, f64::INFINITY, 1e-320] {
            let bad = EncoderConfig {
                resolution: EncoderResolution::Linear { counts_per_metre },
                ..EncoderConfig::default()
            };
            assert!(bad.validate().is_err(), "{counts_per_metre}");
        }
        let no_window = EncoderConfig {
            velocity_window_steps: 0,
            ..EncoderConfig::default()
        };
        assert!(matches!(
            no_window.validate(),
            Err(PerceptionError::InvalidConfig {
                field: "velocity_window_steps",
                ..
            })
        ));
        assert!(Encoder::new(&EncoderConfig::default(), -1.0).is_err());
        let mut enc = Encoder::new(&EncoderConfig::default(), DT).unwrap();
        assert!(matches!(
            enc.update(f64::NAN),
            Err(PerceptionError::NonFiniteInput { .. })
        ));
    }

    proptest! {
        #[test]
        fn measured_position_is_within_one_count_below_truth(
            position in -100.0f64..100.0,
            counts_per_rev in 1u32..100_000,
        ) {
            let resolution = EncoderResolution::Rotary { counts_per_rev };
            let measured = resolution.quantise(position);
            let step = resolution.units_per_count();
            // Tolerances cover the rounding of position / step and counts * step.
            let slack = 1e-12 * position.abs().max(1.0);
            prop_assert!(measured <= position + slack, "{measured} > {position}");
            prop_assert!(position - measured < step + slack, "{measured} vs {position}");
        }
    }
}
