//! Scalar sensor imperfections: white noise, bias, bias random walk, quantisation, dropout, delay
//! with jitter and sample-rate decimation, applied to `N` scalar channels of one sensor.
//!
//! [`NoiseConfig`] is the validated, immutable description; [`SensorChannel`] is the per-episode
//! state. A sensor with several axes (e.g. a 3-axis gyro) is one `SensorChannel` with three
//! channels sharing one seeded ChaCha8 stream; separate sensors get separate seeds from
//! [`derive_seed`].

use std::f64::consts::TAU;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::PerceptionError;
use crate::error::{finite, non_negative, positive};

/// Upper bound on the values a [`SensorChannel`] delay buffer may hold (slots x channels), so a
/// typo such as `delay_secs = 1e9` is reported instead of exhausting memory.
pub const MAX_BUFFERED_VALUES: usize = 1 << 22;

/// Relative slack, as a fraction of `dt_secs`, used when comparing simulation times, so that
/// `t = i * dt` computed by the caller lands on the intended step despite rounding.
const TIME_TOLERANCE_STEPS: f64 = 1e-6;

/// Noise and timing model of one sensor. All values are in the sensor's own unit (m/s², rad/s,
/// rad, ...) unless the name says otherwise. The default is an ideal sensor sampled every step.
///
/// Order of operations for a sample: `true + bias + bias_walk + white`, then quantisation; the
/// sample may then be dropped, otherwise it is delivered after the delay.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct NoiseConfig {
    /// Standard deviation of additive white Gaussian noise, in the sensor's unit, drawn
    /// independently per channel and sample. Must be finite and >= 0. Default: 0 (off).
    pub white_std: f64,
    /// Constant additive bias, in the sensor's unit, the same on every channel. Must be finite.
    /// Default: 0.
    pub bias: f64,
    /// Bias random walk intensity, in the sensor's unit per sqrt(second): every simulation step
    /// of `dt_secs` adds a Gaussian increment of std-dev `bias_walk_std_per_sqrt_sec * sqrt(dt_secs)`
    /// to each channel's drifting bias, so after `T` seconds the drift has std-dev
    /// `bias_walk_std_per_sqrt_sec * sqrt(T)`. Must be finite and >= 0. Default: 0 (off).
    pub bias_walk_std_per_sqrt_sec: f64,
    /// Quantisation step, in the sensor's unit: each output is rounded to the nearest multiple
    /// (applied last, after bias and noise). Must be finite and >= 0. Default: 0 (off).
    pub quantisation_step: f64,
    /// Probability, in [0, 1], that a sample is lost; the consumer then keeps seeing the previous
    /// sample. Default: 0 (never).
    pub dropout_probability: f64,
    /// Fixed transport delay between sampling and delivery, seconds. Delivery happens on the
    /// first simulation step at or after the due time. Must be finite and >= 0. Default: 0.
    pub delay_secs: f64,
    /// Extra random delay per sample, seconds, drawn uniformly from `[0, delay_jitter_secs)` and
    /// added to `delay_secs`. Samples are still delivered in the order they were taken (a sample
    /// never overtakes an older one). Must be finite and >= 0. Default: 0 (off).
    pub delay_jitter_secs: f64,
    /// Sample rate, Hz. A sample is taken on the first simulation step at or after each multiple
    /// of `1 / rate_hz` since the first push; 0 means one sample every step. Must be finite and
    /// >= 0. Default: 0.
    pub rate_hz: f64,
}

impl NoiseConfig {
    /// Checks every field; the error names the first offending field and its value.
    pub fn validate(&self) -> Result<(), PerceptionError> {
        const C: &str = "NoiseConfig";
        non_negative(C, "white_std", self.white_std)?;
        finite(C, "bias", self.bias)?;
        non_negative(
            C,
            "bias_walk_std_per_sqrt_sec",
            self.bias_walk_std_per_sqrt_sec,
        )?;
        non_negative(C, "quantisation_step", self.quantisation_step)?;
        if !(0.0..=1.0).contains(&self.dropout_probability) {
            return Err(PerceptionError::InvalidConfig {
                config: C,
                field: "dropout_probability",
                value: self.dropout_probability,
                reason: "must be a probability in [0, 1]",
            });
        }
        non_negative(C, "delay_secs", self.delay_secs)?;
        non_negative(C, "delay_jitter_secs", self.delay_jitter_secs)?;
        non_negative(C, "rate_hz", self.rate_hz)?;
        Ok(())
    }
}

/// Derives the seed of one random stream (a sensor, a channel group, ...) from a base seed, e.g.
/// the episode seed, and a stream number, e.g. the sensor's index in the scene.
///
/// Uses the SplitMix64 finaliser, a fixed mixing function, so the result is the same on every
/// platform and Rust version (never std's randomised hasher). Changing it changes every noise
/// stream, which the golden test in this module guards against.
pub const fn derive_seed(base_seed: u64, stream: u64) -> u64 {
    splitmix64(base_seed ^ splitmix64(stream ^ 0x5851_F42D_4C95_7F2D))
}

/// SplitMix64 finaliser (Steele, Lea & Flood 2014): a bijective 64-bit mix.
const fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Sample time and delivery time of one in-flight sample.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    sample_secs: f64,
    deliver_secs: f64,
}

/// Runtime state of one sensor with `N` scalar channels: applies a [`NoiseConfig`] to the true
/// values pushed every simulation step and exposes the latest delivered sample.
///
/// Everything is allocated in [`SensorChannel::new`]; [`SensorChannel::push`] and
/// [`SensorChannel::reset`] never allocate. The delay line is a ring buffer sized from
/// `delay_secs + delay_jitter_secs`, the timestep and the sample rate.
#[derive(Debug, Clone)]
pub struct SensorChannel {
    config: NoiseConfig,
    channels: usize,
    dt_secs: f64,
    time_tolerance_secs: f64,
    /// Seconds between samples; 0 means every push.
    sample_period_secs: f64,
    /// Std-dev of one step's bias-walk increment, sensor unit.
    walk_step_std: f64,
    rng: ChaCha8Rng,
    /// Second Box-Muller output, kept for the next draw.
    spare_normal: Option<f64>,
    /// Drifting bias per channel, sensor unit.
    bias_walk: Vec<f64>,
    last_push_secs: Option<f64>,
    first_sample_secs: Option<f64>,
    next_sample_secs: f64,
    /// Delivery time of the newest enqueued sample, to keep delivery in order.
    last_enqueued_deliver_secs: f64,
    /// Ring buffer of in-flight samples: times per slot, values `slot * channels ..`.
    slot_times: Vec<InFlight>,
    slot_values: Vec<f64>,
    head: usize,
    len: usize,
    latest_secs: Option<f64>,
    latest_values: Vec<f64>,
}

impl SensorChannel {
    /// Builds the state for a sensor with `channels` scalar channels, stepped every `dt_secs`
    /// seconds, drawing noise from ChaCha8 seeded with `seed` (see [`derive_seed`]).
    ///
    /// Fails if the config is invalid, `channels` is 0, `dt_secs` is not finite and > 0, or the
    /// delay line would need more than [`MAX_BUFFERED_VALUES`] values.
    pub fn new(
        config: &NoiseConfig,
        channels: usize,
        seed: u64,
        dt_secs: f64,
    ) -> Result<Self, PerceptionError> {
        const C: &str = "SensorChannel";
        config.validate()?;
        positive(C, "dt_secs", dt_secs)?;
        if channels == 0 {
            return Err(PerceptionError::InvalidConfig {
                config: C,
                field: "channels",
                value: 0.0,
                reason: "must be >= 1",
            });
        }
        let sample_period_secs = if config.rate_hz > 0.0 {
            1.0 / config.rate_hz
        } else {
            0.0
        };
        let slots = delay_slots(config, dt_secs, sample_period_secs);
        let slot_count = match slots {
            Some(n)
                if n.checked_mul(channels)
                    .is_some_and(|v| v <= MAX_BUFFERED_VALUES) =>
            {
                n
            }
            _ => {
                return Err(PerceptionError::InvalidConfig {
                    config: "NoiseConfig",
                    field: "delay_secs",
                    value: config.delay_secs + config.delay_jitter_secs,
                    reason: "delay_secs + delay_jitter_secs needs more buffered samples at this \
                             dt_secs and rate_hz than MAX_BUFFERED_VALUES allows",
                });
            }
        };
        Ok(Self {
            config: *config,
            channels,
            dt_secs,
            time_tolerance_secs: TIME_TOLERANCE_STEPS * dt_secs,
            sample_period_secs,
            walk_step_std: config.bias_walk_std_per_sqrt_sec * dt_secs.sqrt(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            spare_normal: None,
            bias_walk: vec![0.0; channels],
            last_push_secs: None,
            first_sample_secs: None,
            next_sample_secs: f64::NEG_INFINITY,
            last_enqueued_deliver_secs: f64::NEG_INFINITY,
            slot_times: vec![
                InFlight {
                    sample_secs: 0.0,
                    deliver_secs: 0.0,
                };
                slot_count
            ],
            slot_values: vec![0.0; slot_count * channels],
            head: 0,
            len: 0,
            latest_secs: None,
            latest_values: vec![0.0; channels],
        })
    }

    /// Clears all state (bias walk, in-flight samples, latest sample, sample schedule) and
    /// reseeds the random stream, as at construction. Does not allocate.
    pub fn reset(&mut self, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(seed);
        self.spare_normal = None;
        self.bias_walk.fill(0.0);
        self.last_push_secs = None;
        self.first_sample_secs = None;
        self.next_sample_secs = f64::NEG_INFINITY;
        self.last_enqueued_deliver_secs = f64::NEG_INFINITY;
        self.head = 0;
        self.len = 0;
        self.latest_secs = None;
        self.latest_values.fill(0.0);
    }

    /// Advances the sensor by one simulation step at time `t_secs` with the true values of every
    /// channel (`true_values.len()` must equal [`Self::channels`]).
    ///
    /// The bias walk advances by one `dt_secs`; if a sample is due it is taken, possibly dropped,
    /// and enqueued with its delay; then every sample whose delivery time has come is delivered.
    /// Returns `Ok(true)` when a new sample became [`Self::latest`] during this call.
    ///
    /// Fails, without changing any state, if an input is non-finite, the length is wrong, or
    /// `t_secs` is less than `dt_secs` after the previous push.
    pub fn push(&mut self, t_secs: f64, true_values: &[f64]) -> Result<bool, PerceptionError> {
        if !t_secs.is_finite() {
            return Err(PerceptionError::NonFiniteInput {
                input: "t_secs",
                index: 0,
                value: t_secs,
            });
        }
        if true_values.len() != self.channels {
            return Err(PerceptionError::LengthMismatch {
                input: "true_values",
                expected: self.channels,
                got: true_values.len(),
            });
        }
        if let Some((index, &value)) = true_values.iter().enumerate().find(|(_, v)| !v.is_finite())
        {
            return Err(PerceptionError::NonFiniteInput {
                input: "true_values",
                index,
                value,
            });
        }
        if let Some(previous_secs) = self.last_push_secs
            && t_secs - previous_secs < self.dt_secs - self.time_tolerance_secs
        {
            return Err(PerceptionError::PushTooSoon {
                previous_secs,
                t_secs,
                dt_secs: self.dt_secs,
            });
        }
        self.last_push_secs = Some(t_secs);

        if self.walk_step_std > 0.0 {
            for i in 0..self.channels {
                let step = self.walk_step_std * self.standard_normal();
                self.bias_walk[i] += step;
            }
        }

        if self.sample_due(t_secs) && !self.dropped() {
            self.enqueue(t_secs, true_values);
        }
        Ok(self.deliver(t_secs))
    }

    /// The latest delivered sample: its sample time in seconds (when the true values were
    /// measured, not when it was delivered) and one value per channel. `None` until the first
    /// sample arrives.
    pub fn latest(&self) -> Option<(f64, &[f64])> {
        self.latest_secs
            .map(|t_secs| (t_secs, self.latest_values.as_slice()))
    }

    /// Number of scalar channels.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The simulation timestep this channel was built for, seconds.
    pub fn dt_secs(&self) -> f64 {
        self.dt_secs
    }

    /// The validated config.
    pub fn config(&self) -> &NoiseConfig {
        &self.config
    }

    /// Whether a sample is due at `t_secs` under the rate decimation; advances the schedule.
    fn sample_due(&mut self, t_secs: f64) -> bool {
        if self.sample_period_secs == 0.0 {
            return true;
        }
        if t_secs < self.next_sample_secs - self.time_tolerance_secs {
            return false;
        }
        let first = *self.first_sample_secs.get_or_insert(t_secs);
        // Index of the next due time strictly after this step; skips any the caller jumped over.
        let next_index =
            ((t_secs - first + self.time_tolerance_secs) / self.sample_period_secs).floor() + 1.0;
        self.next_sample_secs = first + next_index * self.sample_period_secs;
        true
    }

    /// Draws the dropout decision for one sample.
    fn dropped(&mut self) -> bool {
        let p = self.config.dropout_probability;
        p > 0.0 && self.rng.random::<f64>() < p
    }

    /// Applies bias, walk, white noise and quantisation, and enqueues the sample.
    fn enqueue(&mut self, t_secs: f64, true_values: &[f64]) {
        let capacity = self.slot_times.len();
        // `new` sizes the ring for the most samples that can be in flight with pushes at least
        // `dt_secs` apart, which `push` enforces.
        debug_assert!(self.len < capacity, "delay ring buffer overflow");
        let slot = (self.head + self.len) % capacity;
        for (i, &true_value) in true_values.iter().enumerate() {
            let mut value = true_value + self.config.bias + self.bias_walk[i];
            if self.config.white_std > 0.0 {
                value += self.config.white_std * self.standard_normal();
            }
            let q = self.config.quantisation_step;
            if q > 0.0 {
                value = (value / q).round() * q;
            }
            self.slot_values[slot * self.channels + i] = value;
        }
        let mut delay_secs = self.config.delay_secs;
        if self.config.delay_jitter_secs > 0.0 {
            delay_secs += self.config.delay_jitter_secs * self.rng.random::<f64>();
        }
        let deliver_secs = (t_secs + delay_secs).max(self.last_enqueued_deliver_secs);
        self.last_enqueued_deliver_secs = deliver_secs;
        self.slot_times[slot] = InFlight {
            sample_secs: t_secs,
            deliver_secs,
        };
        self.len += 1;
    }

    /// Delivers every in-flight sample due by `t_secs`; returns whether any was delivered.
    fn deliver(&mut self, t_secs: f64) -> bool {
        let capacity = self.slot_times.len();
        let mut delivered = None;
        while self.len > 0 {
            let in_flight = self.slot_times[self.head];
            if in_flight.deliver_secs > t_secs + self.time_tolerance_secs {
                break;
            }
            delivered = Some((self.head, in_flight.sample_secs));
            self.head = (self.head + 1) % capacity;
            self.len -= 1;
        }
        let Some((slot, sample_secs)) = delivered else {
            return false;
        };
        let start = slot * self.channels;
        self.latest_values
            .copy_from_slice(&self.slot_values[start..start + self.channels]);
        self.latest_secs = Some(sample_secs);
        true
    }

    /// One standard normal draw (Box-Muller, caching the second output).
    fn standard_normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        // `random::<f64>()` is in [0, 1); 1 - u is in (0, 1], so ln never sees 0.
        let u1 = 1.0 - self.rng.random::<f64>();
        let u2 = self.rng.random::<f64>();
        let radius = (-2.0 * u1.ln()).sqrt();
        let (sin, cos) = (TAU * u2).sin_cos();
        self.spare_normal = Some(radius * sin);
        radius * cos
    }
}

/// Ring-buffer slots needed for the delay line, or `None` if absurdly many.
///
/// A sample taken at `s` is delivered by `s + delay + jitter` (in-order delivery only ever
/// waits for an older sample, which is due earlier still), so at a push the in-flight samples
/// were taken within the last `delay + jitter` seconds. Pushes are at least `dt` apart and
/// decimated samples at least `period - dt` apart, which bounds their number.
fn delay_slots(config: &NoiseConfig, dt_secs: f64, sample_period_secs: f64) -> Option<usize> {
    let window_secs = config.delay_secs + config.delay_jitter_secs;
    let min_spacing_secs = dt_secs.max(sample_period_secs - dt_secs) * (1.0 - TIME_TOLERANCE_STEPS);
    let slots = (window_secs / min_spacing_secs).ceil() + 2.0;
    if slots.is_finite() && slots <= MAX_BUFFERED_VALUES as f64 {
        // In range by the check above.
        Some(slots as usize)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DT: f64 = 0.001;

    fn channel(config: NoiseConfig, channels: usize, seed: u64) -> SensorChannel {
        SensorChannel::new(&config, channels, seed, DT).expect("valid config")
    }

    /// Mean and (sample) standard deviation.
    fn mean_std(values: &[f64]) -> (f64, f64) {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var.sqrt())
    }

    /// Runs `steps` pushes of a constant input and returns every delivered sample's bytes.
    fn stream_bytes(config: NoiseConfig, seed: u64, steps: usize) -> Vec<u64> {
        let mut ch = channel(config, 3, seed);
        let mut out = Vec::new();
        for i in 0..steps {
            let t = i as f64 * DT;
            let delivered = ch.push(t, &[1.0, -2.0, 0.5]).unwrap();
            out.push(u64::from(delivered));
            if let Some((ts, values)) = ch.latest() {
                out.push(ts.to_bits());
                out.extend(values.iter().map(|v| v.to_bits()));
            }
        }
        out
    }

    fn everything_on() -> NoiseConfig {
        NoiseConfig {
            white_std: 0.1,
            bias: 0.05,
            bias_walk_std_per_sqrt_sec: 0.02,
            quantisation_step: 0.001,
            dropout_probability: 0.1,
            delay_secs: 0.003,
            delay_jitter_secs: 0.002,
            rate_hz: 400.0,
        }
    }

    #[test]
    fn default_config_is_ideal_and_immediate() {
        let mut ch = channel(NoiseConfig::default(), 2, 1);
        assert!(ch.latest().is_none());
        assert!(ch.push(0.0, &[1.5, -3.0]).unwrap());
        assert_eq!(ch.latest(), Some((0.0, &[1.5, -3.0][..])));
    }

    #[test]
    fn white_noise_and_bias_statistics() {
        let (white_std, bias, n) = (0.5, 0.2, 20_000);
        let config = NoiseConfig {
            white_std,
            bias,
            ..NoiseConfig::default()
        };
        let mut ch = channel(config, 1, 7);
        let errors: Vec<f64> = (0..n)
            .map(|i| {
                ch.push(i as f64 * DT, &[1.0]).unwrap();
                ch.latest().unwrap().1[0] - 1.0
            })
            .collect();
        let (mean, std) = mean_std(&errors);
        // 5-sigma bounds: std error of the mean is s/sqrt(n), of the std-dev about s/sqrt(2n).
        let n = n as f64;
        assert!(
            (mean - bias).abs() < 5.0 * white_std / n.sqrt(),
            "mean {mean}"
        );
        assert!(
            (std - white_std).abs() < 5.0 * white_std / (2.0 * n).sqrt(),
            "std {std}"
        );
    }

    #[test]
    fn bias_walk_variance_grows_with_time() {
        // Many channels walk independently; after T seconds the drift variance is sigma^2 T.
        let (sigma, channels, steps, dt) = (0.3, 4000, 100, 0.01);
        let config = NoiseConfig {
            bias_walk_std_per_sqrt_sec: sigma,
            ..NoiseConfig::default()
        };
        let mut ch = SensorChannel::new(&config, channels, 11, dt).unwrap();
        let zeros = vec![0.0; channels];
        for i in 0..steps {
            ch.push(i as f64 * dt, &zeros).unwrap();
        }
        let (mean, std) = mean_std(ch.latest().unwrap().1);
        let expected_var = sigma * sigma * steps as f64 * dt;
        let n = channels as f64;
        assert!(
            mean.abs() < 5.0 * expected_var.sqrt() / n.sqrt(),
            "mean {mean}"
        );
        // Sample variance has std-dev var * sqrt(2 / (n - 1)).
        let var = std * std;
        assert!(
            (var - expected_var).abs() < 5.0 * expected_var * (2.0 / (n - 1.0)).sqrt(),
            "var {var} expected {expected_var}"
        );
    }

    #[test]
    fn same_seed_same_bytes_different_seed_different_bytes() {
        let a = stream_bytes(everything_on(), 42, 3000);
        let b = stream_bytes(everything_on(), 42, 3000);
        let c = stream_bytes(everything_on(), 43, 3000);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn reset_replays_the_stream_from_scratch() {
        let mut ch = channel(everything_on(), 2, 5);
        let run = |ch: &mut SensorChannel| {
            let mut out = Vec::new();
            for i in 0..500 {
                ch.push(i as f64 * DT, &[0.25, 4.0]).unwrap();
                if let Some((t, v)) = ch.latest() {
                    out.push((t.to_bits(), v[0].to_bits(), v[1].to_bits()));
                }
            }
            out
        };
        let first = run(&mut ch);
        ch.reset(5);
        assert!(ch.latest().is_none());
        assert_eq!(first, run(&mut ch));
    }

    /// Guards the noise stream itself: a change of rand, rand_chacha, the Box-Muller code or the
    /// draw order changes every recorded episode, and must be deliberate. (Box-Muller uses the
    /// platform's `ln` and `sin_cos`; these values are from x86_64 Linux, and a libm that rounds
    /// differently would show up here first.)
    #[test]
    fn golden_noise_stream() {
        let config = NoiseConfig {
            white_std: 1.0,
            ..NoiseConfig::default()
        };
        let mut ch = channel(config, 2, 1234);
        let mut got = Vec::new();
        for i in 0..2 {
            ch.push(i as f64 * DT, &[0.0, 0.0]).unwrap();
            got.extend(ch.latest().unwrap().1.iter().map(|v| v.to_bits()));
        }
        assert_eq!(got, GOLDEN_STREAM);
    }
    const GOLDEN_STREAM: [u64; 4] = [
        4607074660344478030,
        13805605132525474025,
        13826462897891440314,
        4608229783629069910,
    ];

    /// Guards `derive_seed`: changing the mixing function reseeds every sensor in every scene.
    #[test]
    fn golden_derive_seed() {
        assert_eq!(
            [derive_seed(0, 0), derive_seed(0, 1), derive_seed(42, 3)],
            GOLDEN_SEEDS
        );
    }
    const GOLDEN_SEEDS: [u64; 3] = [
        13824480848720109111,
        11015502686040571573,
        2336075089948126100,
    ];

    #[test]
    fn splitmix64_matches_reference() {
        // First output of the reference SplitMix64 generator seeded with 0.
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn derived_seeds_are_distinct() {
        let mut seeds: Vec<u64> = (0..10_000).map(|s| derive_seed(99, s)).collect();
        seeds.sort_unstable();
        seeds.dedup();
        assert_eq!(seeds.len(), 10_000);
        assert_ne!(derive_seed(1, 0), derive_seed(2, 0));
    }

    #[test]
    fn step_input_appears_exactly_delay_over_dt_steps_later() {
        let config = NoiseConfig {
            delay_secs: 0.005,
            ..NoiseConfig::default()
        };
        let delay_steps = 5;
        let step_at = 10;
        let mut ch = channel(config, 1, 0);
        for i in 0..40 {
            let input = if i >= step_at { 1.0 } else { 0.0 };
            let t = i as f64 * DT;
            assert!(ch.push(t, &[input]).unwrap() == (i >= delay_steps));
            let latest = ch.latest();
            if i < delay_steps {
                assert!(latest.is_none(), "step {i}");
                continue;
            }
            let (sample_t, values) = latest.unwrap();
            assert_eq!(sample_t, (i - delay_steps) as f64 * DT, "step {i}");
            let expected = if i >= step_at + delay_steps { 1.0 } else { 0.0 };
            assert_eq!(values[0], expected, "step {i}");
        }
    }

    #[test]
    fn jittered_delay_stays_in_bounds_and_in_order() {
        let config = NoiseConfig {
            delay_secs: 0.002,
            delay_jitter_secs: 0.0035,
            ..NoiseConfig::default()
        };
        let mut ch = channel(config, 1, 3);
        let mut last_sample_t = f64::NEG_INFINITY;
        let mut deliveries = 0;
        for i in 0..5000 {
            let t = i as f64 * DT;
            if ch.push(t, &[t]).unwrap() {
                deliveries += 1;
                let (sample_t, values) = ch.latest().unwrap();
                assert_eq!(values[0], sample_t);
                assert!(sample_t > last_sample_t, "out of order at step {i}");
                last_sample_t = sample_t;
                let latency = t - sample_t;
                assert!(latency >= 0.002 - 1e-9, "latency {latency}");
                assert!(latency < 0.002 + 0.0035 + DT + 1e-9, "latency {latency}");
            }
        }
        assert!(deliveries > 1000, "{deliveries}");
    }

    #[test]
    fn rate_decimation() {
        for (rate_hz, expected) in [(100.0, 100), (300.0, 300), (1000.0, 1000), (5000.0, 1000)] {
            let config = NoiseConfig {
                rate_hz,
                ..NoiseConfig::default()
            };
            let mut ch = channel(config, 1, 0);
            let count = (0..1000)
                .filter(|&i| ch.push(i as f64 * DT, &[0.0]).unwrap())
                .count();
            assert_eq!(count, expected, "rate {rate_hz}");
        }
    }

    #[test]
    fn dropout_rate_matches_probability() {
        let (p, n) = (0.3, 20_000);
        let config = NoiseConfig {
            dropout_probability: p,
            ..NoiseConfig::default()
        };
        let mut ch = channel(config, 1, 17);
        let kept = (0..n)
            .filter(|&i| ch.push(i as f64 * DT, &[0.0]).unwrap())
            .count();
        let kept_rate = kept as f64 / n as f64;
        let sigma = (p * (1.0 - p) / n as f64).sqrt();
        assert!((kept_rate - (1.0 - p)).abs() < 5.0 * sigma, "{kept_rate}");
    }

    #[test]
    fn dropout_keeps_previous_sample() {
        let config = NoiseConfig {
            dropout_probability: 1.0,
            ..NoiseConfig::default()
        };
        let mut ch = channel(config, 1, 0);
        for i in 0..10 {
            assert!(!ch.push(i as f64 * DT, &[1.0]).unwrap());
        }
        assert!(ch.latest().is_none());
    }

    #[test]
    fn quantisation_rounds_to_nearest_step_after_noise() {
        let config = NoiseConfig {
            quantisation_step: 0.25,
            bias: 0.01,
            ..NoiseConfig::default()
        };
        let mut ch = channel(config, 4, 0);
        ch.push(0.0, &[0.1, 0.13, -0.3, 0.99]).unwrap();
        assert_eq!(ch.latest().unwrap().1, &[0.0, 0.25, -0.25, 1.0]);

        let noisy = NoiseConfig {
            white_std: 3.0,
            quantisation_step: 0.125,
            ..NoiseConfig::default()
        };
        let mut ch = channel(noisy, 1, 9);
        for i in 0..1000 {
            ch.push(i as f64 * DT, &[0.3]).unwrap();
            let v = ch.latest().unwrap().1[0];
            assert_eq!((v / 0.125).fract(), 0.0, "{v}");
        }
    }

    #[test]
    fn validation_names_field_and_value() {
        let cases: [(NoiseConfig, &str, f64); 5] = [
            (
                NoiseConfig {
                    white_std: -1.0,
                    ..NoiseConfig::default()
                },
                "white_std",
                -1.0,
            ),
            (
                NoiseConfig {
                    dropout_probability: 1.5,
                    ..NoiseConfig::default()
                },
                "dropout_probability",
                1.5,
            ),
            (
                NoiseConfig {
                    delay_secs: f64::INFINITY,
                    ..NoiseConfig::default()
                },
                "delay_secs",
                f64::INFINITY,
            ),
            (
                NoiseConfig {
                    rate_hz: -10.0,
                    ..NoiseConfig::default()
                },
                "rate_hz",
                -10.0,
            ),
            (
                NoiseConfig {
                    quantisation_step: -0.1,
                    ..NoiseConfig::default()
                },
                "quantisation_step",
                -0.1,
            ),
        ];
        for (config, field, value) in cases {
            let err = config.validate().unwrap_err();
            match &err {
                PerceptionError::InvalidConfig {
                    field: f, value: v, ..
                } => {
                    assert_eq!((*f, *v), (field, value));
                }
                other => panic!("unexpected {other:?}"),
            }
            assert!(err.to_string().contains(field), "{err}");
        }
        let nan_bias = NoiseConfig {
            bias: f64::NAN,
            ..NoiseConfig::default()
        };
        assert!(matches!(
            nan_bias.validate(),
            Err(PerceptionError::InvalidConfig { field: "bias", .. })
        ));
        let nan_dropout = NoiseConfig {
            dropout_probability: f64::NAN,
            ..NoiseConfig::default()
        };
        assert!(nan_dropout.validate().is_err());
        assert!(everything_on().validate().is_ok());
    }

    #[test]
    fn constructor_and_push_errors() {
        let ok = NoiseConfig::default();
        assert!(matches!(
            SensorChannel::new(&ok, 1, 0, 0.0),
            Err(PerceptionError::InvalidConfig {
                field: "dt_secs",
                ..
            })
        ));
        assert!(matches!(
            SensorChannel::new(&ok, 0, 0, DT),
            Err(PerceptionError::InvalidConfig {
                field: "channels",
                ..
            })
        ));
        let huge_delay = NoiseConfig {
            delay_secs: 1e9,
            ..NoiseConfig::default()
        };
        assert!(matches!(
            SensorChannel::new(&huge_delay, 1, 0, DT),
            Err(PerceptionError::InvalidConfig {
                field: "delay_secs",
                ..
            })
        ));

        let mut ch = channel(ok, 2, 0);
        assert!(matches!(
            ch.push(0.0, &[1.0]),
            Err(PerceptionError::LengthMismatch {
                expected: 2,
                got: 1,
                ..
            })
        ));
        assert!(matches!(
            ch.push(0.0, &[1.0, f64::NAN]),
            Err(PerceptionError::NonFiniteInput { index: 1, .. })
        ));
        ch.push(0.0, &[1.0, 2.0]).unwrap();
        assert!(matches!(
            ch.push(0.0005, &[1.0, 2.0]),
            Err(PerceptionError::PushTooSoon { .. })
        ));
        // The rejected push changed nothing.
        assert_eq!(ch.latest(), Some((0.0, &[1.0, 2.0][..])));
        ch.push(DT, &[3.0, 4.0]).unwrap();
        assert_eq!(ch.latest(), Some((DT, &[3.0, 4.0][..])));
    }

    #[test]
    fn push_does_not_reallocate() {
        let mut ch = channel(everything_on(), 3, 8);
        let pointers = |ch: &SensorChannel| {
            (
                ch.slot_times.as_ptr() as usize,
                ch.slot_values.as_ptr() as usize,
                ch.latest_values.as_ptr() as usize,
                ch.bias_walk.as_ptr() as usize,
            )
        };
        let before = pointers(&ch);
        for i in 0..10_000 {
            ch.push(i as f64 * DT, &[1.0, 2.0, 3.0]).unwrap();
        }
        ch.reset(1);
        assert_eq!(before, pointers(&ch));
    }

    #[test]
    fn schema_documents_every_field() {
        let schema = schemars::schema_for!(NoiseConfig);
        let properties = schema
            .get("properties")
            .and_then(|p| p.as_object())
            .expect("object schema");
        assert_eq!(properties.len(), 8);
        for (name, property) in properties {
            let description = property
                .get("description")
                .and_then(|d| d.as_str())
                .unwrap_or_default();
            assert!(description.contains("Default"), "{name}: {description}");
        }
    }
}
