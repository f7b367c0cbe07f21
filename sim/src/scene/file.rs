//! The scene file format (`scenes/*.toml`), as parsed by serde.
//!
//! These types mirror the TOML one to one; every field documents its unit and default. They are
//! checked and compiled into the immutable [`crate::scene::Scene`] model by
//! [`crate::scene::Scene::load`]. Unknown keys are rejected everywhere (`deny_unknown_fields`),
//! and new optional sections (tasks, sensors) extend the format without breaking older files.

use std::collections::BTreeMap;

use rivet_control::CommandMode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A whole scene file.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SceneFile {
    /// Scene metadata.
    #[serde(default)]
    pub scene: SceneMeta,
    /// Physics settings of the world.
    #[serde(default)]
    pub world: WorldFile,
    /// Robots imported from URDF or MJCF files.
    #[serde(default, rename = "robot")]
    pub robots: Vec<RobotFile>,
    /// Rigid props: materials, tools, scaffolding.
    #[serde(default, rename = "prop")]
    pub props: Vec<PropFile>,
    /// Kinematic actors (e.g. workers) following waypoint paths.
    #[serde(default, rename = "actor")]
    pub actors: Vec<ActorFile>,
    /// A learning task on this scene (observations, actions, rewards, randomisation).
    pub task: Option<crate::env::file::TaskFile>,
    /// Cameras rendering RGB, depth and segmentation (wgpu).
    #[serde(default, rename = "camera")]
    pub cameras: Vec<crate::sensors::file::CameraFile>,
    /// Other sensors: lidar, IMU, joint encoders, contact and force/torque sensors.
    #[serde(default, rename = "sensor")]
    pub sensors: Vec<crate::sensors::file::SensorFile>,
}

/// Scene metadata.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SceneMeta {
    /// Human-readable scene name. Default: the file stem.
    pub name: Option<String>,
    /// Free-text description.
    #[serde(default)]
    pub description: String,
    /// Default run duration for `rivet run` (s). Default: 10.
    pub duration_secs: Option<f64>,
}

/// World physics settings.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct WorldFile {
    /// Gravity vector in the world frame (m/s²). Z is up. Default: [0, 0, -9.81].
    pub gravity: [f64; 3],
    /// Fixed physics timestep (s). Default: 0.002 (500 Hz).
    pub timestep_secs: f64,
    /// Constraint solver iterations per step (rapier `num_solver_iterations`). Default: 4.
    pub solver_iterations: u32,
    /// Internal PGS iterations per solver iteration (rapier `num_internal_pgs_iterations`).
    /// Default: 1.
    pub pgs_iterations: u32,
    /// Distance at which contacts are predicted before shapes touch (m; rapier's
    /// `normalized_prediction_distance` with a 1 m length unit). Default: 0.002. Keep it below
    /// the clearance of tight fits such as fingers straddling an object: rapier updates a
    /// predicted box-box contact incrementally while the orientation holds, and a contact
    /// predicted at an edge stays at that edge as the shapes slide past it, so a larger value
    /// makes fingers bump into a brick they clear.
    pub contact_prediction: f64,
    /// Add a static ground plane at z = 0. Default: true.
    pub ground: bool,
    /// Friction coefficient of the ground plane (dimensionless). Default: 0.9.
    pub ground_friction: f64,
    /// The cameras' directional light casts shadows (a shadow map per world; the ground
    /// receives shadows but casts none). Default: false.
    pub shadows: bool,
}

impl Default for WorldFile {
    fn default() -> Self {
        Self {
            gravity: [0.0, 0.0, -9.81],
            timestep_secs: 0.002,
            solver_iterations: 4,
            pgs_iterations: 1,
            contact_prediction: 0.002,
            ground: true,
            ground_friction: 0.9,
            shadows: false,
        }
    }
}

/// A robot imported from a URDF or MJCF file.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RobotFile {
    /// Unique name of the robot in the scene (used in recordings and commands).
    pub name: String,
    /// Path to a URDF file, relative to the scene file. Exactly one of `urdf` and `mjcf`.
    pub urdf: Option<String>,
    /// Path to an MJCF file, relative to the scene file. Exactly one of `urdf` and `mjcf`.
    pub mjcf: Option<String>,
    /// Position of the robot's root link in the world (m). Default: [0, 0, 0].
    #[serde(default)]
    pub position: [f64; 3],
    /// Orientation of the root link as roll, pitch, yaw (rad, URDF convention). Default: 0.
    #[serde(default)]
    pub rpy: [f64; 3],
    /// Fix the root link to the world (arms) or leave it floating (mobile bases). Default: true.
    #[serde(default = "default_true")]
    pub fixed_base: bool,
    /// Initial joint positions by joint name (rad or m). Joints not listed start at 0 (or at the
    /// middle of their limits when 0 is outside them).
    #[serde(default)]
    pub initial_joints: BTreeMap<String, f64>,
    /// Actuator settings applied to every actuated joint unless overridden in `joints`.
    #[serde(default)]
    pub actuators: ActuatorFile,
    /// Per-joint actuator overrides by joint name.
    #[serde(default)]
    pub joints: BTreeMap<String, ActuatorFile>,
    /// Disable contacts between links of this robot. Default: false (contacts between links that
    /// share a joint are always off).
    #[serde(default)]
    pub disable_self_collisions: bool,
    /// Friction coefficient (dimensionless) of the colliders of the named links, e.g. 0 for
    /// passive casters. Links not listed keep rapier's default of 0.5 (URDF cannot say).
    #[serde(default)]
    pub link_friction: BTreeMap<String, f64>,
    /// Scale of the mass and rotational inertia of the named links (dimensionless, > 0), e.g.
    /// fitted by `rivet sysid`. Links not listed keep the robot file's. Applied after default
    /// gains are derived, as a real robot's gains do not change with its load.
    #[serde(default)]
    pub link_mass_scale: BTreeMap<String, f64>,
    /// A load carried by a link (a tool, a part in the gripper). Default: none.
    pub payload: Option<PayloadFile>,
    /// Delay between a command being written and the actuators acting on it (s), rounded to
    /// physics steps: the transport and driver latency of a real robot, e.g. fitted by
    /// `rivet sysid`. Default: 0.
    #[serde(default)]
    pub command_latency_secs: f64,
    /// Age of the joint state a policy observes (s), rounded to physics steps: the sensing and
    /// transport delay between a real robot measuring its joints and its controller reading
    /// them, e.g. measured by `rivet gap` and written by `rivet sysid`. Task environments
    /// (train, eval, run with a policy) observe joint positions, velocities and the frames they
    /// move this much late; rewards, success and replays use the true state. Default: 0.
    #[serde(default)]
    pub observation_latency_secs: f64,
    /// A scripted controller driving this robot.
    pub script: Option<ScriptFile>,
}

/// A point-like load rigidly attached to a robot link.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PayloadFile {
    /// The link carrying it (a link with a body: not a massless fixed frame).
    pub link: String,
    /// Mass (kg, >= 0).
    pub mass: f64,
    /// Centre of mass in the link frame (m). Default: the link origin.
    #[serde(default)]
    pub offset: [f64; 3],
    /// Radius of the solid sphere whose inertia the payload gets (m). Default: 0.02.
    #[serde(default = "default_payload_radius")]
    pub radius: f64,
}

fn default_payload_radius() -> f64 {
    0.02
}

fn default_true() -> bool {
    true
}

/// Actuator settings for a joint. Every field is optional; unset fields fall back to the robot's
/// `actuators` table, then to the robot file (URDF `<limit>` and `<dynamics>`), then to the
/// documented default.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ActuatorFile {
    /// Command mode. Default: position.
    pub mode: Option<CommandMode>,
    /// Proportional gain (N·m/rad or N/m). Default: 40000 times the joint's apparent inertia
    /// (kg·m² or kg) in the initial configuration, a 200 rad/s natural frequency.
    pub kp: Option<f64>,
    /// Derivative gain (N·m·s/rad or N·s/m). Default: critical damping (400 times the apparent
    /// inertia) when kp is defaulted, 0.1·kp when kp is given.
    pub kd: Option<f64>,
    /// Effort limit (N·m or N). Default: URDF `<limit effort>`, else unlimited.
    pub effort_limit: Option<f64>,
    /// Velocity limit (rad/s or m/s) applied to commanded targets. Default: URDF
    /// `<limit velocity>`, else unlimited.
    pub velocity_limit: Option<f64>,
    /// Coulomb joint friction (N·m or N). Default: URDF `<dynamics friction>`, else 0.
    pub friction: Option<f64>,
    /// Viscous joint damping (N·m·s/rad or N·s/m). Default: URDF `<dynamics damping>`, else 0.
    pub damping: Option<f64>,
    /// Reflected rotor inertia added to the joint (kg·m² or kg). Default: 0.
    pub armature: Option<f64>,
}

/// A scripted controller for a robot (scenario logic, before learned policies).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum ScriptFile {
    /// Joint-space waypoints joined by minimum-jerk segments, in position mode.
    JointWaypoints {
        /// Start over after the last waypoint. Default: false.
        #[serde(default, rename = "loop")]
        looping: bool,
        /// The waypoints, in time order.
        waypoints: Vec<JointWaypointFile>,
    },
    /// A differential-drive patrol through planar waypoints (a closed loop), commanding the two
    /// wheel joints in velocity mode.
    Patrol {
        /// Name of the left wheel joint.
        left_wheel: String,
        /// Name of the right wheel joint.
        right_wheel: String,
        /// Wheel radius (m).
        wheel_radius: f64,
        /// Distance between the wheels' contact points (m).
        track_width: f64,
        /// Cruise speed (m/s). Default: 0.8.
        #[serde(default = "default_cruise")]
        speed: f64,
        /// Planar waypoints [x, y] in the world (m), visited in order, looping.
        waypoints: Vec<[f64; 2]>,
    },
    /// Pick props and place them at target poses: IK, joint-space and straight-line
    /// trajectories and a parallel gripper (rivet-control's `PickPlace`), in position mode. The
    /// run's summary reports each task's outcome.
    PickAndPlace {
        /// The tool frame (a link name): +z approach direction, fingers closing along +y.
        tool_frame: String,
        /// The gripper's joints with their open and closed positions.
        gripper: Vec<GripperJointFile>,
        /// Height of the approach and retreat straight lines (m). Default: 0.12.
        #[serde(default = "default_approach")]
        approach_height: f64,
        /// Average straight-line speed (m/s). Default: 0.15.
        #[serde(default = "default_line_speed")]
        line_speed: f64,
        /// Fraction of each joint's velocity limit for joint-space moves. Default: 0.4.
        #[serde(default = "default_joint_speed")]
        joint_speed: f64,
        /// Time to close or open the gripper (s). Default: 0.8.
        #[serde(default = "default_grip_time")]
        grip_time: f64,
        /// Height above the place pose at which the object is released (m). Default: 0.003.
        #[serde(default = "default_release")]
        release_height: f64,
        /// A task succeeds when the object ends within this distance of its target (m).
        /// Default: 0.01.
        #[serde(default = "default_tolerance_position")]
        tolerance_position: f64,
        /// ... and within this angle of its target orientation (degrees). Default: 5.
        #[serde(default = "default_tolerance_angle")]
        tolerance_angle_deg: f64,
        /// The tasks, in order.
        tasks: Vec<PickPlaceTaskFile>,
    },
}

fn default_cruise() -> f64 {
    0.8
}

/// One gripper joint of a pick-and-place script.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GripperJointFile {
    /// Joint name.
    pub joint: String,
    /// Position when open (rad or m).
    pub open: f64,
    /// Position commanded to close (rad or m); the object stops the fingers before it.
    pub closed: f64,
}

/// One pick-and-place task: a dynamic prop and where it must end up.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PickPlaceTaskFile {
    /// Name of the prop to pick (a dynamic prop).
    pub object: String,
    /// Target position of the prop's centre in the world (m).
    pub place_position: [f64; 3],
    /// Target orientation of the prop, roll-pitch-yaw (rad). Default: [0, 0, 0].
    #[serde(default)]
    pub place_rpy: [f64; 3],
}

fn default_approach() -> f64 {
    0.12
}
fn default_line_speed() -> f64 {
    0.15
}
fn default_joint_speed() -> f64 {
    0.4
}
fn default_grip_time() -> f64 {
    0.8
}
fn default_release() -> f64 {
    0.003
}
fn default_tolerance_position() -> f64 {
    0.01
}
fn default_tolerance_angle() -> f64 {
    5.0
}

/// One joint-space waypoint.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JointWaypointFile {
    /// Time at which the waypoint is reached, from the start of the run (s).
    pub time: f64,
    /// Joint positions by joint name (rad or m). Joints not listed keep the previous waypoint's
    /// value (or their initial position).
    pub joints: BTreeMap<String, f64>,
}

/// A collision and visual shape.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum ShapeFile {
    /// A box.
    Box {
        /// Full edge lengths along x, y, z (m).
        size: [f64; 3],
    },
    /// A sphere.
    Sphere {
        /// Radius (m).
        radius: f64,
    },
    /// A cylinder along the local z axis.
    Cylinder {
        /// Radius (m).
        radius: f64,
        /// Full length along z (m).
        length: f64,
    },
    /// A capsule along the local z axis.
    Capsule {
        /// Radius (m).
        radius: f64,
        /// Length of the cylindrical part along z, without the caps (m).
        length: f64,
    },
    /// A triangle mesh from an STL, OBJ or DAE file (path relative to the scene file).
    Mesh {
        /// Mesh file.
        file: String,
        /// Scale along x, y, z. Default: [1, 1, 1].
        #[serde(default = "unit_scale")]
        scale: [f64; 3],
        /// Use the convex hull for collisions (needed for dynamic props). Default: true.
        #[serde(default = "default_true")]
        convex: bool,
    },
}

fn unit_scale() -> [f64; 3] {
    [1.0; 3]
}

/// How a prop moves.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BodyKind {
    /// Never moves (walls, scaffolding, pallets bolted down).
    Static,
    /// Moved by physics (bricks, tools).
    #[default]
    Dynamic,
}

/// A rigid prop.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PropFile {
    /// Unique name of the prop.
    pub name: String,
    /// Shape.
    pub shape: ShapeFile,
    /// Position of the shape's centre in the world (m). Default: [0, 0, 0].
    #[serde(default)]
    pub position: [f64; 3],
    /// Orientation as roll, pitch, yaw (rad, URDF convention). Default: [0, 0, 0].
    #[serde(default)]
    pub rpy: [f64; 3],
    /// Static or dynamic. Default: dynamic.
    #[serde(default)]
    pub body: BodyKind,
    /// Mass (kg). Give `mass` or `density`, not both. Default: density 1000 kg/m³.
    pub mass: Option<f64>,
    /// Density (kg/m³). Give `mass` or `density`, not both.
    pub density: Option<f64>,
    /// Friction coefficient (dimensionless). Default: 0.7.
    #[serde(default = "default_friction")]
    pub friction: f64,
    /// Restitution coefficient in [0, 1]. Default: 0.
    #[serde(default)]
    pub restitution: f64,
    /// Display colour, linear RGBA in [0, 1]. Default: [0.7, 0.7, 0.7, 1].
    #[serde(default = "default_color")]
    pub color: [f32; 4],
    /// Semantic class in camera segmentation images (e.g. "brick"). Default: the prop's name.
    pub class: Option<String>,
}

fn default_friction() -> f64 {
    0.7
}

fn default_color() -> [f32; 4] {
    [0.7, 0.7, 0.7, 1.0]
}

/// A kinematic actor (e.g. a worker) following a waypoint path at constant speed. Physics pushes
/// nothing back onto it: robots and props collide with it as with a moving wall.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActorFile {
    /// Unique name of the actor.
    pub name: String,
    /// Shape (a capsule of radius 0.25 m and length 1.2 m approximates a person).
    pub shape: ShapeFile,
    /// Path waypoints in the world (m); the shape's origin follows them. At least two.
    pub path: Vec<[f64; 3]>,
    /// Walking speed along the path (m/s).
    pub speed: f64,
    /// Return from the last waypoint to the first and repeat; otherwise stop at the end.
    /// Default: true.
    #[serde(default = "default_true", rename = "loop")]
    pub looping: bool,
    /// Display colour, linear RGBA in [0, 1]. Default: [0.9, 0.5, 0.1, 1].
    #[serde(default = "default_actor_color")]
    pub color: [f32; 4],
    /// Semantic class in camera segmentation images (e.g. "worker"). Default: the actor's name.
    pub class: Option<String>,
}

fn default_actor_color() -> [f32; 4] {
    [0.9, 0.5, 0.1, 1.0]
}
