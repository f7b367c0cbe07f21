//! Sensors in the simulated world: the scene's cameras (rendered by `rivet-perception` with
//! wgpu) and its lidars (rapier ray casts), IMUs, joint encoders, contact and force/torque
//! sensors, each through the common noise model.
//!
//! [`SensorSuite`] is per-run state built from a [`World`]; [`SensorSuite::step`] runs after
//! each physics step (the bevy `SimSet::Sensors` stage). Everything is allocated at
//! construction; stepping reuses the buffers. Randomness comes from seeded ChaCha8 streams
//! derived from the world's seed and the sensor's index (`derive_seed`), so runs repeat bit for
//! bit.

pub mod file;
pub mod model;

use std::sync::Arc;

use nalgebra::{Isometry3, UnitQuaternion, Vector3};
use rapier3d::prelude::*;
use rayon::prelude::*;
use rivet_perception::render::{
    CameraPose, Frame, GpuContext, Instance, Lighting, MeshData, MeshId, Renderer,
};
use rivet_perception::{
    ElementNoise, Encoder, Imu, ImuInput, NoiseConfig, SensorChannel, derive_seed,
};

pub use model::{CameraSpec, LidarSpec, Mount, SensorKind, SensorSpec, SensorsModel};

use crate::error::SimError;
use crate::math::isometry;
use crate::robot::Geometry;
use crate::world::World;

/// Half size of the rendered ground square (m): the ground is infinite in physics.
const GROUND_HALF_SIZE_M: f32 = 200.0;

/// Seed streams: cameras use `CAMERA_STREAM + index`, sensors `SENSOR_STREAM + 4 * index + k`.
const CAMERA_STREAM: u64 = 0x1000;
const SENSOR_STREAM: u64 = 0x2000;

/// Time slack when deciding whether a sample is due (a fraction of a step).
const DUE_TOLERANCE_STEPS: f64 = 1e-6;

/// One drawable: a mesh on a body (or fixed), with its ids.
#[derive(Clone, Copy, Debug)]
struct InstanceSource {
    body: Option<RigidBodyHandle>,
    body_from_mesh: Isometry3<f64>,
    mesh: MeshId,
    color: [f32; 4],
    instance_id: u32,
    semantic_id: u32,
}

/// Cameras sharing a frame rate, rendered together in one batch.
struct CameraGroup {
    rate_hz: f64,
    /// Indices into the model's cameras.
    cameras: Vec<usize>,
    renderer: Renderer,
    frame: Frame,
    poses: Vec<CameraPose>,
    noise: Vec<ElementNoise>,
    next_due_secs: f64,
}

/// Where a camera's latest images are.
#[derive(Clone, Copy, Debug)]
struct CameraSlot {
    group: usize,
    index_in_group: usize,
}

/// The cameras of a run.
struct CameraRig {
    groups: Vec<CameraGroup>,
    slots: Vec<CameraSlot>,
    geometry: RenderScene,
    instances: Vec<Instance>,
    /// Simulation time of each camera's latest frame and whether it came this step.
    stamps: Vec<Option<f64>>,
    fresh: Vec<bool>,
}

/// The latest scan of a lidar.
#[derive(Debug, Clone)]
pub struct LidarScan {
    /// Range per ray (m) in pattern order; 0 where there is no return within range.
    pub ranges_m: Vec<f32>,
    /// Points in the sensor frame (x forward, z up) for the rays with a return.
    pub points_in_sensor: Vec<[f32; 3]>,
    /// Pose of the sensor in the world when the scan was taken.
    pub world_from_sensor: Isometry3<f64>,
    /// Simulation time of the scan (s); `None` before the first.
    pub stamp_secs: Option<f64>,
    /// Whether the scan was taken this step.
    pub fresh: bool,
}

/// Runtime state of one non-camera sensor.
enum SensorState {
    Lidar {
        scan: LidarScan,
        noise: ElementNoise,
        next_due_secs: f64,
    },
    Imu {
        imu: Imu,
        accel: Box<SensorChannel>,
        gyro: Box<SensorChannel>,
    },
    Encoder {
        encoder: Encoder,
        /// Position (rad or m) and velocity, noisy and delayed.
        output: SensorChannel,
        counts: i64,
    },
    Contact {
        force: SensorChannel,
        in_contact: bool,
    },
    ForceTorque {
        wrench: SensorChannel,
        /// Linear and angular velocity of each subtree body at the previous step.
        previous: Vec<Option<(Vector3<f64>, Vector3<f64>)>>,
    },
}

/// A sensor's latest output, borrowed from the suite.
#[derive(Debug, Clone, Copy)]
pub enum Reading<'a> {
    /// A lidar scan.
    Lidar(&'a LidarScan),
    /// IMU: sample time and `[fx, fy, fz]` (m/s²), and `[wx, wy, wz]` (rad/s), sensor frame.
    Imu {
        /// Latest accelerometer sample (time, values).
        accel: Option<(f64, &'a [f64])>,
        /// Latest gyroscope sample (time, values).
        gyro: Option<(f64, &'a [f64])>,
    },
    /// Encoder: raw counts (noise-free) and the latest `[position, velocity]` sample.
    Encoder {
        /// Counts at the last step.
        counts: i64,
        /// Latest (time, [position, velocity]).
        output: Option<(f64, &'a [f64])>,
    },
    /// Contact: whether the body touches anything, and the latest total normal force (N).
    Contact {
        /// Touching at the last step.
        in_contact: bool,
        /// Latest (time, [force_n]).
        force: Option<(f64, &'a [f64])>,
    },
    /// Force/torque: the latest `[fx, fy, fz, tx, ty, tz]` (N, N·m), child link frame.
    ForceTorque(Option<(f64, &'a [f64])>),
}

/// Sensors of one world; see the module documentation.
pub struct SensorSuite {
    model: Arc<SensorsModel>,
    rig: Option<CameraRig>,
    cameras_disabled: Option<String>,
    states: Vec<SensorState>,
    /// Scratch for lidar casting: one range per ray, reused.
    dt_secs: f64,
}

impl std::fmt::Debug for SensorSuite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SensorSuite")
            .field("cameras", &self.model.cameras.len())
            .field("sensors", &self.model.sensors.len())
            .field("cameras_disabled", &self.cameras_disabled)
            .finish_non_exhaustive()
    }
}

fn mesh_for(geometry: &Geometry) -> MeshData {
    match geometry {
        Geometry::Box { half_extents } => MeshData::cuboid(*half_extents),
        Geometry::Sphere { radius } => MeshData::sphere(*radius),
        Geometry::Cylinder {
            radius,
            half_length,
        } => MeshData::cylinder(*radius, *half_length),
        Geometry::Capsule {
            radius,
            half_length,
        } => MeshData::capsule(*radius, *half_length),
        Geometry::Mesh(mesh) => MeshData::from_triangles(&mesh.positions, &mesh.triangles),
    }
}

/// The drawable geometry of a world for the renderer: one mesh per visual (ground, robot link
/// visuals, props, actors), where it hangs (a body or fixed), its colour and ids.
pub struct RenderScene {
    /// Meshes, one per drawable.
    pub meshes: Vec<MeshData>,
    sources: Vec<InstanceSource>,
    /// Instance names by instance id - 1.
    pub instance_names: Vec<String>,
}

impl RenderScene {
    /// The geometry of `world`'s scene: instance ids number the ground, each robot link with
    /// visuals, each prop and each actor from 1 in that order; semantic ids are the scene's
    /// classes.
    pub fn new(world: &World) -> Self {
        let scene = world.scene();
        let model = &scene.sensors;
        let mut meshes = Vec::new();
        let mut sources = Vec::new();
        let mut names = Vec::new();
        let mut next_id = 1u32;
        let add = |meshes: &mut Vec<MeshData>,
                   sources: &mut Vec<InstanceSource>,
                   body,
                   body_from_mesh,
                   geometry: MeshData,
                   color,
                   instance_id,
                   semantic_id| {
            meshes.push(geometry);
            sources.push(InstanceSource {
                body,
                body_from_mesh,
                mesh: MeshId(meshes.len() as u32 - 1),
                color,
                instance_id,
                semantic_id,
            });
        };
        if scene.world.ground_friction.is_some() {
            add(
                &mut meshes,
                &mut sources,
                None,
                Isometry3::identity(),
                MeshData::plane(GROUND_HALF_SIZE_M),
                [0.55, 0.55, 0.5, 1.0],
                next_id,
                model.ground_class,
            );
            names.push("ground".to_string());
            next_id += 1;
        }
        for (r, (robot, state)) in scene.robots.iter().zip(&world.robots).enumerate() {
            for (l, link) in robot.model.links.iter().enumerate() {
                let Some(body) = state.link_bodies[l] else {
                    continue;
                };
                if link.visuals.is_empty() {
                    continue;
                }
                for visual in &link.visuals {
                    add(
                        &mut meshes,
                        &mut sources,
                        Some(body),
                        isometry(&visual.link_from_geometry),
                        mesh_for(&visual.geometry),
                        visual.color,
                        next_id,
                        model.robot_classes[r],
                    );
                }
                names.push(format!("{}/{}", robot.name, link.name));
                next_id += 1;
            }
        }
        for (p, prop) in scene.props.iter().enumerate() {
            add(
                &mut meshes,
                &mut sources,
                Some(world.props[p]),
                Isometry3::identity(),
                mesh_for(&prop.shape.geometry),
                prop.color,
                next_id,
                model.prop_classes[p],
            );
            names.push(prop.name.clone());
            next_id += 1;
        }
        for (a, actor) in scene.actors.iter().enumerate() {
            add(
                &mut meshes,
                &mut sources,
                Some(world.actors[a]),
                Isometry3::identity(),
                mesh_for(&actor.shape.geometry),
                actor.color,
                next_id,
                model.actor_classes[a],
            );
            names.push(actor.name.clone());
            next_id += 1;
        }

        Self {
            meshes,
            sources,
            instance_names: names,
        }
    }

    /// Number of instances drawn per frame.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// Whether there is nothing to draw.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Axis-aligned bounds `[min, max]` (m, world frame) of the drawables that hang on a body
    /// (robot links, props, actors; the ground is left out) at the world's current poses;
    /// `None` when there is none.
    pub fn bounds(&self, world: &World) -> Option<[[f64; 3]; 2]> {
        let mut bounds: Option<[[f64; 3]; 2]> = None;
        for s in &self.sources {
            let Some(body) = s.body else {
                continue;
            };
            let world_from_mesh = isometry(&world.body_pose(body)) * s.body_from_mesh;
            for p in &self.meshes[s.mesh.0 as usize].positions {
                let q = world_from_mesh
                    * nalgebra::Point3::new(f64::from(p[0]), f64::from(p[1]), f64::from(p[2]));
                let [lo, hi] = bounds.get_or_insert([[q.x, q.y, q.z]; 2]);
                for k in 0..3 {
                    lo[k] = lo[k].min(q[k]);
                    hi[k] = hi[k].max(q[k]);
                }
            }
        }
        bounds
    }

    /// The instances at the world's current poses, into `out` (cleared first).
    pub fn instances(&self, world: &World, out: &mut Vec<Instance>) {
        out.clear();
        for s in &self.sources {
            let world_from_body = s
                .body
                .map_or_else(Isometry3::identity, |b| isometry(&world.body_pose(b)));
            out.push(Instance {
                world: 0,
                mesh: s.mesh,
                world_from_mesh: world_from_body * s.body_from_mesh,
                color: s.color,
                instance_id: s.instance_id,
                semantic_id: s.semantic_id,
            });
        }
    }
}

/// Pose of a mount in the world now, and its body (if any).
fn mount_pose(world: &World, mount: Mount) -> (Isometry3<f64>, Option<RigidBodyHandle>) {
    let body = match mount {
        Mount::World => None,
        Mount::Link { robot, link } => world.robots[robot].link_bodies[link.0 as usize],
        Mount::Prop(p) => Some(world.props[p]),
    };
    match body {
        Some(b) => (isometry(&world.body_pose(b)), Some(b)),
        None => (Isometry3::identity(), None),
    }
}

fn vec3(v: Vector) -> Vector3<f64> {
    Vector3::new(f64::from(v.x), f64::from(v.y), f64::from(v.z))
}

impl SensorSuite {
    /// Builds the sensors of `world`'s scene. Cameras render on `gpu`; without one (`None`)
    /// they are left out and [`Self::cameras_disabled`] says why (`no_gpu_reason`).
    pub fn new(
        world: &World,
        gpu: Option<Arc<GpuContext>>,
        no_gpu_reason: Option<String>,
    ) -> Result<Self, SimError> {
        let scene = world.scene().clone();
        let model = scene.sensors.clone();
        let dt = scene.world.dt_secs;
        let seed = world.seed();
        let source = scene.source.clone();
        let fail = |element: String, e: rivet_perception::PerceptionError| {
            SimError::scene(&source, element, e.to_string())
        };
        let (rig, cameras_disabled) = match (model.cameras.is_empty(), gpu) {
            (true, _) => (None, None),
            (false, Some(gpu)) => (Some(Self::build_rig(world, &model, gpu, seed)?), None),
            (false, None) => (
                None,
                Some(no_gpu_reason.unwrap_or_else(|| "no graphics adapter".into())),
            ),
        };
        let mut states = Vec::with_capacity(model.sensors.len());
        for (i, s) in model.sensors.iter().enumerate() {
            let at = || format!("sensor[{i}] '{}'", s.name);
            let stream = |k: u64| derive_seed(seed, SENSOR_STREAM + 4 * i as u64 + k);
            let channel = |noise: &NoiseConfig, n: usize, k: u64| {
                SensorChannel::new(noise, n, stream(k), dt).map_err(|e| fail(at(), e))
            };
            states.push(match &s.kind {
                SensorKind::Lidar(spec) => SensorState::Lidar {
                    scan: LidarScan {
                        ranges_m: vec![0.0; spec.pattern.len()],
                        points_in_sensor: Vec::with_capacity(spec.pattern.len()),
                        world_from_sensor: Isometry3::identity(),
                        stamp_secs: None,
                        fresh: false,
                    },
                    noise: ElementNoise::new(&spec.noise, stream(0)).map_err(|e| fail(at(), e))?,
                    next_due_secs: 0.0,
                },
                SensorKind::Imu {
                    accel_noise,
                    gyro_noise,
                    ..
                } => SensorState::Imu {
                    imu: Imu::new(),
                    accel: Box::new(channel(accel_noise, 3, 0)?),
                    gyro: Box::new(channel(gyro_noise, 3, 1)?),
                },
                SensorKind::Encoder { config, noise, .. } => SensorState::Encoder {
                    encoder: Encoder::new(config, dt).map_err(|e| fail(at(), e))?,
                    output: channel(noise, 2, 0)?,
                    counts: 0,
                },
                SensorKind::Contact { noise, .. } => SensorState::Contact {
                    force: channel(noise, 1, 0)?,
                    in_contact: false,
                },
                SensorKind::ForceTorque { subtree, noise, .. } => SensorState::ForceTorque {
                    wrench: channel(noise, 6, 0)?,
                    previous: vec![None; subtree.len()],
                },
            });
        }
        Ok(Self {
            model,
            rig,
            cameras_disabled,
            states,
            dt_secs: dt,
        })
    }

    fn build_rig(
        world: &World,
        model: &SensorsModel,
        gpu: Arc<GpuContext>,
        seed: u64,
    ) -> Result<CameraRig, SimError> {
        let scene = world.scene();
        let source = scene.source.clone();
        let fail = |element: String, e: rivet_perception::PerceptionError| {
            SimError::scene(&source, element, e.to_string())
        };
        let RenderScene {
            meshes,
            sources,
            instance_names: names,
        } = RenderScene::new(world);
        // Group cameras by rate (bitwise-equal rates), in order of first appearance.
        let mut groups: Vec<CameraGroup> = Vec::new();
        let mut slots = Vec::with_capacity(model.cameras.len());
        let mut members: Vec<(f64, Vec<usize>)> = Vec::new();
        for (c, camera) in model.cameras.iter().enumerate() {
            match members
                .iter_mut()
                .find(|(rate, _)| rate.to_bits() == camera.rate_hz.to_bits())
            {
                Some((_, list)) => list.push(c),
                None => members.push((camera.rate_hz, vec![c])),
            }
        }
        for (g, (rate_hz, list)) in members.into_iter().enumerate() {
            let cameras: Vec<_> = list.iter().map(|&c| model.cameras[c].model).collect();
            let renderer = Renderer::new(
                gpu.clone(),
                &meshes,
                &cameras,
                sources.len(),
                Lighting {
                    shadows: scene.world.shadows,
                    ..Lighting::default()
                },
            )
            .map_err(|e| fail(format!("camera[{}]", list[0]), e))?;
            let frame = renderer.new_frame();
            let mut noise = Vec::with_capacity(list.len());
            for (k, &c) in list.iter().enumerate() {
                slots.push((
                    c,
                    CameraSlot {
                        group: g,
                        index_in_group: k,
                    },
                ));
                noise.push(
                    ElementNoise::new(
                        &model.cameras[c].depth_noise,
                        derive_seed(seed, CAMERA_STREAM + c as u64),
                    )
                    .map_err(|e| fail(format!("camera[{c}].depth_noise"), e))?,
                );
            }
            groups.push(CameraGroup {
                rate_hz,
                poses: vec![
                    CameraPose {
                        world: 0,
                        world_from_camera: Isometry3::identity(),
                    };
                    list.len()
                ],
                cameras: list,
                renderer,
                frame,
                noise,
                next_due_secs: 0.0,
            });
        }
        slots.sort_by_key(|(c, _)| *c);
        Ok(CameraRig {
            groups,
            slots: slots.into_iter().map(|(_, s)| s).collect(),
            instances: Vec::with_capacity(sources.len()),
            geometry: RenderScene {
                meshes: Vec::new(),
                sources,
                instance_names: names,
            },
            stamps: vec![None; model.cameras.len()],
            fresh: vec![false; model.cameras.len()],
        })
    }

    /// The compiled cameras and sensors.
    pub fn model(&self) -> &Arc<SensorsModel> {
        &self.model
    }

    /// Why cameras are not rendered, when the scene has cameras and no adapter was available.
    pub fn cameras_disabled(&self) -> Option<&str> {
        self.cameras_disabled.as_deref()
    }

    /// The adapter the cameras render on, if they do.
    pub fn adapter(&self) -> Option<&rivet_perception::render::AdapterReport> {
        self.rig
            .as_ref()
            .and_then(|r| r.groups.first())
            .map(|g| g.renderer.adapter())
    }

    /// Instance names by instance id (index `id - 1`): `ground`, `<robot>/<link>`, props and
    /// actors by name. Empty without cameras.
    pub fn instance_names(&self) -> &[String] {
        self.rig
            .as_ref()
            .map_or(&[], |r| &r.geometry.instance_names)
    }

    /// Camera `c`'s latest images, their simulation time, and whether they came this step.
    pub fn camera(&self, c: usize) -> Option<(&rivet_perception::render::CameraImages, f64, bool)> {
        let rig = self.rig.as_ref()?;
        let slot = rig.slots.get(c)?;
        let stamp = rig.stamps[c]?;
        let images = &rig.groups[slot.group].frame.cameras[slot.index_in_group];
        Some((images, stamp, rig.fresh[c]))
    }

    /// World pose of camera `c` (OpenCV frame) at its latest frame.
    pub fn camera_pose(&self, c: usize) -> Option<Isometry3<f64>> {
        let rig = self.rig.as_ref()?;
        let slot = rig.slots.get(c)?;
        Some(rig.groups[slot.group].poses[slot.index_in_group].world_from_camera)
    }

    /// Sensor `s`'s latest output (in the order of the scene's `[[sensor]]` tables).
    pub fn reading(&self, s: usize) -> Option<Reading<'_>> {
        Some(match self.states.get(s)? {
            SensorState::Lidar { scan, .. } => Reading::Lidar(scan),
            SensorState::Imu { accel, gyro, .. } => Reading::Imu {
                accel: accel.latest(),
                gyro: gyro.latest(),
            },
            SensorState::Encoder { output, counts, .. } => Reading::Encoder {
                counts: *counts,
                output: output.latest(),
            },
            SensorState::Contact { force, in_contact } => Reading::Contact {
                in_contact: *in_contact,
                force: force.latest(),
            },
            SensorState::ForceTorque { wrench, .. } => Reading::ForceTorque(wrench.latest()),
        })
    }

    /// Reads every sensor that is due after the world's latest step (call once per step).
    pub fn step(&mut self, world: &World) -> Result<(), SimError> {
        let t = world.time_secs();
        let tolerance = DUE_TOLERANCE_STEPS * self.dt_secs;
        let source = world.scene().source.clone();
        let fail = |what: &str, e: rivet_perception::PerceptionError| {
            SimError::scene(&source, what.to_string(), e.to_string())
        };
        if let Some(rig) = self.rig.as_mut() {
            rig.fresh.fill(false);
            let due: bool = rig.groups.iter().any(|g| t + tolerance >= g.next_due_secs);
            if due {
                rig.geometry.instances(world, &mut rig.instances);
            }
            for group in rig.groups.iter_mut() {
                if t + tolerance < group.next_due_secs {
                    continue;
                }
                let period = 1.0 / group.rate_hz;
                while group.next_due_secs <= t + tolerance {
                    group.next_due_secs += period;
                }
                for (k, &c) in group.cameras.iter().enumerate() {
                    let spec = &self.model.cameras[c];
                    let (world_from_mount, _) = mount_pose(world, spec.mount);
                    group.poses[k] = CameraPose {
                        world: 0,
                        world_from_camera: world_from_mount * spec.mount_from_camera,
                    };
                }
                group
                    .renderer
                    .render(&rig.instances, &group.poses, &mut group.frame)
                    .map_err(|e| fail("camera", e))?;
                for (k, &c) in group.cameras.iter().enumerate() {
                    group.noise[k].apply(&mut group.frame.cameras[k].depth_m);
                    rig.stamps[c] = Some(t);
                    rig.fresh[c] = true;
                }
            }
        }

        let physics = world.physics();
        let gravity = vec3(physics.gravity);
        let dt = self.dt_secs;
        for (spec, state) in self.model.sensors.iter().zip(self.states.iter_mut()) {
            match (&spec.kind, state) {
                (
                    SensorKind::Lidar(lidar),
                    SensorState::Lidar {
                        scan,
                        noise,
                        next_due_secs,
                    },
                ) => {
                    scan.fresh = false;
                    if t + tolerance < *next_due_secs {
                        continue;
                    }
                    while *next_due_secs <= t + tolerance {
                        *next_due_secs += 1.0 / lidar.rate_hz;
                    }
                    let (world_from_mount, body) = mount_pose(world, lidar.mount);
                    scan.world_from_sensor = world_from_mount * lidar.mount_from_sensor;
                    cast_scan(
                        physics,
                        lidar,
                        &scan.world_from_sensor,
                        body,
                        &mut scan.ranges_m,
                    );
                    noise.apply(&mut scan.ranges_m);
                    lidar
                        .pattern
                        .points(&scan.ranges_m, &mut scan.points_in_sensor);
                    scan.stamp_secs = Some(t);
                    scan.fresh = true;
                }
                (
                    SensorKind::Imu {
                        mount,
                        mount_from_sensor,
                        ..
                    },
                    SensorState::Imu { imu, accel, gyro },
                ) => {
                    let (world_from_mount, body) = mount_pose(world, *mount);
                    let Some(body) = body.and_then(|b| physics.bodies.get(b)) else {
                        continue;
                    };
                    let world_from_sensor = world_from_mount * mount_from_sensor;
                    let p = world_from_sensor.translation.vector;
                    let v = body.velocity_at_point(Vector::new(p.x as f32, p.y as f32, p.z as f32));
                    let reading = imu
                        .step(
                            &ImuInput {
                                world_from_body: world_from_sensor.rotation,
                                v_sensor_in_world: vec3(v),
                                w_body_in_world: vec3(body.angvel()),
                                gravity_in_world: gravity,
                            },
                            dt,
                        )
                        .map_err(|e| fail(&spec.name, e))?;
                    let values = reading.to_array();
                    accel
                        .push(t, &values[..3])
                        .map_err(|e| fail(&spec.name, e))?;
                    gyro.push(t, &values[3..])
                        .map_err(|e| fail(&spec.name, e))?;
                }
                (
                    SensorKind::Encoder { robot, dof, .. },
                    SensorState::Encoder {
                        encoder,
                        output,
                        counts,
                    },
                ) => {
                    let position = world.robots[*robot].position[dof.0 as usize];
                    let reading = encoder.update(position).map_err(|e| fail(&spec.name, e))?;
                    *counts = reading.counts;
                    output
                        .push(t, &[reading.position, reading.velocity.unwrap_or(0.0)])
                        .map_err(|e| fail(&spec.name, e))?;
                }
                (SensorKind::Contact { mount, .. }, SensorState::Contact { force, in_contact }) => {
                    let (_, body) = mount_pose(world, *mount);
                    let (f, _, touching) = match body {
                        Some(b) => contact_wrench_on(physics, b, dt),
                        None => (Vector3::zeros(), Vector3::zeros(), false),
                    };
                    *in_contact = touching;
                    force
                        .push(t, &[f.norm()])
                        .map_err(|e| fail(&spec.name, e))?;
                }
                (
                    SensorKind::ForceTorque {
                        robot,
                        child,
                        subtree,
                        ..
                    },
                    SensorState::ForceTorque { wrench, previous },
                ) => {
                    let state = &world.robots[*robot];
                    let Some(child_body) = state.link_bodies[child.0 as usize] else {
                        continue;
                    };
                    let world_from_child = isometry(&world.body_pose(child_body));
                    let w = joint_wrench(physics, state, subtree, previous, gravity, dt);
                    let origin = world_from_child.translation.vector;
                    // Torque about the child frame's origin, both in the child frame.
                    let (force_w, torque_w) = (w.0, w.1 - origin.cross(&w.0));
                    let r = world_from_child.rotation;
                    let f = r.inverse_transform_vector(&force_w);
                    let tq = r.inverse_transform_vector(&torque_w);
                    wrench
                        .push(t, &[f.x, f.y, f.z, tq.x, tq.y, tq.z])
                        .map_err(|e| fail(&spec.name, e))?;
                }
                _ => unreachable!("sensor states are built from the same specs, in order"),
            }
        }
        Ok(())
    }
}

/// Casts a scan's rays in parallel: the rays are split into chunks, and each worker builds its
/// own query pipeline over the shared broad phase (a query pipeline is not `Sync`).
pub fn cast_scan(
    physics: &PhysicsWorld,
    lidar: &LidarSpec,
    world_from_sensor: &Isometry3<f64>,
    exclude: Option<RigidBodyHandle>,
    ranges_m: &mut [f32],
) {
    const RAYS_PER_TASK: usize = 256;
    let origin = world_from_sensor.translation.vector;
    let rotation: UnitQuaternion<f32> = world_from_sensor.rotation.cast();
    let origin = Vector::new(origin.x as f32, origin.y as f32, origin.z as f32);
    let (min, max) = (lidar.min_range_m as f32, lidar.max_range_m as f32);
    ranges_m
        .par_chunks_mut(RAYS_PER_TASK)
        .zip(lidar.pattern.directions.par_chunks(RAYS_PER_TASK))
        .for_each(|(ranges, directions)| {
            let mut filter = QueryFilter::default();
            if let Some(body) = exclude {
                filter = filter.exclude_rigid_body(body);
            }
            let dispatcher = rapier3d::parry::query::DefaultQueryDispatcher;
            let pipeline = physics.broad_phase.as_query_pipeline(
                &dispatcher,
                &physics.bodies,
                &physics.colliders,
                filter,
            );
            for (range, d) in ranges.iter_mut().zip(directions) {
                let d = rotation * nalgebra::Vector3::new(d[0], d[1], d[2]);
                let ray = Ray::new(origin, Vector::new(d.x, d.y, d.z));
                *range = match pipeline.cast_ray(&ray, max, true) {
                    Some((_, toi)) if toi >= min => toi,
                    _ => 0.0,
                };
            }
        });
}

/// Total normal contact force on a body's colliders over the last step (N, world frame), its
/// moment about the world origin (N·m), and whether any of them touches something.
fn contact_wrench_on(
    physics: &PhysicsWorld,
    body: RigidBodyHandle,
    dt: f64,
) -> (Vector3<f64>, Vector3<f64>, bool) {
    let (mut force, mut torque, mut touching) = (Vector3::zeros(), Vector3::zeros(), false);
    let Some(rb) = physics.bodies.get(body) else {
        return (force, torque, touching);
    };
    for &collider in rb.colliders() {
        for pair in physics.narrow_phase.contact_pairs_with(collider) {
            if !pair.has_any_active_contact() {
                continue;
            }
            touching = true;
            let Some(c1) = physics.colliders.get(pair.collider1) else {
                continue;
            };
            // The impulse along the normal is applied to collider1's body (rapier's
            // `ContactPair::total_impulse` convention); collider2's gets the opposite.
            let sign = if pair.collider1 == collider {
                1.0
            } else {
                -1.0
            };
            for manifold in pair.manifolds() {
                let n = vec3(manifold.data.normal);
                for point in &manifold.points {
                    let f = n * (sign * f64::from(point.data.impulse) / dt);
                    let at = vec3(c1.position() * point.local_p1);
                    force += f;
                    torque += at.cross(&f);
                }
            }
        }
    }
    (force, torque, touching)
}

/// Newton-Euler on the joint's child subtree: the wrench (force, torque about the world
/// origin) the parent side applies to the subtree, from the bodies' finite-difference
/// accelerations, gravity and the contact forces on them. Updates `previous`. (Forces between
/// the subtree's own links cancel; rapier's joint motors act inside the subtree or across the
/// measured joint, where they are part of what is measured.)
fn joint_wrench(
    physics: &PhysicsWorld,
    state: &crate::world::RobotState,
    subtree: &[crate::robot::LinkId],
    previous: &mut [Option<(Vector3<f64>, Vector3<f64>)>],
    gravity: Vector3<f64>,
    dt: f64,
) -> (Vector3<f64>, Vector3<f64>) {
    let mut force = Vector3::zeros();
    let mut torque = Vector3::zeros();
    for (link, prev) in subtree.iter().zip(previous.iter_mut()) {
        let Some(handle) = state.link_bodies[link.0 as usize] else {
            continue;
        };
        let Some(rb) = physics.bodies.get(handle) else {
            continue;
        };
        let m = f64::from(rb.mass());
        let com = vec3(rb.center_of_mass());
        let (v, w) = (vec3(rb.linvel()), vec3(rb.angvel()));
        let (a, alpha) = match prev {
            Some((v0, w0)) => ((v - *v0) / dt, (w - *w0) / dt),
            None => (Vector3::zeros(), Vector3::zeros()),
        };
        *prev = Some((v, w));
        // World inertia about the centre of mass.
        let props = &rb.mass_properties().local_mprops;
        let principal = vec3(props.principal_inertia());
        let frame = props.principal_inertia_local_frame;
        let rotation = rb.position().rotation * frame;
        let q: UnitQuaternion<f64> = UnitQuaternion::from_quaternion(nalgebra::Quaternion::new(
            f64::from(rotation.w),
            f64::from(rotation.x),
            f64::from(rotation.y),
            f64::from(rotation.z),
        ));
        let r = q.to_rotation_matrix();
        let inertia =
            r.matrix() * nalgebra::Matrix3::from_diagonal(&principal) * r.matrix().transpose();
        // Net external wrench needed for this motion, minus what gravity and contacts supply.
        let (contact_force, contact_torque, _) = contact_wrench_on(physics, handle, dt);
        let f_body = m * a - m * gravity;
        force += f_body - contact_force;
        torque += com.cross(&f_body) + inertia * alpha + w.cross(&(inertia * w)) - contact_torque;
    }
    (force, torque)
}
