//! Cartesian straight-line moves of a tool frame, tracked through IK.

use nalgebra::{Isometry3, Translation3};

use super::waypoints::min_jerk;
use crate::ik::{IkError, IkSolver, IkTarget};
use crate::model::RobotTree;

/// A straight line of a frame's origin from one pose to another, orientation slerped, with
/// minimum-jerk timing (rest to rest). Joint positions come from IK at each sample, warm-started
/// from the previous sample's solution, so consecutive solutions stay on one IK branch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CartesianLine {
    from: Isometry3<f64>,
    to: Isometry3<f64>,
    duration_secs: f64,
}

impl CartesianLine {
    /// A line taking `duration_secs` (> 0).
    pub fn new(from: Isometry3<f64>, to: Isometry3<f64>, duration_secs: f64) -> Self {
        Self {
            from,
            to,
            duration_secs,
        }
    }

    /// A line at an average speed (m/s, > 0), lasting at least `min_secs`. Minimum-jerk timing
    /// peaks at 1.875 times the average speed.
    pub fn at_speed(from: Isometry3<f64>, to: Isometry3<f64>, speed: f64, min_secs: f64) -> Self {
        let length = (to.translation.vector - from.translation.vector).norm();
        Self::new(from, to, (1.875 * length / speed).max(min_secs))
    }

    /// Duration (s).
    pub fn duration_secs(&self) -> f64 {
        self.duration_secs
    }

    /// The end pose.
    pub fn end(&self) -> &Isometry3<f64> {
        &self.to
    }

    /// The pose at progress `u` in [0, 1] (time / duration; clamped).
    pub fn pose_at_progress(&self, u: f64) -> Isometry3<f64> {
        let (s, _) = min_jerk(u);
        let p = self
            .from
            .translation
            .vector
            .lerp(&self.to.translation.vector, s);
        let r = self.from.rotation.slerp(&self.to.rotation, s);
        Isometry3::from_parts(Translation3::from(p), r)
    }

    /// The pose at time `t` (s) from the start.
    pub fn pose_at(&self, t: f64) -> Isometry3<f64> {
        self.pose_at_progress(t / self.duration_secs)
    }

    /// Joint positions at progress `u`: IK for the solver's frame warm-started at `warm`. On
    /// success the solution is written to `q_out` and becomes the next warm start.
    pub fn track(
        &self,
        u: f64,
        tree: &RobotTree,
        ik: &mut IkSolver,
        warm: &mut [f64],
        q_out: &mut [f64],
    ) -> Result<(), IkError> {
        ik.solve(tree, &IkTarget::Pose(self.pose_at_progress(u)), warm, q_out)?;
        warm.copy_from_slice(q_out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ik::IkOptions;

    #[test]
    fn the_tool_moves_along_the_line_and_ends_at_rest() {
        // The project's own 6-DoF arm (in the repository), at its tool-down home pose.
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scenes/robots/rivet_arm6.urdf");
        let tree = RobotTree::from_urdf_file(&path).unwrap();
        let frame = tree.frame_by_name("tool0").unwrap();
        let mut data = tree.data();
        let q0 = [
            -0.2201,
            -1.1021,
            1.194,
            -1.6628,
            std::f64::consts::FRAC_PI_2,
            -1.7909,
            0.04,
            0.04,
        ];
        tree.forward_kinematics(&q0, &mut data);
        let from = tree.frame_pose(frame, &data);
        let to = Translation3::new(0.0, 0.0, -0.05) * from;
        let line = CartesianLine::at_speed(from, to, 0.1, 0.2);
        assert!((line.duration_secs() - 0.9375).abs() < 1e-12);
        assert_eq!(line.pose_at(-1.0), from);
        assert_eq!(line.pose_at(10.0), to);
        let mut ik = IkSolver::new(&tree, frame, IkOptions::default());
        let mut warm = q0.to_vec();
        let mut q = vec![0.0; q0.len()];
        for k in 0..=20 {
            let u = f64::from(k) / 20.0;
            line.track(u, &tree, &mut ik, &mut warm, &mut q).unwrap();
            assert_eq!(warm, q);
            tree.forward_kinematics(&q, &mut data);
            let p = tree.frame_pose(frame, &data).translation.vector;
            // On the segment: no sideways deviation.
            let along = to.translation.vector - from.translation.vector;
            let rel = p - from.translation.vector;
            let off = (rel - along * (rel.dot(&along) / along.norm_squared())).norm();
            assert!(off < 2e-4, "{off} m off the line at u = {u}");
        }
    }
}
