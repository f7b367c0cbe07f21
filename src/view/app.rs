//! The windowed bevy app of `rivet view`.
//!
//! It owns the simulation app (`headless_app` + `SimPlugin` + the scene's sensors, exactly
//! what `rivet run` steps) as a non-send resource, updates it a whole number of times per
//! frame (the fixed physics step; how many follows the speed, or a fixed count in screenshot
//! mode), and then only reads its `SimWorld`: render entities get the poses of sim's
//! `RenderScene` drawables, gizmos draw frames, contacts, lidar points and actor paths, and a
//! UI panel shows time, joints and the task.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bevy::asset::RenderAssetUsages;
use bevy::core_pipeline::tonemapping::Tonemapping;
use bevy::input::mouse::{AccumulatedMouseScroll, MouseScrollUnit};
use bevy::mesh::{Indices, PrimitiveTopology};
use bevy::prelude::*;
use bevy::render::RenderPlugin;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat};
use bevy::render::renderer::RenderAdapterInfo;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use bevy::window::{ExitCondition, WindowResolution};
use rivet_perception::render::Instance;
use rivet_sim::sensors::{Reading, RenderScene};
use rivet_sim::{Scene, SimSensors, SimWorld, World, WorldOptions, headless_app};
use serde_json::json;

use super::camera::{FOV_Y_RAD, OrbitCamera};
use super::keys::{Action, action_for};
use super::playback::Playback;
use super::teleop::{JogMode, Teleop};
use super::{Overlay, Prepared, ViewArgs};
use crate::run::PolicyDriver;

/// Simulated time one frame advances in screenshot mode (s).
const SCREENSHOT_FRAME_SECS: f64 = 1.0 / 60.0;
/// Most simulated time one frame may advance at speed 1 (s); a slower machine runs slower
/// than real time rather than falling further behind.
const MAX_FRAME_SECS: f64 = 0.1;
/// Speeds the `[`/`]` keys step through are powers of two within these.
const SPEED_RANGE: [f64; 2] = [1.0 / 64.0, 16.0];
/// Length of the link frames' axes (m).
const FRAME_AXIS_M: f32 = 0.08;
/// Width of each camera image in the picture-in-picture strip (px).
const PIP_WIDTH_PX: f32 = 240.0;

/// Why no window can open here, when that is clear before trying: no X11 display (the viewer
/// opens an X11 window; Wayland desktops provide one through XWayland), or one that does not
/// answer.
fn no_display_reason() -> Option<String> {
    match std::env::var_os("DISPLAY") {
        Some(d) if !d.is_empty() => x11rb::connect(None).err().map(|e| {
            format!(
                "the X server at DISPLAY={} does not answer ({e})",
                d.to_string_lossy()
            )
        }),
        _ => Some(if std::env::var_os("WAYLAND_DISPLAY").is_some() {
            "WAYLAND_DISPLAY is set but DISPLAY is not: the viewer opens an X11 window \
             (XWayland on Wayland desktops)"
                .to_string()
        } else {
            "there is no display (neither DISPLAY nor WAYLAND_DISPLAY is set)".to_string()
        }),
    }
}

/// Runs the viewer until its window closes (or, with `--screenshot`, until the picture is
/// saved).
pub fn run(args: ViewArgs, prepared: Prepared) -> anyhow::Result<()> {
    if let Some(reason) = no_display_reason() {
        anyhow::bail!(
            "cannot open the viewer window: {reason}. Without a display, run the scenario \
             headless with `rivet run {scene}` and open the recording it writes in the rerun \
             viewer (`pip install rerun-sdk==0.36.3 && rerun runs/<scene>-<time>.rrd`); for a \
             picture without a screen, run the viewer under Xvfb: \
             `xvfb-run -s \"-screen 0 1280x720x24\" rivet view {scene} --screenshot out.png`",
            scene = args.scene.display()
        );
    }
    let Prepared {
        scene,
        world,
        driver,
        playback,
    } = prepared;
    let sensors = crate::sensors::suite_for(&world, args.json)?;
    let sim = Sim::new(
        scene.clone(),
        world,
        driver,
        sensors,
        args.seed,
        args.policy.clone(),
        playback,
    );
    let aspect = args.width as f32 / args.height as f32;
    let first_view = OrbitCamera::framing(sim.render_scene.bounds(sim.world()), aspect);
    let shot = args.screenshot.clone().map(|path| ScreenshotJob {
        path,
        frames: args.frames,
        frame: 0,
        requested: None,
        done: Arc::new(Mutex::new(None)),
    });
    let done = shot.as_ref().map(|s| s.done.clone());

    let mut app = App::new();
    app.add_plugins(
        DefaultPlugins
            .set(WindowPlugin {
                primary_window: Some(Window {
                    title: format!("rivet view: {}", scene.name),
                    resolution: WindowResolution::new(args.width, args.height)
                        .with_scale_factor_override(1.0),
                    resizable: shot.is_none(),
                    ..default()
                }),
                exit_condition: ExitCondition::OnPrimaryClosed,
                ..default()
            })
            .set(RenderPlugin {
                // Every pipeline is compiled before the frame that first needs it, so the
                // screenshot's frames all show the whole scene (a software renderer can take
                // seconds per shader).
                synchronous_pipeline_compilation: shot.is_some(),
                ..default()
            }),
    )
    .insert_resource(ClearColor(Color::srgb(0.70, 0.78, 0.86)))
    .insert_resource(GlobalAmbientLight {
        color: Color::WHITE,
        brightness: 300.0,
        affects_lightmapped_meshes: true,
    })
    .insert_resource(Clock {
        paused: false,
        speed: 1.0,
        fixed_steps_per_frame: shot
            .is_some()
            .then(|| ((SCREENSHOT_FRAME_SECS / scene.world.dt_secs).round() as u32).max(1)),
        step_requested: false,
        debt_secs: 0.0,
        rtf: RtfMeter::default(),
    })
    .insert_resource(Overlays {
        frames: args.show.contains(&Overlay::Frames),
        contacts: args.show.contains(&Overlay::Contacts),
        lidar: args.show.contains(&Overlay::Lidar),
        cameras: args.show.contains(&Overlay::Cameras),
        paths: args.show.contains(&Overlay::Paths),
        panel: true,
    })
    .insert_resource(View {
        camera: first_view,
        first: first_view,
    })
    .insert_resource(TeleopState {
        teleop: None,
        message: None,
    })
    .insert_non_send(sim)
    .add_plugins(ViewerPlugin);
    if let Some(shot) = shot {
        app.insert_resource(shot);
    }
    let exit = app.run();
    let Some(done) = done else {
        return match exit {
            AppExit::Success => Ok(()),
            AppExit::Error(code) => anyhow::bail!("the viewer exited with code {code}"),
        };
    };
    let report = done
        .lock()
        .map_err(|_| anyhow::anyhow!("the screenshot state was poisoned"))?
        .take();
    let report = report
        .ok_or_else(|| anyhow::anyhow!("the viewer closed before the screenshot was taken"))??;
    if args.json {
        crate::print_json(&report)?;
    } else {
        eprintln!(
            "screenshot   {} ({} frames, {:.3} s simulated, adapter {})",
            report["path"].as_str().unwrap_or_default(),
            report["frames"],
            report["sim_time_secs"].as_f64().unwrap_or_default(),
            report["adapter"]["name"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

/// The viewer's stages, run in this order every frame.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ViewSet {
    /// Keys and mouse: clock, overlays, camera, teleoperation.
    Input,
    /// The simulation app's updates for this frame.
    Simulate,
    /// Render entities and the camera take the new poses.
    Mirror,
    /// Gizmos, the panel and the camera pictures.
    Draw,
    /// The screenshot, in screenshot mode.
    Capture,
}

/// The viewer's systems in their [`ViewSet`]s (the app provides the resources).
struct ViewerPlugin;

impl Plugin for ViewerPlugin {
    fn build(&self, app: &mut App) {
        app.configure_sets(
            Update,
            (
                ViewSet::Input,
                ViewSet::Simulate,
                ViewSet::Mirror,
                ViewSet::Draw,
                ViewSet::Capture,
            )
                .chain(),
        )
        .add_systems(Startup, (spawn_scene, spawn_ui))
        .add_systems(
            Update,
            (
                (keyboard, mouse_camera).chain().in_set(ViewSet::Input),
                step_simulation.in_set(ViewSet::Simulate),
                (mirror_poses, place_camera).in_set(ViewSet::Mirror),
                (draw_overlays, update_panel, update_pictures).in_set(ViewSet::Draw),
                screenshot.in_set(ViewSet::Capture),
            ),
        );
    }
}

/// The simulation: the headless app `rivet run` steps, the policy around it, and the scene's
/// drawables.
struct Sim {
    app: App,
    scene: Arc<Scene>,
    driver: Option<PolicyDriver>,
    seed: u64,
    policy: Option<PathBuf>,
    render_scene: RenderScene,
    instances: Vec<Instance>,
    /// The recorded episode moving the robot, if one plays.
    playback: Option<Playback>,
    /// The policy's episode, or the recorded one, ended (the simulation holds until a reset).
    episode_over: bool,
    /// Why the last reset failed, if it did.
    error: Option<String>,
}

impl Sim {
    fn new(
        scene: Arc<Scene>,
        world: World,
        driver: Option<PolicyDriver>,
        sensors: Option<rivet_sim::SensorSuite>,
        seed: u64,
        policy: Option<PathBuf>,
        playback: Option<Playback>,
    ) -> Self {
        let render_scene = RenderScene::new(&world);
        let mut instances = Vec::new();
        render_scene.instances(&world, &mut instances);
        let mut app = headless_app(world);
        if let Some(suite) = sensors {
            app.insert_resource(SimSensors { suite, error: None });
        }
        Self {
            app,
            scene,
            driver,
            seed,
            policy,
            render_scene,
            instances,
            playback,
            episode_over: false,
            error: None,
        }
    }

    fn world(&self) -> &World {
        &self.app.world().resource::<SimWorld>().0
    }

    fn world_mut(&mut self) -> Mut<'_, SimWorld> {
        self.app.world_mut().resource_mut::<SimWorld>()
    }

    fn sensors(&self) -> Option<&SimSensors> {
        self.app.world().get_resource::<SimSensors>()
    }

    /// Whether another step can run: the world is finite and the policy's episode goes on.
    fn running(&self) -> bool {
        self.world().termination().is_none() && !self.episode_over
    }

    /// One update of the simulation app (one physics step), with the policy or the
    /// teleoperation commanding first.
    fn step(&mut self, teleop: Option<&Teleop>) {
        if let Some(t) = teleop {
            let robot = t.robot;
            let mut world = self.world_mut();
            t.write_commands(&mut world.0.robots[robot].command);
        } else if let Some(d) = self.driver.as_mut() {
            let mut world = self.app.world_mut().resource_mut::<SimWorld>();
            d.before_update(&mut world.0);
        }
        self.app.update();
        if let Some(p) = self.playback.as_mut() {
            let mut world = self.app.world_mut().resource_mut::<SimWorld>();
            p.apply(&mut world.0);
            if p.is_over(world.0.time_secs()) {
                self.episode_over = true;
            }
        }
        if teleop.is_none()
            && let Some(d) = self.driver.as_mut()
            && d.after_update(&self.app.world().resource::<SimWorld>().0)
        {
            self.episode_over = true;
        }
    }

    /// A new world from the scene (and the policy's first episode), as at the start.
    fn reset(&mut self) -> anyhow::Result<()> {
        let mut world = World::new(
            self.scene.clone(),
            WorldOptions {
                seed: self.seed,
                threads: Some(1),
            },
        )?;
        let driver = match &self.policy {
            Some(path) => Some(PolicyDriver::new(&self.scene, &mut world, path, self.seed)?),
            None => None,
        };
        let mut playback = self.playback.take();
        if let Some(p) = playback.as_mut() {
            p.rewind();
            p.apply(&mut world);
        }
        let sensors = crate::sensors::suite_for(&world, true)?;
        *self = Self::new(
            self.scene.clone(),
            world,
            driver,
            sensors,
            self.seed,
            self.policy.clone(),
            playback,
        );
        Ok(())
    }
}

/// How the simulation advances.
#[derive(Resource)]
struct Clock {
    paused: bool,
    /// Simulated seconds per real second.
    speed: f64,
    /// Screenshot mode: this many steps every frame, whatever the wall clock says.
    fixed_steps_per_frame: Option<u32>,
    /// One step requested while paused.
    step_requested: bool,
    /// Simulated time owed to the wall clock (s), less than one step after each frame.
    debt_secs: f64,
    rtf: RtfMeter,
}

/// The real-time factor over the last second or so of wall time.
#[derive(Default)]
struct RtfMeter {
    window_start: Option<(Instant, f64)>,
    value: Option<f64>,
}

impl RtfMeter {
    fn update(&mut self, sim_secs: f64) {
        let now = Instant::now();
        match self.window_start {
            Some((t0, s0)) => {
                let wall = now.duration_since(t0).as_secs_f64();
                if wall >= 1.0 {
                    self.value = Some((sim_secs - s0) / wall);
                    self.window_start = Some((now, sim_secs));
                }
            }
            None => self.window_start = Some((now, sim_secs)),
        }
    }

    fn reset(&mut self) {
        *self = Self::default();
    }
}

/// Which overlays are shown.
#[derive(Resource)]
struct Overlays {
    frames: bool,
    contacts: bool,
    lidar: bool,
    cameras: bool,
    paths: bool,
    panel: bool,
}

/// The orbit camera and the first view (for the reset key).
#[derive(Resource)]
struct View {
    camera: OrbitCamera,
    first: OrbitCamera,
}

/// Teleoperation, when a robot is taken over, and the last thing to tell the user about it.
#[derive(Resource)]
struct TeleopState {
    teleop: Option<Teleop>,
    message: Option<String>,
}

/// The screenshot mode's job: the path, the frames to render, and the outcome for `run`.
#[derive(Resource)]
struct ScreenshotJob {
    path: PathBuf,
    frames: u32,
    frame: u32,
    /// The report, once the screenshot is requested (completed by the capture).
    requested: Option<serde_json::Value>,
    done: Arc<Mutex<Option<anyhow::Result<serde_json::Value>>>>,
}

/// A render entity mirroring drawable `k` of sim's `RenderScene`.
#[derive(Component)]
struct Drawable(usize);

/// The panel's text.
#[derive(Component)]
struct PanelText;

/// The picture-in-picture strip.
#[derive(Component)]
struct PictureStrip;

/// One camera sensor's picture: its index and image.
#[derive(Component)]
struct Picture {
    camera: usize,
    image: Handle<Image>,
}

/// The nalgebra (f64) pose of a drawable as a bevy transform: the one seam between the two.
fn transform_from_isometry(iso: &nalgebra::Isometry3<f64>) -> Transform {
    let t = iso.translation.vector;
    let q = iso.rotation.quaternion();
    Transform {
        translation: Vec3::new(t.x as f32, t.y as f32, t.z as f32),
        rotation: Quat::from_xyzw(q.i as f32, q.j as f32, q.k as f32, q.w as f32),
        scale: Vec3::ONE,
    }
}

fn vec3(p: [f32; 3]) -> Vec3 {
    Vec3::from_array(p)
}

fn spawn_scene(
    mut commands: Commands,
    sim: NonSend<Sim>,
    view: Res<View>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
) {
    for (k, (data, instance)) in sim
        .render_scene
        .meshes
        .iter()
        .zip(&sim.instances)
        .enumerate()
    {
        let mesh = Mesh::new(
            PrimitiveTopology::TriangleList,
            RenderAssetUsages::RENDER_WORLD,
        )
        .with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, data.positions.clone())
        .with_inserted_attribute(Mesh::ATTRIBUTE_NORMAL, data.normals.clone())
        .with_inserted_indices(Indices::U32(data.indices.clone()));
        let [r, g, b, _] = instance.color;
        commands.spawn((
            Drawable(k),
            Mesh3d(meshes.add(mesh)),
            MeshMaterial3d(materials.add(StandardMaterial {
                base_color: Color::linear_rgb(r, g, b),
                perceptual_roughness: 0.75,
                metallic: 0.0,
                ..default()
            })),
            transform_from_isometry(&instance.world_from_mesh),
        ));
    }
    // The sun, high and to the side, with shadows.
    commands.spawn((
        DirectionalLight {
            illuminance: 2000.0,
            shadow_maps_enabled: true,
            ..default()
        },
        Transform::from_xyz(2.0, -1.0, 4.0).looking_at(Vec3::ZERO, Vec3::Z),
    ));
    commands.spawn((
        Camera3d::default(),
        Projection::Perspective(PerspectiveProjection {
            fov: FOV_Y_RAD,
            near: 0.02,
            ..default()
        }),
        // A tonemapper without lookup tables (the `tonemapping_luts` feature is not built).
        Tonemapping::None,
        camera_transform(&view.camera),
    ));
}

fn camera_transform(camera: &OrbitCamera) -> Transform {
    Transform::from_translation(camera.eye()).looking_at(camera.target, Vec3::Z)
}

fn spawn_ui(mut commands: Commands) {
    commands
        .spawn((
            Node {
                position_type: PositionType::Absolute,
                top: px(8),
                left: px(8),
                padding: UiRect::all(px(6)),
                ..default()
            },
            BackgroundColor(Color::srgba(0.0, 0.0, 0.0, 0.6)),
        ))
        .with_child((
            PanelText,
            Text::new(""),
            TextFont {
                font_size: FontSize::Px(12.0),
                ..default()
            },
            TextColor(Color::WHITE),
        ));
    commands.spawn((
        Node {
            position_type: PositionType::Absolute,
            bottom: px(8),
            left: px(8),
            padding: UiRect::all(px(4)),
            ..default()
        },
        BackgroundColor(Color::srgba(0.0, 0.0, 0.0, 0.45)),
        children![(
            Text::new(super::keys::help()),
            TextFont {
                font_size: FontSize::Px(11.0),
                ..default()
            },
            TextColor(Color::WHITE),
        )],
    ));
    commands.spawn((
        PictureStrip,
        Node {
            position_type: PositionType::Absolute,
            bottom: px(8),
            right: px(8),
            flex_direction: FlexDirection::Row,
            column_gap: px(6),
            ..default()
        },
        Visibility::Hidden,
    ));
}

#[allow(
    clippy::too_many_arguments,
    reason = "a bevy system: each parameter is one resource it reads or writes"
)]
fn keyboard(
    keys: Res<ButtonInput<KeyCode>>,
    time: Res<Time>,
    mut clock: ResMut<Clock>,
    mut overlays: ResMut<Overlays>,
    mut view: ResMut<View>,
    mut teleop: ResMut<TeleopState>,
    mut sim: NonSendMut<Sim>,
    mut exit: MessageWriter<AppExit>,
) {
    let dt_secs = f64::from(time.delta_secs());
    // One-shot actions on a press (even one released within the same frame: a slow frame
    // sees both), jogs every frame while their key is held.
    let pressed_once = keys
        .get_just_pressed()
        .filter_map(|&k| action_for(k))
        .filter(|a| !a.is_held());
    let held = keys
        .get_pressed()
        .filter_map(|&k| action_for(k))
        .filter(|a| a.is_held());
    let actions: Vec<Action> = pressed_once.chain(held).collect();
    for action in actions {
        match action {
            Action::TogglePause => clock.paused = !clock.paused,
            Action::Step => {
                clock.paused = true;
                clock.step_requested = true;
            }
            Action::Reset => {
                teleop.teleop = None;
                teleop.message = None;
                clock.debt_secs = 0.0;
                clock.rtf.reset();
                if let Err(e) = sim.reset() {
                    sim.error = Some(format!("reset failed: {e:#}"));
                }
            }
            Action::Faster => clock.speed = (clock.speed * 2.0).min(SPEED_RANGE[1]),
            Action::Slower => clock.speed = (clock.speed * 0.5).max(SPEED_RANGE[0]),
            Action::ResetCamera => view.camera = view.first,
            Action::ToggleFrames => overlays.frames = !overlays.frames,
            Action::ToggleContacts => overlays.contacts = !overlays.contacts,
            Action::ToggleLidar => overlays.lidar = !overlays.lidar,
            Action::ToggleCameras => overlays.cameras = !overlays.cameras,
            Action::TogglePaths => overlays.paths = !overlays.paths,
            Action::TogglePanel => overlays.panel = !overlays.panel,
            Action::ToggleTeleop => {
                if teleop.teleop.take().is_some() {
                    teleop.message = Some("teleoperation off: the robot holds".into());
                } else {
                    take_over(&mut sim, &mut teleop);
                }
            }
            Action::ToggleJogMode => {
                if let Some(t) = teleop.teleop.as_mut() {
                    t.mode = match t.mode {
                        JogMode::Joint => JogMode::Tool,
                        JogMode::Tool => JogMode::Joint,
                    };
                }
            }
            Action::PreviousJoint | Action::NextJoint => {
                if let Some(t) = teleop.teleop.as_mut() {
                    t.select(if action == Action::NextJoint { 1 } else { -1 });
                }
            }
            Action::JogJointMinus | Action::JogJointPlus => {
                if let Some(t) = teleop.teleop.as_mut()
                    && t.mode == JogMode::Joint
                {
                    let direction = if action == Action::JogJointPlus {
                        1.0
                    } else {
                        -1.0
                    };
                    t.jog_joint(direction, dt_secs);
                }
            }
            Action::ToggleGripper => {
                if let Some(t) = teleop.teleop.as_mut() {
                    if t.has_gripper() {
                        t.toggle_gripper();
                    } else {
                        teleop.message = Some("this robot has no gripper configured".into());
                    }
                }
            }
            Action::Quit => {
                exit.write(AppExit::Success);
            }
            Action::JogToolXPlus
            | Action::JogToolXMinus
            | Action::JogToolYPlus
            | Action::JogToolYMinus
            | Action::JogToolZPlus
            | Action::JogToolZMinus => {
                let state = &mut *teleop;
                if let (Some(t), Some(direction)) = (state.teleop.as_mut(), action.tool_direction())
                    && t.mode == JogMode::Tool
                {
                    state.message = t
                        .jog_tool(direction, dt_secs)
                        .err()
                        .map(|e| format!("tool jog: {e}"));
                }
            }
        }
    }
}

/// Takes the first robot that can be jogged away from its script and policy.
fn take_over(sim: &mut Sim, state: &mut TeleopState) {
    if let Some(p) = &sim.playback {
        state.message = Some(format!(
            "teleoperation is off while the episode {} plays",
            p.path.display()
        ));
        return;
    }
    let scene = sim.scene.clone();
    let mut reasons = Vec::new();
    for robot in 0..scene.robots.len() {
        let current = sim.world().position_targets(robot).to_vec();
        match Teleop::new(&scene, robot, &current) {
            Ok(t) => {
                sim.world_mut().0.release_script(robot);
                sim.driver = None;
                state.message = Some(format!(
                    "teleoperating '{}' (tool frame {})",
                    scene.robots[robot].name, t.tool_name
                ));
                state.teleop = Some(t);
                return;
            }
            Err(e) => reasons.push(e),
        }
    }
    state.message = Some(if reasons.is_empty() {
        "the scene has no robot to teleoperate".into()
    } else {
        reasons.join("; ")
    });
}

/// Drags move the camera by the cursor's motion inside the window (window events, so it
/// works on remote and virtual displays without raw device motion).
fn mouse_camera(
    buttons: Res<ButtonInput<MouseButton>>,
    scroll: Res<AccumulatedMouseScroll>,
    window: Single<&Window>,
    mut last_cursor: Local<Option<Vec2>>,
    mut view: ResMut<View>,
) {
    let height = window.height().max(1.0);
    let cursor = window.cursor_position();
    let d = match (cursor, *last_cursor) {
        (Some(now), Some(before)) => (now - before) / height,
        _ => Vec2::ZERO,
    };
    *last_cursor = cursor;
    if buttons.pressed(MouseButton::Left) {
        view.camera
            .orbit(-d.x * std::f32::consts::PI, d.y * std::f32::consts::PI);
    } else if buttons.pressed(MouseButton::Right) || buttons.pressed(MouseButton::Middle) {
        view.camera.pan(-d.x, d.y);
    }
    let notches = match scroll.unit {
        MouseScrollUnit::Line => scroll.delta.y,
        MouseScrollUnit::Pixel => scroll.delta.y / 40.0,
    };
    if notches != 0.0 {
        view.camera.zoom(0.9f32.powf(notches));
    }
}

fn step_simulation(
    time: Res<Time>,
    mut clock: ResMut<Clock>,
    teleop: Res<TeleopState>,
    mut sim: NonSendMut<Sim>,
) {
    let dt = sim.scene.world.dt_secs;
    let steps = match clock.fixed_steps_per_frame {
        Some(n) if !clock.paused => n,
        _ if clock.step_requested => {
            clock.step_requested = false;
            1
        }
        _ if clock.paused => 0,
        _ => {
            let frame_secs = f64::from(time.delta_secs()).min(MAX_FRAME_SECS);
            clock.debt_secs += frame_secs * clock.speed;
            let n = (clock.debt_secs / dt).floor();
            clock.debt_secs -= n * dt;
            n as u32
        }
    };
    for _ in 0..steps {
        if !sim.running() {
            break;
        }
        sim.step(teleop.teleop.as_ref());
    }
    let t = sim.world().time_secs();
    clock.rtf.update(t);
}

fn mirror_poses(mut sim: NonSendMut<Sim>, mut drawables: Query<(&Drawable, &mut Transform)>) {
    let sim = &mut *sim;
    let world = &sim.app.world().resource::<SimWorld>().0;
    sim.render_scene.instances(world, &mut sim.instances);
    for (drawable, mut transform) in &mut drawables {
        if let Some(instance) = sim.instances.get(drawable.0) {
            *transform = transform_from_isometry(&instance.world_from_mesh);
        }
    }
}

fn place_camera(view: Res<View>, mut camera: Single<&mut Transform, With<Camera3d>>) {
    **camera = camera_transform(&view.camera);
}

fn draw_overlays(mut gizmos: Gizmos, sim: NonSend<Sim>, overlays: Res<Overlays>) {
    let world = sim.world();
    if overlays.frames {
        for state in &world.robots {
            for body in state.link_bodies.iter().flatten() {
                let pose = world.body_pose(*body);
                let transform = Transform {
                    translation: vec3(pose.translation),
                    rotation: Quat::from_array(pose.rotation),
                    scale: Vec3::ONE,
                };
                gizmos.axes(transform, FRAME_AXIS_M);
            }
        }
    }
    if overlays.contacts {
        let red = Color::srgb(1.0, 0.1, 0.1);
        world.for_each_contact_point(|p| {
            gizmos.sphere(Isometry3d::from_translation(vec3(p)), 0.008, red);
        });
        // Forces as arrows: 1 m per 100 N.
        world.for_each_contact_force(|p, f| {
            let start = vec3(p);
            let force = vec3(f);
            if force.length() > 0.5 {
                gizmos.arrow(start, start + force * 0.01, Color::srgb(1.0, 0.9, 0.1));
            }
        });
    }
    if overlays.lidar
        && let Some(sensors) = sim.sensors()
    {
        let green = Color::srgb(0.1, 0.9, 0.3);
        for s in 0..sensors.suite.model().sensors.len() {
            if let Some(Reading::Lidar(scan)) = sensors.suite.reading(s) {
                let world_from_sensor = transform_from_isometry(&scan.world_from_sensor);
                for p in &scan.points_in_sensor {
                    let q = world_from_sensor.transform_point(vec3(*p));
                    gizmos.cross(Isometry3d::from_translation(q), 0.01, green);
                }
            }
        }
    }
    if overlays.paths {
        for actor in &sim.scene.actors {
            let [r, g, b, _] = actor.color;
            let mut points: Vec<Vec3> = actor
                .path
                .iter()
                .map(|p| Vec3::new(p[0] as f32, p[1] as f32, p[2] as f32 + 0.01))
                .collect();
            if actor.looping
                && let Some(first) = points.first().copied()
            {
                points.push(first);
            }
            gizmos.linestrip(points, Color::linear_rgb(r, g, b));
        }
    }
}

fn update_panel(
    sim: NonSend<Sim>,
    clock: Res<Clock>,
    overlays: Res<Overlays>,
    teleop: Res<TeleopState>,
    mut text: Single<(&mut Text, &ChildOf), With<PanelText>>,
    mut nodes: Query<&mut Visibility>,
) {
    if let Ok(mut visibility) = nodes.get_mut(text.1.parent()) {
        *visibility = if overlays.panel {
            Visibility::Visible
        } else {
            Visibility::Hidden
        };
    }
    if !overlays.panel {
        return;
    }
    let world = sim.world();
    let mut s = String::new();
    use std::fmt::Write as _;
    let state = if let Some(t) = world.termination() {
        format!("stopped: {t:?}")
    } else if sim.episode_over {
        "episode over (R resets)".to_string()
    } else if clock.paused {
        "paused".to_string()
    } else {
        "running".to_string()
    };
    let _ = writeln!(s, "{}  [{state}]", sim.scene.name);
    let _ = writeln!(
        s,
        "sim time {:.3} s  step {}  speed x{}  real-time factor {}",
        world.time_secs(),
        world.step_index(),
        clock.speed,
        clock
            .rtf
            .value
            .map_or_else(|| "-".to_string(), |r| format!("{r:.2}"))
    );
    let jogging = teleop.teleop.as_ref();
    for (r, (robot, rs)) in sim.scene.robots.iter().zip(&world.robots).enumerate() {
        let _ = writeln!(s, "robot {}: joint  position  command", robot.name);
        for d in 0..rs.position.len() {
            let name = &robot
                .model
                .dof_joint(rivet_sim::robot::DofId(d as u32))
                .name;
            let marker = match jogging {
                Some(t) if t.robot == r && t.selected == d && t.mode == JogMode::Joint => ">",
                _ => " ",
            };
            let _ = writeln!(
                s,
                "{marker} {name:<20} {:>8.3} {:>8.3}",
                rs.position[d], rs.command[d]
            );
        }
    }
    for task in world.task_outcomes() {
        let _ = writeln!(
            s,
            "task {}: {} of {} placed, {} dropped, {:?}",
            task.robot, task.placed, task.tasks, task.dropped, task.phase
        );
    }
    if let Some(p) = sim.playback.as_ref() {
        let _ = writeln!(
            s,
            "episode {}: {:.3} of {:.3} s (robot '{}' as recorded)",
            p.path.display(),
            world.time_secs().min(p.duration_secs()),
            p.duration_secs(),
            sim.scene.robots[p.robot].name
        );
    }
    if let Some(d) = sim.driver.as_ref() {
        let o = d.outcome();
        let _ = writeln!(
            s,
            "policy: {} actions, reward {:.3}, return {:.3}{}",
            d.actions(),
            o.reward,
            d.episode_return(),
            if o.success { ", success" } else { "" }
        );
    }
    if let Some(t) = jogging {
        let _ = writeln!(
            s,
            "teleop: {} jog{}",
            match t.mode {
                JogMode::Joint => format!("joint ({})", t.joint_names[t.selected]),
                JogMode::Tool => format!("tool ({})", t.tool_name),
            },
            if t.has_gripper() {
                if t.gripper_closed {
                    ", gripper closed"
                } else {
                    ", gripper open"
                }
            } else {
                ""
            }
        );
    }
    if let Some(m) = teleop.message.as_ref().or(sim.error.as_ref()) {
        let _ = writeln!(s, "{m}");
    }
    if let Some(sensors) = sim.sensors() {
        if let Some(reason) = sensors.suite.cameras_disabled() {
            let _ = writeln!(s, "cameras off: {reason}");
        }
        if let Some(e) = &sensors.error {
            let _ = writeln!(s, "sensor error: {e}");
        }
    }
    text.0.0 = s.trim_end().to_string();
}

fn update_pictures(
    mut commands: Commands,
    sim: NonSend<Sim>,
    overlays: Res<Overlays>,
    mut images: ResMut<Assets<Image>>,
    strip: Single<(Entity, &mut Visibility), With<PictureStrip>>,
    pictures: Query<&Picture>,
) {
    let (strip, mut visibility) = strip.into_inner();
    let shown = overlays.cameras && sim.sensors().is_some();
    *visibility = if shown {
        Visibility::Visible
    } else {
        Visibility::Hidden
    };
    let Some(sensors) = sim.sensors().filter(|_| shown) else {
        return;
    };
    let suite = &sensors.suite;
    let count = suite.model().cameras.len();
    if pictures.is_empty() && count > 0 {
        for c in 0..count {
            let Some((frame, _, _)) = suite.camera(c) else {
                continue;
            };
            let (w, h) = (frame.width_px, frame.height_px);
            let image = images.add(Image::new_fill(
                Extent3d {
                    width: w,
                    height: h,
                    depth_or_array_layers: 1,
                },
                TextureDimension::D2,
                &[0, 0, 0, 255],
                TextureFormat::Rgba8UnormSrgb,
                RenderAssetUsages::default(),
            ));
            let child = commands
                .spawn((
                    Picture {
                        camera: c,
                        image: image.clone(),
                    },
                    ImageNode::new(image),
                    Node {
                        width: px(PIP_WIDTH_PX),
                        height: px(PIP_WIDTH_PX * h as f32 / w.max(1) as f32),
                        ..default()
                    },
                ))
                .id();
            commands.entity(strip).add_child(child);
        }
        return;
    }
    for picture in &pictures {
        if let Some((frame, _, true)) = suite.camera(picture.camera)
            && let Some(mut image) = images.get_mut(&picture.image)
            && image.data.as_ref().map(Vec::len) == Some(frame.rgba8.len())
        {
            image.data = Some(frame.rgba8.clone());
        }
    }
}

fn screenshot(
    mut commands: Commands,
    job: Option<ResMut<ScreenshotJob>>,
    mut clock: ResMut<Clock>,
    sim: NonSend<Sim>,
    view: Res<View>,
    adapter: Option<Res<RenderAdapterInfo>>,
    window: Single<&Window>,
) {
    let Some(mut job) = job else {
        return;
    };
    if job.requested.is_some() {
        return;
    }
    job.frame += 1;
    if job.frame < job.frames {
        return;
    }
    // The picture shows this frame's state: the simulation stops here.
    clock.paused = true;
    let world = sim.world();
    let camera = view.camera;
    let report = json!({
        "path": job.path,
        "frames": job.frames,
        "width_px": window.physical_width(),
        "height_px": window.physical_height(),
        "adapter": adapter.as_ref().map(|a| json!({
            "name": a.name,
            "backend": format!("{:?}", a.backend),
            "device_type": format!("{:?}", a.device_type),
        })),
        "camera": {
            "eye_m": camera.eye().to_array(),
            "target_m": camera.target.to_array(),
            "up": [0.0, 0.0, 1.0],
            "fov_y_rad": FOV_Y_RAD,
        },
        "scene": sim.scene.name,
        "sim_time_secs": world.time_secs(),
        "steps": world.step_index(),
        "robots": sim.scene.robots.iter().zip(&world.robots).map(|(robot, state)| json!({
            "name": robot.name,
            "joints": (0..state.position.len()).map(|d| json!({
                "name": robot.model.dof_joint(rivet_sim::robot::DofId(d as u32)).name,
                "position": state.position[d],
                "command": state.command[d],
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "episode": sim.playback.as_ref().map(|p| json!({
            "path": p.path,
            "duration_secs": p.duration_secs(),
        })),
    });
    job.requested = Some(report.clone());
    let path = job.path.clone();
    let done = job.done.clone();
    commands.spawn(Screenshot::primary_window()).observe(
        move |captured: On<ScreenshotCaptured>, mut exit: MessageWriter<AppExit>| {
            let result = captured
                .image
                .clone()
                .try_into_dynamic()
                .map_err(|e| anyhow::anyhow!("the screenshot cannot be converted: {e}"))
                .and_then(|image| {
                    image.to_rgb8().save(&path).map_err(|e| {
                        anyhow::anyhow!("cannot write the screenshot {}: {e}", path.display())
                    })
                })
                .map(|()| report.clone());
            if let Ok(mut slot) = done.lock() {
                *slot = Some(result);
            }
            exit.write(AppExit::Success);
        },
    );
}
