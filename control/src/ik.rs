//! Inverse kinematics: damped least squares (Levenberg-Marquardt) with joint limits, a
//! null-space posture objective, position-only or full-pose targets, warm start and seeded
//! restarts.
//!
//! Each iteration solves `(Jᵀ W J + λ I) Δq = Jᵀ W e` with the error-adaptive damping
//! `λ = ½ eᵀ W e + λ₀` (Sugihara, *Solvability-unconcerned inverse kinematics by the
//! Levenberg-Marquardt method*, 2011): large steps far from the target, Gauss-Newton near it, and
//! no blow-up at singularities. The step is projected onto the joint limits. With a posture, the
//! step becomes `Δq = z + (Jᵀ W J + λ I)⁻¹ Jᵀ W (e - J z)` with `z = k (q_posture - q)`: the
//! posture pull acts only in the task's (damped) null space.
//!
//! The first attempt starts from the caller's configuration (warm start). When an attempt stalls,
//! the solver restarts from a configuration drawn uniformly within the limits by a generator
//! seeded from [`IkOptions::seed`], so a solve is a pure function of its inputs. If no attempt
//! reaches the tolerances, the result is [`IkError::Unreachable`] with the best residuals, and
//! the best configuration found is still written out.

use nalgebra::{Isometry3, Matrix6xX, Vector3, Vector6};

use crate::model::{FrameId, RobotTree, TreeData};

/// What the tool frame must reach, in the root frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum IkTarget {
    /// Position and orientation of the frame.
    Pose(Isometry3<f64>),
    /// Position of the frame origin only; orientation is free.
    Position(Vector3<f64>),
}

/// Solver settings.
#[derive(Clone, Debug, PartialEq)]
pub struct IkOptions {
    /// Position tolerance (m).
    pub position_tolerance: f64,
    /// Orientation tolerance (rad).
    pub orientation_tolerance: f64,
    /// Iterations per attempt.
    pub max_iterations: usize,
    /// Attempts after the warm start, each from a random in-limit configuration.
    pub restarts: usize,
    /// Weight of the orientation error relative to position (m/rad).
    pub orientation_weight: f64,
    /// Base damping λ₀ (added to the error-adaptive term).
    pub damping: f64,
    /// Seed of the restart generator.
    pub seed: u64,
    /// Null-space posture (one value per coordinate) and its gain per iteration (0..1).
    pub posture: Option<(Vec<f64>, f64)>,
}

impl Default for IkOptions {
    fn default() -> Self {
        Self {
            position_tolerance: 1e-4,
            orientation_tolerance: 1e-3,
            max_iterations: 60,
            restarts: 30,
            orientation_weight: 0.3,
            damping: 1e-4,
            seed: 0x5eed,
            posture: None,
        }
    }
}

/// A converged solve.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IkSolution {
    /// Final position error (m).
    pub position_error: f64,
    /// Final orientation error (rad; 0 for position-only targets).
    pub orientation_error: f64,
    /// Iterations used, over all attempts.
    pub iterations: usize,
    /// Attempts used (1 = converged from the warm start).
    pub attempts: usize,
}

/// Why a solve failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum IkError {
    /// No attempt reached the tolerances: the target is out of reach within the joint limits
    /// (or the solver gave up). The best configuration found was written out.
    #[error(
        "target unreachable: best position error {position_error:.6} m, orientation error {orientation_error:.6} rad after {attempts} attempts"
    )]
    Unreachable {
        /// Best position error (m).
        position_error: f64,
        /// Orientation error at the best configuration (rad).
        orientation_error: f64,
        /// Attempts made.
        attempts: usize,
    },
    /// The inputs are malformed.
    #[error("invalid IK input: {0}")]
    Invalid(String),
}

/// An IK solver for one frame of one tree, with its buffers (no allocation per solve).
#[derive(Clone, Debug)]
pub struct IkSolver {
    frame: FrameId,
    options: IkOptions,
    data: TreeData,
    jac: Matrix6xX<f64>,
    limits: Vec<[f64; 2]>,
    /// Coordinates that move the frame; the others are left as given.
    active: Vec<bool>,
    q: Vec<f64>,
    /// The candidate configuration of a step.
    candidate: Vec<f64>,
    e: Vector6<f64>,
    w: Vector6<f64>,
    rows: usize,
    cost: f64,
    z: Vec<f64>,
    h: Vec<f64>,
    g: Vec<f64>,
}

impl IkSolver {
    /// A solver for `frame` of `tree`.
    pub fn new(tree: &RobotTree, frame: FrameId, options: IkOptions) -> Self {
        let n = tree.dof_count();
        Self {
            frame,
            options,
            data: tree.data(),
            jac: Matrix6xX::zeros(n),
            limits: tree.position_limits(),
            active: (0..n).map(|d| tree.dof_moves_frame(d, frame)).collect(),
            q: vec![0.0; n],
            candidate: vec![0.0; n],
            e: Vector6::zeros(),
            w: Vector6::zeros(),
            rows: 6,
            cost: 0.0,
            z: vec![0.0; n],
            h: vec![0.0; n * n],
            g: vec![0.0; n],
        }
    }

    /// The solver's options.
    pub fn options(&self) -> &IkOptions {
        &self.options
    }

    /// Replaces the options (e.g. to change the posture between solves).
    pub fn set_options(&mut self, options: IkOptions) {
        self.options = options;
    }

    /// The frame this solver moves.
    pub fn frame(&self) -> FrameId {
        self.frame
    }

    /// Solves for `target` starting from `q_start`, writing the configuration into `q_out`
    /// (the best one found, even when the result is an error).
    pub fn solve(
        &mut self,
        tree: &RobotTree,
        target: &IkTarget,
        q_start: &[f64],
        q_out: &mut [f64],
    ) -> Result<IkSolution, IkError> {
        let n = tree.dof_count();
        if q_start.len() != n || q_out.len() != n || self.q.len() != n {
            return Err(IkError::Invalid(format!(
                "configurations must have {n} values (got {} and {})",
                q_start.len(),
                q_out.len()
            )));
        }
        if let Some(d) = q_start.iter().position(|v| !v.is_finite()) {
            return Err(IkError::Invalid(format!("q_start[{d}] is not finite")));
        }
        let finite = match target {
            IkTarget::Pose(p) => {
                p.translation.vector.iter().all(|v| v.is_finite())
                    && p.rotation.coords.iter().all(|v| v.is_finite())
            }
            IkTarget::Position(p) => p.iter().all(|v| v.is_finite()),
        };
        if !finite {
            return Err(IkError::Invalid("the target is not finite".into()));
        }
        if let Some((posture, gain)) = &self.options.posture
            && (posture.len() != n || !gain.is_finite() || *gain < 0.0)
        {
            return Err(IkError::Invalid(format!(
                "posture must have {n} values and a finite gain >= 0"
            )));
        }

        let mut rng = SplitMix(self.options.seed);
        let mut best_cost = f64::INFINITY;
        let mut best_errors = (f64::INFINITY, f64::INFINITY);
        let mut iterations = 0;
        let attempts = 1 + self.options.restarts;
        for attempt in 0..attempts {
            if attempt == 0 {
                self.q.copy_from_slice(q_start);
                for (d, v) in self.q.iter_mut().enumerate() {
                    let [lo, hi] = self.limits[d];
                    *v = v.clamp(lo, hi);
                }
            } else {
                for (d, (q, &start)) in self.q.iter_mut().zip(q_start).enumerate() {
                    *q = if self.active[d] {
                        let [lo, hi] = self.limits[d];
                        let (lo, hi) =
                            (lo.max(-std::f64::consts::PI), hi.min(std::f64::consts::PI));
                        lo + (hi - lo) * rng.unit()
                    } else {
                        start
                    };
                }
            }
            // Levenberg-Marquardt: a step that does not lower the cost is rejected and the
            // damping raised; an accepted step lowers it again.
            let mut scale = 1.0;
            let mut stall = 0;
            let (mut cost, mut pos_err, mut rot_err) = self.evaluate(tree, target);
            for _ in 0..self.options.max_iterations {
                iterations += 1;
                if pos_err <= self.options.position_tolerance
                    && rot_err <= self.options.orientation_tolerance
                {
                    q_out.copy_from_slice(&self.q);
                    return Ok(IkSolution {
                        position_error: pos_err,
                        orientation_error: rot_err,
                        iterations,
                        attempts: attempt + 1,
                    });
                }
                if cost < best_cost {
                    best_cost = cost;
                    best_errors = (pos_err, rot_err);
                    q_out.copy_from_slice(&self.q);
                }
                if !self.step(tree, scale) {
                    break;
                }
                std::mem::swap(&mut self.q, &mut self.candidate);
                let (c, p, r) = self.evaluate(tree, target);
                if c < cost {
                    (cost, pos_err, rot_err) = (c, p, r);
                    scale = (scale * 0.3).max(1e-3);
                    stall = 0;
                } else {
                    // Back to the previous configuration (and its kinematics).
                    std::mem::swap(&mut self.q, &mut self.candidate);
                    self.evaluate(tree, target);
                    scale *= 8.0;
                    stall += 1;
                    if stall >= 6 {
                        break;
                    }
                }
            }
        }
        Err(IkError::Unreachable {
            position_error: best_errors.0,
            orientation_error: best_errors.1,
            attempts,
        })
    }

    /// Forward kinematics and the task error at `self.q` (kept in `self.e`, `self.w`,
    /// `self.rows` for the next step). Returns the weighted cost and the position and
    /// orientation errors.
    fn evaluate(&mut self, tree: &RobotTree, target: &IkTarget) -> (f64, f64, f64) {
        tree.forward_kinematics(&self.q, &mut self.data);
        let pose = tree.frame_pose(self.frame, &self.data);
        self.e = Vector6::zeros();
        self.w = Vector6::from_element(1.0);
        let (pos_err, rot_err) = match target {
            IkTarget::Pose(t) => {
                let dp = t.translation.vector - pose.translation.vector;
                let dr = (t.rotation * pose.rotation.inverse()).scaled_axis();
                self.e.fixed_rows_mut::<3>(0).copy_from(&dp);
                self.e.fixed_rows_mut::<3>(3).copy_from(&dr);
                let wr = self.options.orientation_weight * self.options.orientation_weight;
                self.w.fixed_rows_mut::<3>(3).fill(wr);
                self.rows = 6;
                (dp.norm(), dr.norm())
            }
            IkTarget::Position(t) => {
                let dp = t - pose.translation.vector;
                self.e.fixed_rows_mut::<3>(0).copy_from(&dp);
                self.rows = 3;
                (dp.norm(), 0.0)
            }
        };
        let mut cost = 0.0;
        for r in 0..self.rows {
            cost += 0.5 * self.w[r] * self.e[r] * self.e[r];
        }
        self.cost = cost;
        (cost, pos_err, rot_err)
    }

    /// One damped step from `self.q` (whose kinematics and error `evaluate` left in place),
    /// written to `self.candidate` as the candidate. Returns false if the system is singular.
    fn step(&mut self, tree: &RobotTree, scale: f64) -> bool {
        let n = self.q.len();
        let rows = self.rows;
        let (e, w) = (self.e, self.w);
        tree.frame_jacobian(self.frame, &self.data, &mut self.jac);
        let lambda = scale * (self.cost + self.options.damping);

        // z: the posture pull (zero without a posture).
        match &self.options.posture {
            Some((posture, gain)) => {
                for (d, (z, &target)) in self.z.iter_mut().zip(posture).enumerate() {
                    *z = if self.active[d] {
                        gain * (target - self.q[d])
                    } else {
                        0.0
                    };
                }
            }
            None => self.z.iter_mut().for_each(|v| *v = 0.0),
        }
        // Task error left after the posture step: e - J z.
        let mut r_vec = e;
        for d in 0..n {
            if self.z[d] != 0.0 {
                for r in 0..rows {
                    r_vec[r] -= self.jac[(r, d)] * self.z[d];
                }
            }
        }
        // H = Jᵀ W J + λ I (active block), g = Jᵀ W (e - J z).
        for i in 0..n {
            self.g[i] = 0.0;
            for j in 0..n {
                self.h[i * n + j] = 0.0;
            }
            if !self.active[i] {
                self.h[i * n + i] = 1.0;
                continue;
            }
            for r in 0..rows {
                self.g[i] += self.jac[(r, i)] * w[r] * r_vec[r];
            }
            for j in 0..=i {
                if !self.active[j] {
                    continue;
                }
                let mut s = 0.0;
                for r in 0..rows {
                    s += self.jac[(r, i)] * w[r] * self.jac[(r, j)];
                }
                self.h[i * n + j] = s;
                self.h[j * n + i] = s;
            }
            self.h[i * n + i] += lambda;
        }
        if !cholesky_solve(&mut self.h, &mut self.g, n) {
            return false;
        }
        for d in 0..n {
            let step = if self.active[d] {
                self.g[d] + self.z[d]
            } else {
                0.0
            };
            let [lo, hi] = self.limits[d];
            self.candidate[d] = (self.q[d] + step).clamp(lo, hi);
        }
        true
    }
}

/// Solves `H x = b` in place (`b` becomes `x`) for a symmetric positive definite `n x n`
/// row-major `H` (overwritten by its Cholesky factor). Returns false if `H` is not positive
/// definite.
fn cholesky_solve(h: &mut [f64], b: &mut [f64], n: usize) -> bool {
    for j in 0..n {
        let mut d = h[j * n + j];
        for k in 0..j {
            d -= h[j * n + k] * h[j * n + k];
        }
        if d <= 0.0 || !d.is_finite() {
            return false;
        }
        let d = d.sqrt();
        h[j * n + j] = d;
        for i in j + 1..n {
            let mut s = h[i * n + j];
            for k in 0..j {
                s -= h[i * n + k] * h[j * n + k];
            }
            h[i * n + j] = s / d;
        }
    }
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= h[i * n + k] * b[k];
        }
        b[i] = s / h[i * n + i];
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= h[k * n + i] * b[k];
        }
        b[i] = s / h[i * n + i];
    }
    true
}

/// A tiny seeded generator for restarts (SplitMix64), so the solver needs no RNG dependency.
struct SplitMix(u64);

impl SplitMix {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests;
