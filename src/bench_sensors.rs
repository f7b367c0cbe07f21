//! `rivet bench sensors`: camera frames per second (RGB + depth + segmentation together) at
//! 128x128 and 640x480 on the brick scene, one camera and 16 batched cameras, on whatever
//! adapter is present (named in the output), and lidar rays per second. Medians of timed
//! repetitions; never asserted.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use nalgebra::{Isometry3, Point3, Rotation3, Translation3, UnitQuaternion, Vector3};
use rivet_perception::LidarPattern;
use rivet_perception::render::{
    AdapterChoice, CameraModel, CameraPose, GpuContext, Lighting, Renderer,
};
use rivet_sim::sensors::{LidarSpec, Mount, RenderScene};
use rivet_sim::{Scene, World, WorldOptions};
use serde_json::json;

use crate::PackageArgs;

/// Arguments of `rivet bench sensors`.
#[derive(clap::Args, Debug)]
pub struct SensorsArgs {
    /// The scene rendered.
    #[arg(long, default_value = "scenes/brick_wall.toml", value_name = "SCENE")]
    pub scene: PathBuf,
    /// Timed frames per configuration; the median frame time is reported.
    #[arg(long, default_value_t = 30, value_name = "N")]
    pub frames: usize,
    /// Timed lidar scans (64 x 2048 rays each); the median is reported.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub scans: usize,
    /// Resolutions rendered, `WIDTHxHEIGHT`, comma-separated.
    #[arg(long, value_delimiter = ',', default_values = ["128x128", "640x480"], value_parser = parse_resolution, value_name = "WxH")]
    pub resolutions: Vec<(u32, u32)>,
    /// Camera counts rendered at each resolution (one batch each), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 16], value_name = "N")]
    pub cameras: Vec<usize>,
    /// Render only the first N instances of the scene (the ground, where the scene has one,
    /// is the first): 0 measures clearing the targets and reading them back alone.
    #[arg(long, value_name = "N")]
    pub instances: Option<usize>,
    /// The light casts shadows (one shadow map for the scene's world).
    #[arg(long)]
    pub shadows: bool,
    /// Only CPU software adapters (lavapipe, llvmpipe), even when a GPU is present.
    #[arg(long)]
    pub software: bool,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub packages: PackageArgs,
}

/// Parses `WIDTHxHEIGHT` (both >= 1).
fn parse_resolution(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once('x')
        .ok_or_else(|| format!("resolution `{s}` is not WIDTHxHEIGHT"))?;
    let parse = |v: &str| {
        v.parse::<u32>()
            .ok()
            .filter(|&v| v >= 1)
            .ok_or_else(|| format!("resolution `{s}`: `{v}` is not a whole number >= 1"))
    };
    Ok((parse(w)?, parse(h)?))
}

/// A camera on a circle around the work area, looking at its centre.
fn orbit_pose(k: usize, n: usize) -> Isometry3<f64> {
    let angle = std::f64::consts::TAU * k as f64 / n as f64 - 0.6;
    let eye = Point3::new(0.25 + 1.5 * angle.cos(), 1.5 * angle.sin(), 1.0);
    let z = (Point3::new(0.25, 0.0, 0.1) - eye).normalize();
    let x = z.cross(&Vector3::z()).normalize();
    let y = z.cross(&x);
    Isometry3::from_parts(
        Translation3::from(eye.coords),
        UnitQuaternion::from_rotation_matrix(&Rotation3::from_basis_unchecked(&[x, y, z])),
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Runs the sensor benchmark.
pub fn sensors(args: SensorsArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.frames >= 1 && args.scans >= 1,
        "--frames and --scans must be >= 1"
    );
    anyhow::ensure!(
        args.cameras.iter().all(|&n| n >= 1),
        "--cameras: every count must be >= 1"
    );
    let scene = Arc::new(Scene::load(&args.scene, &args.packages.resolve())?);
    let mut world = World::new(scene.clone(), WorldOptions::default())?;
    world.step();
    let choice = if args.software {
        AdapterChoice::Software
    } else {
        AdapterChoice::Auto
    };
    let gpu = Arc::new(GpuContext::new(choice)?);
    let geometry = RenderScene::new(&world);
    let mut instances = Vec::with_capacity(geometry.len());
    geometry.instances(&world, &mut instances);
    if let Some(n) = args.instances {
        instances.truncate(n);
    }
    let triangles: usize = instances
        .iter()
        .map(|i| geometry.meshes[i.mesh.0 as usize].triangle_count())
        .sum();

    let configs: Vec<((u32, u32), usize)> = args
        .resolutions
        .iter()
        .flat_map(|&r| args.cameras.iter().map(move |&n| (r, n)))
        .collect();
    let progress = if args.json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new((configs.len() * args.frames + args.scans) as u64).with_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        )
    };
    let mut results = Vec::new();
    for ((w, h), n) in configs {
        progress.set_message(format!("{w}x{h} x {n} cameras"));
        let camera = CameraModel::from_fov(w, h, 70.0, 0.05, 20.0);
        let cameras = vec![camera; n];
        let mut renderer = Renderer::new(
            gpu.clone(),
            &geometry.meshes,
            &cameras,
            geometry.len(),
            Lighting {
                shadows: args.shadows,
                ..Lighting::default()
            },
        )?;
        let poses: Vec<CameraPose> = (0..n)
            .map(|k| CameraPose {
                world: 0,
                world_from_camera: orbit_pose(k, n),
            })
            .collect();
        let mut frame = renderer.new_frame();
        for _ in 0..3 {
            renderer.render(&instances, &poses, &mut frame)?;
        }
        let mut secs = Vec::with_capacity(args.frames);
        for _ in 0..args.frames {
            let start = Instant::now();
            renderer.render(&instances, &poses, &mut frame)?;
            secs.push(start.elapsed().as_secs_f64());
            progress.inc(1);
        }
        let m = median(secs);
        results.push(json!({
            "resolution": [w, h],
            "cameras": n,
            "atlas": renderer.atlas_size(),
            "median_batch_ms": m * 1e3,
            "batches_per_sec": 1.0 / m,
            "camera_frames_per_sec": n as f64 / m,
            "drawn_pairs": renderer.drawn_pairs(),
        }));
    }

    progress.set_message("lidar 64 x 2048".to_string());
    let lidar = LidarSpec {
        mount: Mount::World,
        mount_from_sensor: Isometry3::identity(),
        pattern: LidarPattern::rotating(64, 2048, [-25.0, 15.0])?,
        min_range_m: 0.1,
        max_range_m: 30.0,
        rate_hz: 10.0,
        noise: rivet_perception::NoiseConfig::default(),
    };
    let at = Isometry3::translation(0.9, 0.7, 0.6);
    let mut ranges = vec![0.0f32; lidar.pattern.len()];
    rivet_sim::sensors::cast_scan(world.physics(), &lidar, &at, None, &mut ranges);
    let mut secs = Vec::with_capacity(args.scans);
    for _ in 0..args.scans {
        let start = Instant::now();
        rivet_sim::sensors::cast_scan(world.physics(), &lidar, &at, None, &mut ranges);
        secs.push(start.elapsed().as_secs_f64());
        progress.inc(1);
    }
    progress.finish_and_clear();
    let m = median(secs);
    let hits = ranges.iter().filter(|&&r| r > 0.0).count();
    let summary = json!({
        "bench": "sensors",
        "scene": scene.name,
        "instances": instances.len(),
        "triangles": triangles,
        "adapter": gpu.adapter(),
        "frames": args.frames,
        "cameras": results,
        "lidar": {
            "rays_per_scan": ranges.len(),
            "returns": hits,
            "threads": rayon::current_num_threads(),
            "median_scan_ms": m * 1e3,
            "rays_per_sec": ranges.len() as f64 / m,
        },
    });
    if args.json {
        crate::print_json(&summary)?;
    } else {
        let a = gpu.adapter();
        eprintln!("adapter      {} ({}, {})", a.name, a.backend, a.device_type);
        eprintln!(
            "scene        {} ({} instances, {} triangles)",
            scene.name, summary["instances"], summary["triangles"]
        );
        for r in &results {
            eprintln!(
                "cameras      {:>3} x {}x{}: {:8.2} ms per batch, {:9.1} camera frames/s",
                r["cameras"],
                r["resolution"][0],
                r["resolution"][1],
                r["median_batch_ms"].as_f64().unwrap_or(f64::NAN),
                r["camera_frames_per_sec"].as_f64().unwrap_or(f64::NAN),
            );
        }
        eprintln!(
            "lidar        {} rays per scan, {:.2} ms per scan, {:.3e} rays/s on {} threads",
            ranges.len(),
            m * 1e3,
            ranges.len() as f64 / m,
            rayon::current_num_threads()
        );
    }
    Ok(())
}
