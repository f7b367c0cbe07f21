//! Rigid-body dynamics: recursive Newton-Euler inverse dynamics and the composite-rigid-body
//! mass matrix (Featherstone, *Rigid Body Dynamics Algorithms*, ch. 5 and 6), in body frames.

use nalgebra::{DMatrix, Matrix3, Vector3};

use super::kinematics::local_pose;
use super::{Body, Motion, RobotTree, TreeData};

type Spatial = (Vector3<f64>, Vector3<f64>);

/// Spatial inertia of a body (mass `m`, centre `c`, inertia `ic` about `c`) times a motion
/// `(w, v)`: the momentum `(angular about the origin, linear)`.
#[inline]
fn inertia_times(
    m: f64,
    c: &Vector3<f64>,
    ic: &Matrix3<f64>,
    w: &Vector3<f64>,
    v: &Vector3<f64>,
) -> Spatial {
    let h = (v + w.cross(c)) * m;
    (ic * w + c.cross(&h), h)
}

impl RobotTree {
    fn body_local_pose(&self, body: &Body, q: &[f64]) -> nalgebra::Isometry3<f64> {
        local_pose(
            &body.origin,
            body.motion,
            &body.axis,
            body.mult * q[body.dof] + body.offset,
        )
    }

    /// Inverse dynamics by recursive Newton-Euler: the generalised forces that produce
    /// accelerations `qdd` at `(q, qd)` under gravity (no joint friction or damping). The result
    /// is in `data.tau` and returned.
    pub fn inverse_dynamics<'d>(
        &self,
        q: &[f64],
        qd: &[f64],
        qdd: &[f64],
        data: &'d mut TreeData,
    ) -> &'d [f64] {
        let n = self.dof_count();
        assert!(
            q.len() == n && qd.len() == n && qdd.len() == n,
            "q, qd, qdd must have dof_count() values"
        );
        let g = self.gravity;
        data.vel[0] = (Vector3::zeros(), Vector3::zeros());
        data.acc[0] = (Vector3::zeros(), -g);
        data.force[0] = (Vector3::zeros(), Vector3::zeros());
        for b in 1..self.bodies.len() {
            let body = &self.bodies[b];
            let x = self.body_local_pose(body, q);
            data.body_local[b] = x;
            let rt = x.rotation.inverse();
            let p = x.translation.vector;
            let (wp, vp) = data.vel[body.parent];
            let (ap_w, ap_v) = data.acc[body.parent];
            let qd_b = body.mult * qd[body.dof];
            let qdd_b = body.mult * qdd[body.dof];
            let mut w = rt * wp;
            let mut v = rt * (vp + wp.cross(&p));
            let mut aw = rt * ap_w;
            let mut av = rt * (ap_v + ap_w.cross(&p));
            match body.motion {
                Motion::Revolute => {
                    let s = body.axis * qd_b;
                    w += s;
                    aw += body.axis * qdd_b + w.cross(&s);
                    av += v.cross(&s);
                }
                Motion::Prismatic => {
                    let s = body.axis * qd_b;
                    v += s;
                    av += body.axis * qdd_b + w.cross(&s);
                }
                Motion::Root => {}
            }
            data.vel[b] = (w, v);
            data.acc[b] = (aw, av);
            let (ia_n, ia_f) = inertia_times(body.mass, &body.com, &body.inertia, &aw, &av);
            let (iv_n, iv_f) = inertia_times(body.mass, &body.com, &body.inertia, &w, &v);
            data.force[b] = (
                ia_n + w.cross(&iv_n) + v.cross(&iv_f),
                ia_f + w.cross(&iv_f),
            );
        }
        data.tau.iter_mut().for_each(|t| *t = 0.0);
        for b in (1..self.bodies.len()).rev() {
            let body = &self.bodies[b];
            let (n_b, f_b) = data.force[b];
            let s = match body.motion {
                Motion::Revolute => body.axis.dot(&n_b),
                Motion::Prismatic => body.axis.dot(&f_b),
                Motion::Root => 0.0,
            };
            data.tau[body.dof] += body.mult * s;
            let x = &data.body_local[b];
            let f_p = x.rotation * f_b;
            let n_p = x.rotation * n_b + x.translation.vector.cross(&f_p);
            let parent = &mut data.force[body.parent];
            parent.0 += n_p;
            parent.1 += f_p;
        }
        &data.tau
    }

    /// Generalised gravity forces `g(q)` (what holds the robot still), in `data.tau`.
    pub fn gravity_torques<'d>(&self, q: &[f64], data: &'d mut TreeData) -> &'d [f64] {
        let n = self.dof_count();
        data.scratch.clear();
        data.scratch.resize(n, 0.0);
        let zeros = std::mem::take(&mut data.scratch);
        self.inverse_dynamics(q, &zeros, &zeros, data);
        data.scratch = zeros;
        &data.tau
    }

    /// Coriolis, centrifugal and gravity forces `C(q, qd) qd + g(q)`, in `data.tau`.
    pub fn nonlinear_effects<'d>(
        &self,
        q: &[f64],
        qd: &[f64],
        data: &'d mut TreeData,
    ) -> &'d [f64] {
        let n = self.dof_count();
        data.scratch.clear();
        data.scratch.resize(n, 0.0);
        let zeros = std::mem::take(&mut data.scratch);
        self.inverse_dynamics(q, qd, &zeros, data);
        data.scratch = zeros;
        &data.tau
    }

    /// The joint-space mass matrix `M(q)` by the composite-rigid-body algorithm, in
    /// `data.mass_matrix` (symmetric, positive definite for a tree with massive links).
    pub fn mass_matrix<'d>(&self, q: &[f64], data: &'d mut TreeData) -> &'d DMatrix<f64> {
        assert_eq!(q.len(), self.dof_count(), "q has the wrong length");
        for (b, body) in self.bodies.iter().enumerate() {
            if body.motion != Motion::Root {
                data.body_local[b] = self.body_local_pose(body, q);
            }
            data.composite[b] = (body.mass, body.com, body.inertia);
        }
        // Composite inertias, leaves to root.
        for b in (1..self.bodies.len()).rev() {
            let parent = self.bodies[b].parent;
            let (m, c, ic) = data.composite[b];
            if m <= 0.0 {
                continue;
            }
            let x = &data.body_local[b];
            let r = x.rotation.to_rotation_matrix().into_inner();
            let c_p = r * c + x.translation.vector;
            let ic_p = r * ic * r.transpose();
            let (pm, pc, pic) = data.composite[parent];
            let total = pm + m;
            let com = (pc * pm + c_p * m) / total;
            let shift = |mass: f64, d: Vector3<f64>| {
                mass * (Matrix3::identity() * d.dot(&d) - d * d.transpose())
            };
            data.composite[parent] = (
                total,
                com,
                pic + shift(pm, pc - com) + ic_p + shift(m, c_p - com),
            );
        }
        let mm = &mut data.mass_matrix;
        mm.fill(0.0);
        for b in 1..self.bodies.len() {
            let body = &self.bodies[b];
            let (m, c, ic) = &data.composite[b];
            let (mut n, mut f) = match body.motion {
                Motion::Revolute => inertia_times(*m, c, ic, &body.axis, &Vector3::zeros()),
                Motion::Prismatic => inertia_times(*m, c, ic, &Vector3::zeros(), &body.axis),
                Motion::Root => continue,
            };
            let project = |bd: &Body, n: &Vector3<f64>, f: &Vector3<f64>| match bd.motion {
                Motion::Revolute => bd.axis.dot(n),
                Motion::Prismatic => bd.axis.dot(f),
                Motion::Root => 0.0,
            };
            let d = body.dof;
            mm[(d, d)] += body.mult * body.mult * project(body, &n, &f);
            let mut j = b;
            loop {
                let x = &data.body_local[j];
                f = x.rotation * f;
                n = x.rotation * n + x.translation.vector.cross(&f);
                j = self.bodies[j].parent;
                let bj = &self.bodies[j];
                if bj.motion == Motion::Root {
                    break;
                }
                let v = body.mult * bj.mult * project(bj, &n, &f);
                mm[(d, bj.dof)] += v;
                mm[(bj.dof, d)] += v;
            }
        }
        &data.mass_matrix
    }
}
