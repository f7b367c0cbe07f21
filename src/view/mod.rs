//! `rivet view`: the scenario running live in a bevy window.
//!
//! The simulation is the one `rivet run` steps: a headless bevy app with `SimPlugin` (and the
//! scene's sensors), one fixed physics step per update, optionally driven by a policy through
//! [`crate::run::PolicyDriver`]. The viewer is a second, windowed bevy app that owns that
//! simulation app, updates it as many times per frame as the speed asks, and only reads its
//! `SimWorld` to mirror poses onto render entities (the geometry is sim's `RenderScene`, the
//! one the sensor cameras draw).
//!
//! The window needs the `viewer` cargo feature (bevy's render stack); without it the command
//! still checks its inputs and then says how to build it.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use rivet_sim::{Scene, World, WorldOptions};

use crate::PackageArgs;
use crate::run::PolicyDriver;

#[cfg(feature = "viewer")]
mod app;
#[cfg(feature = "viewer")]
pub mod camera;
#[cfg(feature = "viewer")]
pub mod keys;
#[cfg_attr(
    not(feature = "viewer"),
    allow(dead_code, reason = "without the viewer only the loading runs")
)]
pub mod playback;
#[cfg(feature = "viewer")]
pub mod teleop;

/// Arguments of `rivet view`.
#[derive(clap::Args, Debug)]
pub struct ViewArgs {
    /// The scene file (scenes/*.toml).
    pub scene: PathBuf,
    /// Scene overlay(s) applied in order (e.g. the parameters `rivet sysid` fitted).
    #[arg(long, value_name = "FILE")]
    pub overlay: Vec<PathBuf>,
    /// Let a trained policy (checkpoint from `rivet train`) act in the scene's task.
    #[arg(long, value_name = "CHECKPOINT", conflicts_with = "episode")]
    pub policy: Option<PathBuf>,
    /// Play a recorded episode (MCAP from `rivet deploy`, or a rosbag2 recording with
    /// `/joint_states`): the robot moves as recorded (its joints follow the recorded states,
    /// its commands show the recorded commands); the rest of the scene simulates.
    #[arg(long, value_name = "EPISODE.mcap")]
    pub episode: Option<PathBuf>,
    /// Seed for everything random in the run.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub seed: u64,
    /// Render `--frames` frames, save a screenshot of the window here (PNG) and exit.
    #[arg(long, value_name = "OUT.png")]
    pub screenshot: Option<PathBuf>,
    /// Frames rendered before the screenshot. In screenshot mode every frame advances the
    /// simulation by the same number of steps (1/60 s over the scene's timestep, rounded, at
    /// least one), so the picture does not depend on the machine's speed.
    #[arg(long, default_value_t = 30, value_name = "N")]
    pub frames: u32,
    /// Window width and height in pixels.
    #[arg(long, default_value_t = 960, value_name = "PX")]
    pub width: u32,
    /// Window height in pixels.
    #[arg(long, default_value_t = 540, value_name = "PX")]
    pub height: u32,
    /// Overlays shown from the start (comma-separated; keys toggle them later).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "OVERLAY,...")]
    pub show: Vec<Overlay>,
    /// With --screenshot: print one JSON object on stdout (path, frames, adapter, camera pose,
    /// simulated time, every robot joint's position and command, the episode playing).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub packages: PackageArgs,
}

/// An overlay drawn over the scene.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overlay {
    /// The robots' link frames (x red, y green, z blue).
    Frames,
    /// Contact points and contact forces.
    Contacts,
    /// Lidar points of the latest scans.
    Lidar,
    /// The camera sensors' latest RGB images, picture in picture.
    Cameras,
    /// The actors' (walking workers') paths.
    Paths,
}

/// What the viewer runs: the scene, its world and the policy, checked before any window opens.
#[cfg_attr(
    not(feature = "viewer"),
    allow(
        dead_code,
        reason = "without the viewer the inputs are only checked, nothing runs them"
    )
)]
pub struct Prepared {
    /// The scene.
    pub scene: Arc<Scene>,
    /// Its world, reset to the policy's first episode when there is a policy.
    pub world: World,
    /// The policy acting, if any.
    pub driver: Option<PolicyDriver>,
    /// The recorded episode playing, if any (the world starts in its first state).
    pub playback: Option<playback::Playback>,
}

/// Loads and checks everything the viewer needs (scene, overlays, checkpoint, arguments).
pub fn prepare(args: &ViewArgs) -> anyhow::Result<Prepared> {
    anyhow::ensure!(
        args.width >= 64 && args.height >= 64 && args.width <= 8192 && args.height <= 8192,
        "--width {} --height {}: the window must be 64 to 8192 pixels on each side",
        args.width,
        args.height
    );
    if let Some(shot) = &args.screenshot {
        anyhow::ensure!(
            args.frames >= 1,
            "--frames {}: the screenshot needs at least one frame",
            args.frames
        );
        anyhow::ensure!(
            shot.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("png")),
            "--screenshot {}: the screenshot is written as PNG; name it *.png",
            shot.display()
        );
        if let Some(parent) = shot.parent()
            && !parent.as_os_str().is_empty()
        {
            anyhow::ensure!(
                parent.is_dir(),
                "--screenshot {}: the folder {} does not exist",
                shot.display(),
                parent.display()
            );
        }
    } else {
        anyhow::ensure!(
            !args.json,
            "--json reports a screenshot run: use it with --screenshot <out.png>"
        );
    }
    let scene = Arc::new(Scene::load_with_overlays(
        &args.scene,
        &args.overlay,
        &args.packages.resolve(),
    )?);
    let mut world = World::new(
        scene.clone(),
        WorldOptions {
            seed: args.seed,
            threads: Some(1),
        },
    )?;
    let driver = match &args.policy {
        None => None,
        Some(path) => Some(
            PolicyDriver::new(&scene, &mut world, path, args.seed)
                .with_context(|| format!("--policy {}", path.display()))?,
        ),
    };
    let playback = match &args.episode {
        None => None,
        Some(path) => {
            let mut p = playback::Playback::load(path, &scene)?;
            p.apply(&mut world);
            Some(p)
        }
    };
    Ok(Prepared {
        scene,
        world,
        driver,
        playback,
    })
}

/// Runs `rivet view`.
pub fn view(args: ViewArgs) -> anyhow::Result<()> {
    let prepared = prepare(&args)?;
    #[cfg(feature = "viewer")]
    {
        app::run(args, prepared)
    }
    #[cfg(not(feature = "viewer"))]
    {
        drop(prepared);
        anyhow::bail!(
            "this rivet was built without the viewer (cargo feature `viewer`, off by default \
             because bevy's render stack adds minutes to a build): run it with \
             `cargo run --features viewer -- view {}`. Without a window, `rivet run {}` runs the \
             scenario headless and writes a recording for the rerun viewer",
            args.scene.display(),
            args.scene.display()
        )
    }
}
