//! The crate's one error type.

/// Everything that can go wrong in `rivet-perception`. Each variant names what was wrong and the
/// offending value so the caller can locate it (the simulator adds the sensor's name).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PerceptionError {
    /// A config field or constructor argument is out of range.
    #[error("invalid {config}.{field} = {value}: {reason}")]
    InvalidConfig {
        /// The config type or constructor the field belongs to, e.g. `NoiseConfig`.
        config: &'static str,
        /// The field or argument name, e.g. `white_std`.
        field: &'static str,
        /// The rejected value (integers are shown as `f64`).
        value: f64,
        /// What the value must satisfy.
        reason: &'static str,
    },
    /// A per-step input is NaN or infinite.
    #[error("non-finite input {input}[{index}] = {value}")]
    NonFiniteInput {
        /// Which input, e.g. `true_values` or `t_secs`.
        input: &'static str,
        /// Element index within the input (0 for scalars).
        index: usize,
        /// The rejected value.
        value: f64,
    },
    /// A slice has the wrong number of elements.
    #[error("{input} has {got} elements, expected {expected}")]
    LengthMismatch {
        /// Which input, e.g. `true_values` or `depth_m`.
        input: &'static str,
        /// The length the model was built for.
        expected: usize,
        /// The length that was passed.
        got: usize,
    },
    /// No GPU or software adapter could be opened for rendering.
    #[error(
        "no graphics adapter for the cameras ({details}); without a GPU install Mesa's \
         software rasterisers: apt-get install mesa-vulkan-drivers libvulkan1 libegl-mesa0"
    )]
    NoAdapter {
        /// What was found and why each adapter failed.
        details: String,
    },
    /// The GPU failed while rendering or reading images back.
    #[error("rendering failed: {message}")]
    Render {
        /// What failed.
        message: String,
    },
    /// A push came less than one simulation step after the previous one.
    #[error(
        "push at t_secs = {t_secs} is less than dt_secs = {dt_secs} after the previous push at {previous_secs}"
    )]
    PushTooSoon {
        /// Time of the previous push, seconds.
        previous_secs: f64,
        /// Time of the rejected push, seconds.
        t_secs: f64,
        /// The simulation timestep the channel was built with, seconds.
        dt_secs: f64,
    },
}

/// Fails unless `value` is finite and `>= 0`.
pub(crate) fn non_negative(
    config: &'static str,
    field: &'static str,
    value: f64,
) -> Result<(), PerceptionError> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(PerceptionError::InvalidConfig {
            config,
            field,
            value,
            reason: "must be finite and >= 0",
        })
    }
}

/// Fails unless `value` is finite and `> 0`.
pub(crate) fn positive(
    config: &'static str,
    field: &'static str,
    value: f64,
) -> Result<(), PerceptionError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(PerceptionError::InvalidConfig {
            config,
            field,
            value,
            reason: "must be finite and > 0",
        })
    }
}

/// Fails unless `value` is finite.
pub(crate) fn finite(
    config: &'static str,
    field: &'static str,
    value: f64,
) -> Result<(), PerceptionError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(PerceptionError::InvalidConfig {
            config,
            field,
            value,
            reason: "must be finite",
        })
    }
}
