//! The viewer's orbit camera: pure math in the scene's Z-up world frame.
//!
//! The camera orbits a target point: `eye = target + distance · (cos p cos y, cos p sin y,
//! sin p)` for yaw `y` (about +z, from +x) and pitch `p` (elevation), looks at the target
//! with +z up, and has a vertical field of view of [`FOV_Y_RAD`]. The first view is
//! [`OrbitCamera::framing`] of the scene's bounds; `rivet view --screenshot --json` prints the
//! resulting eye, target and field of view, so a picture can be checked by projecting known
//! world points (the tests check this projection against bevy's camera matrices).

use bevy::math::Vec3;

/// Vertical field of view (rad): 45°.
pub const FOV_Y_RAD: f32 = std::f32::consts::FRAC_PI_4;
/// Yaw of the first view (rad): looking from +x, a little from -y, toward the scene.
pub const INITIAL_YAW_RAD: f32 = -0.25;
/// Pitch of the first view (rad): 30° above the horizon.
pub const INITIAL_PITCH_RAD: f32 = 0.52;
/// Pitch is kept inside ±85° (the view never flips over the pole).
pub const MAX_PITCH_RAD: f32 = 1.48;
/// Closest and farthest orbit distances (m).
pub const DISTANCE_RANGE_M: [f32; 2] = [0.05, 500.0];

/// An orbit camera's state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OrbitCamera {
    /// The point orbited and looked at (world, m).
    pub target: Vec3,
    /// Distance from the target to the eye (m).
    pub distance_m: f32,
    /// Azimuth of the eye about +z, from +x (rad).
    pub yaw_rad: f32,
    /// Elevation of the eye above the target's horizontal plane (rad).
    pub pitch_rad: f32,
}

impl OrbitCamera {
    /// The first view of a scene whose drawables lie within `bounds` (`[min, max]`, m): looks
    /// at the bounds' centre from [`INITIAL_YAW_RAD`] and [`INITIAL_PITCH_RAD`], as close as
    /// the bounding sphere still fits the view (`aspect` = width / height). Without bounds
    /// (an empty scene), a 4 m view of the origin.
    pub fn framing(bounds: Option<[[f64; 3]; 2]>, aspect: f32) -> Self {
        let (target, radius) = match bounds {
            Some([lo, hi]) => {
                let lo = Vec3::new(lo[0] as f32, lo[1] as f32, lo[2] as f32);
                let hi = Vec3::new(hi[0] as f32, hi[1] as f32, hi[2] as f32);
                ((lo + hi) * 0.5, ((hi - lo) * 0.5).length().max(0.05))
            }
            None => (Vec3::ZERO, 1.0),
        };
        // Half of the narrower field of view: the vertical one, or the horizontal one on a
        // window taller than wide.
        let half_fov_y = FOV_Y_RAD * 0.5;
        let half_fov_x = (half_fov_y.tan() * aspect.max(1e-3)).atan();
        let half_fov = half_fov_y.min(half_fov_x);
        Self {
            target,
            distance_m: (radius / half_fov.sin()).clamp(DISTANCE_RANGE_M[0], DISTANCE_RANGE_M[1]),
            yaw_rad: INITIAL_YAW_RAD,
            pitch_rad: INITIAL_PITCH_RAD,
        }
    }

    /// Unit vector from the target to the eye.
    pub fn back(&self) -> Vec3 {
        let (sy, cy) = self.yaw_rad.sin_cos();
        let (sp, cp) = self.pitch_rad.sin_cos();
        Vec3::new(cp * cy, cp * sy, sp)
    }

    /// The eye position (world, m).
    pub fn eye(&self) -> Vec3 {
        self.target + self.distance_m * self.back()
    }

    /// The camera's right and up unit vectors (world frame; up is +z tilted toward the view).
    pub fn right_up(&self) -> (Vec3, Vec3) {
        let forward = -self.back();
        let right = forward.cross(Vec3::Z).normalize_or(Vec3::X);
        (right, right.cross(forward))
    }

    /// Turns the view: yaw and pitch change by the given angles (rad); pitch stays within
    /// ±[`MAX_PITCH_RAD`].
    pub fn orbit(&mut self, delta_yaw_rad: f32, delta_pitch_rad: f32) {
        self.yaw_rad = (self.yaw_rad + delta_yaw_rad).rem_euclid(std::f32::consts::TAU);
        self.pitch_rad = (self.pitch_rad + delta_pitch_rad).clamp(-MAX_PITCH_RAD, MAX_PITCH_RAD);
    }

    /// Slides the target (and eye) in the view plane by fractions of the view's height at the
    /// target's depth: `right` along the screen's x, `up` along its y. A drag across the
    /// whole window height moves the scene by one view height, so it follows the mouse.
    pub fn pan(&mut self, right: f32, up: f32) {
        let height_m = 2.0 * self.distance_m * (FOV_Y_RAD * 0.5).tan();
        let (r, u) = self.right_up();
        self.target += (r * right + u * up) * height_m;
    }

    /// Moves the eye toward the target (`factor` < 1) or away (> 1), within
    /// [`DISTANCE_RANGE_M`].
    pub fn zoom(&mut self, factor: f32) {
        if factor.is_finite() && factor > 0.0 {
            self.distance_m =
                (self.distance_m * factor).clamp(DISTANCE_RANGE_M[0], DISTANCE_RANGE_M[1]);
        }
    }

    /// The pixel (x right, y down, origin at the top-left corner, in pixels of a
    /// `width` × `height` image) where the world point `p` appears, or `None` behind the eye.
    #[cfg(test)]
    pub fn project(&self, p: Vec3, width: f32, height: f32) -> Option<[f32; 2]> {
        let forward = -self.back();
        let (right, up) = self.right_up();
        let d = p - self.eye();
        let depth = d.dot(forward);
        if depth <= 1e-6 {
            return None;
        }
        let f = 0.5 * height / (FOV_Y_RAD * 0.5).tan();
        Some([
            0.5 * width + f * d.dot(right) / depth,
            0.5 * height - f * d.dot(up) / depth,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bevy::math::{Mat4, Vec4};
    use bevy::transform::components::Transform;

    fn close(a: Vec3, b: Vec3, tol: f32) -> bool {
        (a - b).length() < tol
    }

    #[test]
    fn framing_centres_the_bounds_and_fits_their_sphere() {
        let cam = OrbitCamera::framing(Some([[-1.0, -2.0, 0.0], [1.0, 2.0, 2.0]]), 16.0 / 9.0);
        assert!(close(cam.target, Vec3::new(0.0, 0.0, 1.0), 1e-6));
        let radius = Vec3::new(1.0, 2.0, 1.0).length();
        // The sphere touches the top and bottom of the view (vertical fov is the narrower).
        assert!((cam.distance_m - radius / (FOV_Y_RAD * 0.5).sin()).abs() < 1e-4);
        // Every corner of the bounds projects inside the image.
        for corner in 0..8 {
            let c = Vec3::new(
                if corner & 1 == 0 { -1.0 } else { 1.0 },
                if corner & 2 == 0 { -2.0 } else { 2.0 },
                if corner & 4 == 0 { 0.0 } else { 2.0 },
            );
            let [x, y] = cam.project(c, 960.0, 540.0).unwrap();
            assert!(
                (0.0..=960.0).contains(&x) && (0.0..=540.0).contains(&y),
                "{c} -> {x},{y}"
            );
        }
        // A tall window: the horizontal fov limits, so the camera backs off.
        let tall = OrbitCamera::framing(Some([[-1.0, -2.0, 0.0], [1.0, 2.0, 2.0]]), 0.5);
        assert!(tall.distance_m > cam.distance_m);
        // No bounds: a view of the origin.
        assert_eq!(OrbitCamera::framing(None, 1.0).target, Vec3::ZERO);
    }

    #[test]
    fn eye_is_at_distance_and_elevation() {
        let cam = OrbitCamera {
            target: Vec3::new(1.0, 2.0, 3.0),
            distance_m: 2.0,
            yaw_rad: 0.0,
            pitch_rad: std::f32::consts::FRAC_PI_6,
        };
        let eye = cam.eye();
        assert!(((eye - cam.target).length() - 2.0).abs() < 1e-5);
        assert!(
            (eye.z - 3.0 - 1.0).abs() < 1e-5,
            "sin 30° · 2 m above: {eye}"
        );
        assert!(eye.y == 2.0 && eye.x > 1.0, "yaw 0 looks from +x: {eye}");
    }

    #[test]
    fn orbit_wraps_yaw_and_clamps_pitch() {
        let mut cam = OrbitCamera::framing(None, 1.0);
        cam.orbit(10.0 * std::f32::consts::TAU + 0.5, 5.0);
        assert!((0.0..std::f32::consts::TAU).contains(&cam.yaw_rad));
        assert_eq!(cam.pitch_rad, MAX_PITCH_RAD);
        cam.orbit(0.0, -10.0);
        assert_eq!(cam.pitch_rad, -MAX_PITCH_RAD);
    }

    #[test]
    fn pan_moves_target_in_the_view_plane_and_zoom_clamps() {
        let mut cam = OrbitCamera::framing(None, 1.0);
        let before = cam;
        cam.pan(0.25, -0.5);
        let moved = cam.target - before.target;
        // In the view plane: no component along the view direction.
        assert!(moved.dot(before.back()).abs() < 1e-5);
        let height_m = 2.0 * cam.distance_m * (FOV_Y_RAD * 0.5).tan();
        assert!((moved.length() - height_m * (0.25f32.hypot(0.5))).abs() < 1e-4);
        // The target stays under the same pixel relative to the eye (the view slid).
        assert!(close(
            cam.eye() - cam.target,
            before.eye() - before.target,
            1e-5
        ));
        cam.zoom(1e-9);
        assert_eq!(cam.distance_m, DISTANCE_RANGE_M[0]);
        cam.zoom(1e12);
        assert_eq!(cam.distance_m, DISTANCE_RANGE_M[1]);
        cam.zoom(f32::NAN);
        assert_eq!(cam.distance_m, DISTANCE_RANGE_M[1]);
    }

    /// The closed-form projection agrees with bevy's own: the camera transform
    /// `looking_at(target, Z)` and `Mat4::perspective_rh` with the same fov, as the viewer
    /// sets them up.
    #[test]
    fn projection_matches_bevys_camera_matrices() {
        let cam = OrbitCamera {
            target: Vec3::new(0.3, -0.2, 0.4),
            distance_m: 2.5,
            yaw_rad: INITIAL_YAW_RAD,
            pitch_rad: INITIAL_PITCH_RAD,
        };
        let (w, h) = (960.0, 540.0);
        let view = Transform::from_translation(cam.eye())
            .looking_at(cam.target, Vec3::Z)
            .to_matrix()
            .inverse();
        let clip_from_view = Mat4::perspective_rh(FOV_Y_RAD, w / h, 0.05, 100.0);
        for p in [
            Vec3::ZERO,
            Vec3::new(0.5, 0.5, 0.1),
            Vec3::new(-0.4, 0.3, 0.9),
            cam.target,
        ] {
            let clip = clip_from_view * view * Vec4::new(p.x, p.y, p.z, 1.0);
            let ndc = clip.truncate() / clip.w;
            let expected = [(ndc.x + 1.0) * 0.5 * w, (1.0 - ndc.y) * 0.5 * h];
            let got = cam.project(p, w, h).unwrap();
            assert!(
                (got[0] - expected[0]).abs() < 0.05 && (got[1] - expected[1]).abs() < 0.05,
                "{p}: {got:?} vs {expected:?}"
            );
        }
        // The target is at the image centre; a point behind the eye has no pixel.
        let c = cam.project(cam.target, w, h).unwrap();
        assert!((c[0] - 480.0).abs() < 1e-3 && (c[1] - 270.0).abs() < 1e-3);
        assert!(cam.project(cam.eye() + cam.back(), w, h).is_none());
    }
}
