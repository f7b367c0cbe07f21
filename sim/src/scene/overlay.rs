//! Scene overlays: small TOML files that change a scene's values without editing it, for
//! physical parameters that differ between the training simulation and a robot (`rivet robot
//! serve --perturb`), and for fitted parameters (`--overlay`).
//!
//! An overlay has the scene file's layout, with one difference: robots are addressed by name,
//! as tables, instead of as the scene's `[[robot]]` array:
//!
//! ```toml
//! [robot.arm.joints.shoulder_pan]   # the scene's [[robot]] named "arm", joint shoulder_pan
//! friction = 0.4
//! damping = 1.5
//!
//! [robot.arm.actuators]
//! kp = 900.0
//!
//! [world]
//! timestep_secs = 0.002
//! ```
//!
//! Tables merge key by key, recursively; any other value (numbers, strings, arrays) replaces
//! the scene's. Overlays apply in order, so a later one wins. The merged scene is validated as a
//! whole, exactly as if it had been written by hand; an overlay that names a robot the scene does
//! not have, or whose top level is not a table, is an error naming the overlay file and key.

use std::path::Path;

use toml::{Table, Value};

use crate::error::SimError;

/// Reads `path` as a TOML table, with line and column on syntax errors.
pub(crate) fn read_table(path: &Path) -> Result<(String, Table), SimError> {
    let text = std::fs::read_to_string(path).map_err(|source| SimError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let table = text.parse::<Table>().map_err(|e| {
        let (line, column) = e
            .span()
            .map(|span| super::line_column(&text, span.start))
            .unwrap_or((1, 1));
        SimError::Toml {
            path: path.to_path_buf(),
            line,
            column,
            message: e.message().to_string(),
        }
    })?;
    Ok((text, table))
}

/// Applies `overlay` (read from `overlay_path`) to the scene table `scene`.
pub(crate) fn apply(
    scene: &mut Table,
    overlay: Table,
    overlay_path: &Path,
) -> Result<(), SimError> {
    for (key, value) in overlay {
        if key == "robot" {
            let Value::Table(robots) = value else {
                return Err(SimError::scene(
                    overlay_path,
                    "robot",
                    "must be a table of robots by name ([robot.<name>...]), not the scene's \
                     [[robot]] array",
                ));
            };
            let names: Vec<String> = scene_robots(scene)
                .iter()
                .filter_map(|r| r.get("name").and_then(Value::as_str).map(str::to_owned))
                .collect();
            for (name, changes) in robots {
                let Value::Table(changes) = changes else {
                    return Err(SimError::scene(
                        overlay_path,
                        format!("robot.{name}"),
                        "must be a table",
                    ));
                };
                let target = scene_robots(scene)
                    .into_iter()
                    .find(|r| r.get("name").and_then(Value::as_str) == Some(name.as_str()))
                    .ok_or_else(|| {
                        SimError::scene(
                            overlay_path,
                            format!("robot.{name}"),
                            format!("the scene has no robot named `{name}`; it has {names:?}"),
                        )
                    })?;
                merge(target, changes);
            }
        } else {
            match (scene.get_mut(&key), value) {
                (Some(Value::Table(base)), Value::Table(changes)) => merge(base, changes),
                (_, value) => {
                    scene.insert(key, value);
                }
            }
        }
    }
    Ok(())
}

fn scene_robots(scene: &mut Table) -> Vec<&mut Table> {
    match scene.get_mut("robot") {
        Some(Value::Array(robots)) => robots.iter_mut().filter_map(Value::as_table_mut).collect(),
        _ => Vec::new(),
    }
}

/// Merges `changes` into `base`: tables recursively, other values replaced.
fn merge(base: &mut Table, changes: Table) {
    for (key, value) in changes {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(b)), Value::Table(c)) => merge(b, c),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::Scene;
    use crate::robot::PackagePaths;

    fn cartpole() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenes/cartpole.toml")
    }

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn overlays_change_joint_parameters_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(
            &dir,
            "a.toml",
            "[robot.cartpole.joints.hinge]\ndamping = 0.5\nfriction = 0.1\n",
        );
        let b = write(
            &dir,
            "b.toml",
            "[robot.cartpole.joints.hinge]\ndamping = 0.25\n",
        );
        let packages = PackagePaths::default();
        let plain = Scene::load(&cartpole(), &packages).unwrap();
        let scene = Scene::load_with_overlays(&cartpole(), &[a, b], &packages).unwrap();
        let dof = |s: &Scene| {
            let model = &s.robots[0].model;
            (0..s.robots[0].actuators.len())
                .find(|&d| model.dof_joint(crate::robot::DofId(d as u32)).name == "hinge")
                .unwrap()
        };
        let d = dof(&scene);
        assert_eq!(scene.robots[0].actuators[d].damping, 0.25);
        assert_eq!(scene.robots[0].actuators[d].friction, 0.1);
        assert_eq!(plain.robots[0].actuators[d].damping, 0.0);
        assert_ne!(scene.content_hash, plain.content_hash);
        // The task still compiles from the merged scene.
        assert!(scene.task.is_some());
    }

    #[test]
    fn overlay_errors_name_the_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let packages = PackagePaths::default();
        let unknown = write(&dir, "u.toml", "[robot.arm.joints.hinge]\ndamping = 1.0\n");
        let e = Scene::load_with_overlays(&cartpole(), &[unknown], &packages)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("u.toml") && e.contains("no robot named `arm`"),
            "{e}"
        );
        let bad_value = write(
            &dir,
            "v.toml",
            "[robot.cartpole.joints.hinge]\ndamping = -1.0\n",
        );
        let e = Scene::load_with_overlays(&cartpole(), &[bad_value], &packages)
            .unwrap_err()
            .to_string();
        assert!(e.contains("damping"), "{e}");
        let syntax = write(&dir, "s.toml", "[robot.cartpole\n");
        let e = Scene::load_with_overlays(&cartpole(), &[syntax], &packages)
            .unwrap_err()
            .to_string();
        assert!(e.contains("s.toml"), "{e}");
    }

    fn reach() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenes/reach.toml")
    }

    #[test]
    fn overlays_add_a_payload_scale_link_masses_and_delay_commands() {
        use crate::{World, WorldOptions};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let load = write(
            &dir,
            "load.toml",
            "[robot.arm]\ncommand_latency_secs = 0.03\nlink_mass_scale = { upper_arm_link = 1.5 }\n\
             [robot.arm.payload]\nlink = \"gripper_base\"\nmass = 0.5\noffset = [0.0, 0.0, 0.05]\n",
        );
        let packages = PackagePaths::default();
        let plain = Arc::new(Scene::load(&reach(), &packages).unwrap());
        let loaded = Arc::new(Scene::load_with_overlays(&reach(), &[load], &packages).unwrap());
        let robot = &loaded.robots[0];
        assert_eq!(robot.command_latency_steps, 3);
        assert_eq!(robot.payload.as_ref().unwrap().mass_kg, 0.5);
        let link = |name: &str| {
            robot
                .model
                .links
                .iter()
                .position(|l| l.name == name)
                .unwrap()
        };
        let options = WorldOptions {
            seed: 0,
            threads: Some(1),
        };
        let mut a = World::new(plain.clone(), options).unwrap();
        let mut b = World::new(loaded.clone(), options).unwrap();
        let mass = |w: &World, name: &str| {
            let body = w.robots[0].link_bodies[link(name)].unwrap();
            w.physics().bodies[body].mass()
        };
        assert!((mass(&a, "gripper_base") - 0.7).abs() < 1e-5);
        assert!((mass(&b, "gripper_base") - 1.2).abs() < 1e-5);
        assert!((mass(&b, "upper_arm_link") - 9.0).abs() < 1e-4);
        // Gains come from the unloaded robot.
        assert_eq!(a.robots[0].kp, b.robots[0].kp);
        // A new position command reaches the actuators 3 steps later.
        let dof = (0..robot.actuators.len())
            .find(|&d| robot.model.dof_joint(crate::robot::DofId(d as u32)).name == "shoulder_pan")
            .unwrap();
        let start = a.robots[0].command[dof];
        for w in [&mut a, &mut b] {
            w.robots[0].command[dof] = start + 0.01;
        }
        let mut moved_at = [None, None];
        for step in 1..=5 {
            for (i, w) in [&mut a, &mut b].into_iter().enumerate() {
                w.step();
                if moved_at[i].is_none() && w.position_targets(0)[dof] != start {
                    moved_at[i] = Some(step);
                }
            }
        }
        assert_eq!(moved_at, [Some(1), Some(4)]);
        // Holding still, the shoulder carries the payload: 0.5 kg at about 0.3 m from its axis
        // (the upper arm points up in this pose, so its heavier mass adds no torque).
        let lift = (0..robot.actuators.len())
            .find(|&d| robot.model.dof_joint(crate::robot::DofId(d as u32)).name == "shoulder_lift")
            .unwrap();
        for _ in 0..100 {
            a.step();
            b.step();
        }
        let effort = |w: &World| w.robots[0].effort[lift].abs();
        let extra = effort(&b) - effort(&a);
        assert!(
            (1.0..2.5).contains(&extra),
            "{} vs {}",
            effort(&b),
            effort(&a)
        );
    }

    #[test]
    fn bad_payloads_and_mass_scales_are_errors_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let packages = PackagePaths::default();
        for (text, expect) in [
            (
                "[robot.arm.payload]\nlink = \"tool0\"\nmass = 0.5\n",
                "robot[0] 'arm'.payload.link",
            ),
            (
                "[robot.arm.payload]\nlink = \"gripper_base\"\nmass = -0.5\n",
                "robot[0] 'arm'.payload.mass",
            ),
            (
                "[robot.arm.payload]\nlink = \"nope\"\nmass = 0.5\n",
                "no link 'nope'",
            ),
            (
                "[robot.arm]\nlink_mass_scale = { forearm_link = 0.0 }\n",
                "link_mass_scale.forearm_link",
            ),
            (
                "[robot.arm]\ncommand_latency_secs = -0.01\n",
                "command_latency_secs",
            ),
        ] {
            let overlay = write(&dir, "bad.toml", text);
            let e = Scene::load_with_overlays(&reach(), &[overlay], &packages)
                .unwrap_err()
                .to_string();
            assert!(e.contains(expect), "{text}: {e}");
        }
    }
}
