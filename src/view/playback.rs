//! Episode playback for `rivet view --episode`: a recorded episode's joint states drive the
//! scene's robot, as recorded.
//!
//! The robot is placed kinematically: after every physics step its joints are put where the
//! recording had them at the world's time (linear interpolation between the recorded states;
//! velocities recorded, or else the slope between those states), and its commands show the
//! recorded commands in force at that time (forward commands held, trajectories followed,
//! exactly as `rivet robot serve` and `rivet gap` play them). The rest of the scene simulates
//! as usual. Comparing the recording with the simulated robot is `rivet gap --record`'s job,
//! in the rerun viewer.
//!
//! Nothing here needs the window: it is built and tested without the `viewer` feature.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rivet_sim::replay::{CommandPlayer, Episode, Replay};
use rivet_sim::{Scene, World};

/// A recorded episode mapped onto a scene's robot, played at the world's time.
#[derive(Debug)]
pub struct Playback {
    /// The episode file.
    pub path: PathBuf,
    /// The robot it drives (scene index).
    pub robot: usize,
    episode: Episode,
    /// Per state joint, the robot's DoF (`None`: not a joint of this robot).
    state_dofs: Vec<Option<usize>>,
    /// Per command joint, the robot's DoF.
    command_dofs: Vec<usize>,
    /// The recorded commands up to here have been applied to `player`.
    next_command: usize,
    player: CommandPlayer,
    positions: Vec<f64>,
    velocities: Vec<f64>,
}

impl Playback {
    /// Reads the MCAP episode at `path` (written by `rivet deploy`, or a rosbag2 recording
    /// with `/joint_states`) for the scene's task robot (else its first).
    pub fn load(path: &Path, scene: &Scene) -> anyhow::Result<Self> {
        let robot = crate::gap::scene_robot(scene)?;
        let (episode, _) = crate::gap::load_episode(path, scene, robot, None)
            .with_context(|| format!("--episode {}", path.display()))?;
        Self::new(path, scene, robot, episode)
            .with_context(|| format!("--episode {}", path.display()))
    }

    /// Maps `episode` onto robot `robot` of `scene`: joints by name, as a replay maps them.
    pub fn new(path: &Path, scene: &Scene, robot: usize, episode: Episode) -> anyhow::Result<Self> {
        let Replay {
            state_dofs,
            command_dofs,
            ..
        } = Replay::new(scene, robot, &episode).map_err(anyhow::Error::msg)?;
        let dofs = scene.robots[robot].actuators.len();
        let mut playback = Self {
            path: path.to_path_buf(),
            robot,
            player: CommandPlayer::new(&[]),
            episode,
            state_dofs,
            command_dofs,
            next_command: 0,
            positions: vec![0.0; dofs],
            velocities: vec![0.0; dofs],
        };
        playback.rewind();
        Ok(playback)
    }

    /// Recorded seconds, from the first state to the last.
    pub fn duration_secs(&self) -> f64 {
        self.episode.duration_secs()
    }

    /// Whether `t` (s) is past the last recorded state.
    pub fn is_over(&self, t: f64) -> bool {
        t > self.duration_secs()
    }

    /// Back to the start: commands from the first one again.
    pub fn rewind(&mut self) {
        let first = &self.episode.states[0];
        let initial: Vec<f64> = self
            .episode
            .command_joints
            .iter()
            .map(|j| {
                self.episode
                    .state_joints
                    .iter()
                    .position(|s| s == j)
                    .map_or(0.0, |i| first.position[i])
            })
            .collect();
        self.player = CommandPlayer::new(&initial);
        self.next_command = 0;
    }

    /// The recorded joint positions and velocities at `t` (s), written into the robot's DoFs
    /// of `positions`/`velocities` (DoFs the episode does not record keep their values).
    pub fn state_at(&self, t: f64, positions: &mut [f64], velocities: &mut [f64]) {
        let states = &self.episode.states;
        let i = states.partition_point(|s| s.time_secs <= t);
        let (a, b, s) = if i == 0 {
            (&states[0], &states[0], 0.0)
        } else if i >= states.len() {
            let last = &states[states.len() - 1];
            (last, last, 0.0)
        } else {
            let (a, b) = (&states[i - 1], &states[i]);
            let span = b.time_secs - a.time_secs;
            let s = if span > 0.0 {
                (t - a.time_secs) / span
            } else {
                1.0
            };
            (a, b, s)
        };
        let span = b.time_secs - a.time_secs;
        for (j, dof) in self.state_dofs.iter().enumerate() {
            let Some(d) = *dof else { continue };
            positions[d] = a.position[j] + s * (b.position[j] - a.position[j]);
            velocities[d] = if !a.velocity.is_empty() && !b.velocity.is_empty() {
                a.velocity[j] + s * (b.velocity[j] - a.velocity[j])
            } else if span > 0.0 {
                (b.position[j] - a.position[j]) / span
            } else {
                0.0
            };
        }
    }

    /// Puts the robot where the recording has it at the world's time, with the recorded
    /// commands in force then as its commands. Time runs forward between calls; after a
    /// reset of the world, [`Playback::rewind`] first.
    pub fn apply(&mut self, world: &mut World) {
        let t = world.time_secs();
        let Some(state) = world.robots.get(self.robot) else {
            return;
        };
        self.positions.copy_from_slice(&state.position);
        self.velocities.copy_from_slice(&state.velocity);
        let (mut positions, mut velocities) = (
            std::mem::take(&mut self.positions),
            std::mem::take(&mut self.velocities),
        );
        self.state_at(t, &mut positions, &mut velocities);
        world.reset_robot_joints(self.robot, &positions, &velocities);
        (self.positions, self.velocities) = (positions, velocities);
        while let Some(c) = self.episode.commands.get(self.next_command)
            && c.time_secs <= t
        {
            self.player.apply(&c.value, c.time_secs);
            self.next_command += 1;
        }
        let targets = self.player.targets(t);
        let command = &mut world.robots[self.robot].command;
        for (&d, &v) in self.command_dofs.iter().zip(targets) {
            command[d] = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rivet_sim::replay::{CommandSample, CommandValue, StateSample};
    use rivet_sim::robot::DofId;
    use rivet_sim::{PackagePaths, WorldOptions};

    use super::*;

    fn arm() -> Arc<Scene> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenes/arm.toml");
        Arc::new(Scene::load(&path, &PackagePaths::default()).unwrap())
    }

    fn state(t: f64, pan: f64, elbow: f64) -> StateSample {
        StateSample {
            time_secs: t,
            position: vec![pan, elbow],
            velocity: Vec::new(),
            effort: Vec::new(),
        }
    }

    fn episode() -> Episode {
        Episode {
            state_joints: vec!["shoulder_pan".into(), "elbow".into()],
            states: vec![
                state(0.0, 0.0, 1.2),
                state(0.1, 0.1, 1.0),
                state(0.2, 0.3, 1.0),
            ],
            command_joints: vec!["shoulder_pan".into()],
            command_mode: Some(rivet_control::CommandMode::Position),
            commands: vec![
                CommandSample {
                    time_secs: 0.05,
                    value: CommandValue::Hold(vec![0.2]),
                },
                CommandSample {
                    time_secs: 0.15,
                    value: CommandValue::Hold(vec![0.4]),
                },
            ],
            target_in_root: None,
        }
    }

    fn dof(scene: &Scene, name: &str) -> usize {
        (0..scene.robots[0].actuators.len())
            .find(|&d| scene.robots[0].model.dof_joint(DofId(d as u32)).name == name)
            .unwrap()
    }

    #[test]
    fn states_interpolate_between_samples_and_hold_past_the_ends() {
        let scene = arm();
        let p = Playback::new(Path::new("e.mcap"), &scene, 0, episode()).unwrap();
        let (pan, elbow) = (dof(&scene, "shoulder_pan"), dof(&scene, "elbow"));
        let n = scene.robots[0].actuators.len();
        let mut q = vec![7.0; n];
        let mut qd = vec![7.0; n];
        p.state_at(0.15, &mut q, &mut qd);
        assert!((q[pan] - 0.2).abs() < 1e-12 && (q[elbow] - 1.0).abs() < 1e-12);
        // No recorded velocities: the slope between the two states.
        assert!((qd[pan] - 2.0).abs() < 1e-9 && qd[elbow].abs() < 1e-12);
        // DoFs the episode does not record are left alone.
        let wrist = dof(&scene, "wrist_1");
        assert_eq!((q[wrist], qd[wrist]), (7.0, 7.0));
        p.state_at(5.0, &mut q, &mut qd);
        assert_eq!((q[pan], qd[pan]), (0.3, 0.0));
        p.state_at(0.0, &mut q, &mut qd);
        assert!((q[elbow] - 1.2).abs() < 1e-12);
        assert!(!p.is_over(0.2) && p.is_over(0.2001));
    }

    #[test]
    fn the_world_takes_the_recorded_joints_and_commands_at_its_time() {
        let scene = arm();
        let mut p = Playback::new(Path::new("e.mcap"), &scene, 0, episode()).unwrap();
        let mut world = World::new(
            scene.clone(),
            WorldOptions {
                seed: 0,
                threads: Some(1),
            },
        )
        .unwrap();
        let (pan, elbow) = (dof(&scene, "shoulder_pan"), dof(&scene, "elbow"));
        let mut seen = Vec::new();
        while world.time_secs() < 0.19 {
            world.step();
            p.apply(&mut world);
            let t = world.time_secs();
            let r = &world.robots[0];
            let want = if t <= 0.1 {
                10.0 * t * 0.1
            } else {
                0.1 + 2.0 * (t - 0.1)
            };
            assert!(
                (r.position[pan] - want).abs() < 1e-6,
                "t {t}: {}",
                r.position[pan]
            );
            seen.push((t, r.command[pan]));
            // The robot did not fall: every step it is where the recording has it.
            let elbow_want = if t <= 0.1 { 1.2 - 2.0 * t } else { 1.0 };
            assert!((r.position[elbow] - elbow_want).abs() < 1e-6, "t {t}");
        }
        // The recorded commands, each from its time on (before the first: the start).
        for (t, c) in seen {
            let want = if t < 0.05 {
                0.0
            } else if t < 0.15 {
                0.2
            } else {
                0.4
            };
            assert_eq!(c, want, "command at t {t}");
        }
    }

    #[test]
    fn joints_the_robot_lacks_are_errors_naming_them() {
        let scene = arm();
        let mut e = episode();
        e.command_joints = vec!["wheel".into()];
        let err = Playback::new(Path::new("e.mcap"), &scene, 0, e)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`wheel`") && err.contains("arm"), "{err}");
        let mut e = episode();
        e.state_joints = vec!["a".into(), "b".into()];
        e.command_joints.clear();
        e.commands.clear();
        let err = Playback::new(Path::new("e.mcap"), &scene, 0, e)
            .unwrap_err()
            .to_string();
        assert!(err.contains("none of the recorded joints"), "{err}");
    }

    #[test]
    fn a_rosbag2_episode_plays_on_the_arm() {
        let scene = arm();
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gap/rosbags_arm_episode.mcap");
        let p = Playback::load(&path, &scene).unwrap();
        assert!(p.duration_secs() > 1.0, "{}", p.duration_secs());
        let err = Playback::load(Path::new("/nonexistent/e.mcap"), &scene).unwrap_err();
        assert!(
            format!("{err:#}").contains("/nonexistent/e.mcap"),
            "{err:#}"
        );
    }
}
