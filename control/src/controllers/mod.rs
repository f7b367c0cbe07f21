//! Controllers implementing [`Controller`](crate::Controller): they read the joint state, a
//! [`Target`](crate::Target) and the time passed in, and write one command per joint.
//!
//! - [`Pid`]: one PID loop per joint on position, with derivative on measurement through a
//!   first-order low-pass filter, conditional-integration anti-windup and an integral limit, and
//!   output limits; it writes velocities or torques.
//! - [`JointImpedance`]: `τ = K (q_d − q) + D (q̇_d − q̇) + g(q)`, or with a desired acceleration
//!   the inverse-dynamics feed-forward `M(q) q̈_d + h(q, q̇)` in place of `g(q)`.
//! - [`CartesianImpedance`]: operational-space (or Jacobian-transpose) impedance of a tool frame
//!   towards a pose, with a posture task in the dynamically consistent null space.
//! - [`TrajectoryFollower`]: plays a [`JointTrajectory`](crate::trajectory::JointTrajectory) as
//!   position commands, or as torques (PD plus inverse-dynamics feed-forward).
//!
//! Every buffer is allocated in the constructors; [`Controller::update`](crate::Controller::update)
//! does not allocate (the tests check this with a counting allocator). State slices, targets and
//! `command_out` must have one value per joint; a wrong length is a programming error and panics,
//! as the [`RobotTree`](crate::RobotTree) algorithms do.

mod cartesian;
mod follower;
mod joint_impedance;
mod pid;

#[cfg(test)]
mod testing;

pub use cartesian::{CartesianImpedance, CartesianImpedanceConfig, CartesianLaw};
pub use follower::TrajectoryFollower;
pub use joint_impedance::JointImpedance;
pub use pid::{Pid, PidGains};

use nalgebra::{DMatrix, Matrix6, SymmetricEigen};

/// A controller that cannot be built from the configuration given.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ControllerError {
    /// A per-joint parameter has the wrong number of values.
    #[error("{what}: expected {expected} values (one per joint), got {got}")]
    Length {
        /// The parameter.
        what: &'static str,
        /// The number of joints.
        expected: usize,
        /// The number of values given.
        got: usize,
    },
    /// A parameter is out of range (not finite, negative, inverted limits, wrong mode).
    #[error("{what}: {message}")]
    Invalid {
        /// The parameter (with the joint index where it is per joint).
        what: String,
        /// What is wrong.
        message: String,
    },
}

pub(crate) fn invalid(what: impl Into<String>, message: impl Into<String>) -> ControllerError {
    ControllerError::Invalid {
        what: what.into(),
        message: message.into(),
    }
}

pub(crate) fn check_len(
    what: &'static str,
    got: usize,
    expected: usize,
) -> Result<(), ControllerError> {
    if got == expected {
        Ok(())
    } else {
        Err(ControllerError::Length {
            what,
            expected,
            got,
        })
    }
}

/// Checks that every value is finite and `>= 0` (gains).
pub(crate) fn check_gains(what: &'static str, values: &[f64]) -> Result<(), ControllerError> {
    match values.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
        None => Ok(()),
        Some(i) => Err(invalid(
            format!("{what}[{i}]"),
            format!("{} must be finite and >= 0", values[i]),
        )),
    }
}

/// Panics unless the state slices and the command buffer have `n` values each.
#[track_caller]
pub(crate) fn assert_state_len(state: &crate::JointStateView<'_>, command_out: &[f64], n: usize) {
    assert!(
        state.position.len() == n && state.velocity.len() == n && command_out.len() == n,
        "controller for {n} joints got a state with {} positions, {} velocities and a {}-value command buffer",
        state.position.len(),
        state.velocity.len(),
        command_out.len()
    );
}

/// In-place Cholesky factorisation `A = L Lᵀ` of a symmetric matrix: the lower triangle of `a`
/// becomes `L` (the strict upper triangle is left as it was). Returns `false` if `a` is not
/// positive definite. Does not allocate.
pub(crate) fn cholesky_in_place(a: &mut DMatrix<f64>) -> bool {
    let n = a.nrows();
    for j in 0..n {
        let mut d = a[(j, j)];
        for k in 0..j {
            d -= a[(j, k)] * a[(j, k)];
        }
        if !(d.is_finite() && d > 0.0) {
            return false;
        }
        let d = d.sqrt();
        a[(j, j)] = d;
        for i in j + 1..n {
            let mut s = a[(i, j)];
            for k in 0..j {
                s -= a[(i, k)] * a[(j, k)];
            }
            a[(i, j)] = s / d;
        }
    }
    true
}

/// Solves `L Lᵀ x = b` in place, with `l` from [`cholesky_in_place`].
pub(crate) fn cholesky_solve_in_place(l: &DMatrix<f64>, b: &mut [f64]) {
    let n = l.nrows();
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= l[(i, k)] * b[k];
        }
        b[i] = s / l[(i, i)];
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= l[(k, i)] * b[k];
        }
        b[i] = s / l[(i, i)];
    }
}

/// Copies the symmetric matrix `m` into `factor` and factorises it, adding a growing multiple of
/// the identity if it is only semi-definite (massless chains). Returns `false` if even the
/// regularised matrix does not factorise (non-finite input).
pub(crate) fn factor_mass_matrix(m: &DMatrix<f64>, factor: &mut DMatrix<f64>) -> bool {
    let n = m.nrows();
    let scale = (0..n)
        .map(|i| m[(i, i)].abs())
        .fold(0.0, f64::max)
        .max(1e-12);
    let mut reg = 0.0;
    for _ in 0..4 {
        factor.copy_from(m);
        for i in 0..n {
            factor[(i, i)] += reg;
        }
        if cholesky_in_place(factor) {
            return true;
        }
        reg = if reg == 0.0 { 1e-9 * scale } else { reg * 1e3 };
    }
    false
}

/// Damped inverse of a symmetric positive semi-definite 6x6 matrix (the inverse task-space
/// inertia `J M⁻¹ Jᵀ`): each eigenvalue `σ` is inverted as `1/σ` when `σ >= ε` and as `σ/ε²`
/// below (continuous, and going to zero in singular directions), with
/// `ε = relative_tolerance · σ_max`. Directions with `σ <= 1e-12 σ_max` (axes the task does not
/// control) get zero, which makes the result the pseudo-inverse there. Does not allocate.
pub(crate) fn damped_inverse_psd(a: &Matrix6<f64>, relative_tolerance: f64) -> Matrix6<f64> {
    let eig = SymmetricEigen::new(*a);
    let max = eig.eigenvalues.max();
    let mut out = Matrix6::zeros();
    if !(max.is_finite() && max > 0.0) {
        return out;
    }
    let eps = relative_tolerance * max;
    for i in 0..6 {
        let s = eig.eigenvalues[i];
        let inv = if s <= 1e-12 * max {
            0.0
        } else if s >= eps {
            1.0 / s
        } else {
            s / (eps * eps)
        };
        if inv != 0.0 {
            let v = eig.eigenvectors.column(i);
            out += v * v.transpose() * inv;
        }
    }
    out
}
