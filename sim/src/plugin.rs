//! The simulator inside a bevy [`App`]: [`SimPlugin`] adds the stepping stages as systems in
//! named, ordered [`SimSet`]s, one fixed step per `app.update()`.
//!
//! Scenario logic is bevy systems: add a system `.in_set(SimSet::Actions)` to drive robots
//! (writing [`crate::world::RobotState::command`]) or `.in_set(SimSet::Task)` to score the
//! episode. The app is headless (`MinimalPlugins`) and deterministic: time comes from the fixed
//! timestep, never from the wall clock.

use bevy::app::{App, Plugin, PluginGroup, ScheduleRunnerPlugin, Update};
use bevy::ecs::prelude::*;

use crate::record::Recorder;
use crate::world::World;

/// The simulator's stages, run in this order every update.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimSet {
    /// Controllers and scripts write commands; actors move.
    Actions,
    /// Commands become joint motors and efforts.
    Actuators,
    /// One physics step.
    Physics,
    /// Sensors read the new state; non-finite state ends the run.
    Sensors,
    /// Task logic (rewards, success) reads the state.
    Task,
    /// The recording stage logs the step.
    Record,
}

/// The simulated world as a bevy resource.
#[derive(Resource)]
pub struct SimWorld(pub World);

/// The run's recorder, when recording.
#[derive(Resource)]
pub struct SimRecorder {
    /// The recorder.
    pub recorder: Recorder,
    /// The first recording error, if any (the run goes on; the caller reports it).
    pub error: Option<crate::error::SimError>,
}

/// The run's sensors (cameras, lidars, IMUs, ...), when the scene declares any.
#[derive(Resource)]
pub struct SimSensors {
    /// The sensors.
    pub suite: crate::sensors::SensorSuite,
    /// The first sensor error, if any (the run goes on; the caller reports it).
    pub error: Option<crate::error::SimError>,
}

/// Adds the simulation stages to the app's `Update` schedule.
pub struct SimPlugin;

impl Plugin for SimPlugin {
    fn build(&self, app: &mut App) {
        app.configure_sets(
            Update,
            (
                SimSet::Actions,
                SimSet::Actuators,
                SimSet::Physics,
                SimSet::Sensors,
                SimSet::Task,
                SimSet::Record,
            )
                .chain(),
        )
        .add_systems(
            Update,
            (
                (scripts, actors).chain().in_set(SimSet::Actions),
                actuators.in_set(SimSet::Actuators),
                physics.in_set(SimSet::Physics),
                (sensors, sensor_suite).chain().in_set(SimSet::Sensors),
                record.in_set(SimSet::Record),
            ),
        );
    }
}

fn running(world: &SimWorld) -> bool {
    world.0.termination().is_none()
}

/// Scripted controllers (joint waypoints, patrols) command their robots.
fn scripts(mut world: ResMut<SimWorld>) {
    if running(&world) {
        world.0.run_scripts();
    }
}

/// Actors (workers) walk their paths.
fn actors(mut world: ResMut<SimWorld>) {
    if running(&world) {
        world.0.move_actors();
    }
}

fn actuators(mut world: ResMut<SimWorld>) {
    if running(&world) {
        world.0.stage_actuators();
    }
}

fn physics(mut world: ResMut<SimWorld>) {
    if running(&world) {
        world.0.stage_physics();
    }
}

fn sensors(mut world: ResMut<SimWorld>) {
    if running(&world) {
        world.0.stage_sensors();
    }
}

/// The scene's sensors read the new state (cameras render, lidars cast, IMUs integrate).
fn sensor_suite(world: Res<SimWorld>, sensors: Option<ResMut<SimSensors>>) {
    if let Some(mut sensors) = sensors
        && running(&world)
        && sensors.error.is_none()
        && let Err(e) = sensors.suite.step(&world.0)
    {
        sensors.error = Some(e);
    }
}

fn record(
    world: Res<SimWorld>,
    recorder: Option<ResMut<SimRecorder>>,
    sensors: Option<Res<SimSensors>>,
) {
    if let Some(mut recorder) = recorder
        && recorder.error.is_none()
    {
        let mut result = recorder.recorder.record_step(&world.0);
        if let (Ok(()), Some(sensors)) = (&result, sensors) {
            result = recorder.recorder.record_sensors(&world.0, &sensors.suite);
        }
        if let Err(e) = result {
            recorder.error = Some(e);
        }
    }
}

/// A headless app (`MinimalPlugins` without the run loop) stepping `world` once per update.
pub fn headless_app(world: World) -> App {
    let mut app = App::new();
    app.add_plugins(
        bevy::MinimalPlugins
            .build()
            .disable::<ScheduleRunnerPlugin>(),
    )
    .add_plugins(SimPlugin)
    .insert_resource(SimWorld(world));
    app
}
