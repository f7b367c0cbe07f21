//! Depth images to point clouds, and voxel-grid downsampling.
//!
//! Camera frame convention (OpenCV): the camera looks along +z, x points right and y down in the
//! image. Pixel `(u, v)` (column, row) has its centre at integer coordinates, so a depth `z` at
//! that pixel back-projects to `((u - cx) z / fx, (v - cy) z / fy, z)`.
//!
//! Both functions write into caller-owned buffers that are cleared and refilled, so once they
//! have grown to the largest frame seen, converting a frame does not allocate.

use nalgebra::Point3;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::PerceptionError;
use crate::error::{finite, positive};

/// Pinhole camera intrinsics, in pixels. Every field is required (no default: a camera has no
/// sensible default lens).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PinholeIntrinsics {
    /// Image width, pixels (columns). Must be >= 1. Required.
    pub width_px: u32,
    /// Image height, pixels (rows). Must be >= 1. Required.
    pub height_px: u32,
    /// Focal length along x, pixels. Must be finite and > 0. Required.
    pub fx_px: f64,
    /// Focal length along y, pixels. Must be finite and > 0. Required.
    pub fy_px: f64,
    /// Principal point column, pixels. Must be finite. Required.
    pub cx_px: f64,
    /// Principal point row, pixels. Must be finite. Required.
    pub cy_px: f64,
}

impl PinholeIntrinsics {
    /// Checks every field; the error names the first offending field and its value.
    pub fn validate(&self) -> Result<(), PerceptionError> {
        const C: &str = "PinholeIntrinsics";
        positive(C, "width_px", f64::from(self.width_px))?;
        positive(C, "height_px", f64::from(self.height_px))?;
        positive(C, "fx_px", self.fx_px)?;
        positive(C, "fy_px", self.fy_px)?;
        finite(C, "cx_px", self.cx_px)?;
        finite(C, "cy_px", self.cy_px)?;
        Ok(())
    }

    /// Number of pixels, `width_px * height_px`.
    pub fn pixel_count(&self) -> usize {
        // u32 * u32 fits in u64; usize is 64-bit on every platform Rivet targets, and on a
        // 32-bit one no image that large could be in memory anyway.
        (u64::from(self.width_px) * u64::from(self.height_px)) as usize
    }
}

/// Back-projects a row-major depth image (`depth_m[v * width + u]`, metres along +z) into
/// `points_in_camera`, which is cleared first. Pixels whose depth is not finite or not > 0 are
/// skipped; the rest come out in row-major pixel order.
///
/// Fails if the intrinsics are invalid or `depth_m.len()` is not `width_px * height_px`.
pub fn depth_to_points(
    depth_m: &[f32],
    intrinsics: &PinholeIntrinsics,
    points_in_camera: &mut Vec<Point3<f32>>,
) -> Result<(), PerceptionError> {
    intrinsics.validate()?;
    if depth_m.len() != intrinsics.pixel_count() {
        return Err(PerceptionError::LengthMismatch {
            input: "depth_m",
            expected: intrinsics.pixel_count(),
            got: depth_m.len(),
        });
    }
    points_in_camera.clear();
    points_in_camera.reserve(depth_m.len());
    let width = intrinsics.width_px as usize;
    for (v, row) in depth_m.chunks_exact(width).enumerate() {
        let y_per_z = (v as f64 - intrinsics.cy_px) / intrinsics.fy_px;
        for (u, &depth) in row.iter().enumerate() {
            if !(depth.is_finite() && depth > 0.0) {
                continue;
            }
            let z = f64::from(depth);
            let x_per_z = (u as f64 - intrinsics.cx_px) / intrinsics.fx_px;
            points_in_camera.push(Point3::new(
                (x_per_z * z) as f32,
                (y_per_z * z) as f32,
                depth,
            ));
        }
    }
    Ok(())
}

/// Voxel-grid downsampling settings. Default: 5 cm voxels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct VoxelGridConfig {
    /// Edge length of the cubic voxels, metres. Voxel `(i, j, k)` covers
    /// `[i s, (i + 1) s) x [j s, (j + 1) s) x [k s, (k + 1) s)`. Must be finite and > 0.
    /// Default: 0.05.
    pub voxel_size_m: f64,
}

impl Default for VoxelGridConfig {
    fn default() -> Self {
        Self { voxel_size_m: 0.05 }
    }
}

impl VoxelGridConfig {
    /// Checks every field; the error names the first offending field and its value.
    pub fn validate(&self) -> Result<(), PerceptionError> {
        positive("VoxelGridConfig", "voxel_size_m", self.voxel_size_m)
    }
}

/// One input point's voxel and position in the input.
#[derive(Debug, Clone, Copy)]
struct VoxelEntry {
    voxel: [i64; 3],
    index: usize,
}

/// Voxel-grid downsampler: replaces the points in each occupied voxel by their centroid. Holds
/// a reusable scratch buffer, so it allocates only when a cloud is larger than any before.
#[derive(Debug, Clone)]
pub struct VoxelGrid {
    config: VoxelGridConfig,
    entries: Vec<VoxelEntry>,
}

impl VoxelGrid {
    /// Builds a downsampler; fails if the config is invalid.
    pub fn new(config: &VoxelGridConfig) -> Result<Self, PerceptionError> {
        config.validate()?;
        Ok(Self {
            config: *config,
            entries: Vec::new(),
        })
    }

    /// The validated config.
    pub fn config(&self) -> &VoxelGridConfig {
        &self.config
    }

    /// The voxel containing a point: `floor(p / voxel_size_m)` per axis, saturating at the
    /// `i64` range.
    pub fn voxel_of(&self, point: &Point3<f32>) -> [i64; 3] {
        let s = self.config.voxel_size_m;
        // `as` saturates; callers pass finite points.
        point
            .coords
            .map(|c| (f64::from(c) / s).floor() as i64)
            .into()
    }

    /// Writes one centroid per occupied voxel into `out` (cleared first), ordered by voxel
    /// index `(i, j, k)` lexicographically, so the output depends only on the input, never on
    /// hash order. Points with a non-finite coordinate are skipped.
    ///
    /// Centroids are accumulated in f64 and clamped to the bounding box of their voxel's
    /// points, so every output point lies inside the input's bounding box despite rounding.
    pub fn downsample(&mut self, points: &[Point3<f32>], out: &mut Vec<Point3<f32>>) {
        out.clear();
        self.entries.clear();
        for (index, point) in points.iter().enumerate() {
            if point.coords.iter().all(|c| c.is_finite()) {
                let voxel = self.voxel_of(point);
                self.entries.push(VoxelEntry { voxel, index });
            }
        }
        // (voxel, index) pairs are unique, so the unstable (in-place) sort is deterministic.
        self.entries
            .sort_unstable_by_key(|entry| (entry.voxel, entry.index));

        for group in self.entries.chunk_by(|a, b| a.voxel == b.voxel) {
            let first = points[group[0].index];
            let mut sum = [0.0f64; 3];
            let (mut lo, mut hi) = (first, first);
            for entry in group {
                let p = points[entry.index];
                for axis in 0..3 {
                    sum[axis] += f64::from(p[axis]);
                    lo[axis] = lo[axis].min(p[axis]);
                    hi[axis] = hi[axis].max(p[axis]);
                }
            }
            let n = group.len() as f64;
            let centroid = Point3::from(std::array::from_fn(|axis| {
                ((sum[axis] / n) as f32).clamp(lo[axis], hi[axis])
            }));
            out.push(centroid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn intrinsics(width_px: u32, height_px: u32) -> PinholeIntrinsics {
        PinholeIntrinsics {
            width_px,
            height_px,
            fx_px: 100.0,
            fy_px: 200.0,
            cx_px: 1.0,
            cy_px: 0.5,
        }
    }

    fn grid(voxel_size_m: f64) -> VoxelGrid {
        VoxelGrid::new(&VoxelGridConfig { voxel_size_m }).unwrap()
    }

    #[test]
    fn back_projection_of_a_small_image() {
        // 3 x 2 image; the middle of the top row is invalid, and so are zero and negative.
        let depth = [2.0, f32::NAN, 4.0, 1.0, 0.0, -1.0];
        let mut points = Vec::new();
        depth_to_points(&depth, &intrinsics(3, 2), &mut points).unwrap();
        let expected = [
            Point3::new((0.0 - 1.0) * 2.0 / 100.0, (0.0 - 0.5) * 2.0 / 200.0, 2.0),
            Point3::new((2.0 - 1.0) * 4.0 / 100.0, (0.0 - 0.5) * 4.0 / 200.0, 4.0),
            Point3::new((0.0 - 1.0) * 1.0 / 100.0, (1.0 - 0.5) * 1.0 / 200.0, 1.0),
        ];
        assert_eq!(points.len(), expected.len());
        for (p, e) in points.iter().zip(&expected) {
            assert!((p - e).norm() < 1e-7, "{p:?} vs {e:?}");
        }
        // The buffer is reused: a second, all-invalid frame leaves it empty.
        depth_to_points(&[f32::INFINITY; 6], &intrinsics(3, 2), &mut points).unwrap();
        assert!(points.is_empty());
    }

    #[test]
    fn depth_errors() {
        let mut points = Vec::new();
        assert!(matches!(
            depth_to_points(&[1.0; 5], &intrinsics(3, 2), &mut points),
            Err(PerceptionError::LengthMismatch {
                expected: 6,
                got: 5,
                ..
            })
        ));
        let bad = PinholeIntrinsics {
            fx_px: 0.0,
            ..intrinsics(3, 2)
        };
        assert!(matches!(
            depth_to_points(&[1.0; 6], &bad, &mut points),
            Err(PerceptionError::InvalidConfig { field: "fx_px", .. })
        ));
        let empty = intrinsics(0, 2);
        assert!(matches!(
            empty.validate(),
            Err(PerceptionError::InvalidConfig {
                field: "width_px",
                ..
            })
        ));
    }

    #[test]
    fn voxel_output_is_sorted_and_independent_of_input_order() {
        // Coordinates are multiples of 1/8, so centroids are exact whatever the summation order.
        let points: Vec<Point3<f32>> = [
            [0.125, 0.25, 0.5],
            [-0.5, 0.0, 0.0],
            [0.375, 0.25, 0.5],
            [1.5, -2.0, 0.25],
            [-0.25, 0.125, 0.875],
        ]
        .into_iter()
        .map(Point3::from)
        .collect();
        let mut vg = grid(1.0);
        let mut out = Vec::new();
        vg.downsample(&points, &mut out);
        let expected: Vec<Point3<f32>> = [
            [-0.375, 0.0625, 0.4375],
            [0.25, 0.25, 0.5],
            [1.5, -2.0, 0.25],
        ]
        .into_iter()
        .map(Point3::from)
        .collect();
        assert_eq!(out, expected);

        let mut reversed = points.clone();
        reversed.reverse();
        let mut out_reversed = Vec::new();
        vg.downsample(&reversed, &mut out_reversed);
        assert_eq!(out, out_reversed);
    }

    #[test]
    fn voxel_skips_non_finite_points_and_validates_size() {
        let points = [Point3::new(f32::NAN, 0.0, 0.0), Point3::new(0.1, 0.1, 0.1)];
        let mut out = Vec::new();
        grid(0.5).downsample(&points, &mut out);
        assert_eq!(out, vec![Point3::new(0.1, 0.1, 0.1)]);
        for voxel_size_m in [0.0, -1.0, f64::NAN] {
            assert!(VoxelGrid::new(&VoxelGridConfig { voxel_size_m }).is_err());
        }
    }

    /// Depth values including every kind of invalid one.
    fn depth_value() -> impl Strategy<Value = f32> {
        prop_oneof![
            4 => 0.05f32..50.0,
            1 => Just(0.0f32),
            1 => Just(f32::NAN),
            1 => Just(f32::INFINITY),
            1 => -10.0f32..0.0,
        ]
    }

    fn depth_image() -> impl Strategy<Value = (PinholeIntrinsics, Vec<f32>)> {
        (
            1u32..8,
            1u32..8,
            10.0f64..1000.0,
            10.0f64..1000.0,
            -4.0f64..12.0,
            -4.0f64..12.0,
        )
            .prop_flat_map(|(width_px, height_px, fx_px, fy_px, cx_px, cy_px)| {
                let intrinsics = PinholeIntrinsics {
                    width_px,
                    height_px,
                    fx_px,
                    fy_px,
                    cx_px,
                    cy_px,
                };
                let n = intrinsics.pixel_count();
                (Just(intrinsics), prop::collection::vec(depth_value(), n))
            })
    }

    fn cloud() -> impl Strategy<Value = Vec<Point3<f32>>> {
        prop::collection::vec(
            prop::array::uniform3(-20.0f32..20.0).prop_map(Point3::from),
            0..300,
        )
    }

    /// Per-axis (min, max) of a non-empty cloud.
    fn bounding_box(points: &[Point3<f32>]) -> (Point3<f32>, Point3<f32>) {
        points
            .iter()
            .fold((points[0], points[0]), |(lo, hi), p| (lo.inf(p), hi.sup(p)))
    }

    proptest! {
        #[test]
        fn depth_points_reproject_onto_their_valid_pixels((intr, depth) in depth_image()) {
            let mut points = Vec::new();
            depth_to_points(&depth, &intr, &mut points).unwrap();
            let valid: Vec<(usize, f32)> = depth
                .iter()
                .copied()
                .enumerate()
                .filter(|(_, d)| d.is_finite() && *d > 0.0)
                .collect();
            prop_assert_eq!(points.len(), valid.len());
            let width = intr.width_px as usize;
            for (p, &(pixel, d)) in points.iter().zip(&valid) {
                prop_assert_eq!(p.z, d);
                let u = f64::from(p.x) / f64::from(p.z) * intr.fx_px + intr.cx_px;
                let v = f64::from(p.y) / f64::from(p.z) * intr.fy_px + intr.cy_px;
                prop_assert!((u - (pixel % width) as f64).abs() < 1e-3, "u {}", u);
                prop_assert!((v - (pixel / width) as f64).abs() < 1e-3, "v {}", v);
            }
            if !points.is_empty() {
                // Every point lies in the frustum box spanned by the image corners and depths.
                let (z_min, z_max) = valid
                    .iter()
                    .fold((f32::INFINITY, 0.0f32), |(lo, hi), &(_, d)| (lo.min(d), hi.max(d)));
                let (lo, hi) = bounding_box(&points);
                prop_assert!(lo.z >= z_min && hi.z <= z_max);
                let x_extent = (f64::from(intr.width_px) + intr.cx_px.abs()) / intr.fx_px;
                let y_extent = (f64::from(intr.height_px) + intr.cy_px.abs()) / intr.fy_px;
                for p in &points {
                    prop_assert!(f64::from(p.x.abs()) <= x_extent * f64::from(p.z) + 1e-6);
                    prop_assert!(f64::from(p.y.abs()) <= y_extent * f64::from(p.z) + 1e-6);
                }
            }
        }

        #[test]
        fn voxel_output_lies_in_input_bounds_and_is_no_larger(
            points in cloud(),
            voxel_size_m in 0.01f64..5.0,
        ) {
            let mut vg = grid(voxel_size_m);
            let mut out = Vec::new();
            vg.downsample(&points, &mut out);
            prop_assert!(out.len() <= points.len());
            let mut voxels: Vec<[i64; 3]> = points.iter().map(|p| vg.voxel_of(p)).collect();
            voxels.sort_unstable();
            voxels.dedup();
            prop_assert_eq!(out.len(), voxels.len());
            if !points.is_empty() {
                let (lo, hi) = bounding_box(&points);
                for p in &out {
                    prop_assert!(lo.inf(p) == lo && hi.sup(p) == hi, "{:?} outside", p);
                }
            }
            // Output is in strictly increasing voxel order, one point per voxel.
            let out_voxels: Vec<[i64; 3]> = out.iter().map(|p| vg.voxel_of(p)).collect();
            prop_assert_eq!(out_voxels, voxels);
        }

        #[test]
        fn points_in_one_voxel_yield_their_centroid(
            voxel in prop::array::uniform3(-100i64..100),
            fractions in prop::collection::vec(prop::array::uniform3(0.05f64..0.95), 1..60),
            voxel_size_m in 0.01f64..2.0,
        ) {
            let points: Vec<Point3<f32>> = fractions
                .iter()
                .map(|f| {
                    Point3::from(std::array::from_fn(|axis| {
                        ((voxel[axis] as f64 + f[axis]) * voxel_size_m) as f32
                    }))
                })
                .collect();
            let mut out = Vec::new();
            grid(voxel_size_m).downsample(&points, &mut out);
            prop_assert_eq!(out.len(), 1);
            let n = points.len() as f64;
            for axis in 0..3 {
                let mean = points.iter().map(|p| f64::from(p[axis])).sum::<f64>() / n;
                let tolerance = 1e-6 * mean.abs().max(voxel_size_m);
                prop_assert!((f64::from(out[0][axis]) - mean).abs() <= tolerance);
            }
        }
    }
}
