//! Robot import: URDF (through rapier3d-urdf) and MJCF (through rapier3d-mjcf) into an immutable
//! [`RobotModel`].
//!
//! The loaders build rapier bodies but trust their input and ignore parts of the URDF, so this
//! module validates the description first (names, tree shape, masses, limits) and reads what the
//! loaders drop (`<limit effort velocity>`, `<dynamics>`, `<mimic>`, `<safety_controller>`)
//! itself. `package://` URIs are resolved through [`PackagePaths`]. Nothing here panics on bad
//! input: every problem is a [`SimError`] naming the file and the element.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rapier3d::prelude::*;
use rapier3d_mjcf::{MjcfLoaderOptions, MjcfRobot};
use rapier3d_urdf::{UrdfLoaderOptions, UrdfRobot, urdf_rs};

use crate::error::SimError;
use crate::math::{Transform, pose_to_transform};

pub use rivet_control::model::{JointId, JointKind, LinkId, Mimic, SoftLimits};

/// Index of an actuated degree of freedom in [`RobotModel::dofs`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct DofId(pub u32);

/// Folders searched for `package://<name>/...` URIs: a URI resolves to `<dir>/<name>/...` for
/// the first listed `<dir>` where that file exists.
#[derive(Clone, Debug, Default)]
pub struct PackagePaths {
    dirs: Vec<PathBuf>,
}

impl PackagePaths {
    /// Package folders from explicit directories, in search order.
    pub fn new(dirs: impl IntoIterator<Item = PathBuf>) -> Self {
        Self {
            dirs: dirs.into_iter().collect(),
        }
    }

    /// Appends the folders of a `ROS_PACKAGE_PATH`-style list (separated by `:`).
    pub fn extend_from_list(&mut self, list: &str) {
        self.dirs
            .extend(list.split(':').filter(|s| !s.is_empty()).map(PathBuf::from));
    }

    /// The folders, in search order.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Resolves a mesh or file URI written in `file` (`package://`, `file://`, absolute or
    /// relative to the referencing file's folder). On failure returns the candidates tried.
    pub fn resolve(&self, uri: &str, file: &Path) -> Result<PathBuf, Vec<PathBuf>> {
        let base = file.parent().unwrap_or(Path::new("."));
        let mut tried = Vec::new();
        if let Some(rest) = uri.strip_prefix("package://") {
            let (package, relative) = rest.split_once('/').unwrap_or((rest, ""));
            for dir in &self.dirs {
                let mut candidates = vec![dir.join(package).join(relative)];
                if dir.file_name().is_some_and(|n| n == package) {
                    candidates.push(dir.join(relative));
                }
                for candidate in candidates {
                    if candidate.is_file() {
                        return Ok(candidate);
                    }
                    tried.push(candidate);
                }
            }
            return Err(tried);
        }
        let path = match uri.strip_prefix("file://") {
            Some(p) => PathBuf::from(p),
            None => base.join(uri),
        };
        if path.is_file() {
            Ok(path)
        } else {
            tried.push(path);
            Err(tried)
        }
    }
}

/// Where a robot model came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RobotFormat {
    /// A URDF file.
    Urdf,
    /// A MuJoCo MJCF file.
    Mjcf,
}

/// A triangle mesh for display, in the geometry's own frame (m).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TriangleMesh {
    /// Vertex positions (m).
    pub positions: Vec<[f32; 3]>,
    /// Triangles as vertex indices.
    pub triangles: Vec<[u32; 3]>,
}

/// Display geometry of a link or prop, centred on its local frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Geometry {
    /// A box with half extents along x, y, z (m).
    Box {
        /// Half extents (m).
        half_extents: [f32; 3],
    },
    /// A sphere.
    Sphere {
        /// Radius (m).
        radius: f32,
    },
    /// A cylinder along local z.
    Cylinder {
        /// Radius (m).
        radius: f32,
        /// Half of the length along z (m).
        half_length: f32,
    },
    /// A capsule along local z.
    Capsule {
        /// Radius (m).
        radius: f32,
        /// Half of the cylindrical part's length along z (m).
        half_length: f32,
    },
    /// A triangle mesh (shared between instances).
    Mesh(Arc<TriangleMesh>),
}

/// One piece of display geometry attached to a link.
#[derive(Clone, Debug, PartialEq)]
pub struct Visual {
    /// Pose of the geometry in the link frame.
    pub link_from_geometry: Transform,
    /// The geometry.
    pub geometry: Geometry,
    /// Linear RGBA colour in [0, 1].
    pub color: [f32; 4],
}

/// A link of a robot.
#[derive(Clone, Debug)]
pub struct LinkModel {
    /// Name in the robot file.
    pub name: String,
    /// Mass (kg).
    pub mass_kg: f64,
    /// Display geometry.
    pub visuals: Vec<Visual>,
}

/// A joint of a robot, with everything read from the file.
#[derive(Clone, Debug)]
pub struct JointModel {
    /// Name in the robot file.
    pub name: String,
    /// Type.
    pub kind: JointKind,
    /// Parent link; `None` is the world (MJCF joints of bodies attached to `<worldbody>`).
    pub parent: Option<LinkId>,
    /// Child link.
    pub child: LinkId,
    /// Axis in the joint frame (unit vector).
    pub axis: [f64; 3],
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
    /// Reflected rotor inertia (kg·m² or kg).
    pub armature: f64,
    /// Soft limits from `<safety_controller>`.
    pub soft_limits: Option<SoftLimits>,
    /// Mimic relation, if any.
    pub mimic: Option<Mimic>,
}

/// An actuated degree of freedom: a one-DoF joint that is not a mimic.
#[derive(Clone, Debug)]
pub struct DofModel {
    /// The joint.
    pub joint: JointId,
    /// Index of the rapier link (in the loader's link list) whose parent joint carries it.
    pub(crate) rapier_link: usize,
    /// Spatial axis of the coordinate in rapier's joint (0 = LinX, 3 = AngX).
    pub(crate) axis: usize,
    /// Joint position (rad or m) at rapier's coordinate 0: MJCF `ref` (rapier-mjcf measures
    /// joints from the reference pose, MuJoCo's qpos includes it), 0 for URDF.
    pub reference: f64,
}

/// The rapier objects to instantiate, built once per model and cloned per world.
#[derive(Clone)]
pub(crate) enum Blueprint {
    Urdf(Box<UrdfRobot>),
    Mjcf(Box<MjcfRobot>),
}

/// A validated robot model, immutable once loaded.
#[derive(Clone)]
pub struct RobotModel {
    /// Robot name from the file (may be empty).
    pub name: String,
    /// The file it was loaded from.
    pub source: PathBuf,
    /// File format.
    pub format: RobotFormat,
    /// Links, in file order.
    pub links: Vec<LinkModel>,
    /// Joints, in file order.
    pub joints: Vec<JointModel>,
    /// Actuated degrees of freedom, in joint file order.
    pub dofs: Vec<DofModel>,
    /// The model's own timestep (s), when the file declares one (MJCF `<option timestep>`).
    pub native_timestep_secs: Option<f64>,
    /// The model's own gravity (m/s²), when the file declares it (MJCF `<option gravity>`).
    pub native_gravity: Option<[f64; 3]>,
    /// The kinematic and dynamic tree (URDF robots; `None` for MJCF), for kinematics,
    /// dynamics and IK with `rivet-control`.
    pub tree: Option<Arc<rivet_control::RobotTree>>,
    /// Rapier link index (loader order) for each file link, when the link has a body.
    pub(crate) link_to_rapier: Vec<Option<usize>>,
    pub(crate) blueprint: Blueprint,
}

impl std::fmt::Debug for RobotModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RobotModel")
            .field("name", &self.name)
            .field("source", &self.source)
            .field("links", &self.links.len())
            .field("joints", &self.joints.len())
            .field("dofs", &self.dofs.len())
            .finish()
    }
}

impl RobotModel {
    /// Loads a URDF (`.urdf`) or MJCF (`.xml`, `.mjcf`) file, chosen by extension.
    pub fn load(path: &Path, packages: &PackagePaths) -> Result<Self, SimError> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("urdf") => Self::load_urdf(path, packages),
            Some("xml") | Some("mjcf") => Self::load_mjcf(path),
            _ => Err(SimError::robot(
                path,
                "file",
                "unknown robot file type: expected .urdf, .xml or .mjcf",
            )),
        }
    }

    /// Total mass of all links (kg).
    pub fn total_mass_kg(&self) -> f64 {
        self.links.iter().map(|l| l.mass_kg).sum()
    }

    /// Looks up a joint by name.
    pub fn joint_by_name(&self, name: &str) -> Option<JointId> {
        self.joints
            .iter()
            .position(|j| j.name == name)
            .map(|i| JointId(i as u32))
    }

    /// Looks up an actuated degree of freedom by its joint's name.
    pub fn dof_by_name(&self, name: &str) -> Option<DofId> {
        self.dofs
            .iter()
            .position(|d| self.joints[d.joint.0 as usize].name == name)
            .map(|i| DofId(i as u32))
    }

    /// The joint of a degree of freedom.
    pub fn dof_joint(&self, dof: DofId) -> &JointModel {
        &self.joints[self.dofs[dof.0 as usize].joint.0 as usize]
    }

    /// The root link: the first link that no joint connects to a parent link.
    pub fn root_link(&self) -> Option<LinkId> {
        let children: BTreeSet<LinkId> = self
            .joints
            .iter()
            .filter(|j| j.parent.is_some())
            .map(|j| j.child)
            .collect();
        (0..self.links.len())
            .map(|i| LinkId(i as u32))
            .find(|l| !children.contains(l))
    }

    /// Loads and validates a URDF file.
    pub fn load_urdf(path: &Path, packages: &PackagePaths) -> Result<Self, SimError> {
        let text = std::fs::read_to_string(path).map_err(|source| SimError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut robot = urdf_rs::read_from_string(&text).map_err(|e| {
            SimError::robot(path, "robot", format!("not a valid URDF document: {e}"))
        })?;
        let (tree, links, joints) = validate_urdf(path, &robot)?;
        // Resolve every mesh URI to an absolute path the loader can open.
        for link in &mut robot.links {
            let element = format!("link '{}'", link.name);
            let geometries = link
                .visual
                .iter_mut()
                .map(|v| &mut v.geometry)
                .chain(link.collision.iter_mut().map(|c| &mut c.geometry));
            for geometry in geometries {
                if let urdf_rs::Geometry::Mesh { filename, .. } = geometry {
                    let resolved = packages.resolve(filename, path).map_err(|searched| {
                        SimError::MeshNotFound {
                            path: path.to_path_buf(),
                            element: element.clone(),
                            uri: filename.clone(),
                            searched,
                        }
                    })?;
                    *filename = resolved.to_string_lossy().into_owned();
                }
            }
        }
        let links = links
            .into_iter()
            .zip(&robot.links)
            .map(|(mut model, link)| {
                model.visuals = urdf_visuals(path, &robot, link)?;
                Ok(model)
            })
            .collect::<Result<Vec<_>, SimError>>()?;

        let options = UrdfLoaderOptions {
            // Convex hulls keep robot-link collisions fast and robust; display uses the
            // original meshes.
            mesh_converter: Some(MeshConverter::ConvexHull),
            enable_joint_collisions: false,
            ..UrdfLoaderOptions::default()
        };
        let rapier_robot = UrdfRobot::from_robot(&robot, options, Path::new("/"));
        let mut link_to_rapier = vec![None; links.len()];
        for (r, link) in rapier_robot.links.iter().enumerate() {
            if let Some(slot) = link_to_rapier.get_mut(link.urdf_link_index) {
                *slot = Some(r);
            }
        }
        let mut dofs = Vec::new();
        for (j, joint) in joints.iter().enumerate() {
            if !joint.kind.is_actuatable() || joint.mimic.is_some() {
                continue;
            }
            let rapier_joint = rapier_robot
                .joints
                .iter()
                .find(|rj| rj.source_urdf_joint_index() == j)
                .ok_or_else(|| {
                    SimError::robot(
                        path,
                        format!("joint '{}'", joint.name),
                        "the loader produced no joint for it",
                    )
                })?;
            dofs.push(DofModel {
                joint: JointId(j as u32),
                reference: 0.0,
                rapier_link: rapier_joint.link2,
                axis: if joint.kind == JointKind::Prismatic {
                    0
                } else {
                    3
                },
            });
        }
        Ok(Self {
            name: robot.name.clone(),
            source: path.to_path_buf(),
            format: RobotFormat::Urdf,
            links,
            joints,
            dofs,
            native_timestep_secs: None,
            native_gravity: None,
            tree: tree.map(Arc::new),
            link_to_rapier,
            blueprint: Blueprint::Urdf(Box::new(rapier_robot)),
        })
    }

    /// Loads an MJCF file. Bodies become links; hinge and slide joints become actuated DoFs.
    pub fn load_mjcf(path: &Path) -> Result<Self, SimError> {
        if !path.is_file() {
            return Err(SimError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        let options = MjcfLoaderOptions {
            // The model's own floor is part of the model.
            skip_plane_geoms: false,
            // memberships = contype, filter = conaffinity; the test mode is set to OR below.
            contact_filter_mode: rapier3d_mjcf::ContactFilterMode::Asymmetric,
            ..MjcfLoaderOptions::default()
        };
        // The MJCF converter is third-party code that may panic on inputs it does not expect;
        // a user's file must never take the process down.
        let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            MjcfRobot::from_file(path, options)
        }));
        let (mut robot, model) = match loaded {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                return Err(SimError::robot(
                    path,
                    "mujoco",
                    format!("not a valid MJCF model: {e:#}"),
                ));
            }
            Err(_) => {
                return Err(SimError::robot(
                    path,
                    "mujoco",
                    "the MJCF converter failed on this model",
                ));
            }
        };
        mujoco_contact_rule(&mut robot);
        // Links and joints follow the file (mjcf-rs's body list, world excluded); rapier bodies
        // and joints are matched to them. Bodies without joints that the converter welds
        // into their parent have no rapier body of their own.
        let mut link_to_rapier = Vec::new();
        let mut links = Vec::new();
        let mut body_to_link: BTreeMap<usize, LinkId> = BTreeMap::new();
        for (id, entry) in model.bodies_iter() {
            let name = entry
                .body
                .name
                .clone()
                .unwrap_or_else(|| format!("body{id}"));
            let rapier = robot
                .bodies
                .iter()
                .position(|b| !b.is_intermediate && b.mjcf_body_id == id);
            let mass_kg = rapier.map_or(0.0, |r| f64::from(robot.bodies[r].body.mass()));
            if !mass_kg.is_finite() || mass_kg < 0.0 {
                return Err(SimError::robot(
                    path,
                    format!("body '{name}'"),
                    format!("mass {mass_kg} kg is not finite and >= 0"),
                ));
            }
            let visuals = rapier
                .map(|r| {
                    robot.bodies[r]
                        .colliders
                        .iter()
                        .filter_map(|c| {
                            shape_to_geometry(c.shape()).map(|geometry| Visual {
                                link_from_geometry: pose_to_transform(
                                    c.position_wrt_parent().unwrap_or(&Pose::IDENTITY),
                                ),
                                geometry,
                                color: [0.8, 0.6, 0.4, 1.0],
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            body_to_link.insert(id, LinkId(links.len() as u32));
            link_to_rapier.push(rapier);
            links.push(LinkModel {
                name,
                mass_kg,
                visuals,
            });
        }
        // Rapier joints that carry degrees of freedom, in creation order (file order).
        let mut rapier_joints: Vec<(usize, &rapier3d_mjcf::MjcfJoint)> = robot
            .joints
            .iter()
            .enumerate()
            .filter(|(_, j)| j.joint.locked_axes.bits().count_ones() < 6)
            .collect();
        let mut joints = Vec::new();
        let mut dofs = Vec::new();
        for (id, entry) in model.bodies_iter() {
            let child = body_to_link[&id];
            let parent = entry.parent.and_then(|p| body_to_link.get(&p).copied());
            for (k, joint) in entry.body.joints.iter().enumerate() {
                let name = joint
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("{}_joint{k}", links[child.0 as usize].name));
                let element = format!("joint '{name}'");
                let kind = match joint.type_ {
                    rapier3d_mjcf::mjcf_rs::body::JointType::Hinge => {
                        if joint.range.is_some()
                            && joint.limited != rapier3d_mjcf::mjcf_rs::types::Tristate::False
                        {
                            JointKind::Revolute
                        } else {
                            JointKind::Continuous
                        }
                    }
                    rapier3d_mjcf::mjcf_rs::body::JointType::Slide => JointKind::Prismatic,
                    rapier3d_mjcf::mjcf_rs::body::JointType::Ball => JointKind::Spherical,
                    rapier3d_mjcf::mjcf_rs::body::JointType::Free => JointKind::Floating,
                };
                // The matching rapier joint: by name, else the next unnamed one.
                let position = match &joint.name {
                    Some(n) => rapier_joints
                        .iter()
                        .position(|(_, j)| j.name.as_deref() == Some(n)),
                    None => rapier_joints.iter().position(|(_, j)| j.name.is_none()),
                };
                let rapier = position.map(|p| rapier_joints.remove(p));
                let id = JointId(joints.len() as u32);
                let axis_index = if kind == JointKind::Prismatic { 0 } else { 3 };
                let (limits, damping, friction, armature) = match rapier {
                    Some((_, rj)) => (
                        matches!(kind, JointKind::Revolute | JointKind::Prismatic).then(|| {
                            let l = rj.joint.limits[axis_index];
                            [f64::from(l.min) + joint.ref_, f64::from(l.max) + joint.ref_]
                        }),
                        f64::from(rj.damping_per_dof),
                        f64::from(rj.frictionloss_per_dof),
                        f64::from(rj.armature_per_dof),
                    ),
                    None => (None, joint.damping, 0.0, 0.0),
                };
                if kind.is_actuatable() {
                    let Some((_, rj)) = rapier else {
                        return Err(SimError::robot(
                            path,
                            element,
                            "the MJCF converter produced no joint for it",
                        ));
                    };
                    dofs.push(DofModel {
                        joint: id,
                        reference: joint.ref_,
                        rapier_link: rj.link2,
                        axis: axis_index,
                    });
                }
                let a = joint.axis;
                let norm = (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt();
                joints.push(JointModel {
                    name,
                    kind,
                    parent,
                    child,
                    axis: if norm > 0.0 {
                        [a[0] / norm, a[1] / norm, a[2] / norm]
                    } else {
                        [0.0, 0.0, 1.0]
                    },
                    limits,
                    effort_limit: None,
                    velocity_limit: None,
                    damping,
                    friction,
                    armature,
                    soft_limits: None,
                    mimic: None,
                });
            }
        }
        Ok(Self {
            name: robot.name.clone().unwrap_or_default(),
            source: path.to_path_buf(),
            format: RobotFormat::Mjcf,
            links,
            joints,
            dofs,
            native_timestep_secs: Some(model.option.timestep),
            native_gravity: Some(model.option.gravity),
            tree: None,
            link_to_rapier,
            blueprint: Blueprint::Mjcf(Box::new(robot)),
        })
    }
}

/// Gives MJCF colliders MuJoCo's contact rule.
///
/// MuJoCo lets two geoms collide when `(contype1 & conaffinity2) || (contype2 & conaffinity1)`.
/// rapier3d-mjcf 0.36.1's default encoding (`memberships = filter = contype | conaffinity`,
/// rapier's AND test) makes geoms with `contype="0"` collide with everything: in Gymnasium's
/// inverted_pendulum.xml and reacher.xml, whose geoms default to `contype="0"`, the cart then
/// collides with the rail it overlaps and the arm with the arena it sits in, and the contact
/// impulses of those deep overlaps blow the state up to NaN within a few steps (the crash the
/// import used to hit). Loading with `memberships = contype, filter = conaffinity` and rapier's
/// OR test mode is exactly MuJoCo's rule between MJCF geoms. Against colliders that use the
/// default AND mode (scene props and the scene's ground), rapier applies AND, so such a geom
/// touches them only when both its contype and conaffinity are non-zero.
fn mujoco_contact_rule(robot: &mut MjcfRobot) {
    for body in &mut robot.bodies {
        for collider in &mut body.colliders {
            let mut groups = collider.collision_groups();
            groups.test_mode = InteractionTestMode::Or;
            collider.set_collision_groups(groups);
        }
    }
}

/// Display geometry for a rapier shape (MJCF colliders).
fn shape_to_geometry(shape: &dyn Shape) -> Option<Geometry> {
    if let Some(b) = shape.as_cuboid() {
        let h = b.half_extents;
        return Some(Geometry::Box {
            half_extents: [h.x, h.y, h.z],
        });
    }
    if let Some(s) = shape.as_ball() {
        return Some(Geometry::Sphere { radius: s.radius });
    }
    if let Some(c) = shape.as_capsule() {
        // rapier capsules run between two points; MJCF capsules are built along local z.
        let half_length = (c.segment.b - c.segment.a).length() * 0.5;
        return Some(Geometry::Capsule {
            radius: c.radius,
            half_length,
        });
    }
    if let Some(c) = shape.as_cylinder() {
        return Some(Geometry::Cylinder {
            radius: c.radius,
            half_length: c.half_height,
        });
    }
    if let Some(m) = shape.as_trimesh() {
        return Some(Geometry::Mesh(Arc::new(TriangleMesh {
            positions: m.vertices().iter().map(|v| [v.x, v.y, v.z]).collect(),
            triangles: m.indices().to_vec(),
        })));
    }
    if let Some(m) = shape.as_convex_polyhedron() {
        let (vertices, indices) = m.to_trimesh();
        return Some(Geometry::Mesh(Arc::new(TriangleMesh {
            positions: vertices.iter().map(|v| [v.x, v.y, v.z]).collect(),
            triangles: indices,
        })));
    }
    None
}

fn finite3(v: &[f64; 3]) -> bool {
    v.iter().all(|x| x.is_finite())
}

/// Checks a parsed URDF and extracts our link and joint models (visuals filled later).
/// What URDF validation yields: the tree (none for a document without links), links, joints.
type ValidatedUrdf = (
    Option<rivet_control::RobotTree>,
    Vec<LinkModel>,
    Vec<JointModel>,
);

fn validate_urdf(path: &Path, robot: &urdf_rs::Robot) -> Result<ValidatedUrdf, SimError> {
    // A document with no links (e.g. a xacro stub) is a valid URDF with nothing to simulate;
    // the scene rejects it where a robot is needed.
    if robot.links.is_empty() && robot.joints.is_empty() {
        return Ok((None, Vec::new(), Vec::new()));
    }
    // The control crate owns URDF validation (names, tree shape, masses, limits, mimics,
    // soft limits); geometry is checked here, where meshes are loaded.
    let tree = rivet_control::RobotTree::from_urdf(robot)
        .map_err(|e| SimError::robot(path, e.element, e.message))?;
    let mut links = Vec::with_capacity(robot.links.len());
    for (link, model) in robot.links.iter().zip(&tree.links) {
        let element = format!("link '{}'", link.name);
        for visual in &link.visual {
            check_geometry(path, &element, &visual.geometry, &visual.origin)?;
        }
        for collision in &link.collision {
            check_geometry(path, &element, &collision.geometry, &collision.origin)?;
        }
        links.push(LinkModel {
            name: model.name.clone(),
            mass_kg: model.mass,
            visuals: Vec::new(),
        });
    }
    let joints = tree
        .joints
        .iter()
        .map(|j| JointModel {
            name: j.name.clone(),
            kind: j.kind,
            parent: Some(j.parent),
            child: j.child,
            axis: [j.axis.x, j.axis.y, j.axis.z],
            limits: j.limits,
            effort_limit: j.effort_limit,
            velocity_limit: j.velocity_limit,
            damping: j.damping,
            friction: j.friction,
            armature: 0.0,
            soft_limits: j.soft_limits,
            mimic: j.mimic,
        })
        .collect();
    Ok((Some(tree), links, joints))
}

fn check_geometry(
    path: &Path,
    element: &str,
    geometry: &urdf_rs::Geometry,
    origin: &urdf_rs::Pose,
) -> Result<(), SimError> {
    if !finite3(&origin.xyz) || !finite3(&origin.rpy) {
        return Err(SimError::robot(
            path,
            element,
            "geometry <origin> is not finite",
        ));
    }
    // Mesh scales may be negative (mirrored meshes); primitive sizes may not.
    if let urdf_rs::Geometry::Mesh { scale: Some(s), .. } = geometry
        && s.iter().any(|v| !v.is_finite() || *v == 0.0)
    {
        return Err(SimError::robot(
            path,
            element,
            format!("mesh scale {:?} must be finite and non-zero", **s),
        ));
    }
    let sizes: Vec<f64> = match geometry {
        urdf_rs::Geometry::Box { size } => size.to_vec(),
        urdf_rs::Geometry::Cylinder { radius, length }
        | urdf_rs::Geometry::Capsule { radius, length } => vec![*radius, *length],
        urdf_rs::Geometry::Sphere { radius } => vec![*radius],
        urdf_rs::Geometry::Mesh { .. } => Vec::new(),
    };
    if sizes.iter().any(|s| !s.is_finite() || *s < 0.0) {
        return Err(SimError::robot(
            path,
            element,
            format!("geometry dimensions {sizes:?} must be finite and >= 0"),
        ));
    }
    Ok(())
}

/// Display geometry of a URDF link, with meshes loaded from their (resolved) files.
fn urdf_visuals(
    path: &Path,
    robot: &urdf_rs::Robot,
    link: &urdf_rs::Link,
) -> Result<Vec<Visual>, SimError> {
    let mut visuals = Vec::new();
    for visual in &link.visual {
        let color = visual
            .material
            .as_ref()
            .and_then(|m| {
                m.color.as_ref().map(|c| c.rgba).or_else(|| {
                    robot
                        .materials
                        .iter()
                        .find(|global| global.name == m.name)
                        .and_then(|global| global.color.as_ref().map(|c| c.rgba))
                })
            })
            .map(|c| [c[0] as f32, c[1] as f32, c[2] as f32, c[3] as f32])
            .unwrap_or([0.75, 0.75, 0.78, 1.0]);
        let link_from_geometry = Transform::from_xyz_rpy(*visual.origin.xyz, *visual.origin.rpy);
        let geometry = match &visual.geometry {
            urdf_rs::Geometry::Box { size } => Geometry::Box {
                half_extents: [
                    size[0] as f32 * 0.5,
                    size[1] as f32 * 0.5,
                    size[2] as f32 * 0.5,
                ],
            },
            urdf_rs::Geometry::Sphere { radius } => Geometry::Sphere {
                radius: *radius as f32,
            },
            urdf_rs::Geometry::Cylinder { radius, length } => Geometry::Cylinder {
                radius: *radius as f32,
                half_length: *length as f32 * 0.5,
            },
            urdf_rs::Geometry::Capsule { radius, length } => Geometry::Capsule {
                radius: *radius as f32,
                half_length: *length as f32 * 0.5,
            },
            urdf_rs::Geometry::Mesh { filename, scale } => {
                let scale = scale.map_or([1.0; 3], |s| *s);
                Geometry::Mesh(Arc::new(load_mesh(
                    path,
                    &format!("link '{}'", link.name),
                    Path::new(filename),
                    scale,
                )?))
            }
        };
        visuals.push(Visual {
            link_from_geometry,
            geometry,
            color,
        });
    }
    Ok(visuals)
}

/// Loads an STL, OBJ or DAE file as one triangle mesh (all sub-meshes merged), scaled.
pub fn load_mesh(
    referenced_by: &Path,
    element: &str,
    file: &Path,
    scale: [f64; 3],
) -> Result<TriangleMesh, SimError> {
    let loader = rapier3d_meshloader::mesh_loader::Loader::default();
    let scene = match loader.load(file) {
        Ok(scene) => scene,
        Err(e) => {
            // Binary STL files whose 80-byte header starts with "solid" are taken for ASCII
            // by the loader; read them as binary when the size says they are.
            if let Some(mesh) = read_binary_stl(file, scale) {
                return Ok(mesh);
            }
            return Err(SimError::robot(
                referenced_by,
                element,
                format!("cannot load mesh {}: {e}", file.display()),
            ));
        }
    };
    let mut mesh = TriangleMesh::default();
    for part in &scene.meshes {
        let base = mesh.positions.len() as u32;
        mesh.positions.extend(part.vertices.iter().map(|v| {
            [
                v[0] * scale[0] as f32,
                v[1] * scale[1] as f32,
                v[2] * scale[2] as f32,
            ]
        }));
        for face in &part.faces {
            mesh.triangles
                .push([face[0] + base, face[1] + base, face[2] + base]);
        }
    }
    if mesh.positions.iter().flatten().any(|x| !x.is_finite())
        || mesh
            .triangles
            .iter()
            .flatten()
            .any(|&i| i as usize >= mesh.positions.len())
    {
        return Err(SimError::robot(
            referenced_by,
            element,
            format!(
                "mesh {} has non-finite vertices or bad indices",
                file.display()
            ),
        ));
    }
    Ok(mesh)
}

/// Reads a binary STL (80-byte header, triangle count, 50 bytes per triangle), or `None` when
/// the file is not one (its size must match the count exactly).
fn read_binary_stl(file: &Path, scale: [f64; 3]) -> Option<TriangleMesh> {
    if !file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("stl"))
    {
        return None;
    }
    let bytes = std::fs::read(file).ok()?;
    let count = u32::from_le_bytes(bytes.get(80..84)?.try_into().ok()?) as usize;
    if bytes.len() != 84 + 50 * count {
        return None;
    }
    let mut mesh = TriangleMesh {
        positions: Vec::with_capacity(3 * count),
        triangles: Vec::with_capacity(count),
    };
    for t in 0..count {
        let record = &bytes[84 + 50 * t..84 + 50 * (t + 1)];
        for v in 0..3 {
            let mut p = [0.0f32; 3];
            for (axis, value) in p.iter_mut().enumerate() {
                let at = 12 + 12 * v + 4 * axis;
                let raw = f32::from_le_bytes(record[at..at + 4].try_into().ok()?);
                *value = raw * scale[axis] as f32;
            }
            if p.iter().any(|x| !x.is_finite()) {
                return None;
            }
            mesh.positions.push(p);
        }
        let base = (3 * t) as u32;
        mesh.triangles.push([base, base + 1, base + 2]);
    }
    Some(mesh)
}
