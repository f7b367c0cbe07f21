//! Continuous spaces with named dimensions and bounds, shared by environments, checkpoints and
//! the deploy loop so that an observation built on a robot matches the one seen in training.

use serde::{Deserialize, Serialize};

/// Errors about spaces and the vectors checked against them.
#[derive(Clone, Debug, thiserror::Error, PartialEq)]
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
///
/// Serialised as `{ "names": [..], "low": [..], "high": [..] }`; JSON has no infinity, so an
/// infinite bound is written as the string `"inf"` or `"-inf"` (finite bounds stay numbers).
/// Deserialising checks the space like [`BoxSpace::new`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawBoxSpace")]
pub struct BoxSpace {
    names: Vec<String>,
    #[serde(serialize_with = "bound_serde::serialize")]
    low: Vec<f32>,
    #[serde(serialize_with = "bound_serde::serialize")]
    high: Vec<f32>,
}

/// The unchecked serialised form of [`BoxSpace`].
#[derive(Deserialize)]
struct RawBoxSpace {
    names: Vec<String>,
    #[serde(deserialize_with = "bound_serde::deserialize")]
    low: Vec<f32>,
    #[serde(deserialize_with = "bound_serde::deserialize")]
    high: Vec<f32>,
}

impl TryFrom<RawBoxSpace> for BoxSpace {
    type Error = SpaceError;
    fn try_from(raw: RawBoxSpace) -> Result<Self, SpaceError> {
        BoxSpace::new(raw.names, raw.low, raw.high)
    }
}

/// Bounds as numbers, with infinities as the strings `"inf"` / `"-inf"`.
mod bound_serde {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Bound {
        Number(f32),
        Text(String),
    }

    pub fn serialize<S: Serializer>(values: &[f32], serializer: S) -> Result<S::Ok, S::Error> {
        let bounds: Vec<Bound> = values
            .iter()
            .map(|&v| match v {
                f32::INFINITY => Bound::Text("inf".into()),
                f32::NEG_INFINITY => Bound::Text("-inf".into()),
                v => Bound::Number(v),
            })
            .collect();
        bounds.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<f32>, D::Error> {
        let bounds = Vec::<Bound>::deserialize(deserializer)?;
        bounds
            .into_iter()
            .map(|b| match b {
                Bound::Number(v) => Ok(v),
                Bound::Text(t) => match t.as_str() {
                    "inf" | "+inf" | "infinity" => Ok(f32::INFINITY),
                    "-inf" | "-infinity" => Ok(f32::NEG_INFINITY),
                    other => Err(serde::de::Error::custom(format!(
                        "bound '{other}' is neither a number nor \"inf\"/\"-inf\""
                    ))),
                },
            })
            .collect()
    }
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

    #[test]
    fn serde_round_trip_keeps_infinite_bounds_and_checks() {
        let s = BoxSpace::new(
            names(3),
            vec![f32::NEG_INFINITY, -0.1, 0.0],
            vec![f32::INFINITY, 0.3, 0.0],
        )
        .unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"-inf\"") && json.contains("0.3"), "{json}");
        let back: BoxSpace = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        let bad = r#"{"names":["a","a"],"low":[0,0],"high":[1,1]}"#;
        let err = serde_json::from_str::<BoxSpace>(bad).unwrap_err();
        assert!(err.to_string().contains("appears twice"), "{err}");
        let bad = r#"{"names":["a"],"low":["minus"],"high":[1]}"#;
        assert!(serde_json::from_str::<BoxSpace>(bad).is_err());
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
