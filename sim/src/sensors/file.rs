//! The scene file's `[[camera]]` and `[[sensor]]` tables, as parsed by serde. Every field
//! documents its unit and default; unknown keys are rejected. They are checked and compiled into
//! [`super::SensorsModel`] by the scene loader.

use rivet_perception::render::Distortion;
use rivet_perception::{EncoderResolution, NoiseConfig};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a camera or sensor is attached to. Give `robot` with `link`, or `prop`, or nothing
/// (fixed in the world).
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MountFile {
    /// Robot name (with `link`).
    pub robot: Option<String>,
    /// Link of that robot. It must carry a rigid body: links joined to their parent by a fixed
    /// joint with no geometry (tool frames) are merged away by the loader; mount on the parent.
    pub link: Option<String>,
    /// Prop name (instead of `robot` and `link`).
    pub prop: Option<String>,
}

/// A camera: RGB, depth and segmentation images.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CameraFile {
    /// Unique name among cameras and sensors.
    pub name: String,
    /// What the camera is attached to. Default: fixed in the world.
    #[serde(default)]
    pub mount: MountFile,
    /// Position of the camera in the mount's frame (m). Default: [0, 0, 0].
    #[serde(default)]
    pub position: [f64; 3],
    /// Orientation of the camera frame (OpenCV: z along the optical axis, x right, y down in
    /// the image) in the mount's frame, as roll, pitch, yaw (rad, URDF convention). Give `rpy`
    /// or `look_at`, not both. Default: [0, 0, 0].
    pub rpy: Option<[f64; 3]>,
    /// A point (m, in the mount's frame) the optical axis passes through, with the image's up
    /// direction towards the mount's +z. Give `rpy` or `look_at`, not both.
    pub look_at: Option<[f64; 3]>,
    /// Image size [width, height] in pixels, each 1..=8192.
    pub resolution: [u32; 2],
    /// Horizontal field of view (degrees, in (0, 180)); square pixels, centred principal point.
    /// Give `fov_deg` or all of `fx`, `fy`, `cx`, `cy`.
    pub fov_deg: Option<f64>,
    /// Focal length along x (pixels).
    pub fx: Option<f64>,
    /// Focal length along y (pixels).
    pub fy: Option<f64>,
    /// Principal point column (pixels; pixel centres at integer coordinates).
    pub cx: Option<f64>,
    /// Principal point row (pixels).
    pub cy: Option<f64>,
    /// Nearest depth rendered (m along the optical axis). Default: 0.05.
    #[serde(default = "default_near")]
    pub near_m: f64,
    /// Farthest depth rendered (m). Default: 20.
    #[serde(default = "default_far")]
    pub far_m: f64,
    /// Lens distortion (OpenCV k1, k2, p1, p2, k3). Default: none.
    pub distortion: Option<Distortion>,
    /// Frames per second of simulated time (Hz, > 0). Default: 10.
    #[serde(default = "default_camera_rate")]
    pub rate_hz: f64,
    /// Noise on the depth image, metres: white noise, bias and quantisation per pixel, and
    /// `dropout_probability` per pixel (a dropped pixel reads 0, no return). Delays, jitter,
    /// bias walk and `rate_hz` do not apply to images (the camera's own `rate_hz` sets the frame
    /// rate) and must stay 0. Default: ideal.
    #[serde(default)]
    pub depth_noise: NoiseConfig,
}

fn default_near() -> f64 {
    0.05
}
fn default_far() -> f64 {
    20.0
}
fn default_camera_rate() -> f64 {
    10.0
}

/// How a lidar's rays are laid out.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LidarPatternFile {
    /// A spinning head: `channels` beams at evenly spaced elevations, sampled at
    /// `horizontal_samples` azimuths evenly spaced over the full turn. One scan per turn.
    #[default]
    Rotating,
    /// A fixed grid over `horizontal_fov_deg` x `vertical_fov_deg`, all rays at once.
    SolidState,
}

/// A sensor declared in the scene. `kind` selects the type.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum SensorFile {
    /// A lidar by ray casts against the physics colliders.
    Lidar {
        /// Unique name among cameras and sensors.
        name: String,
        /// What the lidar is attached to. Default: fixed in the world.
        #[serde(default)]
        mount: MountFile,
        /// Position in the mount's frame (m). Default: [0, 0, 0].
        #[serde(default)]
        position: [f64; 3],
        /// Orientation of the sensor frame (x forward, z up) in the mount's frame, roll, pitch,
        /// yaw (rad). Default: [0, 0, 0].
        #[serde(default)]
        rpy: [f64; 3],
        /// Rotating or solid-state. Default: rotating.
        #[serde(default)]
        pattern: LidarPatternFile,
        /// Number of beams (rows), 1..=1024. Default: 16.
        #[serde(default = "default_channels")]
        channels: u32,
        /// Samples per row, 1..=65536. Default: 360.
        #[serde(default = "default_horizontal_samples")]
        horizontal_samples: u32,
        /// Elevation of the lowest and highest beam (degrees, within [-90, 90]).
        /// Default: [-15, 15].
        #[serde(default = "default_vertical_fov")]
        vertical_fov_deg: [f64; 2],
        /// Horizontal field of view of a solid-state lidar, centred on +x (degrees, (0, 360]).
        /// A rotating lidar always covers 360. Default: 120.
        #[serde(default = "default_horizontal_fov")]
        horizontal_fov_deg: f64,
        /// Returns closer than this are dropped (m). Default: 0.1.
        #[serde(default = "default_min_range")]
        min_range_m: f64,
        /// Returns farther than this are dropped (m). Default: 30.
        #[serde(default = "default_max_range")]
        max_range_m: f64,
        /// Scans per second of simulated time (Hz, > 0). Default: 10.
        #[serde(default = "default_camera_rate")]
        rate_hz: f64,
        /// Noise on each range (m): white noise, bias, quantisation, and `dropout_probability`
        /// per ray. Delays, jitter, bias walk and `rate_hz` must stay 0 (the scan rate is
        /// `rate_hz` above). Default: ideal.
        #[serde(default)]
        noise: NoiseConfig,
    },
    /// An IMU: accelerometer (specific force, m/s²) and gyroscope (rad/s) in the sensor frame.
    Imu {
        /// Unique name among cameras and sensors.
        name: String,
        /// What the IMU is attached to: a robot link or a prop (required).
        #[serde(default)]
        mount: MountFile,
        /// Position in the mount's frame (m). Default: [0, 0, 0].
        #[serde(default)]
        position: [f64; 3],
        /// Orientation of the sensor frame in the mount's frame, roll, pitch, yaw (rad).
        /// Default: [0, 0, 0].
        #[serde(default)]
        rpy: [f64; 3],
        /// Accelerometer noise and timing (m/s²). Default: ideal, every step.
        #[serde(default)]
        accel_noise: NoiseConfig,
        /// Gyroscope noise and timing (rad/s). Default: ideal, every step.
        #[serde(default)]
        gyro_noise: NoiseConfig,
    },
    /// An incremental joint encoder: counts, quantised position and velocity.
    Encoder {
        /// Unique name among cameras and sensors.
        name: String,
        /// Robot name.
        robot: String,
        /// Actuated joint of that robot.
        joint: String,
        /// Counts per revolution or per metre. Default: rotary, 4096 counts per revolution.
        #[serde(default)]
        resolution: EncoderResolution,
        /// Velocity estimate window (steps, 1..=1048576). Default: 10.
        #[serde(default = "default_velocity_window")]
        velocity_window_steps: u32,
        /// Noise and timing of the position and velocity outputs (rad or m, and per second).
        /// Default: ideal, every step.
        #[serde(default)]
        noise: NoiseConfig,
    },
    /// A contact sensor on a link or prop: whether it touches anything, and the total normal
    /// force (N) on it.
    Contact {
        /// Unique name among cameras and sensors.
        name: String,
        /// The robot link or prop (required).
        #[serde(default)]
        mount: MountFile,
        /// Noise and timing of the force (N). Default: ideal, every step.
        #[serde(default)]
        noise: NoiseConfig,
    },
    /// A six-axis force/torque sensor in a robot joint: the wrench the parent side exerts on
    /// everything beyond the joint (N and N·m, in the child link's frame, torque about its
    /// origin; at rest the force holds the links beyond up against gravity), from the motion of
    /// those links, gravity and the contacts on them.
    ForceTorque {
        /// Unique name among cameras and sensors.
        name: String,
        /// Robot name.
        robot: String,
        /// Joint of that robot; the sensor measures at its child link.
        joint: String,
        /// Noise and timing of the six components. Default: ideal, every step.
        #[serde(default)]
        noise: NoiseConfig,
    },
}

fn default_channels() -> u32 {
    16
}
fn default_horizontal_samples() -> u32 {
    360
}
fn default_vertical_fov() -> [f64; 2] {
    [-15.0, 15.0]
}
fn default_horizontal_fov() -> f64 {
    120.0
}
fn default_min_range() -> f64 {
    0.1
}
fn default_max_range() -> f64 {
    30.0
}
fn default_velocity_window() -> u32 {
    10
}

impl SensorFile {
    /// The sensor's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Lidar { name, .. }
            | Self::Imu { name, .. }
            | Self::Encoder { name, .. }
            | Self::Contact { name, .. }
            | Self::ForceTorque { name, .. } => name,
        }
    }
}
