//! Test support for the controller tests: small planar arms, a forward-dynamics integrator
//! (semi-implicit Euler at 1 kHz), the UR5 from `../shared`, and an allocation counter.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use crate::command::{CommandMode, Controller, JointStateView, Target};
use crate::model::RobotTree;

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only counts (per thread) on the side.
#[allow(unsafe_code, reason = "a global allocator is unsafe by definition")]
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

// The control crate's unit-test binary counts allocations per thread, so the controller tests
// can check that `update` does not allocate.
#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Allocations made by this thread so far.
pub(crate) fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Allocations made by this thread while running `f`.
pub(crate) fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = allocations();
    f();
    allocations() - before
}

/// URDF of a planar serial arm moving in the vertical x-z plane: revolute joints `j1..` about
/// `y`, link `i` a uniform rod of `(length, mass)` along its `x` axis, and a massless `tool`
/// link at the tip of the last one. Gravity is `-z`, so at `q = 0` the arm is horizontal and
/// gravity loads it most.
pub(crate) fn planar_arm_urdf(links: &[(f64, f64)]) -> String {
    let mut s = String::from("<robot name=\"planar\">\n<link name=\"base\"/>\n");
    let mut parent = "base".to_string();
    let mut offset = 0.0;
    for (i, &(length, mass)) in links.iter().enumerate() {
        let name = format!("l{}", i + 1);
        // Rod about its centre: I = m L² / 12 about the transverse axes, tiny about its own.
        let it = mass * length * length / 12.0;
        let il = 1e-4 * mass;
        s += &format!(
            "<joint name=\"j{n}\" type=\"revolute\"><parent link=\"{parent}\"/>\
             <child link=\"{name}\"/><origin xyz=\"{offset} 0 0\"/><axis xyz=\"0 1 0\"/>\
             <limit lower=\"-6.3\" upper=\"6.3\" effort=\"1000\" velocity=\"20\"/></joint>\n\
             <link name=\"{name}\"><inertial><origin xyz=\"{c} 0 0\"/><mass value=\"{mass}\"/>\
             <inertia ixx=\"{il}\" ixy=\"0\" ixz=\"0\" iyy=\"{it}\" iyz=\"0\" izz=\"{it}\"/>\
             </inertial></link>\n",
            n = i + 1,
            c = 0.5 * length,
        );
        parent = name;
        offset = length;
    }
    s += &format!(
        "<joint name=\"tool_joint\" type=\"fixed\"><parent link=\"{parent}\"/>\
         <child link=\"tool\"/><origin xyz=\"{offset} 0 0\"/></joint>\n<link name=\"tool\"/>\n\
         </robot>\n"
    );
    s
}

/// A two-link planar arm (0.5 m / 2 kg, 0.4 m / 1 kg).
pub(crate) fn two_link_arm() -> Arc<RobotTree> {
    Arc::new(RobotTree::from_urdf_str(&planar_arm_urdf(&[(0.5, 2.0), (0.4, 1.0)])).unwrap())
}

/// A three-link planar arm (0.5 m / 2 kg, 0.4 m / 1.5 kg, 0.3 m / 1 kg): redundant for the tool
/// position in its plane.
pub(crate) fn three_link_arm() -> Arc<RobotTree> {
    Arc::new(
        RobotTree::from_urdf_str(&planar_arm_urdf(&[(0.5, 2.0), (0.4, 1.5), (0.3, 1.0)])).unwrap(),
    )
}

/// The UR5 from `../shared/example-robot-data` (shared test data outside the repository).
/// `None`, with a message, when the file is absent, unless the `CI` environment variable is set,
/// in which case the absence fails the test.
pub(crate) fn ur5() -> Option<Arc<RobotTree>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/example-robot-data/robots/ur_description/urdf/ur5_robot.urdf");
    if !path.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{} is missing (CI is set, so the UR5 tests must run)",
            path.display()
        );
        eprintln!("skipping: {} not found (shared test data)", path.display());
        return None;
    }
    Some(Arc::new(RobotTree::from_urdf_file(&path).unwrap()))
}

/// Joint-space forward dynamics `q̈ = M⁻¹ (τ − h)` integrated with semi-implicit Euler.
pub(crate) struct Sim {
    pub tree: Arc<RobotTree>,
    data: crate::model::TreeData,
    pub q: Vec<f64>,
    pub qd: Vec<f64>,
    pub time: f64,
    pub dt: f64,
    effort: Vec<f64>,
    command: Vec<f64>,
}

impl Sim {
    /// At rest at `q0`, at time 0, with a 1 ms step.
    pub fn new(tree: Arc<RobotTree>, q0: &[f64]) -> Self {
        let n = tree.dof_count();
        assert_eq!(q0.len(), n);
        Self {
            data: tree.data(),
            tree,
            q: q0.to_vec(),
            qd: vec![0.0; n],
            time: 0.0,
            dt: 1e-3,
            effort: vec![0.0; n],
            command: vec![0.0; n],
        }
    }

    /// Applies torques `tau` for one step.
    pub fn step_torque(&mut self, tau: &[f64]) {
        let n = self.q.len();
        let m = self.tree.mass_matrix(&self.q, &mut self.data).clone();
        let h = self
            .tree
            .nonlinear_effects(&self.q, &self.qd, &mut self.data);
        let rhs = nalgebra::DVector::from_iterator(n, (0..n).map(|i| tau[i] - h[i]));
        let qdd = m
            .cholesky()
            .expect("mass matrix is positive definite")
            .solve(&rhs);
        for i in 0..n {
            self.qd[i] += self.dt * qdd[i];
            self.q[i] += self.dt * self.qd[i];
        }
        self.effort.copy_from_slice(tau);
        self.time += self.dt;
    }

    /// One control step: the controller (a torque controller) sees the state at the current
    /// time, then its torque is applied for one step. Returns the command.
    pub fn step(&mut self, controller: &mut dyn Controller, target: &Target<'_>) -> &[f64] {
        assert_eq!(controller.mode(), CommandMode::Torque);
        let view = JointStateView {
            position: &self.q,
            velocity: &self.qd,
            effort: &self.effort,
        };
        controller.update(&view, target, self.time, &mut self.command);
        let tau = std::mem::take(&mut self.command);
        self.step_torque(&tau);
        self.command = tau;
        &self.command
    }

    /// Runs `steps` control steps towards a fixed target.
    pub fn run(&mut self, controller: &mut dyn Controller, target: &Target<'_>, steps: usize) {
        for _ in 0..steps {
            self.step(controller, target);
        }
    }
}

/// Largest absolute value.
pub(crate) fn max_abs(v: impl IntoIterator<Item = f64>) -> f64 {
    v.into_iter().fold(0.0, |m, x| m.max(x.abs()))
}
