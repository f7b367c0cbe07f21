//! Rerun recordings (.rrd) of simulated runs.
//!
//! Entity paths (documented in docs/recording.md):
//! - `world/robots/<robot>/<link>`: link pose per recorded step; its static children
//!   `visual_<k>` hold the geometry (meshes and primitives with colours).
//! - `world/props/<prop>`, `world/actors/<actor>`: poses per step, geometry as static `geometry`.
//! - `world/ground`: the ground plane (static).
//! - `world/contacts`: contact points per recorded step.
//! - `robots/<robot>/joints/<joint>/{position,velocity,effort,command}`: scalar series.
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
