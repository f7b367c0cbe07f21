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
            // The lower hemisphere mirrors the upper one, and the poles and equator are exact,
            // so the surface closes (see `is_closed_outward`).
            let (j, mirror, offset) = if k <= rings {
                (k, 1.0, half_length)
            } else {
                (2 * rings + 1 - k, -1.0, -half_length)
            };
            let (sin_p, cos_p) = match j {
                0 => (0.0, 1.0),
                j if j == rings => (1.0, 0.0),
                j => (PI * 0.5 * j as f32 / rings as f32).sin_cos(),
            };
            let cos_p = mirror * cos_p;
            for s in 0..=segments {
                let (sin_a, cos_a) = azimuth(s, segments);
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
            let (sin_a, cos_a) = azimuth(s, segments);
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
                let (sin_a, cos_a) = azimuth(s, segments);
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

    /// Whether the mesh is a closed surface wound outward, so that from outside it no back
    /// face can be seen and the renderer may cull back faces. Vertices are matched by exact
    /// position (seams and flat-shaded faces repeat positions); triangles with a repeated
    /// position have no area and are ignored. Closed means every remaining edge is used once in
    /// each direction (a watertight, consistently wound surface); outward means its signed
    /// volume is positive. Open, inconsistent or inward-wound meshes are drawn two-sided.
    pub fn is_closed_outward(&self) -> bool {
        // -0.0 and 0.0 are the same position.
        let key = |i: u32| self.positions[i as usize].map(|x| (x + 0.0).to_bits());
        let mut keys: Vec<[u32; 3]> = (0..self.positions.len() as u32).map(key).collect();
        keys.sort_unstable();
        keys.dedup();
        let id = |i: u32| keys.binary_search(&key(i)).unwrap_or(usize::MAX);
        let mut edges = Vec::with_capacity(self.indices.len());
        let mut six_volume = 0.0f64;
        for t in self.indices.chunks_exact(3) {
            let v = [id(t[0]), id(t[1]), id(t[2])];
            if v[0] == v[1] || v[1] == v[2] || v[0] == v[2] {
                continue;
            }
            edges.extend_from_slice(&[(v[0], v[1]), (v[1], v[2]), (v[2], v[0])]);
            let p = [t[0], t[1], t[2]].map(|i| self.positions[i as usize].map(f64::from));
            six_volume += p[0][0] * (p[1][1] * p[2][2] - p[1][2] * p[2][1])
                - p[0][1] * (p[1][0] * p[2][2] - p[1][2] * p[2][0])
                + p[0][2] * (p[1][0] * p[2][1] - p[1][1] * p[2][0]);
        }
        edges.sort_unstable();
        let once = edges.windows(2).all(|w| w[0] != w[1]);
        !edges.is_empty()
            && once
            && six_volume > 0.0
            && edges
                .iter()
                .all(|&(a, b)| edges.binary_search(&(b, a)).is_ok())
    }
}

/// Sine and cosine of segment `s` of `segments` around a full turn; the last segment's end
/// (`s == segments`) is exactly the first's start, so seams close.
fn azimuth(s: u32, segments: u32) -> (f32, f32) {
    (TAU * (s % segments) as f32 / segments as f32).sin_cos()
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

    #[test]
    fn closed_outward_meshes_are_told_from_open_and_inward_ones() {
        assert!(MeshData::cuboid([0.1, 0.2, 0.3]).is_closed_outward());
        assert!(MeshData::sphere(0.5).is_closed_outward());
        assert!(MeshData::capsule(0.2, 0.4).is_closed_outward());
        assert!(MeshData::cylinder(0.2, 0.4).is_closed_outward());
        assert!(!MeshData::plane(2.0).is_closed_outward(), "open");
        assert!(!MeshData::default().is_closed_outward(), "empty");
        // A tetrahedron from a triangle soup (flat shaded: every triangle its own vertices).
        let corners = [
            [0.0, 0.0, 0.0],
            [1.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [0.0, 0.0, 1.0],
        ];
        let outward = [[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]];
        assert!(MeshData::from_triangles(&corners, &outward).is_closed_outward());
        let inward = outward.map(|[a, b, c]| [a, c, b]);
        assert!(!MeshData::from_triangles(&corners, &inward).is_closed_outward());
        let mut one_flipped = outward;
        one_flipped[3] = [1, 3, 2];
        assert!(!MeshData::from_triangles(&corners, &one_flipped).is_closed_outward());
        assert!(!MeshData::from_triangles(&corners, &outward[..3]).is_closed_outward());
        let mut twice = outward.to_vec();
        twice.extend_from_slice(&outward);
        assert!(
            !MeshData::from_triangles(&corners, &twice).is_closed_outward(),
            "an edge used twice in one direction is not a closed surface"
        );
    }
}
