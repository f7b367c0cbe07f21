//! `rivet check`: validate a scene or robot file and print the robot tree, like ROS's
//! check_urdf.

use std::fmt::Write as _;
use std::path::PathBuf;

use rivet_sim::robot::{JointKind, LinkId, RobotModel};
use rivet_sim::{RobotModel as Model, Scene};
use serde_json::json;

use crate::PackageArgs;

/// Arguments of `rivet check`.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// A scene (.toml), URDF (.urdf) or MJCF (.xml) file.
    pub file: PathBuf,
    /// Print one JSON object on stdout instead of the tree.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub packages: PackageArgs,
}

/// Validates a file and prints what it holds.
pub fn check(args: CheckArgs) -> anyhow::Result<()> {
    let packages = args.packages.resolve();
    let is_scene = args.file.extension().is_some_and(|e| e == "toml");
    let (scene_json, robots): (serde_json::Value, Vec<(String, std::sync::Arc<Model>)>) =
        if is_scene {
            let scene = Scene::load(&args.file, &packages)?;
            // The training settings belong to the learning crate's schema: check them too.
            let task = match &scene.task {
                None => serde_json::Value::Null,
                Some(task) => {
                    let settings = crate::learn::train_settings(&scene)?;
                    json!({
                        "robot": scene.robots[task.robot].name,
                        "control_period_secs": task.control_period_secs,
                        "episode_steps": task.episode_steps,
                        "observation": task.observation_space.names,
                        "action": task.action_space.names,
                        "algorithm": settings.algorithm,
                    })
                }
            };
            let robots = scene
                .robots
                .iter()
                .map(|r| (r.name.clone(), r.model.clone()))
                .collect();
            (
                json!({
                    "name": scene.name,
                    "hash": scene.content_hash,
                    "timestep_secs": scene.world.dt_secs,
                    "robots": scene.robots.len(),
                    "props": scene.props.len(),
                    "actors": scene.actors.len(),
                    "task": task,
                }),
                robots,
            )
        } else {
            let model = RobotModel::load(&args.file, &packages)?;
            (
                serde_json::Value::Null,
                vec![(model.name.clone(), std::sync::Arc::new(model))],
            )
        };
    if args.json {
        let robots_json: Vec<_> = robots.iter().map(|(n, m)| robot_json(n, m)).collect();
        crate::print_json(&json!({
            "file": args.file,
            "valid": true,
            "scene": scene_json,
            "robots": robots_json,
        }))?;
    } else {
        if let serde_json::Value::Object(s) = &scene_json {
            println!(
                "scene '{}': {} robots, {} props, {} actors, timestep {} s",
                s["name"].as_str().unwrap_or_default(),
                s["robots"],
                s["props"],
                s["actors"],
                s["timestep_secs"]
            );
            if let Some(t) = s.get("task").and_then(|t| t.as_object()) {
                let names = |k: &str| {
                    t[k].as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|v| v.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default()
                };
                println!(
                    "task: robot '{}', {} actions per episode every {} s, trained by {}",
                    t["robot"].as_str().unwrap_or_default(),
                    t["episode_steps"],
                    t["control_period_secs"],
                    t["algorithm"].as_str().unwrap_or_default()
                );
                println!("  observation: {}", names("observation"));
                println!("  action: {}", names("action"));
            }
        }
        for (name, model) in &robots {
            print!("{}", robot_tree(name, model));
        }
    }
    Ok(())
}

fn kind_counts(model: &Model) -> serde_json::Value {
    let mut counts = serde_json::Map::new();
    for j in &model.joints {
        let key = serde_json::to_value(j.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let entry = counts.entry(key).or_insert(json!(0));
        *entry = json!(entry.as_u64().unwrap_or(0) + 1);
    }
    serde_json::Value::Object(counts)
}

fn robot_json(name: &str, model: &Model) -> serde_json::Value {
    json!({
        "name": name,
        "file": model.source,
        "format": model.format,
        "links": model.links.len(),
        "joints": model.joints.len(),
        "joint_types": kind_counts(model),
        "actuated_dofs": model.dofs.len(),
        "total_mass_kg": model.total_mass_kg(),
        "root": model.root_link().map(|l| model.links[l.0 as usize].name.clone()),
        "link_list": model.links.iter().map(|l| json!({
            "name": l.name, "mass_kg": l.mass_kg, "visuals": l.visuals.len(),
        })).collect::<Vec<_>>(),
        "joint_list": model.joints.iter().map(|j| json!({
            "name": j.name,
            "type": j.kind,
            "parent": j.parent.map_or("world", |p| model.links[p.0 as usize].name.as_str()),
            "child": model.links[j.child.0 as usize].name,
            "axis": j.axis,
            "limits": j.limits,
            "effort_limit": j.effort_limit,
            "velocity_limit": j.velocity_limit,
            "damping": j.damping,
            "friction": j.friction,
            "soft_limits": j.soft_limits,
            "mimic": j.mimic.map(|m| json!({
                "joint": model.joints[m.joint.0 as usize].name,
                "multiplier": m.multiplier,
                "offset": m.offset,
            })),
        })).collect::<Vec<_>>(),
    })
}

fn unit(kind: JointKind) -> (&'static str, &'static str, &'static str) {
    match kind {
        JointKind::Prismatic => ("m", "m/s", "N"),
        _ => ("rad", "rad/s", "N·m"),
    }
}

fn robot_tree(name: &str, model: &Model) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "robot '{name}' ({}, {:?})",
        model.source.display(),
        model.format
    );
    if model.joints.iter().any(|j| j.parent.is_none()) {
        let _ = writeln!(out, "  world");
        write_joints(&mut out, model, None, 1);
    } else {
        match model.root_link() {
            Some(root) => write_link(&mut out, model, root, 1),
            None => {
                let _ = writeln!(out, "  (no links)");
            }
        }
    }
    let mut kinds: Vec<String> = Vec::new();
    if let serde_json::Value::Object(counts) = kind_counts(model) {
        for (k, v) in counts {
            kinds.push(format!("{v} {k}"));
        }
    }
    let _ = writeln!(
        out,
        "{} links, {} joints ({}), {} actuated DoFs, total mass {:.3} kg",
        model.links.len(),
        model.joints.len(),
        if kinds.is_empty() {
            "none".to_string()
        } else {
            kinds.join(", ")
        },
        model.dofs.len(),
        model.total_mass_kg()
    );
    out
}

fn write_link(out: &mut String, model: &Model, link: LinkId, depth: usize) {
    let l = &model.links[link.0 as usize];
    let indent = "  ".repeat(depth);
    let _ = writeln!(out, "{indent}{} ({:.3} kg)", l.name, l.mass_kg);
    write_joints(out, model, Some(link), depth);
}

fn write_joints(out: &mut String, model: &Model, link: Option<LinkId>, depth: usize) {
    let indent = "  ".repeat(depth);
    for joint in model.joints.iter().filter(|j| j.parent == link) {
        let (pos, vel, eff) = unit(joint.kind);
        let mut line = format!(
            "{indent}  └ {} [{:?}] axis [{:.3} {:.3} {:.3}]",
            joint.name, joint.kind, joint.axis[0], joint.axis[1], joint.axis[2]
        );
        if let Some([lo, hi]) = joint.limits {
            let _ = write!(line, " limits [{lo:.4}, {hi:.4}] {pos}");
        }
        if let Some(e) = joint.effort_limit {
            let _ = write!(line, " effort {e} {eff}");
        }
        if let Some(v) = joint.velocity_limit {
            let _ = write!(line, " velocity {v} {vel}");
        }
        if let Some(m) = joint.mimic {
            let _ = write!(
                line,
                " mimics {} (x{} + {})",
                model.joints[m.joint.0 as usize].name, m.multiplier, m.offset
            );
        }
        let _ = writeln!(out, "{line}");
        write_link(out, model, joint.child, depth + 2);
    }
}
