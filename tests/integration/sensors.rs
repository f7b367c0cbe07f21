//! Sensors in the simulated world: cameras against rapier ray casts through the same pixels,
//! IMU readings at rest and spinning, contact and force/torque sensors against weights, lidar
//! ranges against known geometry, and clear errors for bad sensor tables.
//!
//! Camera tests need a graphics adapter (a GPU, or Mesa's lavapipe/llvmpipe): with `CI` set a
//! missing adapter fails them; otherwise they skip with a message.

use std::path::Path;
use std::sync::Arc;

use nalgebra::Vector3;
use rapier3d::prelude::*;
use rivet_perception::render::{AdapterChoice, GpuContext};
use rivet_sim::sensors::Reading;
use rivet_sim::{PackagePaths, Scene, SensorSuite, World, WorldOptions};

fn gpu() -> Option<Arc<GpuContext>> {
    match GpuContext::new(AdapterChoice::Auto) {
        Ok(gpu) => Some(Arc::new(gpu)),
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("CI is set and no graphics adapter could be opened: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: {e}");
            None
        }
    }
}

/// A scene from TOML text, resolved as if it lived in `scenes/`.
fn scene_from(text: &str) -> Result<Arc<Scene>, rivet_sim::SimError> {
    let path = crate::repo().join("scenes/_sensor_test.toml");
    let file = toml::from_str(text).expect("test scene parses");
    Scene::from_file(&path, text, file, &PackagePaths::default()).map(Arc::new)
}

fn world(scene: &Arc<Scene>) -> World {
    World::new(scene.clone(), WorldOptions::default()).unwrap()
}

/// Depth of the brick scene's overview camera agrees with rapier ray casts through the same
/// pixel centres wherever the ray hits exact geometry (boxes, the ground), within 1 mm on >= 99%
/// of those pixels; the instance-id image names the object the ray hits on >= 99% of pixels.
#[test]
fn camera_depth_and_ids_agree_with_rapier_ray_casts() {
    let _cpu = crate::not_real_time();
    let Some(gpu) = gpu() else { return };
    let scene = Arc::new(
        Scene::load(
            &crate::repo().join("scenes/brick_wall.toml"),
            &PackagePaths::default(),
        )
        .unwrap(),
    );
    let mut world = world(&scene);
    world.step();
    let mut suite = SensorSuite::new(&world, Some(gpu), None).unwrap();
    suite.step(&world).unwrap();
    let c = scene
        .sensors
        .cameras
        .iter()
        .position(|c| c.name == "overview")
        .unwrap();
    let (images, _, fresh) = suite.camera(c).unwrap();
    assert!(fresh);
    let pose = suite.camera_pose(c).unwrap();
    let k = scene.sensors.cameras[c].model.intrinsics;
    let far = scene.sensors.cameras[c].model.far_m;
    let physics = world.physics();
    let pipeline = physics.broad_phase.as_query_pipeline(
        physics.narrow_phase.query_dispatcher(),
        &physics.bodies,
        &physics.colliders,
        QueryFilter::default(),
    );
    // The name of the object each rigid body belongs to, as the instance names spell it.
    let mut body_names = std::collections::HashMap::new(); // lookups only, never iterated
    for (p, prop) in scene.props.iter().enumerate() {
        body_names.insert(world.props[p], prop.name.clone());
    }
    for (r, robot) in scene.robots.iter().enumerate() {
        for (l, link) in robot.model.links.iter().enumerate() {
            if let Some(b) = world.robots[r].link_bodies[l] {
                body_names
                    .entry(b)
                    .or_insert(format!("{}/{}", robot.name, link.name));
            }
        }
    }
    let names = suite.instance_names();
    let origin = pose.translation.vector.cast::<f32>();
    let (mut exact, mut exact_ok, mut hits, mut ids_ok) = (0, 0, 0, 0);
    for v in 0..k.height_px {
        for u in 0..k.width_px {
            let i = (v * k.width_px + u) as usize;
            let d = pose.rotation
                * Vector3::new(
                    (f64::from(u) - k.cx_px) / k.fx_px,
                    (f64::from(v) - k.cy_px) / k.fy_px,
                    1.0,
                );
            let ray = Ray::new(
                Vector::new(origin.x, origin.y, origin.z),
                Vector::new(d.x as f32, d.y as f32, d.z as f32),
            );
            // With a unit-z camera ray the time of impact is the depth along the optical axis.
            let Some((collider, toi)) = pipeline.cast_ray(&ray, far as f32, true) else {
                continue;
            };
            hits += 1;
            let co = &physics.colliders[collider];
            let name = co
                .parent()
                .and_then(|b| body_names.get(&b).cloned())
                .unwrap_or_else(|| "ground".into());
            let id = images.instance_id[i];
            if id > 0 && names.get(id as usize - 1) == Some(&name) {
                ids_ok += 1;
            }
            if co.shape().as_cuboid().is_some() || co.shape().as_halfspace().is_some() {
                exact += 1;
                if (images.depth_m[i] - toi).abs() < 1e-3 {
                    exact_ok += 1;
                }
            }
        }
    }
    assert!(exact > 20_000, "only {exact} pixels on boxes and ground");
    assert!(
        exact_ok as f64 >= 0.99 * exact as f64,
        "depth within 1 mm of rapier on {exact_ok} of {exact} pixels"
    );
    assert!(
        ids_ok as f64 >= 0.99 * hits as f64,
        "instance ids name the hit object on {ids_ok} of {hits} pixels"
    );
}

const IMU_ARM: &str = r#"
[world]
timestep_secs = 0.002

[[robot]]
name = "arm"
urdf = "robots/rivet_arm6.urdf"
disable_self_collisions = true

[robot.initial_joints]
shoulder_lift = -1.2
elbow = 1.2

[robot.joints.shoulder_pan]
mode = "velocity"
kd = 200.0

[[sensor]]
kind = "imu"
name = "imu"
mount = { robot = "arm", link = "shoulder_link" }
position = [0.0, 0.05, 0.0]
rpy = [0.3, -0.2, 0.5]

[[sensor]]
kind = "force_torque"
name = "ft"
robot = "arm"
joint = "wrist_3"

[[sensor]]
kind = "encoder"
name = "pan"
robot = "arm"
joint = "shoulder_pan"
resolution = { kind = "rotary", counts_per_rev = 1024 }
"#;

/// At rest the IMU reads +g along the world's up axis, expressed in its (tilted) frame, and no
/// rotation; spinning the pan joint at a known rate it reads that rate about the pan axis.
#[test]
fn imu_reads_gravity_at_rest_and_the_rate_when_spinning() {
    let _cpu = crate::not_real_time();
    let scene = scene_from(IMU_ARM).unwrap();
    let mut world = world(&scene);
    let mut suite = SensorSuite::new(&world, None, None).unwrap();
    let spec = &scene.sensors.sensors[0];
    let rivet_sim::sensors::SensorKind::Imu {
        mount_from_sensor, ..
    } = &spec.kind
    else {
        panic!("sensor 0 is the IMU")
    };
    let link_body = world.robots[0].link_bodies[1].unwrap();
    let read = |suite: &SensorSuite| match suite.reading(0) {
        Some(Reading::Imu {
            accel: Some((_, a)),
            gyro: Some((_, g)),
        }) => (Vector3::from_column_slice(a), Vector3::from_column_slice(g)),
        other => panic!("no IMU reading: {other:?}"),
    };
    let world_from_sensor =
        |world: &World| rivet_sim::math::isometry(&world.body_pose(link_body)) * mount_from_sensor;
    for _ in 0..500 {
        world.step();
        suite.step(&world).unwrap();
    }
    let (accel, gyro) = read(&suite);
    let up = world_from_sensor(&world)
        .rotation
        .inverse_transform_vector(&Vector3::new(0.0, 0.0, 9.81));
    assert!(
        (accel - up).norm() < 0.05,
        "at rest: {accel:?}, expected {up:?}"
    );
    assert!(gyro.norm() < 1e-3, "at rest: gyro {gyro:?}");
    // The wrist's force/torque sensor holds up the wrist, gripper and fingers.
    let expected_n = [
        "wrist_3_link",
        "gripper_base",
        "finger_left",
        "finger_right",
    ]
    .iter()
    .map(|name| {
        let model = &scene.robots[0].model;
        model
            .links
            .iter()
            .find(|l| l.name == *name)
            .unwrap()
            .mass_kg
    })
    .sum::<f64>()
        * 9.81;
    let Some(Reading::ForceTorque(Some((_, w)))) = suite.reading(1) else {
        panic!("no force/torque reading")
    };
    let force = Vector3::new(w[0], w[1], w[2]).norm();
    assert!(
        (force - expected_n).abs() < 0.02 * expected_n,
        "wrist force {force} N, expected {expected_n} N"
    );

    let rate = 1.3;
    world.robots[0].command[0] = rate;
    for _ in 0..1500 {
        world.step();
        suite.step(&world).unwrap();
    }
    let (_, gyro) = read(&suite);
    let expected = world_from_sensor(&world)
        .rotation
        .inverse_transform_vector(&Vector3::new(0.0, 0.0, rate));
    assert!(
        (gyro - expected).norm() < 0.01 * rate,
        "spinning: gyro {gyro:?}, expected {expected:?}"
    );
    let Some(Reading::Encoder {
        output: Some((_, e)),
        ..
    }) = suite.reading(2)
    else {
        panic!("no encoder reading")
    };
    // The velocity estimate is quantised to one count per window: 2 pi / 1024 / (10 x 2 ms).
    let quantum = std::f64::consts::TAU / 1024.0 / (10.0 * 0.002);
    assert!(
        (e[1] - rate).abs() <= quantum,
        "encoder velocity {} rad/s",
        e[1]
    );
    assert!((e[0] - world.robots[0].position[0]).abs() <= std::f64::consts::TAU / 1024.0);
}

const BOX_WORLD: &str = r#"
[[prop]]
name = "crate"
shape = { box = { size = [1.0, 1.0, 1.0] } }
position = [3.0, 0.0, 0.5]
mass = 20.0

[[sensor]]
kind = "lidar"
name = "lidar"
position = [0.0, 0.0, 0.5]
pattern = "solid_state"
channels = 3
horizontal_samples = 9
vertical_fov_deg = [-5.0, 5.0]
horizontal_fov_deg = 20.0
max_range_m = 20.0

[[sensor]]
kind = "contact"
name = "crate_contact"
mount = { prop = "crate" }

[[sensor]]
kind = "imu"
name = "crate_imu"
mount = { prop = "crate" }
"#;

/// The lidar's central ray hits the crate's face at 2.5 m; rays at angle theta read
/// 2.5 / cos(theta) (flat face); the crate's contact sensor reads its weight; its IMU +g on z.
#[test]
fn lidar_contact_and_imu_on_a_crate() {
    let _cpu = crate::not_real_time();
    let scene = scene_from(BOX_WORLD).unwrap();
    let mut world = world(&scene);
    let mut suite = SensorSuite::new(&world, None, None).unwrap();
    for _ in 0..400 {
        world.step();
        suite.step(&world).unwrap();
    }
    let Some(Reading::Lidar(scan)) = suite.reading(0) else {
        panic!("no lidar scan")
    };
    let rivet_sim::sensors::SensorKind::Lidar(spec) = &scene.sensors.sensors[0].kind else {
        panic!()
    };
    for (d, &r) in spec.pattern.directions.iter().zip(&scan.ranges_m) {
        let expected = 2.5 / f64::from(d[0]);
        assert!(
            (f64::from(r) - expected).abs() < 2e-3,
            "range {r}, expected {expected}"
        );
    }
    assert_eq!(scan.points_in_sensor.len(), 27);
    let Some(Reading::Contact {
        in_contact: true,
        force: Some((_, f)),
    }) = suite.reading(1)
    else {
        panic!("crate not in contact")
    };
    assert!(
        (f[0] - 20.0 * 9.81).abs() < 0.02 * 20.0 * 9.81,
        "contact force {} N",
        f[0]
    );
    let Some(Reading::Imu {
        accel: Some((_, a)),
        ..
    }) = suite.reading(2)
    else {
        panic!()
    };
    assert!((a[2] - 9.81).abs() < 0.02 && a[0].abs() < 0.02, "{a:?}");
}

/// Bad camera and sensor tables are errors naming the table and the field.
#[test]
fn bad_sensor_tables_name_what_and_where() {
    let _cpu = crate::not_real_time();
    let cases = [
        (
            "[[camera]]\nname = \"c\"\nresolution = [64, 48]\nfov_deg = 60.0\nrpy = [0.0, 0.0, 0.0]\nlook_at = [1.0, 0.0, 0.0]\n",
            "camera[0] 'c'.look_at",
        ),
        (
            "[[camera]]\nname = \"c\"\nresolution = [64, 48]\nfov_deg = 60.0\nfx = 50.0\n",
            "camera[0] 'c'.fov_deg",
        ),
        (
            "[[camera]]\nname = \"c\"\nresolution = [0, 48]\nfov_deg = 60.0\n",
            "camera[0] 'c'.resolution",
        ),
        (
            "[[camera]]\nname = \"c\"\nresolution = [64, 48]\nfov_deg = 60.0\nmount = { prop = \"nope\" }\n",
            "camera[0] 'c'.mount.prop",
        ),
        (
            "[[sensor]]\nkind = \"lidar\"\nname = \"l\"\nnoise = { delay_secs = 0.1 }\n",
            "sensor[0] 'l'.noise",
        ),
        (
            "[[sensor]]\nkind = \"imu\"\nname = \"i\"\n",
            "sensor[0] 'i'.mount",
        ),
        (
            "[[sensor]]\nkind = \"encoder\"\nname = \"e\"\nrobot = \"arm\"\njoint = \"x\"\n",
            "sensor[0] 'e'.robot",
        ),
        (
            "[[sensor]]\nkind = \"lidar\"\nname = \"l\"\n[[sensor]]\nkind = \"lidar\"\nname = \"l\"\n",
            "sensor[1] 'l'.name",
        ),
    ];
    for (text, element) in cases {
        let err = scene_from(text).expect_err(text).to_string();
        assert!(
            err.contains(element),
            "{text}\n-> {err}\n(expected {element})"
        );
    }
    let unknown: Result<rivet_sim::scene::file::SceneFile, _> =
        toml::from_str("[[sensor]]\nkind = \"imu\"\nname = \"i\"\nwhatever = 1\n");
    assert!(unknown.unwrap_err().to_string().contains("whatever"));
    assert!(Path::new("scenes").exists() || crate::repo().join("scenes").exists());
}
