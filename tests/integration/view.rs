//! `rivet view`: bad input is reported before any window opens (every build), and, with the
//! `viewer` feature, a screenshot of the brick scene taken under Xvfb with Mesa's software
//! renderer shows the robot where the viewer's camera must see it, and a recorded episode
//! plays with the robot where the recording has it.
//!
//! The screenshot test needs `Xvfb` (Debian `xvfb`, installed by .ci/run) and a Vulkan or GL
//! adapter (Mesa's lavapipe/llvmpipe): with `CI` set their absence fails the test, elsewhere
//! it skips with a message.

use crate::cli::rivet;
use crate::repo;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn view_reports_a_missing_scene_with_its_path() {
    let _cpu = crate::not_real_time();
    let dir = tempfile::tempdir().unwrap();
    let out = rivet(&["view", "no/such/scene.toml"], dir.path());
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("no/such/scene.toml"), "{err}");
}

#[test]
fn view_reports_a_bad_overlay_with_its_path() {
    let _cpu = crate::not_real_time();
    let dir = tempfile::tempdir().unwrap();
    let overlay = dir.path().join("bad_overlay.toml");
    std::fs::write(&overlay, "[robot.no_such_robot]\npayload = 3\n").unwrap();
    let scene = repo().join("scenes/brick_wall.toml");
    let out = rivet(
        &[
            "view",
            scene.to_str().unwrap(),
            "--overlay",
            overlay.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("bad_overlay.toml"), "{err}");
}

#[test]
fn view_reports_a_bad_checkpoint_with_its_path() {
    let _cpu = crate::not_real_time();
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("not_a_checkpoint");
    std::fs::create_dir(&checkpoint).unwrap();
    let scene = repo().join("scenes/reach.toml");
    let out = rivet(
        &[
            "view",
            scene.to_str().unwrap(),
            "--policy",
            checkpoint.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("--policy") && err.contains("not_a_checkpoint"),
        "{err}"
    );
}

#[test]
fn view_rejects_json_without_a_screenshot() {
    let _cpu = crate::not_real_time();
    let dir = tempfile::tempdir().unwrap();
    let scene = repo().join("scenes/brick_wall.toml");
    let out = rivet(&["view", scene.to_str().unwrap(), "--json"], dir.path());
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--screenshot"), "{}", stderr(&out));
}

/// Without the feature the command exists and says how to build the viewer.
#[cfg(not(feature = "viewer"))]
#[test]
fn view_without_the_feature_says_how_to_build_it() {
    let _cpu = crate::not_real_time();
    let dir = tempfile::tempdir().unwrap();
    let scene = repo().join("scenes/brick_wall.toml");
    let out = rivet(&["view", scene.to_str().unwrap()], dir.path());
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("cargo run --features viewer -- view") && err.contains("rivet run"),
        "{err}"
    );
}

/// Without a display the viewer says so and points to `rivet run` and the rerun viewer.
#[cfg(feature = "viewer")]
#[test]
fn view_without_a_display_points_to_run_and_rerun() {
    let _cpu = crate::not_real_time();
    let dir = tempfile::tempdir().unwrap();
    let scene = repo().join("scenes/brick_wall.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rivet"))
        .args(["view", scene.to_str().unwrap()])
        .current_dir(dir.path())
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("no display") && err.contains("rivet run") && err.contains("rerun"),
        "{err}"
    );
}

#[test]
fn view_reports_a_bad_episode_with_its_path() {
    let _cpu = crate::not_real_time();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("not-an-episode.mcap");
    std::fs::write(&bad, b"these bytes are not MCAP").unwrap();
    let scene = repo().join("scenes/arm.toml");
    let scene = scene.to_str().unwrap();
    let out = rivet(
        &["view", scene, "--episode", bad.to_str().unwrap()],
        dir.path(),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("not-an-episode.mcap"), "{err}");
    let out = rivet(
        &["view", scene, "--episode", "e.mcap", "--policy", "p"],
        dir.path(),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("--episode") && err.contains("--policy"),
        "{err}"
    );
}

#[cfg(feature = "viewer")]
mod screenshot {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::path::Path;
    use std::process::{Child, Command, Stdio};

    use rivet_sim::{PackagePaths, Scene, SimWorld, World, WorldOptions, headless_app};

    /// An Xvfb server on a display number it picked itself (`-displayfd`), killed on drop.
    struct Xvfb {
        child: Child,
        display: String,
    }

    impl Drop for Xvfb {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn start_xvfb() -> Option<Xvfb> {
        let spawned = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x720x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "Xvfb cannot start ({e}): CI must have it (.ci/run installs xvfb)"
                );
                eprintln!("SKIPPED: Xvfb is not installed ({e}); apt-get install xvfb");
                return None;
            }
        };
        // Xvfb writes the display number it chose once it accepts connections.
        let mut line = String::new();
        let read = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        let number = line.trim();
        if read.is_err() || number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("Xvfb did not report its display: {read:?} {line:?}");
        }
        Some(Xvfb {
            display: format!(":{number}"),
            child,
        })
    }

    /// An RGB8 image.
    struct Picture {
        width: usize,
        height: usize,
        rgb: Vec<u8>,
    }

    impl Picture {
        fn load(path: &Path) -> Self {
            let decoder =
                png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
            let mut reader = decoder.read_info().unwrap();
            let mut buf = vec![0; reader.output_buffer_size().unwrap()];
            let info = reader.next_frame(&mut buf).unwrap();
            assert_eq!(
                info.color_type,
                png::ColorType::Rgb,
                "the screenshot is RGB"
            );
            assert_eq!(info.bit_depth, png::BitDepth::Eight);
            buf.truncate(info.buffer_size());
            Self {
                width: info.width as usize,
                height: info.height as usize,
                rgb: buf,
            }
        }

        /// The per-channel median of the 5x5 patch around pixel `(x, y)`.
        fn at(&self, x: f64, y: f64) -> [u8; 3] {
            let (cx, cy) = (x.round() as i64, y.round() as i64);
            let mut channels = [Vec::new(), Vec::new(), Vec::new()];
            for dy in -2..=2 {
                for dx in -2..=2 {
                    let (px, py) = (cx + dx, cy + dy);
                    if px < 0 || py < 0 || px >= self.width as i64 || py >= self.height as i64 {
                        continue;
                    }
                    let i = 3 * (py as usize * self.width + px as usize);
                    for (channel, value) in channels.iter_mut().zip(&self.rgb[i..i + 3]) {
                        channel.push(*value);
                    }
                }
            }
            channels.map(|mut v| {
                v.sort_unstable();
                v[v.len() / 2]
            })
        }

        fn luminance_std(&self) -> f64 {
            let lum: Vec<f64> = self
                .rgb
                .chunks_exact(3)
                .map(|p| {
                    0.2126 * f64::from(p[0]) + 0.7152 * f64::from(p[1]) + 0.0722 * f64::from(p[2])
                })
                .collect();
            let mean = lum.iter().sum::<f64>() / lum.len() as f64;
            (lum.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / lum.len() as f64).sqrt()
        }
    }

    /// A pinhole projection from the camera the command reports (eye, target, up, vertical
    /// field of view): written here from the JSON, independently of the viewer's code.
    struct Pinhole {
        eye: [f64; 3],
        forward: [f64; 3],
        right: [f64; 3],
        up: [f64; 3],
        focal_px: f64,
        width: f64,
        height: f64,
    }

    fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
        [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
    }
    fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
        a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
    }
    fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
        [
            a[1] * b[2] - a[2] * b[1],
            a[2] * b[0] - a[0] * b[2],
            a[0] * b[1] - a[1] * b[0],
        ]
    }
    fn unit(a: [f64; 3]) -> [f64; 3] {
        let n = dot(a, a).sqrt();
        [a[0] / n, a[1] / n, a[2] / n]
    }
    fn array(v: &serde_json::Value) -> [f64; 3] {
        let a = v.as_array().expect("a 3-vector");
        [0, 1, 2].map(|k| a[k].as_f64().unwrap())
    }

    impl Pinhole {
        fn from_report(report: &serde_json::Value) -> Self {
            let camera = &report["camera"];
            let eye = array(&camera["eye_m"]);
            let forward = unit(sub(array(&camera["target_m"]), eye));
            let right = unit(cross(forward, array(&camera["up"])));
            let up = cross(right, forward);
            let height = report["height_px"].as_f64().unwrap();
            let fov = camera["fov_y_rad"].as_f64().unwrap();
            Self {
                eye,
                forward,
                right,
                up,
                focal_px: 0.5 * height / (0.5 * fov).tan(),
                width: report["width_px"].as_f64().unwrap(),
                height,
            }
        }

        /// Pixel (x right, y down) of a world point, if in front of the camera and inside
        /// the image.
        fn project(&self, p: [f64; 3]) -> Option<(f64, f64)> {
            let d = sub(p, self.eye);
            let z = dot(d, self.forward);
            if z <= 0.0 {
                return None;
            }
            let x = 0.5 * self.width + self.focal_px * dot(d, self.right) / z;
            let y = 0.5 * self.height - self.focal_px * dot(d, self.up) / z;
            (x >= 0.0 && y >= 0.0 && x < self.width && y < self.height).then_some((x, y))
        }
    }

    /// Runs `rivet view <scene> --screenshot <png> --frames 12 --json <extra...>` on the Xvfb
    /// display and returns its report.
    fn screenshot(xvfb: &Xvfb, scene: &Path, png: &Path, extra: &[&str]) -> serde_json::Value {
        let out = Command::new(env!("CARGO_BIN_EXE_rivet"))
            .args(["view", scene.to_str().unwrap(), "--screenshot"])
            .arg(png)
            .args(["--frames", "12", "--json"])
            .args(extra)
            .current_dir(png.parent().unwrap())
            .env("DISPLAY", &xvfb.display)
            .env_remove("WAYLAND_DISPLAY")
            .output()
            .unwrap();
        assert!(out.status.success(), "rivet view failed:\n{}", stderr(&out));
        crate::cli::json_stdout(&out)
    }

    fn is_orange(c: [u8; 3]) -> bool {
        let [r, g, b] = c.map(i32::from);
        r > b + 60 && r >= g && r > 90
    }

    #[test]
    fn view_screenshot_shows_the_robot_where_the_camera_sees_it() {
        let _cpu = crate::not_real_time();
        let Some(xvfb) = start_xvfb() else {
            return;
        };
        // (The server stops when `xvfb` drops, at the end of the test.)
        let dir = tempfile::tempdir().unwrap();
        let png_path = dir.path().join("view.png");
        let scene_path = repo().join("scenes/brick_wall.toml");
        let report = screenshot(&xvfb, &scene_path, &png_path, &[]);
        assert_eq!(report["path"].as_str(), png_path.to_str());
        assert_eq!(report["frames"], 12);
        assert!(
            report["adapter"]["name"]
                .as_str()
                .is_some_and(|n| !n.is_empty()),
            "{report}"
        );
        let steps = report["steps"].as_u64().unwrap();
        // Screenshot mode advances 1/60 s per frame: 8 steps of 2 ms, 12 frames.
        assert_eq!(steps, 12 * 8, "{report}");
        assert!((report["sim_time_secs"].as_f64().unwrap() - 0.192).abs() < 1e-9);

        let picture = Picture::load(&png_path);
        assert_eq!(picture.width as u64, report["width_px"].as_u64().unwrap());
        assert_eq!(picture.height as u64, report["height_px"].as_u64().unwrap());
        assert_eq!((picture.width, picture.height), (960, 540));
        let std = picture.luminance_std();
        assert!(
            std > 8.0,
            "the screenshot is (nearly) blank: luminance std {std:.2}"
        );

        // The robot's pose at the screenshot's step, from the same simulation headless.
        let scene =
            std::sync::Arc::new(Scene::load(&scene_path, &PackagePaths::default()).unwrap());
        let world = World::new(
            scene.clone(),
            WorldOptions {
                seed: 0,
                threads: Some(1),
            },
        )
        .unwrap();
        let mut app = headless_app(world);
        for _ in 0..steps {
            app.update();
        }
        let world = &app.world().resource::<SimWorld>().0;
        let camera = Pinhole::from_report(&report);
        let robot = &scene.robots[0];
        // Every visual's centre is in the view; along the axis of each of the arm's two orange
        // tubes (upper arm and forearm), nine points from end to end, where the picture must
        // be orange unless another part hides the tube.
        let mut tubes = Vec::new();
        for (l, link) in robot.model.links.iter().enumerate() {
            let Some(body) = world.robots[0].link_bodies[l] else {
                continue;
            };
            let world_from_link = rivet_sim::math::isometry(&world.body_pose(body));
            for visual in &link.visuals {
                let world_from_geometry =
                    world_from_link * rivet_sim::math::isometry(&visual.link_from_geometry);
                let centre = world_from_geometry.translation.vector;
                assert!(
                    camera.project([centre.x, centre.y, centre.z]).is_some(),
                    "{} is outside the view",
                    link.name
                );
                let [r, g, b, _] = visual.color;
                let rivet_sim::robot::Geometry::Cylinder { half_length, .. } = visual.geometry
                else {
                    continue;
                };
                if !(r > 0.9 && g < 0.6 && b < 0.1) {
                    continue;
                }
                let samples: Vec<((f64, f64), [u8; 3])> = (-4..=4)
                    .filter_map(|k| {
                        let p = world_from_geometry
                            * nalgebra::Point3::new(
                                0.0,
                                0.0,
                                0.8 * f64::from(half_length) * f64::from(k) / 4.0,
                            );
                        let (x, y) = camera.project([p.x, p.y, p.z])?;
                        Some(((x.round(), y.round()), picture.at(x, y)))
                    })
                    .collect();
                tubes.push((link.name.clone(), samples));
            }
        }
        assert_eq!(tubes.len(), 2, "the arm has two orange tubes: {tubes:?}");
        // From the first view the wrist hides part of the upper arm: at least half of all
        // the points must be orange (a camera off by a tube's width finds none).
        let orange = tubes
            .iter()
            .flat_map(|(_, samples)| samples)
            .filter(|(_, c)| is_orange(*c))
            .count();
        assert!(
            orange >= 9,
            "only {orange} of 18 points on the orange tubes are orange in the picture: {tubes:?}"
        );
        // The sky (top rows) and bare ground behind the arm are not orange: the check above
        // can fail when the robot is not where the camera says.
        assert!(!is_orange(picture.at(480.0, 2.0)));
        for ground in [[-0.6, -0.4, 0.0], [-0.6, 0.4, 0.0], [-0.3, 0.0, 0.0]] {
            if let Some((x, y)) = camera.project(ground) {
                let c = picture.at(x, y);
                assert!(
                    !is_orange(c),
                    "bare ground at {ground:?} ({x:.0}, {y:.0}) is {c:?}"
                );
            }
        }

        // Every overlay on: the same frames, now with the camera sensors' images in the
        // bottom-right corner (the wrist camera's, 240 x 180 px, 8 px from the edges).
        let overlays_path = dir.path().join("overlays.png");
        let report = screenshot(
            &xvfb,
            &scene_path,
            &overlays_path,
            &["--show", "frames,contacts,lidar,cameras,paths"],
        );
        assert_eq!(report["steps"].as_u64(), Some(steps));
        let with = Picture::load(&overlays_path);
        let mut diff = 0u64;
        let mut count = 0u64;
        for y in 540 - 8 - 180..540 - 8 {
            for x in 960 - 8 - 240..960 - 8 {
                let i = 3 * (y * 960 + x);
                for c in 0..3 {
                    diff += u64::from(with.rgb[i + c].abs_diff(picture.rgb[i + c]));
                    count += 1;
                }
            }
        }
        let mean = diff as f64 / count as f64;
        assert!(
            mean > 20.0,
            "the picture-in-picture corner barely changed (mean difference {mean:.1})"
        );
    }

    /// `--episode`: the robot moves as recorded. The rosbag2 fixture's robot sits 30 ms behind
    /// its commands, which tests/gap/gen_rosbags_episode.py writes as sines around the arm's
    /// start pose: at the screenshot's time the viewer's joints are that formula's.
    #[test]
    fn view_plays_a_recorded_episode_as_recorded() {
        let _cpu = crate::not_real_time();
        let Some(xvfb) = start_xvfb() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let png_path = dir.path().join("episode.png");
        let episode = repo().join("tests/gap/rosbags_arm_episode.mcap");
        let report = screenshot(
            &xvfb,
            &repo().join("scenes/arm.toml"),
            &png_path,
            &["--episode", episode.to_str().unwrap()],
        );
        assert_eq!(report["episode"]["path"].as_str(), episode.to_str());
        let duration = report["episode"]["duration_secs"].as_f64().unwrap();
        assert!((duration - 4.0).abs() < 1e-6, "{report}");
        let t = report["sim_time_secs"].as_f64().unwrap();
        // 12 frames of 8 steps of 2 ms.
        assert!((t - 0.192).abs() < 1e-9, "{report}");
        #[allow(
            clippy::approx_constant,
            reason = "the fixture's start pose as gen_rosbags_episode.py writes it"
        )]
        let home = [0.0, -1.2, 1.2, -1.5708, -1.5708, 0.0];
        let commanded = |t: f64| {
            let mut q = home;
            let ramp = t.min(1.0);
            for (j, (amp, period)) in [(0.3, 2.0), (0.2, 2.5), (0.25, 1.6)].iter().enumerate() {
                q[j] += ramp * amp * (2.0 * std::f64::consts::PI * t / period).sin();
            }
            q
        };
        let want = commanded(t - 0.03);
        let joints = report["robots"][0]["joints"].as_array().unwrap();
        for (j, name) in [
            "shoulder_pan",
            "shoulder_lift",
            "elbow",
            "wrist_1",
            "wrist_2",
            "wrist_3",
        ]
        .iter()
        .enumerate()
        {
            let joint = joints
                .iter()
                .find(|x| x["name"] == *name)
                .unwrap_or_else(|| panic!("no joint {name} in {report}"));
            let q = joint["position"].as_f64().unwrap();
            assert!(
                (q - want[j]).abs() < 1e-3,
                "{name}: the viewer shows {q}, the recording {}",
                want[j]
            );
        }
        // The arm moved from its start pose (the check above cannot pass on a still arm).
        assert!(want[0] > 0.02, "{want:?}");
        // Played, not simulated: the picture is a picture.
        assert!(Picture::load(&png_path).luminance_std() > 8.0);
    }
}

/// Teleoperation's seam in the world: once its script is released, the robot follows the
/// commands the caller writes before each step (through the safety filter), and a script
/// left in place overwrites them.
#[test]
fn released_script_leaves_the_commands_to_the_caller() {
    let _cpu = crate::not_real_time();
    use rivet_sim::{PackagePaths, Scene, World, WorldOptions};
    let scene = std::sync::Arc::new(
        Scene::load(
            &repo().join("scenes/brick_wall.toml"),
            &PackagePaths::default(),
        )
        .unwrap(),
    );
    let run = |release: bool| {
        let mut world = World::new(
            scene.clone(),
            WorldOptions {
                seed: 0,
                threads: Some(1),
            },
        )
        .unwrap();
        if release {
            assert!(world.release_script(0), "the arm has a script");
            assert!(!world.release_script(0), "and only one");
        }
        let goal = scene.robots[0].initial_positions[0] + 0.3;
        for _ in 0..1000 {
            world.robots[0].command[0] = goal;
            world.step();
        }
        (world.robots[0].position[0] - goal).abs()
    };
    assert!(run(true) < 0.01, "the released arm follows the command");
    assert!(run(false) > 0.1, "the script overrides the command");
}
