//! The scene: a TOML file compiled into an immutable, validated model.
//!
//! [`Scene::load`] parses a `scenes/*.toml` file ([`file::SceneFile`]), loads the robots it
//! references and checks every value, so that building and stepping a world from a [`Scene`]
//! cannot fail on user input. Per-step state lives in [`crate::world::World`], never here.

pub mod file;
mod overlay;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rivet_control::{CommandMode, JointWaypoint, WaypointTrajectory};
use sha2::{Digest, Sha256};

use crate::error::SimError;
use crate::math::Transform;
use crate::robot::{DofId, Geometry, PackagePaths, RobotModel, TriangleMesh, load_mesh};
use file::{ActuatorFile, BodyKind, ScriptFile, ShapeFile};

/// Default position gain per kilogram-metre² of apparent joint inertia (N·m/rad per kg·m²):
/// every joint gets the same closed-loop natural frequency, 200 rad/s. The solver's motors are
/// implicit, so such stiff servos stay stable at the default timestep.
pub const DEFAULT_KP_PER_INERTIA: f64 = 200.0 * 200.0;

/// World settings, validated.
#[derive(Clone, Debug)]
pub struct WorldModel {
    /// Gravity (m/s²).
    pub gravity: [f64; 3],
    /// Fixed timestep (s).
    pub dt_secs: f64,
    /// Solver iterations.
    pub solver_iterations: u32,
    /// Internal PGS iterations.
    pub pgs_iterations: u32,
    /// Contact prediction distance (m).
    pub contact_prediction_m: f64,
    /// Ground plane friction, when the ground is enabled.
    pub ground_friction: Option<f64>,
    /// Whether the cameras' light casts shadows.
    pub shadows: bool,
}

/// The actuator of one degree of freedom, with every default resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Actuator {
    /// Command mode.
    pub mode: CommandMode,
    /// Proportional gain (N·m/rad or N/m); `None` means derived from the carried inertia when
    /// the world is built.
    pub kp: Option<f64>,
    /// Derivative gain (N·m·s/rad or N·s/m); `None` means derived with `kp`.
    pub kd: Option<f64>,
    /// Effort limit (N·m or N); infinite when unlimited.
    pub effort_limit: f64,
    /// Velocity limit (rad/s or m/s); infinite when unlimited.
    pub velocity_limit: f64,
    /// Coulomb friction (N·m or N).
    pub friction: f64,
    /// Viscous damping (N·m·s/rad or N·s/m).
    pub damping: f64,
    /// Armature (kg·m² or kg).
    pub armature: f64,
}

/// A compiled pick-and-place script.
#[derive(Clone, Debug)]
pub struct PickPlaceSpec {
    /// The robot's tree.
    pub tree: Arc<rivet_control::RobotTree>,
    /// Sequencer settings (home = the initial joint positions).
    pub config: rivet_control::pick_place::PickPlaceConfig,
    /// Tasks; `object` indexes the scene's props and `place` is in the robot's base frame.
    pub tasks: Vec<rivet_control::pick_place::PickPlaceTask>,
    /// Target pose of each task's object in the world.
    pub world_targets: Vec<Transform>,
    /// Success tolerance on position (m).
    pub tolerance_position_m: f64,
    /// Success tolerance on orientation (rad).
    pub tolerance_angle_rad: f64,
}

/// A compiled scripted controller.
#[derive(Clone, Debug)]
pub enum Script {
    /// Joint waypoints over all actuated DoFs, in position mode.
    JointWaypoints(WaypointTrajectory),
    /// Pick-and-place of props.
    PickPlace(Box<PickPlaceSpec>),
    /// Differential-drive patrol.
    Patrol {
        /// Left wheel DoF.
        left: DofId,
        /// Right wheel DoF.
        right: DofId,
        /// Wheel radius (m).
        wheel_radius_m: f64,
        /// Track width (m).
        track_width_m: f64,
        /// Cruise speed (m/s).
        speed_mps: f64,
        /// Planar waypoints (m).
        waypoints: Vec<[f64; 2]>,
    },
}

/// A robot placed in the scene.
#[derive(Clone, Debug)]
pub struct RobotInstance {
    /// Unique name in the scene.
    pub name: String,
    /// The loaded robot model (shared).
    pub model: Arc<RobotModel>,
    /// Pose of the root link in the world.
    pub world_from_base: Transform,
    /// Root fixed to the world.
    pub fixed_base: bool,
    /// Initial position of each DoF (rad or m).
    pub initial_positions: Vec<f64>,
    /// Actuator of each DoF.
    pub actuators: Vec<Actuator>,
    /// Self collisions between non-adjacent links.
    pub self_collisions: bool,
    /// Scripted controller, if any.
    pub script: Option<Script>,
    /// Collider friction overrides: (model link, coefficient).
    pub link_friction: Vec<(crate::robot::LinkId, f64)>,
    /// Mass and inertia scales: (model link, scale).
    pub link_mass_scale: Vec<(crate::robot::LinkId, f64)>,
    /// A load carried by a link.
    pub payload: Option<Payload>,
    /// Command latency in physics steps (the file's seconds, rounded): what `World` applies.
    pub command_latency_steps: usize,
    /// Command latency as the file gives it (s); replays apply it exactly (see `replay`).
    pub command_latency_secs: f64,
    /// Observation latency in physics steps (the file's seconds, rounded): how late a task's
    /// policy observes the joint state (see `env`).
    pub observation_latency_steps: usize,
}

/// A point-like load on a robot link, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Payload {
    /// The link carrying it (it has a rapier body).
    pub link: crate::robot::LinkId,
    /// Mass (kg).
    pub mass_kg: f64,
    /// Centre of mass in the link frame (m).
    pub offset: [f64; 3],
    /// Radius of the solid sphere giving its inertia (m).
    pub radius_m: f64,
}

/// A rigid shape, validated.
#[derive(Clone, Debug)]
pub struct ShapeModel {
    /// Display geometry (also the collision shape, except meshes used convex).
    pub geometry: Geometry,
    /// Collide with the convex hull of a mesh.
    pub convex: bool,
}

/// A prop placed in the scene.
#[derive(Clone, Debug)]
pub struct PropModel {
    /// Unique name.
    pub name: String,
    /// Shape.
    pub shape: ShapeModel,
    /// Pose in the world.
    pub world_from_prop: Transform,
    /// Dynamic (true) or static.
    pub dynamic: bool,
    /// Mass (kg) if given, else computed from `density`.
    pub mass_kg: Option<f64>,
    /// Density (kg/m³) used when no mass is given.
    pub density: f64,
    /// Friction coefficient.
    pub friction: f64,
    /// Restitution coefficient.
    pub restitution: f64,
    /// Linear RGBA colour.
    pub color: [f32; 4],
}

/// A kinematic actor.
#[derive(Clone, Debug)]
pub struct ActorModel {
    /// Unique name.
    pub name: String,
    /// Shape.
    pub shape: ShapeModel,
    /// Path waypoints (m).
    pub path: Vec<[f64; 3]>,
    /// Speed (m/s).
    pub speed_mps: f64,
    /// Loop back to the start.
    pub looping: bool,
    /// Linear RGBA colour.
    pub color: [f32; 4],
    /// Path points, with the first repeated at the end when looping.
    points: Vec<[f64; 3]>,
    /// Path length up to each point (m).
    cumulative_m: Vec<f64>,
}

impl ActorModel {
    /// Builds an actor; the path must have at least two finite points.
    pub fn new(
        name: String,
        shape: ShapeModel,
        path: Vec<[f64; 3]>,
        speed_mps: f64,
        looping: bool,
        color: [f32; 4],
    ) -> Self {
        let mut points = path.clone();
        if looping {
            points.push(path[0]);
        }
        let mut cumulative_m = vec![0.0];
        for w in points.windows(2) {
            let last = cumulative_m[cumulative_m.len() - 1];
            cumulative_m.push(last + dist(w[0], w[1]));
        }
        Self {
            name,
            shape,
            path,
            speed_mps,
            looping,
            color,
            points,
            cumulative_m,
        }
    }

    /// Position along the path at time `t_secs` (m), and the heading (rad about z) of the
    /// current segment. Does not allocate.
    pub fn position_at(&self, t_secs: f64) -> ([f64; 3], f64) {
        let total = self.cumulative_m[self.cumulative_m.len() - 1];
        if total <= 0.0 {
            return (self.path[0], 0.0);
        }
        let travelled = self.speed_mps * t_secs.max(0.0);
        let s = if self.looping {
            travelled % total
        } else {
            travelled.min(total)
        };
        // First segment whose end is at or beyond s.
        let i = self.cumulative_m[1..]
            .iter()
            .position(|&c| c >= s)
            .unwrap_or(self.points.len() - 2);
        let (a, b) = (self.points[i], self.points[i + 1]);
        let len = self.cumulative_m[i + 1] - self.cumulative_m[i];
        let u = if len > 0.0 {
            ((s - self.cumulative_m[i]) / len).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let p = [
            a[0] + u * (b[0] - a[0]),
            a[1] + u * (b[1] - a[1]),
            a[2] + u * (b[2] - a[2]),
        ];
        (p, (b[1] - a[1]).atan2(b[0] - a[0]))
    }
}

fn dist(a: [f64; 3], b: [f64; 3]) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

/// A validated scene: everything needed to build worlds, immutable.
#[derive(Clone, Debug)]
pub struct Scene {
    /// Scene name.
    pub name: String,
    /// Description.
    pub description: String,
    /// The scene file.
    pub source: PathBuf,
    /// SHA-256 of the scene file's bytes, hex.
    pub content_hash: String,
    /// Default run duration (s).
    pub duration_secs: f64,
    /// World settings.
    pub world: WorldModel,
    /// Robots.
    pub robots: Vec<RobotInstance>,
    /// Props.
    pub props: Vec<PropModel>,
    /// Actors.
    pub actors: Vec<ActorModel>,
    /// The learning task, if the scene defines one.
    pub task: Option<std::sync::Arc<crate::env::TaskModel>>,
    /// Cameras, sensors and semantic classes (empty when the scene declares none).
    pub sensors: Arc<crate::sensors::SensorsModel>,
}

impl Scene {
    /// Loads, parses and validates a scene file, and the robots it references.
    pub fn load(path: &Path, packages: &PackagePaths) -> Result<Self, SimError> {
        let text = std::fs::read_to_string(path).map_err(|source| SimError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let file = parse(path, &text)?;
        Self::from_file(path, &text, file, packages)
    }

    /// Loads a scene with overlays applied in order (see the overlay format in
    /// `sim/src/scene/overlay.rs` and docs/scenes.md): tables merge key by key, robots are
    /// addressed by name. The content hash covers the merged scene, so a policy trained with an
    /// overlay is told apart from one trained without. No overlays is [`Scene::load`].
    pub fn load_with_overlays(
        path: &Path,
        overlays: &[std::path::PathBuf],
        packages: &PackagePaths,
    ) -> Result<Self, SimError> {
        if overlays.is_empty() {
            return Self::load(path, packages);
        }
        let (_, mut table) = overlay::read_table(path)?;
        for overlay_path in overlays {
            let (_, changes) = overlay::read_table(overlay_path)?;
            overlay::apply(&mut table, changes, overlay_path)?;
        }
        let text = toml::to_string(&table).map_err(|e| {
            SimError::scene(
                path,
                "overlay",
                format!("cannot write the merged scene: {e}"),
            )
        })?;
        let file: file::SceneFile =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| {
                    SimError::scene(
                        path,
                        "overlay",
                        format!(
                            "the scene with overlays {overlays:?} is not a valid scene: {}",
                            e.message()
                        ),
                    )
                })?;
        Self::from_file(path, &text, file, packages)
    }

    /// Validates a parsed scene file; `text` is hashed into [`Scene::content_hash`].
    pub fn from_file(
        path: &Path,
        text: &str,
        file: file::SceneFile,
        packages: &PackagePaths,
    ) -> Result<Self, SimError> {
        Self::compile(path, text, &file, packages, Vec::new())
    }

    /// Validates a parsed scene; `preloaded[i]`, when given, is robot `i`'s already loaded
    /// model (robots beyond the list are loaded from their files).
    fn compile(
        path: &Path,
        text: &str,
        file: &file::SceneFile,
        packages: &PackagePaths,
        preloaded: Vec<RobotModel>,
    ) -> Result<Self, SimError> {
        let err = |element: String, message: String| SimError::scene(path, element, message);
        let w = &file.world;
        if !w.gravity.iter().all(|g| g.is_finite()) {
            return Err(err(
                "world.gravity".into(),
                format!("{:?} is not finite", w.gravity),
            ));
        }
        if !(w.timestep_secs.is_finite() && w.timestep_secs > 0.0 && w.timestep_secs <= 0.1) {
            return Err(err(
                "world.timestep_secs".into(),
                format!("{} s must be in (0, 0.1]", w.timestep_secs),
            ));
        }
        if w.solver_iterations == 0 || w.pgs_iterations == 0 {
            return Err(err(
                "world.solver_iterations".into(),
                "solver_iterations and pgs_iterations must be >= 1".into(),
            ));
        }
        check_non_negative(path, "world.ground_friction", w.ground_friction)?;
        if !(w.contact_prediction.is_finite()
            && w.contact_prediction > 0.0
            && w.contact_prediction <= 0.1)
        {
            return Err(err(
                "world.contact_prediction".into(),
                format!("{} m must be in (0, 0.1]", w.contact_prediction),
            ));
        }
        let world = WorldModel {
            contact_prediction_m: w.contact_prediction,
            gravity: w.gravity,
            dt_secs: w.timestep_secs,
            solver_iterations: w.solver_iterations,
            pgs_iterations: w.pgs_iterations,
            ground_friction: w.ground.then_some(w.ground_friction),
            shadows: w.shadows,
        };
        let duration_secs = file.scene.duration_secs.unwrap_or(10.0);
        if !(duration_secs.is_finite() && duration_secs > 0.0) {
            return Err(err(
                "scene.duration_secs".into(),
                format!("{duration_secs} s must be > 0"),
            ));
        }

        let mut names = BTreeSet::new();
        let mut unique = |kind: &str, i: usize, name: &str| {
            if name.is_empty() || !names.insert(name.to_string()) {
                Err(err(
                    format!("{kind}[{i}].name"),
                    format!("'{name}' must be non-empty and unique among robots, props and actors"),
                ))
            } else {
                Ok(())
            }
        };
        let base_dir = path.parent().unwrap_or(Path::new("."));
        let mut props = Vec::new();
        for (i, p) in file.props.iter().enumerate() {
            unique("prop", i, &p.name)?;
            let at = format!("prop[{i}] '{}'", p.name);
            check_finite3(path, &format!("{at}.position"), p.position)?;
            check_finite3(path, &format!("{at}.rpy"), p.rpy)?;
            let shape = shape_model(path, base_dir, &format!("{at}.shape"), &p.shape)?;
            let dynamic = p.body == BodyKind::Dynamic;
            if p.mass.is_some() && p.density.is_some() {
                return Err(err(at, "give mass or density, not both".into()));
            }
            if let Some(m) = p.mass
                && !(m.is_finite() && m > 0.0)
            {
                return Err(err(
                    format!("{at}.mass"),
                    format!("{m} kg must be finite and > 0"),
                ));
            }
            let density = p.density.unwrap_or(1000.0);
            if !(density.is_finite() && density > 0.0) {
                return Err(err(
                    format!("{at}.density"),
                    format!("{density} kg/m³ must be finite and > 0"),
                ));
            }
            if dynamic && matches!(shape.geometry, Geometry::Mesh(_)) && !shape.convex {
                return Err(err(
                    format!("{at}.shape.mesh.convex"),
                    "a dynamic prop's mesh must collide as its convex hull (convex = true)".into(),
                ));
            }
            check_non_negative(path, &format!("{at}.friction"), p.friction)?;
            check_unit(path, &format!("{at}.restitution"), p.restitution)?;
            check_color(path, &format!("{at}.color"), p.color)?;
            props.push(PropModel {
                name: p.name.clone(),
                shape,
                world_from_prop: Transform::from_xyz_rpy(p.position, p.rpy),
                dynamic,
                mass_kg: p.mass,
                density,
                friction: p.friction,
                restitution: p.restitution,
                color: p.color,
            });
        }
        let mut robots = Vec::new();
        let mut preloaded = preloaded.into_iter();
        for (i, r) in file.robots.iter().enumerate() {
            unique("robot", i, &r.name)?;
            robots.push(robot_instance(
                path,
                base_dir,
                i,
                r,
                packages,
                preloaded.next(),
                &props,
                world.dt_secs,
            )?);
        }
        let mut actors = Vec::new();
        for (i, a) in file.actors.iter().enumerate() {
            unique("actor", i, &a.name)?;
            let at = format!("actor[{i}] '{}'", a.name);
            let shape = shape_model(path, base_dir, &format!("{at}.shape"), &a.shape)?;
            if a.path.len() < 2 {
                return Err(err(
                    format!("{at}.path"),
                    "needs at least two waypoints".into(),
                ));
            }
            for (k, p) in a.path.iter().enumerate() {
                check_finite3(path, &format!("{at}.path[{k}]"), *p)?;
            }
            if !(a.speed.is_finite() && a.speed > 0.0) {
                return Err(err(
                    format!("{at}.speed"),
                    format!("{} m/s must be > 0", a.speed),
                ));
            }
            check_color(path, &format!("{at}.color"), a.color)?;
            actors.push(ActorModel::new(
                a.name.clone(),
                shape,
                a.path.clone(),
                a.speed,
                a.looping,
                a.color,
            ));
        }
        let task = match &file.task {
            Some(t) => Some(std::sync::Arc::new(crate::env::model::compile(
                path,
                t,
                &robots,
                &props,
                world.dt_secs,
            )?)),
            None => None,
        };
        let sensors = Arc::new(crate::sensors::model::compile(
            path, file, &robots, &props, &actors,
        )?);
        let content_hash = format!("{:x}", Sha256::digest(text.as_bytes()));
        let name = file.scene.name.clone().unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        Ok(Self {
            name,
            description: file.scene.description.clone(),
            source: path.to_path_buf(),
            content_hash,
            duration_secs,
            world,
            robots,
            props,
            actors,
            task,
            sensors,
        })
    }
}

impl Scene {
    /// A scene holding just one robot file (URDF or MJCF) at the world origin, at the file's
    /// own timestep and gravity when it declares them (MJCF), else the scene defaults. There is
    /// a ground plane only for a floating-base URDF robot: MJCF models bring their own floor,
    /// and a fixed-base arm is mounted on its base (at its zero pose many arms lie along the
    /// floor's height). Self collisions are off for URDF robots. Used by the physics benchmark
    /// and the import tests.
    pub fn single_robot(
        robot_path: &Path,
        fixed_base: bool,
        packages: &PackagePaths,
    ) -> Result<Self, SimError> {
        let model = RobotModel::load(robot_path, packages)?;
        let is_mjcf = model.format == crate::robot::RobotFormat::Mjcf;
        let native_timestep = model.native_timestep_secs;
        let native_gravity = model.native_gravity;
        let mut file = file::SceneFile::default();
        if let Some(dt) = native_timestep {
            file.world.timestep_secs = dt;
        }
        if let Some(g) = native_gravity {
            file.world.gravity = g;
        }
        file.world.ground = !is_mjcf && !fixed_base;
        let name = robot_path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "robot".into());
        let absolute = std::path::absolute(robot_path).map_err(|source| SimError::Io {
            path: robot_path.to_path_buf(),
            source,
        })?;
        let path_text = absolute.to_string_lossy().into_owned();
        file.scene.name = Some(name.clone());
        file.robots.push(file::RobotFile {
            name,
            urdf: (!is_mjcf).then(|| path_text.clone()),
            mjcf: is_mjcf.then(|| path_text.clone()),
            position: [0.0; 3],
            rpy: [0.0; 3],
            fixed_base,
            initial_joints: Default::default(),
            // MJCF models are driven by torque actuators (MuJoCo `<motor>`); with no command
            // they move passively, as MuJoCo does with zero controls.
            actuators: file::ActuatorFile {
                mode: is_mjcf.then_some(CommandMode::Torque),
                ..Default::default()
            },
            joints: Default::default(),
            // Collision meshes of imported URDF arms (convex hulls) commonly overlap between
            // links that are not adjacent (the pairs an SRDF's <disable_collisions> lists);
            // without that list, self contacts would fight the actuators. MJCF models filter
            // their own contacts (contype/conaffinity), and their floor belongs to the world
            // body, which may be part of the robot's multibody.
            disable_self_collisions: !is_mjcf,
            link_friction: Default::default(),
            link_mass_scale: Default::default(),
            payload: None,
            command_latency_secs: 0.0,
            observation_latency_secs: 0.0,
            script: None,
        });
        Self::compile(robot_path, &path_text, &file, packages, vec![model])
    }
}

/// Parses scene TOML, reporting line and column of syntax and schema errors.
pub fn parse(path: &Path, text: &str) -> Result<file::SceneFile, SimError> {
    toml::from_str(text).map_err(|e| {
        let (line, column) = e
            .span()
            .map(|span| line_column(text, span.start))
            .unwrap_or((1, 1));
        SimError::Toml {
            path: path.to_path_buf(),
            line,
            column,
            message: e.message().to_string(),
        }
    })
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn check_finite3(path: &Path, element: &str, v: [f64; 3]) -> Result<(), SimError> {
    if v.iter().all(|x| x.is_finite()) {
        Ok(())
    } else {
        Err(SimError::scene(
            path,
            element,
            format!("{v:?} is not finite"),
        ))
    }
}

fn check_non_negative(path: &Path, element: &str, v: f64) -> Result<(), SimError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(SimError::scene(
            path,
            element,
            format!("{v} must be finite and >= 0"),
        ))
    }
}

fn check_unit(path: &Path, element: &str, v: f64) -> Result<(), SimError> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(SimError::scene(
            path,
            element,
            format!("{v} must be in [0, 1]"),
        ))
    }
}

fn check_color(path: &Path, element: &str, c: [f32; 4]) -> Result<(), SimError> {
    if c.iter().all(|x| (0.0..=1.0).contains(x)) {
        Ok(())
    } else {
        Err(SimError::scene(
            path,
            element,
            format!("{c:?}: every component must be in [0, 1]"),
        ))
    }
}

fn shape_model(
    path: &Path,
    base_dir: &Path,
    element: &str,
    shape: &ShapeFile,
) -> Result<ShapeModel, SimError> {
    let positive = |name: &str, v: f64| {
        if v.is_finite() && v > 0.0 {
            Ok(v as f32)
        } else {
            Err(SimError::scene(
                path,
                format!("{element}.{name}"),
                format!("{v} m must be finite and > 0"),
            ))
        }
    };
    let (geometry, convex) = match shape {
        ShapeFile::Box { size } => (
            Geometry::Box {
                half_extents: [
                    positive("size", size[0])? * 0.5,
                    positive("size", size[1])? * 0.5,
                    positive("size", size[2])? * 0.5,
                ],
            },
            true,
        ),
        ShapeFile::Sphere { radius } => (
            Geometry::Sphere {
                radius: positive("radius", *radius)?,
            },
            true,
        ),
        ShapeFile::Cylinder { radius, length } => (
            Geometry::Cylinder {
                radius: positive("radius", *radius)?,
                half_length: positive("length", *length)? * 0.5,
            },
            true,
        ),
        ShapeFile::Capsule { radius, length } => (
            Geometry::Capsule {
                radius: positive("radius", *radius)?,
                half_length: positive("length", *length)? * 0.5,
            },
            true,
        ),
        ShapeFile::Mesh {
            file,
            scale,
            convex,
        } => {
            for s in scale {
                positive("scale", *s)?;
            }
            let mesh_path = base_dir.join(file);
            if !mesh_path.is_file() {
                return Err(SimError::MeshNotFound {
                    path: path.to_path_buf(),
                    element: element.to_string(),
                    uri: file.clone(),
                    searched: vec![mesh_path],
                });
            }
            let mesh: TriangleMesh = load_mesh(path, element, &mesh_path, *scale)?;
            if mesh.triangles.is_empty() {
                return Err(SimError::scene(path, element, "the mesh has no triangles"));
            }
            (Geometry::Mesh(Arc::new(mesh)), *convex)
        }
    };
    Ok(ShapeModel { geometry, convex })
}

#[allow(clippy::too_many_arguments)] // reason: one call site; the pieces are distinct inputs
fn robot_instance(
    path: &Path,
    base_dir: &Path,
    index: usize,
    r: &file::RobotFile,
    packages: &PackagePaths,
    preloaded: Option<RobotModel>,
    props: &[PropModel],
    dt_secs: f64,
) -> Result<RobotInstance, SimError> {
    let at = format!("robot[{index}] '{}'", r.name);
    let err = |element: String, message: String| SimError::scene(path, element, message);
    let robot_file = match (&r.urdf, &r.mjcf) {
        (Some(u), None) => u,
        (None, Some(m)) => m,
        _ => {
            return Err(err(at, "give exactly one of `urdf` and `mjcf`".into()));
        }
    };
    check_finite3(path, &format!("{at}.position"), r.position)?;
    check_finite3(path, &format!("{at}.rpy"), r.rpy)?;
    let robot_path = base_dir.join(robot_file);
    let model = match preloaded {
        Some(model) => model,
        None if r.urdf.is_some() => RobotModel::load_urdf(&robot_path, packages)?,
        None => RobotModel::load_mjcf(&robot_path)?,
    };
    if model.links.is_empty() {
        return Err(err(
            format!("{at}.urdf"),
            format!("{} has no links", robot_path.display()),
        ));
    }
    let dof_names: Vec<&str> = model
        .dofs
        .iter()
        .map(|d| model.joints[d.joint.0 as usize].name.as_str())
        .collect();
    let lookup = |element: String, name: &str| {
        model.dof_by_name(name).ok_or_else(|| {
            err(
                element,
                format!("'{name}' is not an actuated joint of the robot (actuated joints: {dof_names:?})"),
            )
        })
    };

    // Initial positions: MJCF models start at their reference pose (MuJoCo's qpos0, even when
    // it lies outside a joint range); URDF joints at 0, or mid-range when 0 is outside the
    // limits. Then the file's values.
    let is_mjcf = model.format == crate::robot::RobotFormat::Mjcf;
    let mut initial_positions: Vec<f64> = model
        .dofs
        .iter()
        .map(|d| match model.joints[d.joint.0 as usize].limits {
            _ if is_mjcf => d.reference,
            Some([lo, hi]) if !(lo..=hi).contains(&0.0) => 0.5 * (lo + hi),
            _ => 0.0,
        })
        .collect();
    for (name, &q) in &r.initial_joints {
        let element = format!("{at}.initial_joints.{name}");
        let dof = lookup(element.clone(), name)?;
        let joint = model.dof_joint(dof);
        if !q.is_finite() {
            return Err(err(element, format!("{q} is not finite")));
        }
        if let Some([lo, hi]) = joint.limits
            && !(lo..=hi).contains(&q)
        {
            return Err(err(
                element,
                format!("{q} is outside the joint limits [{lo}, {hi}]"),
            ));
        }
        initial_positions[dof.0 as usize] = q;
    }

    for name in r.joints.keys() {
        lookup(format!("{at}.joints.{name}"), name)?;
    }
    let mut actuators = Vec::with_capacity(model.dofs.len());
    for dof in &model.dofs {
        let joint = &model.joints[dof.joint.0 as usize];
        let over = r.joints.get(&joint.name);
        let pick =
            |f: fn(&ActuatorFile) -> Option<f64>| over.and_then(f).or_else(|| f(&r.actuators));
        let element = |field: &str| match over {
            Some(_) => format!("{at}.joints.{}.{field}", joint.name),
            None => format!("{at}.actuators.{field}"),
        };
        let mode = over
            .and_then(|o| o.mode)
            .or(r.actuators.mode)
            .unwrap_or(CommandMode::Position);
        let kp = pick(|a| a.kp);
        let kd = pick(|a| a.kd);
        let effort_limit = pick(|a| a.effort_limit).or(joint.effort_limit);
        let velocity_limit = pick(|a| a.velocity_limit).or(joint.velocity_limit);
        let friction = pick(|a| a.friction).unwrap_or(joint.friction);
        let damping = pick(|a| a.damping).unwrap_or(joint.damping);
        let armature = pick(|a| a.armature).unwrap_or(joint.armature);
        for (field, v) in [
            ("kp", kp),
            ("kd", kd),
            ("effort_limit", effort_limit),
            ("velocity_limit", velocity_limit),
            ("friction", Some(friction)),
            ("damping", Some(damping)),
            ("armature", Some(armature)),
        ] {
            if let Some(v) = v {
                check_non_negative(path, &element(field), v)?;
            }
        }
        actuators.push(Actuator {
            mode,
            kp,
            kd,
            effort_limit: effort_limit.unwrap_or(f64::INFINITY),
            velocity_limit: velocity_limit.unwrap_or(f64::INFINITY),
            friction,
            damping,
            armature,
        });
    }

    let mut script = match &r.script {
        None => None,
        Some(ScriptFile::JointWaypoints { looping, waypoints }) => {
            let mut current = initial_positions.clone();
            let mut compiled = Vec::with_capacity(waypoints.len());
            for (k, w) in waypoints.iter().enumerate() {
                for (name, &q) in &w.joints {
                    let element = format!("{at}.script.waypoints[{k}].joints.{name}");
                    let dof = lookup(element.clone(), name)?;
                    let joint = model.dof_joint(dof);
                    if let Some([lo, hi]) = joint.limits
                        && !(lo..=hi).contains(&q)
                    {
                        return Err(err(
                            element,
                            format!("{q} is outside the joint limits [{lo}, {hi}]"),
                        ));
                    }
                    current[dof.0 as usize] = q;
                }
                compiled.push(JointWaypoint {
                    time_secs: w.time,
                    positions: current.clone(),
                });
            }
            for (d, a) in actuators.iter().enumerate() {
                if a.mode != CommandMode::Position {
                    return Err(err(
                        format!("{at}.script"),
                        format!(
                            "joint_waypoints commands positions, but joint '{}' is in {:?} mode",
                            model.dof_joint(DofId(d as u32)).name,
                            a.mode
                        ),
                    ));
                }
            }
            let trajectory = WaypointTrajectory::new(compiled, *looping)
                .map_err(|e| err(format!("{at}.script.waypoints"), e.to_string()))?;
            Some(Script::JointWaypoints(trajectory))
        }
        Some(ScriptFile::Patrol {
            left_wheel,
            right_wheel,
            wheel_radius,
            track_width,
            speed,
            waypoints,
        }) => {
            let left = lookup(format!("{at}.script.left_wheel"), left_wheel)?;
            let right = lookup(format!("{at}.script.right_wheel"), right_wheel)?;
            for (field, v) in [
                ("wheel_radius", *wheel_radius),
                ("track_width", *track_width),
                ("speed", *speed),
            ] {
                if !(v.is_finite() && v > 0.0) {
                    return Err(err(
                        format!("{at}.script.{field}"),
                        format!("{v} must be finite and > 0"),
                    ));
                }
            }
            if waypoints.is_empty() || waypoints.iter().flatten().any(|v| !v.is_finite()) {
                return Err(err(
                    format!("{at}.script.waypoints"),
                    "needs at least one finite [x, y] waypoint".into(),
                ));
            }
            for dof in [left, right] {
                if actuators[dof.0 as usize].mode != CommandMode::Velocity {
                    return Err(err(
                        format!("{at}.joints.{}.mode", model.dof_joint(dof).name),
                        "a patrol drives its wheels in velocity mode: set mode = \"velocity\""
                            .into(),
                    ));
                }
            }
            Some(Script::Patrol {
                left,
                right,
                wheel_radius_m: *wheel_radius,
                track_width_m: *track_width,
                speed_mps: *speed,
                waypoints: waypoints.clone(),
            })
        }
        // Compiled below, once the props are checked.
        Some(ScriptFile::PickAndPlace { .. }) => None,
    };

    if let Some(ScriptFile::PickAndPlace {
        tool_frame,
        gripper,
        approach_height,
        line_speed,
        joint_speed,
        grip_time,
        release_height,
        tolerance_position,
        tolerance_angle_deg,
        tasks,
    }) = &r.script
    {
        let element = format!("{at}.script");
        let Some(tree) = model.tree.clone() else {
            return Err(err(element, "pick_and_place needs a URDF robot".into()));
        };
        let Some(tool) = tree.frame_by_name(tool_frame) else {
            return Err(err(
                format!("{element}.tool_frame"),
                format!("the robot has no link '{tool_frame}'"),
            ));
        };
        for (field, v) in [
            ("approach_height", *approach_height),
            ("line_speed", *line_speed),
            ("joint_speed", *joint_speed),
            ("grip_time", *grip_time),
            ("tolerance_position", *tolerance_position),
            ("tolerance_angle_deg", *tolerance_angle_deg),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(err(
                    format!("{element}.{field}"),
                    format!("{v} must be finite and > 0"),
                ));
            }
        }
        if !(release_height.is_finite() && *release_height >= 0.0) {
            return Err(err(
                format!("{element}.release_height"),
                format!("{release_height} must be finite and >= 0"),
            ));
        }
        let mut grip = Vec::new();
        for (k, g) in gripper.iter().enumerate() {
            let dof = lookup(format!("{element}.gripper[{k}].joint"), &g.joint)?;
            let joint = model.dof_joint(dof);
            for (field, v) in [("open", g.open), ("closed", g.closed)] {
                if !v.is_finite() || joint.limits.is_some_and(|[lo, hi]| v < lo || v > hi) {
                    return Err(err(
                        format!("{element}.gripper[{k}].{field}"),
                        format!(
                            "{v} must be finite and within the joint limits {:?}",
                            joint.limits
                        ),
                    ));
                }
            }
            grip.push((dof.0 as usize, g.open, g.closed));
        }
        for (d, a) in actuators.iter().enumerate() {
            if a.mode != CommandMode::Position {
                return Err(err(
                    element.clone(),
                    format!(
                        "pick_and_place commands positions, but joint '{}' is in {:?} mode",
                        model.dof_joint(DofId(d as u32)).name,
                        a.mode
                    ),
                ));
            }
        }
        let base = crate::math::isometry(&Transform::from_xyz_rpy(r.position, r.rpy));
        let mut compiled = Vec::new();
        let mut world_targets = Vec::new();
        for (k, t) in tasks.iter().enumerate() {
            let te = format!("{element}.tasks[{k}]");
            let Some(object) = props.iter().position(|p| p.name == t.object) else {
                return Err(err(
                    format!("{te}.object"),
                    format!("no prop named '{}'", t.object),
                ));
            };
            if !props[object].dynamic {
                return Err(err(
                    format!("{te}.object"),
                    format!("prop '{}' is static and cannot be picked", t.object),
                ));
            }
            if !t
                .place_position
                .iter()
                .chain(&t.place_rpy)
                .all(|v| v.is_finite())
            {
                return Err(err(
                    te,
                    "place_position and place_rpy must be finite".into(),
                ));
            }
            let world = Transform::from_xyz_rpy(t.place_position, t.place_rpy);
            compiled.push(rivet_control::pick_place::PickPlaceTask {
                object,
                place: base.inverse() * crate::math::isometry(&world),
            });
            world_targets.push(world);
        }
        if compiled.is_empty() {
            return Err(err(
                format!("{element}.tasks"),
                "needs at least one task".into(),
            ));
        }
        let config = rivet_control::pick_place::PickPlaceConfig {
            tool_frame: tool,
            gripper: grip,
            approach_height: *approach_height,
            cartesian_speed: *line_speed,
            joint_speed_fraction: *joint_speed,
            grip_secs: *grip_time,
            release_height: *release_height,
            home: initial_positions.clone(),
        };
        // Checks the configuration against the tree now rather than when the world is built.
        rivet_control::pick_place::PickPlace::new(tree.clone(), config.clone(), compiled.clone())
            .map_err(|e| err(element.clone(), e))?;
        script = Some(Script::PickPlace(Box::new(PickPlaceSpec {
            tree,
            config,
            tasks: compiled,
            world_targets,
            tolerance_position_m: *tolerance_position,
            tolerance_angle_rad: tolerance_angle_deg.to_radians(),
        })));
    }

    let mut link_friction = Vec::new();
    for (link, &mu) in &r.link_friction {
        let element = format!("{at}.link_friction.{link}");
        let Some(index) = model.links.iter().position(|l| &l.name == link) else {
            return Err(err(element, format!("the robot has no link '{link}'")));
        };
        check_non_negative(path, &element, mu)?;
        link_friction.push((crate::robot::LinkId(index as u32), mu));
    }
    // Mass changes need a rapier body: massless fixed frames (tool frames) are merged away.
    let body_link = |element: &str, link: &str| -> Result<crate::robot::LinkId, SimError> {
        let Some(index) = model.links.iter().position(|l| l.name == link) else {
            return Err(err(
                element.to_owned(),
                format!("the robot has no link '{link}'"),
            ));
        };
        if model.link_to_rapier[index].is_none() {
            return Err(err(
                element.to_owned(),
                format!(
                    "link '{link}' has no body (a massless fixed frame the loader merges into \
                     its parent): use the link it is fixed to, with an offset"
                ),
            ));
        }
        Ok(crate::robot::LinkId(index as u32))
    };
    let mut link_mass_scale = Vec::new();
    for (link, &scale) in &r.link_mass_scale {
        let element = format!("{at}.link_mass_scale.{link}");
        let id = body_link(&element, link)?;
        if !(scale.is_finite() && scale > 0.0) {
            return Err(err(element, format!("{scale} must be finite and > 0")));
        }
        link_mass_scale.push((id, scale));
    }
    let payload = match &r.payload {
        None => None,
        Some(p) => {
            let element = format!("{at}.payload");
            let link = body_link(&format!("{element}.link"), &p.link)?;
            check_non_negative(path, &format!("{element}.mass"), p.mass)?;
            if !p.offset.iter().all(|v| v.is_finite()) {
                return Err(err(
                    format!("{element}.offset"),
                    format!("{:?} is not finite", p.offset),
                ));
            }
            if !(p.radius.is_finite() && p.radius > 0.0) {
                return Err(err(
                    format!("{element}.radius"),
                    format!("{} must be finite and > 0", p.radius),
                ));
            }
            Some(Payload {
                link,
                mass_kg: p.mass,
                offset: p.offset,
                radius_m: p.radius,
            })
        }
    };
    let latency_steps = |key: &str, secs: f64| -> Result<usize, SimError> {
        check_non_negative(path, &format!("{at}.{key}"), secs)?;
        let steps = (secs / dt_secs).round() as usize;
        if steps > 10_000 {
            return Err(err(
                format!("{at}.{key}"),
                format!("{secs} s is {steps} physics steps; at most 10000"),
            ));
        }
        Ok(steps)
    };
    let command_latency_steps = latency_steps("command_latency_secs", r.command_latency_secs)?;
    let observation_latency_steps =
        latency_steps("observation_latency_secs", r.observation_latency_secs)?;

    Ok(RobotInstance {
        link_friction,
        link_mass_scale,
        payload,
        command_latency_steps,
        command_latency_secs: r.command_latency_secs,
        observation_latency_steps,
        name: r.name.clone(),
        world_from_base: Transform::from_xyz_rpy(r.position, r.rpy),
        fixed_base: r.fixed_base,
        initial_positions,
        actuators,
        self_collisions: !r.disable_self_collisions,
        script,
        model: Arc::new(model),
    })
}

/// The JSON Schema of the scene format, for editors.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(file::SceneFile))
        .expect("a derived JSON schema always serializes")
}
