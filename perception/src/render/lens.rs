//! Camera models: pinhole intrinsics with near/far clipping and optional Brown-Conrady lens
//! distortion (OpenCV's `k1, k2, p1, p2, k3`).
//!
//! The renderer rasterises an ideal pinhole image; a distorted camera's image is then resampled
//! (nearest neighbour, so depth and ids are never blended across edges) through a per-camera
//! lookup table computed once: each output pixel takes the ideal pixel its ray came through.
//! Output pixels whose ray falls outside the ideal image read as background (no return).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::PerceptionError;
use crate::cloud::PinholeIntrinsics;
use crate::error::{finite, positive};

/// Brown-Conrady distortion coefficients, as OpenCV's `distCoeffs` `(k1, k2, p1, p2, k3)`.
/// Every field defaults to 0 (no distortion).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Distortion {
    /// Radial coefficient of r². Dimensionless. Must be finite. Default: 0.
    pub k1: f64,
    /// Radial coefficient of r⁴. Dimensionless. Must be finite. Default: 0.
    pub k2: f64,
    /// Tangential coefficient p1. Dimensionless. Must be finite. Default: 0.
    pub p1: f64,
    /// Tangential coefficient p2. Dimensionless. Must be finite. Default: 0.
    pub p2: f64,
    /// Radial coefficient of r⁶. Dimensionless. Must be finite. Default: 0.
    pub k3: f64,
}

impl Distortion {
    /// Checks every coefficient is finite.
    pub fn validate(&self) -> Result<(), PerceptionError> {
        const C: &str = "Distortion";
        finite(C, "k1", self.k1)?;
        finite(C, "k2", self.k2)?;
        finite(C, "p1", self.p1)?;
        finite(C, "p2", self.p2)?;
        finite(C, "k3", self.k3)
    }

    /// Whether every coefficient is zero.
    pub fn is_identity(&self) -> bool {
        *self == Self::default()
    }

    /// Maps ideal normalised image coordinates `(x, y) = (X/Z, Y/Z)` to distorted ones.
    pub fn distort(&self, x: f64, y: f64) -> (f64, f64) {
        let r2 = x * x + y * y;
        let radial = 1.0 + r2 * (self.k1 + r2 * (self.k2 + r2 * self.k3));
        (
            x * radial + 2.0 * self.p1 * x * y + self.p2 * (r2 + 2.0 * x * x),
            y * radial + self.p1 * (r2 + 2.0 * y * y) + 2.0 * self.p2 * x * y,
        )
    }

    /// Inverts [`Self::distort`] by fixed-point iteration (OpenCV's `undistortPoints` scheme),
    /// `None` if it does not converge to 1e-9 within 50 iterations (far outside the lens's
    /// valid field).
    pub fn undistort(&self, xd: f64, yd: f64) -> Option<(f64, f64)> {
        let (mut x, mut y) = (xd, yd);
        for _ in 0..50 {
            let (dx, dy) = self.distort(x, y);
            let (ex, ey) = (dx - xd, dy - yd);
            if !(ex.is_finite() && ey.is_finite()) {
                return None;
            }
            if ex.abs() < 1e-9 && ey.abs() < 1e-9 {
                return Some((x, y));
            }
            x -= ex;
            y -= ey;
        }
        None
    }
}

/// A camera's lens and image: intrinsics, clipping range and distortion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CameraModel {
    /// Pinhole intrinsics (pixel centres at integer coordinates, OpenCV convention).
    pub intrinsics: PinholeIntrinsics,
    /// Nearest depth rendered, metres along the optical axis. Must be > 0.
    pub near_m: f64,
    /// Farthest depth rendered, metres. Must be > `near_m`.
    pub far_m: f64,
    /// Lens distortion, `None` for an ideal pinhole.
    pub distortion: Option<Distortion>,
}

/// The largest image side the renderer accepts, pixels.
pub const MAX_IMAGE_SIDE_PX: u32 = 8192;

impl CameraModel {
    /// A camera with square pixels and the principal point at the image centre, from its
    /// horizontal field of view (degrees).
    pub fn from_fov(
        width_px: u32,
        height_px: u32,
        horizontal_fov_deg: f64,
        near_m: f64,
        far_m: f64,
    ) -> Self {
        let f = 0.5 * f64::from(width_px) / (0.5 * horizontal_fov_deg.to_radians()).tan();
        Self {
            intrinsics: PinholeIntrinsics {
                width_px,
                height_px,
                fx_px: f,
                fy_px: f,
                cx_px: 0.5 * f64::from(width_px) - 0.5,
                cy_px: 0.5 * f64::from(height_px) - 0.5,
            },
            near_m,
            far_m,
            distortion: None,
        }
    }

    /// Checks the intrinsics, the clipping range and the distortion.
    pub fn validate(&self) -> Result<(), PerceptionError> {
        self.intrinsics.validate()?;
        for (field, side) in [
            ("width_px", self.intrinsics.width_px),
            ("height_px", self.intrinsics.height_px),
        ] {
            if side > MAX_IMAGE_SIDE_PX {
                return Err(PerceptionError::InvalidConfig {
                    config: "PinholeIntrinsics",
                    field,
                    value: f64::from(side),
                    reason: "must be <= 8192 pixels",
                });
            }
        }
        positive("CameraModel", "near_m", self.near_m)?;
        positive("CameraModel", "far_m", self.far_m)?;
        if self.far_m <= self.near_m {
            return Err(PerceptionError::InvalidConfig {
                config: "CameraModel",
                field: "far_m",
                value: self.far_m,
                reason: "must be greater than near_m",
            });
        }
        if let Some(d) = &self.distortion {
            d.validate()?;
        }
        Ok(())
    }

    /// For a distorted camera, the ideal (pinhole) pixel index each output pixel samples, or
    /// `u32::MAX` where its ray leaves the ideal image; `None` for an ideal pinhole.
    pub fn remap_table(&self) -> Option<Vec<u32>> {
        let d = self.distortion.filter(|d| !d.is_identity())?;
        let k = &self.intrinsics;
        let (w, h) = (k.width_px, k.height_px);
        let mut table = Vec::with_capacity(k.pixel_count());
        for v in 0..h {
            for u in 0..w {
                let xd = (f64::from(u) - k.cx_px) / k.fx_px;
                let yd = (f64::from(v) - k.cy_px) / k.fy_px;
                let source = d.undistort(xd, yd).and_then(|(x, y)| {
                    let us = (x * k.fx_px + k.cx_px).round();
                    let vs = (y * k.fy_px + k.cy_px).round();
                    ((0.0..f64::from(w)).contains(&us) && (0.0..f64::from(h)).contains(&vs))
                        .then(|| vs as u32 * w + us as u32)
                });
                table.push(source.unwrap_or(u32::MAX));
            }
        }
        Some(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undistort_inverts_distort() {
        let d = Distortion {
            k1: -0.28,
            k2: 0.07,
            p1: 0.001,
            p2: -0.0005,
            k3: 0.0,
        };
        for &(x, y) in &[(0.0, 0.0), (0.3, -0.2), (-0.5, 0.4), (0.1, 0.6)] {
            let (xd, yd) = d.distort(x, y);
            let (xu, yu) = d.undistort(xd, yd).unwrap();
            assert!((xu - x).abs() < 1e-8 && (yu - y).abs() < 1e-8, "{x} {y}");
        }
    }

    #[test]
    fn remap_of_barrel_distortion_pulls_corners_inward() {
        let mut camera = CameraModel::from_fov(64, 48, 90.0, 0.1, 10.0);
        assert!(camera.remap_table().is_none());
        camera.distortion = Some(Distortion {
            k1: -0.2,
            ..Distortion::default()
        });
        let table = camera.remap_table().unwrap();
        // The centre pixel maps to itself (cx, cy are half-integers here: nearest of the four).
        let k = camera.intrinsics;
        // A corner of the distorted image sees a ray farther out than the same ideal pixel:
        // with k1 < 0 the ideal source lies outside the image.
        assert_eq!(table[0], u32::MAX);
        // A pixel on the horizontal mid-line halfway out maps farther from the centre.
        let v = 24u32;
        let u = 48u32;
        let source = table[(v * k.width_px + u) as usize];
        assert_ne!(source, u32::MAX);
        let su = source % k.width_px;
        assert!(su > u, "source column {su} should lie outside column {u}");
    }

    #[test]
    fn validation_names_the_field() {
        let mut c = CameraModel::from_fov(64, 48, 90.0, 0.1, 10.0);
        assert!(c.validate().is_ok());
        c.far_m = 0.05;
        assert!(matches!(
            c.validate(),
            Err(PerceptionError::InvalidConfig { field: "far_m", .. })
        ));
        c.far_m = 10.0;
        c.intrinsics.width_px = 10_000;
        assert!(matches!(
            c.validate(),
            Err(PerceptionError::InvalidConfig {
                field: "width_px",
                ..
            })
        ));
    }
}
