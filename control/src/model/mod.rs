//! Robot models: a kinematic and dynamic tree built from a parsed URDF.
//!
//! The model is split the way Pinocchio and MuJoCo split it: an immutable [`RobotTree`] (links,
//! joints, inertias, limits, named frames) and a reusable [`TreeData`] workspace that the
//! algorithms write into, so forward kinematics, Jacobians, inverse dynamics and the mass
//! matrix run without allocating.
//!
//! Links rigidly attached through fixed joints are merged into *bodies*: a body is a link that a
//! moving joint (or nothing, for the root) attaches to its parent, plus every link welded to it.
//! The algorithms run over bodies; every link and every named frame is a constant offset on its
//! body.
//!
//! Conventions: positions in metres, angles in radians, the world frame is the root link's frame,
//! gravity defaults to `[0, 0, -9.81]` m/s² in that frame. Generalised coordinates `q` are the
//! independent one-DoF joints (revolute, continuous, prismatic, not mimics) in file order.
//! A `<mimic>` joint follows `multiplier * q[leader] + offset` and contributes to its leader's
//! Jacobian column, torque and mass-matrix entries.

mod dynamics;
mod kinematics;
mod urdf;

pub use urdf::ModelError;

use nalgebra::{Isometry3, Matrix3, Vector3};

/// Index of a link in [`RobotTree::links`] (file order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct LinkId(pub u32);

/// Index of a joint in [`RobotTree::joints`] (file order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct JointId(pub u32);

/// Index of a named frame in [`RobotTree::frames`]. Every link is a frame of the same name;
/// [`RobotTree::add_frame`] adds more (tool centre points, sensor mounts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct FrameId(pub u32);

/// Joint type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JointKind {
    /// Rigid connection.
    Fixed,
    /// Rotation about an axis within limits.
    Revolute,
    /// Unlimited rotation about an axis.
    Continuous,
    /// Translation along an axis within limits.
    Prismatic,
    /// Three rotational degrees of freedom (MJCF ball joints; not in [`RobotTree`]).
    Spherical,
    /// Six degrees of freedom (MJCF free joints; not in [`RobotTree`]).
    Floating,
}

impl JointKind {
    /// True for the one-degree-of-freedom kinds an actuator can drive.
    pub fn is_actuatable(self) -> bool {
        matches!(self, Self::Revolute | Self::Continuous | Self::Prismatic)
    }
}

/// `<safety_controller>` soft limits, with ros2_control's semantics (see
/// [`crate::safety`]).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct SoftLimits {
    /// Soft lower position limit (rad or m).
    pub lower: f64,
    /// Soft upper position limit (rad or m).
    pub upper: f64,
    /// Position gain bounding velocity near the soft limits (1/s).
    pub k_position: f64,
    /// Velocity gain bounding effort (N·m·s/rad or N·s/m).
    pub k_velocity: f64,
}

/// `<mimic>`: this joint follows `multiplier * q(joint) + offset`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Mimic {
    /// The joint followed.
    pub joint: JointId,
    /// Multiplier (dimensionless).
    pub multiplier: f64,
    /// Offset (rad or m).
    pub offset: f64,
}

/// A link: name and inertia.
#[derive(Clone, Debug)]
pub struct Link {
    /// Name in the robot file.
    pub name: String,
    /// The joint whose child this link is (`None` for the root).
    pub parent_joint: Option<JointId>,
    /// Mass (kg).
    pub mass: f64,
    /// Centre of mass in the link frame (m).
    pub com: Vector3<f64>,
    /// Rotational inertia about the centre of mass, in the link frame's axes (kg·m²).
    pub inertia: Matrix3<f64>,
}

/// A joint, with everything read from the file.
#[derive(Clone, Debug)]
pub struct Joint {
    /// Name in the robot file.
    pub name: String,
    /// Type.
    pub kind: JointKind,
    /// Parent link.
    pub parent: LinkId,
    /// Child link.
    pub child: LinkId,
    /// Pose of the joint frame (= the child link frame at `q = 0`) in the parent link frame.
    pub origin: Isometry3<f64>,
    /// Axis in the joint frame (unit vector).
    pub axis: Vector3<f64>,
    /// Position limits `[lower, upper]` (rad or m), for revolute and prismatic joints.
    pub limits: Option<[f64; 2]>,
    /// Effort limit (N·m or N), if the file gives one (> 0).
    pub effort_limit: Option<f64>,
    /// Velocity limit (rad/s or m/s), if the file gives one (> 0).
    pub velocity_limit: Option<f64>,
    /// Viscous damping (N·m·s/rad or N·s/m).
    pub damping: f64,
    /// Coulomb friction (N·m or N).
    pub friction: f64,
    /// Soft limits from `<safety_controller>`.
    pub soft_limits: Option<SoftLimits>,
    /// Mimic relation, if any.
    pub mimic: Option<Mimic>,
    /// Index into `q` of the coordinate that drives this joint (its own, or its leader's for a
    /// mimic); `None` for fixed joints.
    pub dof: Option<usize>,
}

impl Joint {
    /// This joint's position for generalised coordinates `q`, with the mimic relation applied.
    pub fn position(&self, q: &[f64]) -> f64 {
        match (self.dof, &self.mimic) {
            (Some(d), Some(m)) => m.multiplier * q[d] + m.offset,
            (Some(d), None) => q[d],
            (None, _) => 0.0,
        }
    }
}

/// A named frame: a constant pose on a link.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Unique name (links' frames carry the link name).
    pub name: String,
    /// The link it is attached to.
    pub link: LinkId,
    /// Pose of the frame in the link frame.
    pub offset: Isometry3<f64>,
    /// Body it rides on and its pose in the body frame (derived).
    pub(crate) body: usize,
    pub(crate) in_body: Isometry3<f64>,
}

/// How a body moves relative to its parent body.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Motion {
    /// The root body: no parent.
    Root,
    /// Rotation about `axis` (body frame).
    Revolute,
    /// Translation along `axis` (body frame).
    Prismatic,
}

/// A rigid body of the reduced tree: one moving joint's child link plus its welded links.
#[derive(Clone, Debug)]
pub(crate) struct Body {
    /// Parent body (`usize::MAX` for the root); always lower than this body's index.
    pub parent: usize,
    pub motion: Motion,
    /// Pose of the joint frame at zero position in the parent *body* frame.
    pub origin: Isometry3<f64>,
    /// Unit axis in the body frame.
    pub axis: Vector3<f64>,
    /// Coordinate index, multiplier and offset: joint position = mult * q[dof] + offset.
    pub dof: usize,
    pub mult: f64,
    pub offset: f64,
    /// Mass of the body with its welded links (kg).
    pub mass: f64,
    /// Centre of mass in the body frame (m).
    pub com: Vector3<f64>,
    /// Rotational inertia about the centre of mass, body axes (kg·m²).
    pub inertia: Matrix3<f64>,
}

/// A validated kinematic and dynamic tree, immutable once built.
#[derive(Clone, Debug)]
pub struct RobotTree {
    /// Robot name from the file.
    pub name: String,
    /// Links, in file order.
    pub links: Vec<Link>,
    /// Joints, in file order.
    pub joints: Vec<Joint>,
    /// Named frames: one per link (same index as the link), then added frames.
    pub frames: Vec<Frame>,
    /// The root link.
    pub root: LinkId,
    /// Gravity in the root frame (m/s²).
    pub gravity: Vector3<f64>,
    /// The joint of each generalised coordinate, in `q` order.
    pub dof_joints: Vec<JointId>,
    pub(crate) bodies: Vec<Body>,
    /// Body and pose in the body frame for each link.
    pub(crate) link_body: Vec<(usize, Isometry3<f64>)>,
}

impl RobotTree {
    /// Parses and validates a URDF document.
    pub fn from_urdf_str(text: &str) -> Result<Self, ModelError> {
        let robot = urdf_rs::read_from_string(text).map_err(|e| ModelError {
            element: "robot".into(),
            message: format!("not a valid URDF document: {e}"),
        })?;
        Self::from_urdf(&robot)
    }

    /// Reads, parses and validates a URDF file. Errors name the file and the element.
    pub fn from_urdf_file(path: &std::path::Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError {
            element: path.display().to_string(),
            message: format!("cannot read: {e}"),
        })?;
        Self::from_urdf_str(&text).map_err(|e| ModelError {
            element: format!("{}: {}", path.display(), e.element),
            message: e.message,
        })
    }

    /// Number of generalised coordinates (independent one-DoF joints).
    pub fn dof_count(&self) -> usize {
        self.dof_joints.len()
    }

    /// Looks a link up by name.
    pub fn link_by_name(&self, name: &str) -> Option<LinkId> {
        self.links
            .iter()
            .position(|l| l.name == name)
            .map(|i| LinkId(i as u32))
    }

    /// Looks a joint up by name.
    pub fn joint_by_name(&self, name: &str) -> Option<JointId> {
        self.joints
            .iter()
            .position(|j| j.name == name)
            .map(|i| JointId(i as u32))
    }

    /// Looks a frame up by name (links are frames too).
    pub fn frame_by_name(&self, name: &str) -> Option<FrameId> {
        self.frames
            .iter()
            .position(|f| f.name == name)
            .map(|i| FrameId(i as u32))
    }

    /// The frame of a link.
    pub fn link_frame(&self, link: LinkId) -> FrameId {
        FrameId(link.0)
    }

    /// The coordinate index of a joint (`None` for fixed joints and mimics).
    pub fn dof_of_joint(&self, joint: JointId) -> Option<usize> {
        self.dof_joints.iter().position(|&j| j == joint)
    }

    /// Adds a named frame at `offset` in `link`'s frame (e.g. a tool centre point).
    pub fn add_frame(
        &mut self,
        name: &str,
        link: LinkId,
        offset: Isometry3<f64>,
    ) -> Result<FrameId, ModelError> {
        if self.frame_by_name(name).is_some() {
            return Err(ModelError {
                element: format!("frame '{name}'"),
                message: "a frame with this name exists".into(),
            });
        }
        let Some(&(body, link_in_body)) = self.link_body.get(link.0 as usize) else {
            return Err(ModelError {
                element: format!("frame '{name}'"),
                message: format!("no link {}", link.0),
            });
        };
        self.frames.push(Frame {
            name: name.to_string(),
            link,
            offset,
            body,
            in_body: link_in_body * offset,
        });
        Ok(FrameId(self.frames.len() as u32 - 1))
    }

    /// Position limits per coordinate (`[-inf, inf]` for continuous joints).
    pub fn position_limits(&self) -> Vec<[f64; 2]> {
        self.dof_joints
            .iter()
            .map(|&j| {
                self.joints[j.0 as usize]
                    .limits
                    .unwrap_or([f64::NEG_INFINITY, f64::INFINITY])
            })
            .collect()
    }

    /// The joint driving coordinate `dof`.
    pub fn dof_joint(&self, dof: usize) -> &Joint {
        &self.joints[self.dof_joints[dof].0 as usize]
    }

    /// True if coordinate `dof` moves `frame` (the frame's body or one of its ancestors is
    /// driven by it).
    pub fn dof_moves_frame(&self, dof: usize, frame: FrameId) -> bool {
        let mut b = self.frames[frame.0 as usize].body;
        while b != usize::MAX {
            let body = &self.bodies[b];
            if body.motion != Motion::Root && body.dof == dof {
                return true;
            }
            b = body.parent;
        }
        false
    }

    /// Total mass (kg).
    pub fn total_mass(&self) -> f64 {
        self.links.iter().map(|l| l.mass).sum()
    }

    /// A workspace sized for this tree.
    pub fn data(&self) -> TreeData {
        TreeData::new(self)
    }
}

/// Reusable buffers the algorithms write into. Create one per thread with
/// [`RobotTree::data`]; results stay readable until the next call.
#[derive(Clone, Debug)]
pub struct TreeData {
    /// Pose of each body in the root frame (after forward kinematics).
    pub(crate) body_pose: Vec<Isometry3<f64>>,
    /// Pose of each body in its parent body frame.
    pub(crate) body_local: Vec<Isometry3<f64>>,
    /// RNEA: body velocities, accelerations, forces (angular, linear) in body frames.
    pub(crate) vel: Vec<(Vector3<f64>, Vector3<f64>)>,
    pub(crate) acc: Vec<(Vector3<f64>, Vector3<f64>)>,
    pub(crate) force: Vec<(Vector3<f64>, Vector3<f64>)>,
    /// CRBA: composite mass, centre of mass and inertia about it, in body frames.
    pub(crate) composite: Vec<(f64, Vector3<f64>, Matrix3<f64>)>,
    /// Generalised forces from the last inverse-dynamics call.
    pub tau: Vec<f64>,
    /// Joint-space mass matrix from the last [`RobotTree::mass_matrix`] call (row-major,
    /// `n x n`).
    pub mass_matrix: nalgebra::DMatrix<f64>,
    /// Scratch coordinate vector (finite differences, IK).
    pub(crate) scratch: Vec<f64>,
}

impl TreeData {
    fn new(tree: &RobotTree) -> Self {
        let nb = tree.bodies.len();
        let n = tree.dof_count();
        let zero = (Vector3::zeros(), Vector3::zeros());
        Self {
            body_pose: vec![Isometry3::identity(); nb],
            body_local: vec![Isometry3::identity(); nb],
            vel: vec![zero; nb],
            acc: vec![zero; nb],
            force: vec![zero; nb],
            composite: vec![(0.0, Vector3::zeros(), Matrix3::zeros()); nb],
            tau: vec![0.0; n],
            mass_matrix: nalgebra::DMatrix::zeros(n, n),
            scratch: vec![0.0; n],
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
