//! Triangle meshes for the renderer: primitives tessellated at their true size (so every
//! instance transform is rigid and normals need no inverse-transpose) and meshes from files.
//!
//! Triangles wind counter-clockwise seen from outside (right-hand rule gives the outward
//! normal). Curved primitives are approximations: a sphere, cylinder or capsule is a polyhedron
//! inscribed in the true shape, so its depth is up to `r (1 - cos(pi / segments))` too far at
//! the worst pixel; boxes and planes are exact.

use std::f32::consts::{PI, TAU};

/// A triangle list with per-vertex normals, in the mesh's own frame (m).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MeshData {
    /// Vertex positions (m).
    pub positions: Vec<[f32; 3]>,
    /// Unit vertex normals, one per position.
    pub normals: Vec<[f32; 3]>,
    /// Triangles as vertex indices, three per triangle.
    pub indices: Vec<u32>,
}

/// Segments around the axis of tessellated spheres, cylinders and capsules.
pub const ROUND_SEGMENTS: u32 = 32;

impl MeshData {
    /// A box centred on the origin with half extents along x, y, z (m): 24 vertices, 12 triangles.
    pub fn cuboid(half_extents: [f32; 3]) -> Self {
        let [hx, hy, hz] = half_extents;
        let mut mesh = Self::default();
        // Each face: outward normal and two in-plane axes (u x v = normal) with their half sizes.
        let faces: [([f32; 3], [f32; 3], [f32; 3]); 6] = [
            ([1.0, 0.0, 0.0], [0.0, hy, 0.0], [0.0, 0.0, hz]),
            ([-1.0, 0.0, 0.0], [0.0, 0.0, hz], [0.0, hy, 0.0]),
            ([0.0, 1.0, 0.0], [0.0, 0.0, hz], [hx, 0.0, 0.0]),
            ([0.0, -1.0, 0.0], [hx, 0.0, 0.0], [0.0, 0.0, hz]),
            ([0.0, 0.0, 1.0], [hx, 0.0, 0.0], [0.0, hy, 0.0]),
            ([0.0, 0.0, -1.0], [0.0, hy, 0.0], [hx, 0.0, 0.0]),
        ];
        for (n, u, v) in faces {
            let centre = [n[0] * hx, n[1] * hy, n[2] * hz];
            let base = mesh.positions.len() as u32;
            for (su, sv) in [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)] {
                mesh.positions.push([
                    centre[0] + su * u[0] + sv * v[0],
                    centre[1] + su * u[1] + sv * v[1],
                    centre[2] + su * u[2] + sv * v[2],
                ]);
                mesh.normals.push(n);
            }
            mesh.indices
                .extend_from_slice(&[base, base + 1, base + 2, base, base + 2, base + 3]);
        }
        mesh
    }

    /// A square in the z = 0 plane, centred on the origin, `half_size_m` from centre to edge,
    /// facing +z (seen from both sides).
    pub fn plane(half_size_m: f32) -> Self {
        let h = half_size_m;
        Self {
            positions: vec![[-h, -h, 0.0], [h, -h, 0.0], [h, h, 0.0], [-h, h, 0.0]],
            normals: vec![[0.0, 0.0, 1.0]; 4],
            indices: vec![0, 1, 2, 0, 2, 3],
        }
    }

    /// A UV sphere of radius `radius` (m) with smooth normals.
    pub fn sphere(radius: f32) -> Self {
        Self::capsule(radius, 0.0)
    }

    /// A capsule along z: a cylinder of half length `half_length` (m) capped by hemispheres of
    /// radius `radius` (m), smooth normals. `half_length = 0` is a sphere.
    pub fn capsule(radius: f32, half_length: f32) -> Self {
        let segments = ROUND_SEGMENTS;
        let rings = ROUND_SEGMENTS / 2; // per hemisphere, pole to equator
        let mut mesh = Self::default();
        // Rings from the top pole (k = 0) to the bottom pole (k = 2 * rings + 1); the two
        // equator rings are offset by +-half_length.
        let ring_count = 2 * rings + 2;
        for k in 0..ring_count {
            let (polar, offset) = if k <= rings {
                (PI * 0.5 * k as f32 / rings as f32, half_length)
            } else {
                (PI * 0.5 * (k - 1) as f32 / rings as f32, -half_length)
            };
            let (sin_p, cos_p) = polar.sin_cos();
            for s in 0..=segments {
                let azimuth = TAU * s as f32 / segments as f32;
                let (sin_a, cos_a) = azimuth.sin_cos();
                let n = [sin_p * cos_a, sin_p * sin_a, cos_p];
                mesh.positions
                    .push([radius * n[0], radius * n[1], radius * n[2] + offset]);
                mesh.normals.push(n);
            }
        }
        let stride = segments + 1;
        for k in 0..ring_count - 1 {
            for s in 0..segments {
                let a = k * stride + s;
                let b = a + stride;
                mesh.indices
                    .extend_from_slice(&[a, b, a + 1, a + 1, b, b + 1]);
            }
        }
        mesh
    }

    /// A closed cylinder along z with radius `radius` and half length `half_length` (m): smooth
    /// side normals, flat caps.
    pub fn cylinder(radius: f32, half_length: f32) -> Self {
        let segments = ROUND_SEGMENTS;
        let mut mesh = Self::default();
        for s in 0..=segments {
            let (sin_a, cos_a) = (TAU * s as f32 / segments as f32).sin_cos();
            for z in [half_length, -half_length] {
                mesh.positions.push([radius * cos_a, radius * sin_a, z]);
                mesh.normals.push([cos_a, sin_a, 0.0]);
            }
        }
        for s in 0..segments {
            let a = 2 * s;
            mesh.indices
                .extend_from_slice(&[a, a + 1, a + 2, a + 2, a + 1, a + 3]);
        }
        for (z, nz) in [(half_length, 1.0f32), (-half_length, -1.0)] {
            let centre = mesh.positions.len() as u32;
            mesh.positions.push([0.0, 0.0, z]);
            mesh.normals.push([0.0, 0.0, nz]);
            for s in 0..=segments {
                let (sin_a, cos_a) = (TAU * s as f32 / segments as f32).sin_cos();
                mesh.positions.push([radius * cos_a, radius * sin_a, z]);
                mesh.normals.push([0.0, 0.0, nz]);
            }
            for s in 0..segments {
                let (a, b) = (centre + 1 + s, centre + 2 + s);
                if nz > 0.0 {
                    mesh.indices.extend_from_slice(&[centre, a, b]);
                } else {
                    mesh.indices.extend_from_slice(&[centre, b, a]);
                }
            }
        }
        mesh
    }

    /// A mesh from a triangle soup (e.g. an STL, OBJ or DAE file), flat shaded: every triangle
    /// gets its own three vertices and its face normal. Degenerate triangles are dropped, and
    /// so are triangles with an index out of range.
    pub fn from_triangles(positions: &[[f32; 3]], triangles: &[[u32; 3]]) -> Self {
        let mut mesh = Self::default();
        for t in triangles {
            let Some(p) = t
                .iter()
                .map(|&i| positions.get(i as usize).copied())
                .collect::<Option<Vec<_>>>()
            else {
                continue;
            };
            let e1 = sub(p[1], p[0]);
            let e2 = sub(p[2], p[0]);
            let n = cross(e1, e2);
            let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
            if !(len.is_finite() && len > 0.0) {
                continue;
            }
            let n = [n[0] / len, n[1] / len, n[2] / len];
            let base = mesh.positions.len() as u32;
            mesh.positions.extend_from_slice(&p);
            mesh.normals.extend_from_slice(&[n, n, n]);
            mesh.indices.extend_from_slice(&[base, base + 1, base + 2]);
        }
        mesh
    }

    /// Number of triangles.
    pub fn triangle_count(&self) -> usize {
        self.indices.len() / 3
    }
}

fn sub(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn cross(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every triangle's winding agrees with its vertex normals (counter-clockwise seen from
    /// outside), so the shader's front-facing test picks the outward normal.
    fn assert_outward(mesh: &MeshData) {
        for t in mesh.indices.chunks_exact(3) {
            let p: Vec<[f32; 3]> = t.iter().map(|&i| mesh.positions[i as usize]).collect();
            let face = cross(sub(p[1], p[0]), sub(p[2], p[0]));
            let n = mesh.normals[t[0] as usize];
            let area = (face[0].powi(2) + face[1].powi(2) + face[2].powi(2)).sqrt();
            if area < 1e-9 {
                continue; // pole triangles of the UV sphere
            }
            let d = face[0] * n[0] + face[1] * n[1] + face[2] * n[2];
            assert!(d > 0.0, "triangle {t:?} winds against its normal {n:?}");
        }
    }

    #[test]
    fn primitives_wind_outward_and_have_the_right_size() {
        let b = MeshData::cuboid([0.1, 0.2, 0.3]);
        assert_eq!(b.triangle_count(), 12);
        assert_outward(&b);
        for p in &b.positions {
            assert!((p[0].abs() - 0.1).abs() < 1e-6);
            assert!((p[1].abs() - 0.2).abs() < 1e-6);
            assert!((p[2].abs() - 0.3).abs() < 1e-6);
        }
        assert_outward(&MeshData::plane(2.0));
        let s = MeshData::sphere(0.5);
        assert_outward(&s);
        for p in &s.positions {
            let r = (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt();
            assert!((r - 0.5).abs() < 1e-5);
        }
        assert_outward(&MeshData::capsule(0.2, 0.4));
        assert_outward(&MeshData::cylinder(0.2, 0.4));
        let soup = MeshData::from_triangles(
            &[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
            &[[0, 1, 2], [0, 0, 1], [0, 1, 7]],
        );
        assert_eq!(
            soup.triangle_count(),
            1,
            "degenerate and out-of-range dropped"
        );
        assert_eq!(soup.normals[0], [0.0, 0.0, 1.0]);
    }
}
