//! The one seam between math libraries: rapier's glam types, scene `f64` arrays and the plain
//! arrays other crates (rerun, control) take. Convert here, not ad hoc.

use rapier3d::math::{Pose, Rotation, Vector};

/// A rigid transform as plain arrays: translation (m) and unit quaternion `[x, y, z, w]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Transform {
    /// Translation (m).
    pub translation: [f32; 3],
    /// Rotation as a unit quaternion `[x, y, z, w]`.
    pub rotation: [f32; 4],
}

impl Transform {
    /// The identity transform.
    pub const IDENTITY: Self = Self {
        translation: [0.0; 3],
        rotation: [0.0, 0.0, 0.0, 1.0],
    };

    /// Builds a transform from a position (m) and URDF roll-pitch-yaw (rad): the rotation is
    /// `Rz(yaw) · Ry(pitch) · Rx(roll)`.
    pub fn from_xyz_rpy(xyz: [f64; 3], rpy: [f64; 3]) -> Self {
        pose_to_transform(&pose_from_xyz_rpy(xyz, rpy))
    }
}

/// A rapier pose from a position (m) and URDF roll-pitch-yaw (rad).
pub fn pose_from_xyz_rpy(xyz: [f64; 3], rpy: [f64; 3]) -> Pose {
    let rotation = Rotation::from_rotation_z(rpy[2] as f32)
        * Rotation::from_rotation_y(rpy[1] as f32)
        * Rotation::from_rotation_x(rpy[0] as f32);
    Pose::from_parts(vec3(xyz), rotation)
}

/// A rapier vector from an `f64` array.
pub fn vec3(v: [f64; 3]) -> Vector {
    Vector::new(v[0] as f32, v[1] as f32, v[2] as f32)
}

/// A rapier pose as plain arrays.
pub fn pose_to_transform(pose: &Pose) -> Transform {
    let t = pose.translation;
    let r = pose.rotation;
    Transform {
        translation: [t.x, t.y, t.z],
        rotation: [r.x, r.y, r.z, r.w],
    }
}

/// Plain arrays as a rapier pose.
pub fn transform_to_pose(t: &Transform) -> Pose {
    let [x, y, z, w] = t.rotation;
    Pose::from_parts(
        Vector::new(t.translation[0], t.translation[1], t.translation[2]),
        Rotation::from_xyzw(x, y, z, w).normalize(),
    )
}

/// A transform as an `f64` nalgebra isometry (the control crate's type).
pub fn isometry(t: &Transform) -> nalgebra::Isometry3<f64> {
    let [x, y, z] = t.translation.map(f64::from);
    let [qx, qy, qz, qw] = t.rotation.map(f64::from);
    nalgebra::Isometry3::from_parts(
        nalgebra::Translation3::new(x, y, z),
        nalgebra::UnitQuaternion::from_quaternion(nalgebra::Quaternion::new(qw, qx, qy, qz)),
    )
}

/// The inverse of [`isometry`]: an f64 nalgebra isometry as a seam [`Transform`].
pub fn transform_from_isometry(iso: &nalgebra::Isometry3<f64>) -> Transform {
    let t = iso.translation.vector;
    let q = iso.rotation.quaternion();
    Transform {
        translation: [t.x as f32, t.y as f32, t.z as f32],
        rotation: [q.i as f32, q.j as f32, q.k as f32, q.w as f32],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpy_matches_urdf_convention() {
        // yaw of 90 degrees maps +x to +y.
        let p = pose_from_xyz_rpy([0.0; 3], [0.0, 0.0, std::f64::consts::FRAC_PI_2]);
        let v = p.rotation * Vector::X;
        assert!((v - Vector::Y).length() < 1e-6);
        // roll then pitch: Ry(90°)·Rx(90°) maps +y to +x... check composition order explicitly.
        let p = pose_from_xyz_rpy(
            [0.0; 3],
            [
                std::f64::consts::FRAC_PI_2,
                std::f64::consts::FRAC_PI_2,
                0.0,
            ],
        );
        let v = p.rotation * Vector::Y;
        // Rx(90°)·y = z; Ry(90°)·z = x.
        assert!((v - Vector::X).length() < 1e-6, "{v:?}");
    }

    #[test]
    fn transform_round_trip() {
        let t = Transform::from_xyz_rpy([1.0, 2.0, 3.0], [0.1, 0.2, 0.3]);
        let back = pose_to_transform(&transform_to_pose(&t));
        for i in 0..3 {
            assert!((t.translation[i] - back.translation[i]).abs() < 1e-6);
        }
        for i in 0..4 {
            assert!((t.rotation[i] - back.rotation[i]).abs() < 1e-6);
        }
    }
}
