//! Forward kinematics and geometric Jacobians.

use nalgebra::{Isometry3, Matrix6xX, Translation3, UnitQuaternion, Vector3};

use super::{FrameId, Motion, RobotTree, TreeData};

/// Pose of a body in its parent body frame for joint position `x`.
#[inline]
pub(crate) fn local_pose(
    origin: &Isometry3<f64>,
    motion: Motion,
    axis: &Vector3<f64>,
    x: f64,
) -> Isometry3<f64> {
    match motion {
        Motion::Root => Isometry3::identity(),
        Motion::Revolute => {
            let (s, c) = (0.5 * x).sin_cos();
            let q = UnitQuaternion::new_unchecked(nalgebra::Quaternion::new(
                c,
                axis.x * s,
                axis.y * s,
                axis.z * s,
            ));
            Isometry3::from_parts(origin.translation, origin.rotation * q)
        }
        Motion::Prismatic => Isometry3::from_parts(
            Translation3::from(origin.translation.vector + origin.rotation * (axis * x)),
            origin.rotation,
        ),
    }
}

impl RobotTree {
    /// Forward kinematics: the pose of every body for coordinates `q` (length
    /// [`RobotTree::dof_count`]). Read link and frame poses with [`RobotTree::frame_pose`]
    /// afterwards.
    pub fn forward_kinematics(&self, q: &[f64], data: &mut TreeData) {
        assert_eq!(q.len(), self.dof_count(), "q has the wrong length");
        for (b, body) in self.bodies.iter().enumerate() {
            if body.motion == Motion::Root {
                data.body_local[b] = Isometry3::identity();
                data.body_pose[b] = Isometry3::identity();
                continue;
            }
            let x = body.mult * q[body.dof] + body.offset;
            let local = local_pose(&body.origin, body.motion, &body.axis, x);
            data.body_local[b] = local;
            data.body_pose[b] = data.body_pose[body.parent] * local;
        }
    }

    /// Pose of a frame in the root frame, from the last [`RobotTree::forward_kinematics`].
    pub fn frame_pose(&self, frame: FrameId, data: &TreeData) -> Isometry3<f64> {
        let f = &self.frames[frame.0 as usize];
        data.body_pose[f.body] * f.in_body
    }

    /// Writes the pose of every frame (links first, in file order) into `out`.
    pub fn frame_poses(&self, data: &TreeData, out: &mut [Isometry3<f64>]) {
        for (f, slot) in self.frames.iter().zip(out.iter_mut()) {
            *slot = data.body_pose[f.body] * f.in_body;
        }
    }

    /// Geometric Jacobian of `frame` in the root frame: rows 0..3 map `qd` to the linear velocity
    /// of the frame origin, rows 3..6 to the angular velocity. Uses the poses of the last
    /// [`RobotTree::forward_kinematics`]. `out` must be `6 x dof_count`.
    pub fn frame_jacobian(&self, frame: FrameId, data: &TreeData, out: &mut Matrix6xX<f64>) {
        assert_eq!(
            out.ncols(),
            self.dof_count(),
            "Jacobian has the wrong width"
        );
        out.fill(0.0);
        let f = &self.frames[frame.0 as usize];
        let p = (data.body_pose[f.body] * f.in_body).translation.vector;
        let mut b = f.body;
        while b != usize::MAX {
            let body = &self.bodies[b];
            match body.motion {
                Motion::Root => {}
                Motion::Revolute => {
                    let pose = &data.body_pose[b];
                    let z = pose.rotation * body.axis * body.mult;
                    let lin = z.cross(&(p - pose.translation.vector));
                    let mut col = out.column_mut(body.dof);
                    col[0] += lin.x;
                    col[1] += lin.y;
                    col[2] += lin.z;
                    col[3] += z.x;
                    col[4] += z.y;
                    col[5] += z.z;
                }
                Motion::Prismatic => {
                    let z = data.body_pose[b].rotation * body.axis * body.mult;
                    let mut col = out.column_mut(body.dof);
                    col[0] += z.x;
                    col[1] += z.y;
                    col[2] += z.z;
                }
            }
            b = body.parent;
        }
    }
}
