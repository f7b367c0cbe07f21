//! Cameras and sensors compiled from the scene file: mounts resolved to robots, links and props,
//! configs validated, semantic classes numbered.

use std::path::Path;

use nalgebra::{Isometry3, Point3, Rotation3, Translation3, UnitQuaternion, Vector3};
use rivet_perception::render::CameraModel;
use rivet_perception::{EncoderConfig, LidarPattern, NoiseConfig, PinholeIntrinsics};

use super::file::{CameraFile, LidarPatternFile, MountFile, SensorFile};
use crate::error::SimError;
use crate::robot::{DofId, JointId, LinkId};
use crate::scene::{ActorModel, PropModel, RobotInstance};

/// What a camera or sensor is attached to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mount {
    /// Fixed in the world.
    World,
    /// A robot link (index of the robot in the scene, link of its model).
    Link {
        /// Robot index in the scene.
        robot: usize,
        /// Link of the robot's model; it has a rigid body.
        link: LinkId,
    },
    /// A prop (index in the scene).
    Prop(usize),
}

/// A compiled camera.
#[derive(Clone, Debug)]
pub struct CameraSpec {
    /// Name.
    pub name: String,
    /// Attachment.
    pub mount: Mount,
    /// Pose of the camera frame (OpenCV) in the mount's frame.
    pub mount_from_camera: Isometry3<f64>,
    /// Lens and image.
    pub model: CameraModel,
    /// Frame rate (Hz).
    pub rate_hz: f64,
    /// Per-pixel depth noise.
    pub depth_noise: NoiseConfig,
}

/// A compiled lidar.
#[derive(Clone, Debug)]
pub struct LidarSpec {
    /// Attachment.
    pub mount: Mount,
    /// Pose of the sensor frame in the mount's frame.
    pub mount_from_sensor: Isometry3<f64>,
    /// Ray directions in the sensor frame.
    pub pattern: LidarPattern,
    /// Minimum range (m).
    pub min_range_m: f64,
    /// Maximum range (m).
    pub max_range_m: f64,
    /// Scan rate (Hz).
    pub rate_hz: f64,
    /// Per-ray noise.
    pub noise: NoiseConfig,
}

/// A compiled sensor other than a camera.
#[derive(Clone, Debug)]
pub enum SensorKind {
    /// Lidar by ray casts.
    Lidar(Box<LidarSpec>),
    /// IMU on a body.
    Imu {
        /// Attachment (a link or a prop).
        mount: Mount,
        /// Pose of the sensor frame in the mount's frame.
        mount_from_sensor: Isometry3<f64>,
        /// Accelerometer noise.
        accel_noise: NoiseConfig,
        /// Gyroscope noise.
        gyro_noise: NoiseConfig,
    },
    /// Joint encoder.
    Encoder {
        /// Robot index.
        robot: usize,
        /// The DoF.
        dof: DofId,
        /// Resolution and velocity window.
        config: EncoderConfig,
        /// Output noise.
        noise: NoiseConfig,
    },
    /// Contact sensor.
    Contact {
        /// Attachment (a link or a prop).
        mount: Mount,
        /// Force noise.
        noise: NoiseConfig,
    },
    /// Joint force/torque sensor.
    ForceTorque {
        /// Robot index.
        robot: usize,
        /// The joint.
        joint: JointId,
        /// Its child link (the sensor frame), which has a body.
        child: LinkId,
        /// Links beyond the joint (the child's subtree) that have bodies.
        subtree: Vec<LinkId>,
        /// Output noise.
        noise: NoiseConfig,
    },
}

/// A compiled sensor.
#[derive(Clone, Debug)]
pub struct SensorSpec {
    /// Name.
    pub name: String,
    /// What it is.
    pub kind: SensorKind,
}

/// Every camera and sensor of a scene, and the semantic classes of its objects.
#[derive(Clone, Debug, Default)]
pub struct SensorsModel {
    /// Cameras, in file order.
    pub cameras: Vec<CameraSpec>,
    /// Other sensors, in file order.
    pub sensors: Vec<SensorSpec>,
    /// Class names; class id `k` is `classes[k - 1]` (0 is the background).
    pub classes: Vec<String>,
    /// Class id of the ground plane.
    pub ground_class: u32,
    /// Class id of each robot (all its links), in scene order.
    pub robot_classes: Vec<u32>,
    /// Class id of each prop.
    pub prop_classes: Vec<u32>,
    /// Class id of each actor.
    pub actor_classes: Vec<u32>,
}

impl SensorsModel {
    /// Whether the scene declares no camera and no sensor.
    pub fn is_empty(&self) -> bool {
        self.cameras.is_empty() && self.sensors.is_empty()
    }
}

fn class_id(classes: &mut Vec<String>, name: &str) -> u32 {
    match classes.iter().position(|c| c == name) {
        Some(i) => i as u32 + 1,
        None => {
            classes.push(name.to_string());
            classes.len() as u32
        }
    }
}

fn rpy_rotation(rpy: [f64; 3]) -> UnitQuaternion<f64> {
    UnitQuaternion::from_euler_angles(rpy[0], rpy[1], rpy[2])
}

/// Compiles the `[[camera]]` and `[[sensor]]` tables (and the props' and actors' classes).
#[allow(
    clippy::too_many_arguments,
    reason = "the scene's parts, each checked against"
)]
pub(crate) fn compile(
    path: &Path,
    file: &crate::scene::file::SceneFile,
    robots: &[RobotInstance],
    props: &[PropModel],
    actors: &[ActorModel],
) -> Result<SensorsModel, SimError> {
    let err = |element: String, message: String| SimError::scene(path, element, message);
    let mut model = SensorsModel::default();
    model.ground_class = class_id(&mut model.classes, "ground");
    for r in robots {
        let id = class_id(&mut model.classes, &r.name);
        model.robot_classes.push(id);
    }
    for (i, p) in file.props.iter().enumerate() {
        let name = p.class.as_deref().unwrap_or(&p.name);
        if name.is_empty() {
            return Err(err(format!("prop[{i}].class"), "must not be empty".into()));
        }
        let id = class_id(&mut model.classes, name);
        model.prop_classes.push(id);
    }
    for (i, a) in file.actors.iter().enumerate() {
        let name = a.class.as_deref().unwrap_or(&a.name);
        if name.is_empty() {
            return Err(err(format!("actor[{i}].class"), "must not be empty".into()));
        }
        let id = class_id(&mut model.classes, name);
        model.actor_classes.push(id);
    }
    debug_assert_eq!(props.len(), model.prop_classes.len());
    debug_assert_eq!(actors.len(), model.actor_classes.len());

    let mut names = std::collections::BTreeSet::new();
    let mut unique = |element: String, name: &str| {
        if name.is_empty() || !names.insert(name.to_string()) {
            Err(err(
                element,
                format!("'{name}' must be non-empty and unique among cameras and sensors"),
            ))
        } else {
            Ok(())
        }
    };
    let finite3 = |element: String, v: [f64; 3]| {
        if v.iter().all(|x| x.is_finite()) {
            Ok(())
        } else {
            Err(err(element, format!("{v:?} is not finite")))
        }
    };
    let perception =
        |element: String, e: rivet_perception::PerceptionError| err(element, e.to_string());

    for (i, c) in file.cameras.iter().enumerate() {
        let at = format!("camera[{i}] '{}'", c.name);
        unique(format!("{at}.name"), &c.name)?;
        let mount = mount(path, &format!("{at}.mount"), &c.mount, robots, props, false)?;
        finite3(format!("{at}.position"), c.position)?;
        let rotation = camera_rotation(path, &at, c)?;
        let model_ = camera_model(path, &at, c)?;
        if !(c.rate_hz.is_finite() && c.rate_hz > 0.0) {
            return Err(err(
                format!("{at}.rate_hz"),
                format!("{} Hz must be > 0", c.rate_hz),
            ));
        }
        rivet_perception::ElementNoise::new(&c.depth_noise, 0)
            .map_err(|e| perception(format!("{at}.depth_noise"), e))?;
        model.cameras.push(CameraSpec {
            name: c.name.clone(),
            mount,
            mount_from_camera: Isometry3::from_parts(
                Translation3::from(Vector3::from(c.position)),
                rotation,
            ),
            model: model_,
            rate_hz: c.rate_hz,
            depth_noise: c.depth_noise,
        });
    }

    for (i, s) in file.sensors.iter().enumerate() {
        let at = format!("sensor[{i}] '{}'", s.name());
        unique(format!("{at}.name"), s.name())?;
        let noise_ok = |field: &str, n: &NoiseConfig| {
            n.validate()
                .map_err(|e| perception(format!("{at}.{field}"), e))
        };
        let kind = match s {
            SensorFile::Lidar {
                mount: m,
                position,
                rpy,
                pattern,
                channels,
                horizontal_samples,
                vertical_fov_deg,
                horizontal_fov_deg,
                min_range_m,
                max_range_m,
                rate_hz,
                noise,
                ..
            } => {
                let mount = mount(path, &format!("{at}.mount"), m, robots, props, false)?;
                finite3(format!("{at}.position"), *position)?;
                finite3(format!("{at}.rpy"), *rpy)?;
                let pattern = match pattern {
                    LidarPatternFile::Rotating => {
                        LidarPattern::rotating(*channels, *horizontal_samples, *vertical_fov_deg)
                    }
                    LidarPatternFile::SolidState => LidarPattern::solid_state(
                        *channels,
                        *horizontal_samples,
                        *vertical_fov_deg,
                        *horizontal_fov_deg,
                    ),
                }
                .map_err(|e| perception(at.clone(), e))?;
                if !(min_range_m.is_finite()
                    && *min_range_m >= 0.0
                    && max_range_m.is_finite()
                    && max_range_m > min_range_m)
                {
                    return Err(err(
                        format!("{at}.max_range_m"),
                        format!(
                            "ranges [{min_range_m}, {max_range_m}] m must satisfy 0 <= min_range_m < max_range_m"
                        ),
                    ));
                }
                if !(rate_hz.is_finite() && *rate_hz > 0.0) {
                    return Err(err(
                        format!("{at}.rate_hz"),
                        format!("{rate_hz} Hz must be > 0"),
                    ));
                }
                rivet_perception::ElementNoise::new(noise, 0)
                    .map_err(|e| perception(format!("{at}.noise"), e))?;
                SensorKind::Lidar(Box::new(LidarSpec {
                    mount,
                    mount_from_sensor: Isometry3::from_parts(
                        Translation3::from(Vector3::from(*position)),
                        rpy_rotation(*rpy),
                    ),
                    pattern,
                    min_range_m: *min_range_m,
                    max_range_m: *max_range_m,
                    rate_hz: *rate_hz,
                    noise: *noise,
                }))
            }
            SensorFile::Imu {
                mount: m,
                position,
                rpy,
                accel_noise,
                gyro_noise,
                ..
            } => {
                let mount = mount(path, &format!("{at}.mount"), m, robots, props, true)?;
                finite3(format!("{at}.position"), *position)?;
                finite3(format!("{at}.rpy"), *rpy)?;
                noise_ok("accel_noise", accel_noise)?;
                noise_ok("gyro_noise", gyro_noise)?;
                SensorKind::Imu {
                    mount,
                    mount_from_sensor: Isometry3::from_parts(
                        Translation3::from(Vector3::from(*position)),
                        rpy_rotation(*rpy),
                    ),
                    accel_noise: *accel_noise,
                    gyro_noise: *gyro_noise,
                }
            }
            SensorFile::Encoder {
                robot,
                joint,
                resolution,
                velocity_window_steps,
                noise,
                ..
            } => {
                let r = robot_index(path, &format!("{at}.robot"), robot, robots)?;
                let model = &robots[r].model;
                let dof = model.dof_by_name(joint).ok_or_else(|| {
                    err(
                        format!("{at}.joint"),
                        format!("'{joint}' is not an actuated joint of robot '{robot}'"),
                    )
                })?;
                let config = EncoderConfig {
                    resolution: *resolution,
                    velocity_window_steps: *velocity_window_steps,
                };
                config
                    .validate()
                    .map_err(|e| perception(format!("{at}.resolution"), e))?;
                noise_ok("noise", noise)?;
                SensorKind::Encoder {
                    robot: r,
                    dof,
                    config,
                    noise: *noise,
                }
            }
            SensorFile::Contact {
                mount: m, noise, ..
            } => {
                let mount = mount(path, &format!("{at}.mount"), m, robots, props, true)?;
                noise_ok("noise", noise)?;
                SensorKind::Contact {
                    mount,
                    noise: *noise,
                }
            }
            SensorFile::ForceTorque {
                robot,
                joint,
                noise,
                ..
            } => {
                let r = robot_index(path, &format!("{at}.robot"), robot, robots)?;
                let model = &robots[r].model;
                let Some(j) = model.joint_by_name(joint) else {
                    return Err(err(
                        format!("{at}.joint"),
                        format!("robot '{robot}' has no joint '{joint}'"),
                    ));
                };
                let child = model.joints[j.0 as usize].child;
                if model.link_to_rapier[child.0 as usize].is_none() {
                    return Err(err(
                        format!("{at}.joint"),
                        format!(
                            "joint '{joint}' leads to a link the loader merged into its parent; \
                             put the sensor in a joint whose child link has mass or geometry"
                        ),
                    ));
                }
                // The child's subtree, breadth first over the joint list (deterministic order).
                let mut subtree = vec![child];
                let mut k = 0;
                while k < subtree.len() {
                    let parent = subtree[k];
                    for jm in &model.joints {
                        if jm.parent == Some(parent) && !subtree.contains(&jm.child) {
                            subtree.push(jm.child);
                        }
                    }
                    k += 1;
                }
                subtree.retain(|l| model.link_to_rapier[l.0 as usize].is_some());
                noise_ok("noise", noise)?;
                SensorKind::ForceTorque {
                    robot: r,
                    joint: j,
                    child,
                    subtree,
                    noise: *noise,
                }
            }
        };
        model.sensors.push(SensorSpec {
            name: s.name().to_string(),
            kind,
        });
    }
    Ok(model)
}

fn robot_index(
    path: &Path,
    element: &str,
    name: &str,
    robots: &[RobotInstance],
) -> Result<usize, SimError> {
    robots.iter().position(|r| r.name == name).ok_or_else(|| {
        let known: Vec<&str> = robots.iter().map(|r| r.name.as_str()).collect();
        SimError::scene(
            path,
            element,
            format!("no robot named '{name}' (robots: {known:?})"),
        )
    })
}

fn mount(
    path: &Path,
    element: &str,
    m: &MountFile,
    robots: &[RobotInstance],
    props: &[PropModel],
    body_required: bool,
) -> Result<Mount, SimError> {
    let err = |message: String| SimError::scene(path, element, message);
    match (&m.robot, &m.link, &m.prop) {
        (None, None, None) if body_required => Err(err(
            "this sensor must be mounted on a body: give robot and link, or prop".into(),
        )),
        (None, None, None) => Ok(Mount::World),
        (Some(robot), Some(link), None) => {
            let r = robot_index(path, &format!("{element}.robot"), robot, robots)?;
            let model = &robots[r].model;
            let Some(l) = model.links.iter().position(|l| &l.name == link) else {
                return Err(SimError::scene(
                    path,
                    format!("{element}.link"),
                    format!("robot '{robot}' has no link '{link}'"),
                ));
            };
            if model.link_to_rapier[l].is_none() {
                let with_bodies: Vec<&str> = model
                    .links
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| model.link_to_rapier[*k].is_some())
                    .map(|(_, l)| l.name.as_str())
                    .collect();
                return Err(SimError::scene(
                    path,
                    format!("{element}.link"),
                    format!(
                        "link '{link}' has no rigid body (the loader merged it into its parent); \
                         mount on one of {with_bodies:?} with an offset"
                    ),
                ));
            }
            Ok(Mount::Link {
                robot: r,
                link: LinkId(l as u32),
            })
        }
        (None, None, Some(prop)) => props
            .iter()
            .position(|p| &p.name == prop)
            .map(Mount::Prop)
            .ok_or_else(|| {
                SimError::scene(
                    path,
                    format!("{element}.prop"),
                    format!("no prop named '{prop}'"),
                )
            }),
        _ => Err(err(
            "give robot and link together, or prop alone, or nothing (fixed in the world)".into(),
        )),
    }
}

fn camera_rotation(path: &Path, at: &str, c: &CameraFile) -> Result<UnitQuaternion<f64>, SimError> {
    match (c.rpy, c.look_at) {
        (Some(_), Some(_)) => Err(SimError::scene(
            path,
            format!("{at}.look_at"),
            "give rpy or look_at, not both",
        )),
        (Some(rpy), None) => {
            if !rpy.iter().all(|x| x.is_finite()) {
                return Err(SimError::scene(
                    path,
                    format!("{at}.rpy"),
                    format!("{rpy:?} is not finite"),
                ));
            }
            Ok(rpy_rotation(rpy))
        }
        (None, None) => Ok(UnitQuaternion::identity()),
        (None, Some(target)) => {
            let bad = || {
                SimError::scene(
                    path,
                    format!("{at}.look_at"),
                    format!(
                        "{target:?} must be finite, away from the camera's position and not straight above or below it"
                    ),
                )
            };
            if !target.iter().all(|x| x.is_finite()) {
                return Err(bad());
            }
            let forward = Point3::from(target) - Point3::from(c.position);
            let z = forward.try_normalize(1e-9).ok_or_else(bad)?;
            // Image x (right) is forward x up; image y (down) completes the frame.
            let x = z.cross(&Vector3::z()).try_normalize(1e-6).ok_or_else(bad)?;
            let y = z.cross(&x);
            Ok(UnitQuaternion::from_rotation_matrix(
                &Rotation3::from_basis_unchecked(&[x, y, z]),
            ))
        }
    }
}

fn camera_model(path: &Path, at: &str, c: &CameraFile) -> Result<CameraModel, SimError> {
    let err =
        |field: &str, message: String| SimError::scene(path, format!("{at}.{field}"), message);
    let [w, h] = c.resolution;
    let mut model = match (c.fov_deg, c.fx, c.fy, c.cx, c.cy) {
        (Some(fov), None, None, None, None) => {
            if !(fov.is_finite() && fov > 0.0 && fov < 180.0) {
                return Err(err("fov_deg", format!("{fov}° must be in (0, 180)")));
            }
            CameraModel::from_fov(w, h, fov, c.near_m, c.far_m)
        }
        (None, Some(fx), Some(fy), Some(cx), Some(cy)) => CameraModel {
            intrinsics: PinholeIntrinsics {
                width_px: w,
                height_px: h,
                fx_px: fx,
                fy_px: fy,
                cx_px: cx,
                cy_px: cy,
            },
            near_m: c.near_m,
            far_m: c.far_m,
            distortion: None,
        },
        _ => {
            return Err(err(
                "fov_deg",
                "give fov_deg, or all of fx, fy, cx and cy (not both)".into(),
            ));
        }
    };
    model.distortion = c.distortion;
    model
        .validate()
        .map_err(|e| err("resolution", e.to_string()))?;
    Ok(model)
}
