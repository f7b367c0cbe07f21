//! `rivet gap`: a recorded robot episode (MCAP from `rivet deploy`, or a rosbag2 MCAP with
//! `/joint_states` and a controller's command topic) replayed in simulation and compared.
//!
//! Decoding lives here (the wire and the file are the hardware bridge's); the replay and the
//! metrics are `rivet_sim::replay`'s, shared with `rivet sysid`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rivet_control::CommandMode;
use rivet_hw_bridge::RosMessage;
use rivet_hw_bridge::msgs::sensor_msgs::JointState;
use rivet_hw_bridge::msgs::std_msgs::Float64MultiArray;
use rivet_hw_bridge::msgs::trajectory_msgs::JointTrajectory;
use rivet_hw_bridge::profile::RobotProfile;
use rivet_hw_bridge::record::EpisodeReader;
use rivet_sim::Scene;
use rivet_sim::replay::{
    CommandSample, CommandValue, Episode, Gap, Replay, Replayed, StateSample, frame_path,
};
use serde_json::json;

use crate::PackageArgs;
use crate::episode::{
    META_COMMAND_JOINTS, META_COMMAND_TOPIC, META_STATE_TOPIC, META_TARGET_WORLD,
};

/// Arguments of `rivet gap`.
#[derive(clap::Args, Debug)]
pub struct GapArgs {
    /// The scene the robot is simulated in.
    #[arg(long, value_name = "SCENE.toml")]
    pub scene: PathBuf,
    /// The recorded episode (MCAP).
    #[arg(long, value_name = "EPISODE.mcap")]
    pub episode: PathBuf,
    /// The robot profile (state and command topics, command joints and kind). Default: what
    /// the episode's metadata says (`rivet deploy` files), else the one JointState topic and
    /// the one command topic found.
    #[arg(long, value_name = "PROFILE.toml")]
    pub robot: Option<PathBuf>,
    /// Scene overlay(s) applied in order (e.g. fitted by `rivet sysid`).
    #[arg(long, value_name = "FILE")]
    pub overlay: Vec<PathBuf>,
    /// Frame whose position is compared. Default: the task's frame, else the deepest frame.
    #[arg(long, value_name = "NAME")]
    pub frame: Option<String>,
    /// Write a rerun recording with `real/...`, `sim/...` and `gap/...` on one timeline.
    #[arg(long, value_name = "OUT.rrd")]
    pub record: Option<PathBuf>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub packages: PackageArgs,
}

/// How an episode was read.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EpisodeInfo {
    /// The file.
    pub path: PathBuf,
    /// Topics used.
    pub state_topic: String,
    /// Command topic and its ROS type.
    pub command_topic: String,
    /// ROS type of the command topic.
    pub command_type: String,
    /// `header_stamp` or `log_time`: the clock the state times come from.
    pub state_clock: &'static str,
    /// How old each state was when the recorder got it (log time - header stamp), when the
    /// states are stamped: the sensing delay the controller saw. The replay places states at
    /// their stamps and so does not see it.
    pub state_delay_secs: Option<DelayStats>,
    /// How old the newest state received before each command was when the command was sent
    /// (command log time - that state's stamp), when the states are stamped: the age of what
    /// the controller acted on, transport and sampling included. A policy in simulation should
    /// see its joints this late (`rivet sysid` writes the median into its overlay as the
    /// robot's `observation_latency_secs`).
    pub observation_age_secs: Option<DelayStats>,
    /// States used and skipped (by reason).
    pub states: usize,
    /// Skipped states by reason.
    pub skipped_states: BTreeMap<&'static str, u64>,
    /// Commands used.
    pub commands: usize,
    /// Skipped commands by reason.
    pub skipped_commands: BTreeMap<&'static str, u64>,
}

/// Median, 95th percentile and maximum of a delay (s).
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct DelayStats {
    /// Median.
    pub median: f64,
    /// 95th percentile (nearest rank).
    pub p95: f64,
    /// Maximum.
    pub max: f64,
}

impl DelayStats {
    /// Of the delays `sorted_ns` (ascending, nanoseconds); `None` when empty.
    fn of_sorted_ns(sorted_ns: &[i128]) -> Option<Self> {
        let last = sorted_ns.len().checked_sub(1)?;
        let at = |q: f64| sorted_ns[((q * last as f64).round() as usize).min(last)] as f64 * 1e-9;
        Some(Self {
            median: at(0.5),
            p95: at(0.95),
            max: at(1.0),
        })
    }
}

fn same_type(recorded: &str, wanted: &str) -> bool {
    recorded.replace("/msg/", "/") == wanted.replace("/msg/", "/")
}

/// Reads an MCAP episode into plain numbers for robot `robot` of `scene`.
pub fn load_episode(
    path: &Path,
    scene: &Scene,
    robot: usize,
    profile: Option<&RobotProfile>,
) -> anyhow::Result<(Episode, EpisodeInfo)> {
    let reader =
        EpisodeReader::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let topics = reader.topics();
    let meta: BTreeMap<String, String> = reader
        .metadata()
        .iter()
        .filter(|m| m.name == "rivet")
        .flat_map(|m| m.entries.clone())
        .collect();
    let listing = || {
        topics
            .iter()
            .map(|t| format!("{} ({})", t.topic, t.ros_type))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let find = |wanted: &[&str], what: &str| -> anyhow::Result<String> {
        let found: Vec<&str> = topics
            .iter()
            .filter(|t| wanted.iter().any(|w| same_type(&t.ros_type, w)))
            .map(|t| t.topic.as_str())
            .collect();
        match found.as_slice() {
            [one] => Ok((*one).to_owned()),
            [] => anyhow::bail!(
                "{}: no {what} topic ({}); it has: {}",
                path.display(),
                wanted.join(" or "),
                listing()
            ),
            many => anyhow::bail!(
                "{}: several {what} topics {many:?}: pass --robot <profile.toml> to say which",
                path.display()
            ),
        }
    };
    let state_topic = match (profile, meta.get(META_STATE_TOPIC)) {
        (Some(p), _) => p.state.topic.as_str().to_owned(),
        (None, Some(t)) => t.clone(),
        (None, None) => find(&[JointState::ROS_TYPE_NAME], "joint state")?,
    };
    let command_topic = match (profile, meta.get(META_COMMAND_TOPIC)) {
        (Some(p), _) => p.command.topic.as_str().to_owned(),
        (None, Some(t)) => t.clone(),
        (None, None) => find(
            &[
                Float64MultiArray::ROS_TYPE_NAME,
                JointTrajectory::ROS_TYPE_NAME,
            ],
            "command",
        )?,
    };
    let type_of = |topic: &str| -> anyhow::Result<String> {
        topics
            .iter()
            .find(|t| t.topic == topic)
            .map(|t| t.ros_type.clone())
            .with_context(|| {
                format!(
                    "{}: no topic {topic}; it has: {}",
                    path.display(),
                    listing()
                )
            })
    };
    let state_type = type_of(&state_topic)?;
    anyhow::ensure!(
        same_type(&state_type, JointState::ROS_TYPE_NAME),
        "{}: {state_topic} is {state_type}, not {}",
        path.display(),
        JointState::ROS_TYPE_NAME
    );
    let command_type = type_of(&command_topic)?;
    let trajectory = same_type(&command_type, JointTrajectory::ROS_TYPE_NAME);
    anyhow::ensure!(
        trajectory || same_type(&command_type, Float64MultiArray::ROS_TYPE_NAME),
        "{}: {command_topic} is {command_type}: commands must be {} or {}",
        path.display(),
        Float64MultiArray::ROS_TYPE_NAME,
        JointTrajectory::ROS_TYPE_NAME
    );

    // States: the joint set of the first valid message; others are skipped by reason.
    let mut skipped_states: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut raw_states: Vec<(u64, u64, JointState)> = Vec::new();
    let mut joints: Option<Vec<String>> = None;
    for raw in reader.raw_messages(&state_topic)? {
        let Ok(msg) = JointState::decode(raw.data) else {
            *skipped_states.entry("undecodable").or_default() += 1;
            continue;
        };
        let n = msg.name.len();
        if n == 0
            || msg.position.len() != n
            || (!msg.velocity.is_empty() && msg.velocity.len() != n)
            || (!msg.effort.is_empty() && msg.effort.len() != n)
        {
            *skipped_states.entry("lengths differ").or_default() += 1;
            continue;
        }
        if msg
            .position
            .iter()
            .chain(&msg.velocity)
            .chain(&msg.effort)
            .any(|x| !x.is_finite())
        {
            *skipped_states.entry("non-finite").or_default() += 1;
            continue;
        }
        match &joints {
            None => joints = Some(msg.name.clone()),
            Some(j) if *j != msg.name => {
                *skipped_states.entry("other joint set").or_default() += 1;
                continue;
            }
            Some(_) => {}
        }
        let stamp = u64::try_from(msg.header.stamp.sec).unwrap_or(0) * 1_000_000_000
            + u64::from(msg.header.stamp.nanosec);
        raw_states.push((raw.log_time_ns, stamp, msg));
    }
    let joints = joints.with_context(|| {
        format!(
            "{}: no valid joint state on {state_topic} ({skipped_states:?})",
            path.display()
        )
    })?;
    // Header stamps when every state has one and they agree with the log clock (same clock,
    // within a second); else the recorder's log times.
    let mut offsets: Vec<i128> = raw_states
        .iter()
        .map(|(log, stamp, _)| i128::from(*log) - i128::from(*stamp))
        .collect();
    offsets.sort();
    let stamped = raw_states.iter().all(|(_, stamp, _)| *stamp > 0)
        && offsets
            .get(offsets.len() / 2)
            .is_some_and(|o| o.abs() < 1_000_000_000);
    let state_clock = if stamped { "header_stamp" } else { "log_time" };
    let state_delay_secs = if stamped {
        DelayStats::of_sorted_ns(&offsets)
    } else {
        None
    };
    // (log time, stamp) in arrival order, for the age of what each command acted on (only
    // meaningful with stamps).
    let mut arrivals: Vec<(u64, u64)> = if stamped {
        raw_states.iter().map(|(l, s, _)| (*l, *s)).collect()
    } else {
        Vec::new()
    };
    arrivals.sort();
    // The newest stamp received by each arrival (states may arrive out of order).
    let newest: Vec<u64> = arrivals
        .iter()
        .scan(0u64, |m, (_, s)| {
            *m = (*m).max(*s);
            Some(*m)
        })
        .collect();
    let time_of = |(log, stamp, _): &(u64, u64, JointState)| if stamped { *stamp } else { *log };
    raw_states.sort_by_key(time_of);
    let t0 = raw_states.first().map(time_of).unwrap_or(0);
    let secs = |t: u64| (i128::from(t) - i128::from(t0)) as f64 * 1e-9;
    let states: Vec<StateSample> = raw_states
        .iter()
        .map(|s| StateSample {
            time_secs: secs(time_of(s)),
            position: s.2.position.clone(),
            velocity: s.2.velocity.clone(),
            effort: s.2.effort.clone(),
        })
        .collect();

    // Commands at their log times.
    let instance = &scene.robots[robot];
    let mut skipped_commands: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut commands = Vec::new();
    let mut command_joints: Option<Vec<String>> = if trajectory {
        None
    } else {
        match (profile, meta.get(META_COMMAND_JOINTS)) {
            (Some(p), _) => Some(p.command.joints.clone()),
            (None, Some(j)) => Some(j.split(',').map(str::to_owned).collect()),
            (None, None) => anyhow::bail!(
                "{}: {command_topic} carries std_msgs/Float64MultiArray, which does not name its \
                 joints: pass --robot <profile.toml>",
                path.display()
            ),
        }
    };
    let mut ages: Vec<i128> = Vec::new();
    for raw in reader.raw_messages(&command_topic)? {
        let value = if trajectory {
            let Ok(msg) = JointTrajectory::decode(raw.data) else {
                *skipped_commands.entry("undecodable").or_default() += 1;
                continue;
            };
            match &command_joints {
                None => command_joints = Some(msg.joint_names.clone()),
                Some(j) if *j != msg.joint_names => {
                    *skipped_commands.entry("other joint set").or_default() += 1;
                    continue;
                }
                Some(_) => {}
            }
            let n = msg.joint_names.len();
            if msg.points.is_empty()
                || msg
                    .points
                    .iter()
                    .any(|p| p.positions.len() != n || p.positions.iter().any(|x| !x.is_finite()))
            {
                *skipped_commands.entry("bad points").or_default() += 1;
                continue;
            }
            CommandValue::Trajectory(
                msg.points
                    .iter()
                    .map(|p| {
                        let t = f64::from(p.time_from_start.sec)
                            + f64::from(p.time_from_start.nanosec) * 1e-9;
                        (t, p.positions.clone())
                    })
                    .collect(),
            )
        } else {
            let Ok(msg) = Float64MultiArray::decode(raw.data) else {
                *skipped_commands.entry("undecodable").or_default() += 1;
                continue;
            };
            let n = command_joints.as_ref().map_or(0, Vec::len);
            if msg.data.len() != n {
                *skipped_commands.entry("wrong length").or_default() += 1;
                continue;
            }
            if msg.data.iter().any(|x| !x.is_finite()) {
                *skipped_commands.entry("non-finite").or_default() += 1;
                continue;
            }
            CommandValue::Hold(msg.data)
        };
        let received = arrivals.partition_point(|(log, _)| *log <= raw.log_time_ns);
        if received > 0 {
            ages.push(i128::from(raw.log_time_ns) - i128::from(newest[received - 1]));
        }
        commands.push(CommandSample {
            time_secs: secs(raw.log_time_ns),
            value,
        });
    }
    commands.sort_by(|a, b| a.time_secs.total_cmp(&b.time_secs));
    ages.sort();
    let observation_age_secs = DelayStats::of_sorted_ns(&ages);
    let command_joints = command_joints.unwrap_or_default();
    let command_mode = match profile {
        Some(p) => p.command.kind.mode(),
        None if trajectory => CommandMode::Position,
        None => {
            // Forward commands are in the mode of the joints they address.
            let modes: Vec<CommandMode> = command_joints
                .iter()
                .filter_map(|j| {
                    (0..instance.actuators.len())
                        .find(|&d| {
                            instance
                                .model
                                .dof_joint(rivet_sim::robot::DofId(d as u32))
                                .name
                                == *j
                        })
                        .map(|d| instance.actuators[d].mode)
                })
                .collect();
            modes.first().copied().unwrap_or(CommandMode::Position)
        }
    };
    let target_in_root = meta.get(META_TARGET_WORLD).and_then(|text| {
        let v: Vec<f64> = text.split(',').filter_map(|s| s.parse().ok()).collect();
        (v.len() == 3).then(|| {
            let root = rivet_sim::math::isometry(&instance.world_from_base);
            let p = root.inverse() * nalgebra::Point3::new(v[0], v[1], v[2]);
            [p.x, p.y, p.z]
        })
    });
    let info = EpisodeInfo {
        path: path.to_path_buf(),
        state_topic,
        command_topic,
        command_type,
        state_clock,
        state_delay_secs,
        observation_age_secs,
        states: states.len(),
        skipped_states,
        commands: commands.len(),
        skipped_commands,
    };
    let episode = Episode {
        state_joints: joints,
        states,
        command_joints,
        command_mode: Some(command_mode),
        commands,
        target_in_root,
    };
    episode
        .validate()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok((episode, info))
}

/// The robot of the scene an episode is replayed on: the task's, else the first.
pub fn scene_robot(scene: &Scene) -> anyhow::Result<usize> {
    anyhow::ensure!(!scene.robots.is_empty(), "the scene has no robot");
    Ok(scene.task.as_ref().map_or(0, |t| t.robot))
}

/// The gap as JSON.
pub fn gap_json(gap: &Gap) -> serde_json::Value {
    serde_json::to_value(gap).expect("the gap serializes")
}

/// Runs `rivet gap`.
pub fn gap(args: GapArgs) -> anyhow::Result<()> {
    let packages = args.packages.resolve();
    let scene = Arc::new(
        Scene::load_with_overlays(&args.scene, &args.overlay, &packages)
            .with_context(|| format!("cannot load {}", args.scene.display()))?,
    );
    let profile = match &args.robot {
        Some(p) => Some(RobotProfile::load(p)?),
        None => None,
    };
    let robot = scene_robot(&scene)?;
    let (episode, info) = load_episode(&args.episode, &scene, robot, profile.as_ref())?;
    let replay = Replay::new(&scene, robot, &episode)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.episode.display()))?;
    let started = std::time::Instant::now();
    let sim = replay.run(scene.clone(), &episode)?;
    let replay_secs = started.elapsed().as_secs_f64();
    let gap = rivet_sim::replay::gap(&scene, &replay, &episode, &sim, args.frame.as_deref())
        .map_err(|e| anyhow::anyhow!(e))?;
    if let Some(out) = &args.record {
        write_recording(out, &scene, &replay, &episode, &sim, &gap)
            .with_context(|| format!("cannot write {}", out.display()))?;
    }
    let unmapped: Vec<&String> = episode
        .state_joints
        .iter()
        .zip(&replay.state_dofs)
        .filter(|(_, d)| d.is_none())
        .map(|(j, _)| j)
        .collect();
    let summary = json!({
        "scene": args.scene,
        "overlays": args.overlay,
        "robot": scene.robots[robot].name,
        "episode": info,
        "gap": gap_json(&gap),
        "joints_not_in_scene": unmapped,
        "replay": {
            "sim_secs": sim.steps as f64 * scene.world.dt_secs,
            "wall_secs": replay_secs,
            "sim_secs_per_wall_sec": sim.steps as f64 * scene.world.dt_secs / replay_secs.max(1e-9),
            "steps": sim.steps,
        },
        "recording": args.record,
    });
    if args.json {
        crate::print_json(&summary)?;
    } else {
        print_table(&gap);
        for (what, d) in [
            ("state delay (received - stamped)", info.state_delay_secs),
            ("observation age at each command", info.observation_age_secs),
        ] {
            if let Some(d) = d {
                println!(
                    "{what}: median {:.4} s, p95 {:.4} s, max {:.4} s",
                    d.median, d.p95, d.max
                );
            }
        }
        if !unmapped.is_empty() {
            println!("recorded joints not in the scene (not compared): {unmapped:?}");
        }
        if let Some(out) = &args.record {
            println!("recording: {}", out.display());
        }
    }
    Ok(())
}

/// The gap as a table on stdout.
pub fn print_table(gap: &Gap) {
    println!(
        "{:<22} {:>12} {:>12} {:>12} {:>12}",
        "joint", "pos rmse", "pos max err", "vel rmse", "effort rmse"
    );
    let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.5}"));
    for j in &gap.joints {
        println!(
            "{:<22} {:>12.5} {:>12.5} {:>12} {:>12}",
            j.joint,
            j.position_rmse,
            j.position_max_error,
            opt(j.velocity_rmse),
            opt(j.effort_rmse)
        );
    }
    if let (Some(frame), Some(rmse)) = (&gap.tool_frame, gap.tool_position_rmse) {
        println!("tool frame {frame}: position rmse {rmse:.5} m");
    }
    println!("time lag (real behind sim): {:.4} s", gap.time_lag_secs);
    match (&gap.task, &gap.task_note) {
        (Some(t), _) => println!(
            "task ({}): real {}, sim {}",
            t.criterion,
            if t.real_success { "success" } else { "failure" },
            if t.sim_success { "success" } else { "failure" }
        ),
        (None, Some(note)) => println!("task: not judged ({note})"),
        (None, None) => {}
    }
    if let Some(t) = gap.diverged_at_secs {
        println!("the simulation diverged at {t:.3} s");
    }
    println!(
        "gap score {:.4} (mean position rmse / max(range, {}) over {} joints; {} samples, {:.2} s)",
        gap.score,
        rivet_sim::replay::SCORE_RANGE_FLOOR,
        gap.joints.len(),
        gap.samples,
        gap.duration_secs
    );
}

/// Writes real and simulated trajectories on one `time` timeline: `real/<joint>/position`,
/// `sim/<joint>/position`, `gap/<joint>/position` (real - sim), likewise velocity and effort,
/// the tool frame as points and paths (`real/tool`, `sim/tool`, `gap/tool` distance), and the
/// metrics as a text document (`gap/summary`).
fn write_recording(
    out: &Path,
    scene: &Scene,
    replay: &Replay,
    episode: &Episode,
    sim: &Replayed,
    gap: &Gap,
) -> anyhow::Result<()> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let partial = out.with_extension("rrd.partial");
    let rec = rerun::RecordingStreamBuilder::new("rivet_gap").save(&partial)?;
    rec.log_static(
        "gap/summary",
        &rerun::TextDocument::from_markdown(format!(
            "# Gap\n\nscore **{:.4}**, position RMSE {:.5}, time lag {:.4} s\n\n```json\n{}\n```",
            gap.score,
            gap.position_rmse,
            gap.time_lag_secs,
            serde_json::to_string_pretty(&gap_json(gap))?
        )),
    )?;
    let instance = &scene.robots[replay.robot];
    let tool = instance.model.tree.as_ref().and_then(|tree| {
        let frame = tree.frame_by_name(gap.tool_frame.as_deref()?)?;
        Some((
            frame_path(tree, replay, instance, episode, None, frame),
            frame_path(tree, replay, instance, episode, Some(sim), frame),
        ))
    });
    if let Some((real, simulated)) = &tool {
        let strip = |path: &[nalgebra::Vector3<f64>]| -> Vec<[f32; 3]> {
            path.iter()
                .filter(|p| p.iter().all(|x| x.is_finite()))
                .map(|p| [p.x as f32, p.y as f32, p.z as f32])
                .collect()
        };
        rec.log_static(
            "real/tool_path",
            &rerun::LineStrips3D::new([strip(real)]).with_colors([[230, 120, 30]]),
        )?;
        rec.log_static(
            "sim/tool_path",
            &rerun::LineStrips3D::new([strip(simulated)]).with_colors([[40, 120, 230]]),
        )?;
    }
    let joint_names: Vec<(usize, &String)> = episode
        .state_joints
        .iter()
        .enumerate()
        .filter(|(j, _)| replay.state_dofs[*j].is_some())
        .collect();
    for (i, s) in episode.states.iter().enumerate() {
        rec.set_duration_secs("time", s.time_secs);
        for &(j, name) in &joint_names {
            let series = |what: &str, real: Option<f64>, simulated: f64| -> anyhow::Result<()> {
                rec.log(
                    format!("sim/{name}/{what}"),
                    &rerun::Scalars::single(simulated),
                )?;
                if let Some(real) = real {
                    rec.log(format!("real/{name}/{what}"), &rerun::Scalars::single(real))?;
                    rec.log(
                        format!("gap/{name}/{what}"),
                        &rerun::Scalars::single(real - simulated),
                    )?;
                }
                Ok(())
            };
            series("position", Some(s.position[j]), sim.position[i][j])?;
            series("velocity", s.velocity.get(j).copied(), sim.velocity[i][j])?;
            series("effort", s.effort.get(j).copied(), sim.effort[i][j])?;
        }
        if let Some((real, simulated)) = &tool {
            let (a, b) = (real[i], simulated[i]);
            rec.log(
                "real/tool",
                &rerun::Points3D::new([[a.x as f32, a.y as f32, a.z as f32]])
                    .with_colors([[230, 120, 30]])
                    .with_radii([0.01]),
            )?;
            if b.iter().all(|x| x.is_finite()) {
                rec.log(
                    "sim/tool",
                    &rerun::Points3D::new([[b.x as f32, b.y as f32, b.z as f32]])
                        .with_colors([[40, 120, 230]])
                        .with_radii([0.01]),
                )?;
                rec.log("gap/tool", &rerun::Scalars::single((a - b).norm()))?;
            }
        }
    }
    rec.flush_blocking()?;
    drop(rec);
    std::fs::rename(&partial, out)?;
    Ok(())
}
