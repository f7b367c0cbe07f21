//! Rerun recordings (.rrd) of simulated runs.
//!
//! Entity paths (documented in docs/recording.md):
//! - `world/robots/<robot>/<link>`: link pose per recorded step; its static children
//!   `visual_<k>` hold the geometry (meshes and primitives with colours).
//! - `world/props/<prop>`, `world/actors/<actor>`: poses per step, geometry as static `geometry`.
//! - `world/ground`: the ground plane (static).
//! - `world/contacts`: contact points per recorded step.
//! - `robots/<robot>/joints/<joint>/{position,velocity,effort,command}`: scalar series.
//! - `world/cameras/<camera>`: camera pose per frame and its Pinhole (static); children `rgb`,
//!   `depth` (metres), `segmentation` (class ids, named by the AnnotationContext on
//!   `world/cameras`) and `instance` (instance ids, named by its own AnnotationContext).
//! - `world/lidars/<lidar>`: sensor pose per scan; `points`: the scan in the sensor frame.
//! - `sensors/<sensor>/...`: IMU `accel/{x,y,z}` and `gyro/{x,y,z}`, encoder `counts`,
//!   `position`, `velocity`, contact `in_contact` and `force_n`, force/torque `fx`..`tz`.
//!
//! Time is on the `sim_time` timeline (seconds) and the `step` sequence.
//! Names are sanitised for entity paths: characters other than letters, digits, `_` and `-`
//! become `_`.

use std::path::{Path, PathBuf};

use rerun::RecordingStream;

use crate::error::SimError;
use crate::math::Transform;
use crate::robot::{DofId, Geometry, Visual};
use crate::world::World;

/// Sanitises a name for use as one entity-path part.
pub fn entity_part(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "_".into() } else { s }
}

fn rgba8(c: [f32; 4]) -> [u8; 4] {
    let q = |x: f32| (x.clamp(0.0, 1.0) * 255.0).round() as u8;
    [q(c[0]), q(c[1]), q(c[2]), q(c[3])]
}

fn color32(c: [f32; 4]) -> rerun::Color {
    let [r, g, b, a] = rgba8(c);
    rerun::Color::from_unmultiplied_rgba(r, g, b, a)
}

fn rerun_transform(t: &Transform) -> rerun::Transform3D {
    rerun::Transform3D::from_translation_rotation(
        t.translation,
        rerun::datatypes::Quaternion::from_xyzw(t.rotation),
    )
}

/// Entity paths of one robot, computed once.
struct RobotPaths {
    links: Vec<Option<String>>,
    joints: Vec<[String; 4]>,
}

/// Writes a run to an .rrd file as it steps.
pub struct Recorder {
    stream: RecordingStream,
    path: PathBuf,
    robots: Vec<RobotPaths>,
    props: Vec<String>,
    actors: Vec<String>,
    every_n_steps: u64,
    contact_points: Vec<[f32; 3]>,
    sensors_ready: bool,
    /// Scratch for id images converted to rerun's 16-bit class ids.
    ids16: Vec<u8>,
}

impl Recorder {
    /// Creates `path` and logs the world's static geometry. Steps are recorded at about
    /// `rate_hz` (every step when the timestep is coarser).
    pub fn create(path: &Path, world: &World, rate_hz: f64) -> Result<Self, SimError> {
        let fail = |message: String| SimError::Recording {
            path: path.to_path_buf(),
            message,
        };
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| fail(e.to_string()))?;
        }
        let scene = world.scene();
        // Written under a temporary name and renamed by `finish`, so an interrupted run never
        // leaves a half-written file under the requested name.
        let partial = partial_path(path);
        let stream = rerun::RecordingStreamBuilder::new("rivet")
            .save(&partial)
            .map_err(|e| fail(e.to_string()))?;
        let dt = scene.world.dt_secs;
        let every_n_steps = ((1.0 / (rate_hz * dt)).round() as u64).max(1);

        let log_static = |entity: &str, value: &dyn rerun::AsComponents| {
            stream
                .log_static(entity, value)
                .map_err(|e| fail(e.to_string()))
        };
        log_static("world", &rerun::ViewCoordinates::RIGHT_HAND_Z_UP())?;
        if scene.world.ground_friction.is_some() {
            log_static(
                "world/ground",
                &rerun::Boxes3D::from_centers_and_half_sizes(
                    [[0.0, 0.0, -0.005]],
                    [[10.0, 10.0, 0.005]],
                )
                .with_colors([color32([0.55, 0.55, 0.5, 1.0])])
                .with_fill_mode(rerun::FillMode::Solid),
            )?;
        }
        let mut robots = Vec::new();
        for robot in &scene.robots {
            let base = format!("world/robots/{}", entity_part(&robot.name));
            let mut links = Vec::new();
            for (l, link) in robot.model.links.iter().enumerate() {
                let has_body = world.robots[robots.len()].link_bodies[l].is_some();
                if !has_body {
                    links.push(None);
                    continue;
                }
                let link_path = format!("{base}/{}", entity_part(&link.name));
                for (k, visual) in link.visuals.iter().enumerate() {
                    log_visual(&stream, &format!("{link_path}/visual_{k}"), visual)
                        .map_err(|e| fail(e.to_string()))?;
                }
                links.push(Some(link_path));
            }
            let joints = robot
                .model
                .dofs
                .iter()
                .enumerate()
                .map(|(d, _)| {
                    let name = entity_part(&robot.model.dof_joint(DofId(d as u32)).name);
                    let j = format!("robots/{}/joints/{name}", entity_part(&robot.name));
                    [
                        format!("{j}/position"),
                        format!("{j}/velocity"),
                        format!("{j}/effort"),
                        format!("{j}/command"),
                    ]
                })
                .collect();
            robots.push(RobotPaths { links, joints });
        }
        let mut props = Vec::new();
        for prop in &scene.props {
            let p = format!("world/props/{}", entity_part(&prop.name));
            log_visual(
                &stream,
                &format!("{p}/geometry"),
                &Visual {
                    link_from_geometry: Transform::IDENTITY,
                    geometry: prop.shape.geometry.clone(),
                    color: prop.color,
                },
            )
            .map_err(|e| fail(e.to_string()))?;
            props.push(p);
        }
        let mut actors = Vec::new();
        for actor in &scene.actors {
            let p = format!("world/actors/{}", entity_part(&actor.name));
            log_visual(
                &stream,
                &format!("{p}/geometry"),
                &Visual {
                    link_from_geometry: Transform::IDENTITY,
                    geometry: actor.shape.geometry.clone(),
                    color: actor.color,
                },
            )
            .map_err(|e| fail(e.to_string()))?;
            let path_points: Vec<[f32; 3]> = actor
                .path
                .iter()
                .chain(actor.looping.then(|| &actor.path[0]))
                .map(|p| [p[0] as f32, p[1] as f32, p[2] as f32])
                .collect();
            log_static(
                &format!("world/actor_paths/{}", entity_part(&actor.name)),
                &rerun::LineStrips3D::new([path_points]).with_colors([color32(actor.color)]),
            )?;
            actors.push(p);
        }
        let mut recorder = Self {
            stream,
            path: path.to_path_buf(),
            robots,
            props,
            actors,
            every_n_steps,
            contact_points: Vec::new(),
            sensors_ready: false,
            ids16: Vec::new(),
        };
        recorder.record_step(world)?;
        Ok(recorder)
    }

    /// The .rrd path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records the world's current state if this step is on the recording rate.
    pub fn record_step(&mut self, world: &World) -> Result<(), SimError> {
        let step = world.step_index();
        if !step.is_multiple_of(self.every_n_steps) {
            return Ok(());
        }
        self.log_state(world).map_err(|e| SimError::Recording {
            path: self.path.clone(),
            message: e.to_string(),
        })
    }

    fn log_state(&mut self, world: &World) -> rerun::RecordingStreamResult<()> {
        let rec = &self.stream;
        rec.set_time_sequence("step", world.step_index() as i64);
        rec.set_duration_secs("sim_time", world.time_secs());
        for (state, paths) in world.robots.iter().zip(&self.robots) {
            for (body, path) in state.link_bodies.iter().zip(&paths.links) {
                if let (Some(body), Some(path)) = (body, path) {
                    rec.log(path.as_str(), &rerun_transform(&world.body_pose(*body)))?;
                }
            }
            for (d, [p, v, e, c]) in paths.joints.iter().enumerate() {
                rec.log(p.as_str(), &rerun::Scalars::single(state.position[d]))?;
                rec.log(v.as_str(), &rerun::Scalars::single(state.velocity[d]))?;
                rec.log(e.as_str(), &rerun::Scalars::single(state.effort[d]))?;
                rec.log(c.as_str(), &rerun::Scalars::single(state.command[d]))?;
            }
        }
        for (body, path) in world.props.iter().zip(&self.props) {
            rec.log(path.as_str(), &rerun_transform(&world.body_pose(*body)))?;
        }
        for (body, path) in world.actors.iter().zip(&self.actors) {
            rec.log(path.as_str(), &rerun_transform(&world.body_pose(*body)))?;
        }
        self.contact_points.clear();
        world.for_each_contact_point(|p| self.contact_points.push(p));
        rec.log(
            "world/contacts",
            &rerun::Points3D::new(self.contact_points.iter().copied())
                .with_radii([0.01])
                .with_colors([color32([1.0, 0.1, 0.1, 1.0])]),
        )?;
        Ok(())
    }

    /// Logs the sensors' new outputs at the world's current time: camera images when a camera
    /// rendered this step, lidar scans when taken, IMU, encoder, contact and force/torque
    /// samples every step. Entity paths are documented in docs/recording.md.
    pub fn record_sensors(
        &mut self,
        world: &World,
        suite: &crate::sensors::SensorSuite,
    ) -> Result<(), SimError> {
        let path = self.path.clone();
        self.log_sensors(world, suite)
            .map_err(|e| SimError::Recording {
                path,
                message: e.to_string(),
            })
    }

    fn log_sensors(
        &mut self,
        world: &World,
        suite: &crate::sensors::SensorSuite,
    ) -> rerun::RecordingStreamResult<()> {
        use crate::sensors::Reading;
        let model = suite.model().clone();
        let rec = &self.stream;
        if !self.sensors_ready {
            self.sensors_ready = true;
            let classes: Vec<rerun::datatypes::ClassDescriptionMapElem> = model
                .classes
                .iter()
                .enumerate()
                .map(|(k, name)| (k as u16 + 1, name.as_str()).into())
                .chain(std::iter::once((0u16, "background").into()))
                .collect();
            rec.log_static("world/cameras", &rerun::AnnotationContext::new(classes))?;
            let instances: Vec<rerun::datatypes::ClassDescriptionMapElem> = suite
                .instance_names()
                .iter()
                .enumerate()
                .map(|(k, name)| (k as u16 + 1, name.as_str()).into())
                .chain(std::iter::once((0u16, "background").into()))
                .collect();
            for camera in &model.cameras {
                let base = format!("world/cameras/{}", entity_part(&camera.name));
                let k = camera.model.intrinsics;
                rec.log_static(
                    base.as_str(),
                    &rerun::Pinhole::from_focal_length_and_resolution(
                        [k.fx_px as f32, k.fy_px as f32],
                        [k.width_px as f32, k.height_px as f32],
                    )
                    .with_principal_point([k.cx_px as f32 + 0.5, k.cy_px as f32 + 0.5])
                    .with_camera_xyz(rerun::components::ViewCoordinates::RDF)
                    .with_image_plane_distance(0.2),
                )?;
                rec.log_static(
                    format!("{base}/instance"),
                    &rerun::AnnotationContext::new(instances.clone()),
                )?;
            }
        }
        rec.set_time_sequence("step", world.step_index() as i64);
        rec.set_duration_secs("sim_time", world.time_secs());
        for (c, camera) in model.cameras.iter().enumerate() {
            let Some((images, _, true)) = suite.camera(c) else {
                continue;
            };
            let base = format!("world/cameras/{}", entity_part(&camera.name));
            if let Some(pose) = suite.camera_pose(c) {
                rec.log(
                    base.as_str(),
                    &rerun_transform(&crate::math::transform_from_isometry(&pose)),
                )?;
            }
            let size = [images.width_px, images.height_px];
            rec.log(
                format!("{base}/rgb"),
                &rerun::Image::from_rgba32(images.rgba8.clone(), size),
            )?;
            rec.log(
                format!("{base}/depth"),
                &rerun::DepthImage::from_data_type_and_bytes(
                    bytemuck_f32(&images.depth_m),
                    size,
                    rerun::datatypes::ChannelDatatype::F32,
                )
                .with_meter(1.0),
            )?;
            for (entity, ids) in [
                ("segmentation", &images.semantic_id),
                ("instance", &images.instance_id),
            ] {
                self.ids16.clear();
                for &id in ids.iter() {
                    self.ids16
                        .extend_from_slice(&(id.min(u32::from(u16::MAX)) as u16).to_le_bytes());
                }
                rec.log(
                    format!("{base}/{entity}"),
                    &rerun::SegmentationImage::new(
                        self.ids16.clone(),
                        rerun::datatypes::ImageFormat::segmentation(
                            size,
                            rerun::datatypes::ChannelDatatype::U16,
                        ),
                    ),
                )?;
            }
        }
        // Scalar sensors are logged at the recording rate, images and scans as they come.
        let on_rate = world.step_index().is_multiple_of(self.every_n_steps);
        for (s, sensor) in model.sensors.iter().enumerate() {
            let name = entity_part(&sensor.name);
            let reading = suite.reading(s);
            if !on_rate && !matches!(reading, Some(Reading::Lidar(_))) {
                continue;
            }
            match reading {
                Some(Reading::Lidar(scan)) if scan.fresh => {
                    let base = format!("world/lidars/{name}");
                    rec.log(
                        base.as_str(),
                        &rerun_transform(&crate::math::transform_from_isometry(
                            &scan.world_from_sensor,
                        )),
                    )?;
                    rec.log(
                        format!("{base}/points"),
                        &rerun::Points3D::new(scan.points_in_sensor.iter().copied())
                            .with_radii([0.01])
                            .with_colors([color32([0.1, 0.8, 0.3, 1.0])]),
                    )?;
                }
                Some(Reading::Imu { accel, gyro }) => {
                    for (what, sample) in [("accel", accel), ("gyro", gyro)] {
                        if let Some((_, v)) = sample {
                            for (axis, x) in ["x", "y", "z"].iter().zip(v) {
                                rec.log(
                                    format!("sensors/{name}/{what}/{axis}"),
                                    &rerun::Scalars::single(*x),
                                )?;
                            }
                        }
                    }
                }
                Some(Reading::Encoder { counts, output }) => {
                    rec.log(
                        format!("sensors/{name}/counts"),
                        &rerun::Scalars::single(counts as f64),
                    )?;
                    if let Some((_, v)) = output {
                        rec.log(
                            format!("sensors/{name}/position"),
                            &rerun::Scalars::single(v[0]),
                        )?;
                        rec.log(
                            format!("sensors/{name}/velocity"),
                            &rerun::Scalars::single(v[1]),
                        )?;
                    }
                }
                Some(Reading::Contact { in_contact, force }) => {
                    rec.log(
                        format!("sensors/{name}/in_contact"),
                        &rerun::Scalars::single(f64::from(u8::from(in_contact))),
                    )?;
                    if let Some((_, v)) = force {
                        rec.log(
                            format!("sensors/{name}/force_n"),
                            &rerun::Scalars::single(v[0]),
                        )?;
                    }
                }
                Some(Reading::ForceTorque(Some((_, v)))) => {
                    for (axis, x) in ["fx", "fy", "fz", "tx", "ty", "tz"].iter().zip(v) {
                        rec.log(
                            format!("sensors/{name}/{axis}"),
                            &rerun::Scalars::single(*x),
                        )?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Logs a text event (e.g. why a run ended) at the current time.
    pub fn log_event(&self, world: &World, text: &str) -> Result<(), SimError> {
        self.stream
            .set_time_sequence("step", world.step_index() as i64);
        self.stream.set_duration_secs("sim_time", world.time_secs());
        self.stream
            .log("events", &rerun::TextLog::new(text))
            .map_err(|e| SimError::Recording {
                path: self.path.clone(),
                message: e.to_string(),
            })
    }

    /// Flushes everything to disk and moves the file to its final name.
    pub fn finish(self) -> Result<PathBuf, SimError> {
        let fail = |message: String| SimError::Recording {
            path: self.path.clone(),
            message,
        };
        self.stream
            .flush_blocking()
            .map_err(|e| fail(e.to_string()))?;
        drop(self.stream);
        std::fs::rename(partial_path(&self.path), &self.path).map_err(|e| fail(e.to_string()))?;
        Ok(self.path)
    }
}

/// Little-endian bytes of an f32 image, for rerun's image buffers.
fn bytemuck_f32(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

fn log_visual(
    stream: &RecordingStream,
    entity: &str,
    visual: &Visual,
) -> rerun::RecordingStreamResult<()> {
    stream.log_static(entity, &rerun_transform(&visual.link_from_geometry))?;
    let color = color32(visual.color);
    match &visual.geometry {
        Geometry::Box { half_extents } => stream.log_static(
            entity,
            &rerun::Boxes3D::from_half_sizes([*half_extents])
                .with_colors([color])
                .with_fill_mode(rerun::FillMode::Solid),
        ),
        Geometry::Sphere { radius } => stream.log_static(
            entity,
            &rerun::Ellipsoids3D::from_radii([*radius])
                .with_colors([color])
                .with_fill_mode(rerun::FillMode::Solid),
        ),
        Geometry::Cylinder {
            radius,
            half_length,
        } => stream.log_static(
            entity,
            &rerun::Cylinders3D::from_lengths_and_radii([2.0 * half_length], [*radius])
                .with_colors([color])
                .with_fill_mode(rerun::FillMode::Solid),
        ),
        Geometry::Capsule {
            radius,
            half_length,
        } => stream.log_static(
            entity,
            &rerun::Capsules3D::from_endpoints_and_radii(
                [[0.0, 0.0, -half_length]],
                [[0.0, 0.0, *half_length]],
                [*radius],
            )
            .with_colors([color]),
        ),
        Geometry::Mesh(mesh) => stream.log_static(
            entity,
            &rerun::Mesh3D::new(mesh.positions.iter().copied())
                .with_triangle_indices(mesh.triangles.iter().copied())
                .with_albedo_factor(rerun::datatypes::Rgba32::from(rgba8(visual.color))),
        ),
    }
}
