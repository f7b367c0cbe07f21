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
}
