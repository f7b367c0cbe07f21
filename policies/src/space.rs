//! Continuous spaces with named dimensions and bounds, shared by environments, checkpoints and
//! the deploy loop so that an observation built on a robot matches the one seen in training.

use serde::{Deserialize, Serialize};

/// Errors about spaces and the vectors checked against them.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpaceError {
    /// Names, lower and upper bounds have different lengths.
    #[error("space has {names} names, {low} lower and {high} upper bounds")]
    Shape {
        /// Number of names.
        names: usize,
        /// Number of lower bounds.
        low: usize,
        /// Number of upper bounds.
        high: usize,
    },
    /// A bound is NaN or lower > upper.
    #[error("dimension '{name}': bounds [{low}, {high}] are not ordered or are NaN")]
    Bounds {
        /// Dimension name.
        name: String,
        /// Lower bound.
        low: f32,
        /// Upper bound.
        high: f32,
    },
    /// Two dimensions share a name.
    #[error("dimension name '{name}' appears twice")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// A vector has the wrong length for the space.
    #[error("expected {expected} values, got {found}")]
    Length {
        /// Space dimension.
        expected: usize,
        /// Values given.
        found: usize,
    },
    /// A value is not finite.
    #[error("dimension '{name}': value {value} is not finite")]
    NonFinite {
        /// Dimension name.
        name: String,
        /// The value.
        value: f32,
    },
}

/// A box in R^n with a name per dimension (e.g. `arm/elbow/position`). Bounds may be infinite.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BoxSpace {
    names: Vec<String>,
    low: Vec<f32>,
    high: Vec<f32>,
}

impl BoxSpace {
    /// A space from names and bounds; checks lengths, order and unique names.
    pub fn new(names: Vec<String>, low: Vec<f32>, high: Vec<f32>) -> Result<Self, SpaceError> {
        if names.len() != low.len() || names.len() != high.len() {
            return Err(SpaceError::Shape {
                names: names.len(),
                low: low.len(),
                high: high.len(),
            });
        }
        let mut sorted: Vec<&String> = names.iter().collect();
        sorted.sort();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(SpaceError::DuplicateName { name: w[0].clone() });
        }
        for ((name, &l), &h) in names.iter().zip(&low).zip(&high) {
            if l.is_nan() || h.is_nan() || l > h {
                return Err(SpaceError::Bounds {
                    name: name.clone(),
                    low: l,
                    high: h,
                });
            }
        }
        Ok(Self { names, low, high })
    }

    /// Number of dimensions.
    pub fn dim(&self) -> usize {
        self.names.len()
    }

    /// Dimension names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Lower bounds.
    pub fn low(&self) -> &[f32] {
        &self.low
    }

    /// Upper bounds.
    pub fn high(&self) -> &[f32] {
        &self.high
    }

    /// Checks a vector's length and finiteness.
    pub fn check(&self, values: &[f32]) -> Result<(), SpaceError> {
        if values.len() != self.dim() {
            return Err(SpaceError::Length {
                expected: self.dim(),
                found: values.len(),
            });
        }
        if let Some((i, &v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(SpaceError::NonFinite {
                name: self.names[i].clone(),
                value: v,
            });
        }
        Ok(())
    }

    /// Clamps a vector into the box in place (length must match).
    pub fn clamp(&self, values: &mut [f32]) {
        for ((v, &l), &h) in values.iter_mut().zip(&self.low).zip(&self.high) {
            *v = v.clamp(l, h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("d{i}")).collect()
    }

    #[test]
    fn rejects_bad_spaces() {
        assert!(matches!(
            BoxSpace::new(names(2), vec![0.0], vec![1.0, 1.0]),
            Err(SpaceError::Shape { .. })
        ));
        assert!(matches!(
            BoxSpace::new(names(1), vec![2.0], vec![1.0]),
            Err(SpaceError::Bounds { .. })
        ));
        assert!(matches!(
            BoxSpace::new(vec!["a".into(), "a".into()], vec![0.0; 2], vec![1.0; 2]),
            Err(SpaceError::DuplicateName { .. })
        ));
    }

    #[test]
    fn check_reports_the_dimension() {
        let s = BoxSpace::new(names(2), vec![-1.0; 2], vec![1.0; 2]).unwrap();
        match s.check(&[0.0, f32::NAN]) {
            Err(SpaceError::NonFinite { name, value }) => {
                assert_eq!(name, "d1");
                assert!(value.is_nan());
            }
            other => panic!("expected a non-finite error, got {other:?}"),
        }
        assert_eq!(
            s.check(&[0.0]),
            Err(SpaceError::Length {
                expected: 2,
                found: 1
            })
        );
    }

    proptest! {
        #[test]
        fn clamp_lands_inside(values in proptest::collection::vec(-10.0f32..10.0, 3)) {
            let s = BoxSpace::new(names(3), vec![-1.0, 0.0, -5.0], vec![1.0, 2.0, 5.0]).unwrap();
            let mut v = values.clone();
            s.clamp(&mut v);
            for i in 0..3 {
                prop_assert!(v[i] >= s.low()[i] && v[i] <= s.high()[i]);
                if values[i] >= s.low()[i] && values[i] <= s.high()[i] {
                    prop_assert_eq!(v[i], values[i]);
                }
            }
        }
    }
}
