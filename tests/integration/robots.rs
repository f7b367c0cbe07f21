//! Robot import against the shared corpus (reads `../shared/`).

use std::sync::Arc;

use rivet_sim::robot::JointKind;
use rivet_sim::{PackagePaths, RobotModel, Scene, World, WorldOptions};

use crate::{files_with_extension, shared_dir};

/// Link and joint counts of a URDF, read independently with an XML parser: the direct
/// `<link>` and `<joint>` children of `<robot>` (transmissions also hold `<joint>` tags).
fn urdf_counts(text: &str) -> (usize, usize) {
    let doc = roxmltree::Document::parse(text).expect("the corpus is valid XML");
    let robot = doc.root_element();
    let count = |tag: &str| {
        robot
            .children()
            .filter(|n| n.is_element() && n.tag_name().name() == tag)
            .count()
    };
    (count("link"), count("joint"))
}

#[test]
fn every_shared_urdf_loads_with_the_files_link_and_joint_counts() {
    let _cpu = crate::not_real_time();
    let Some(shared) = shared_dir() else { return };
    let packages = PackagePaths::new([shared.clone()]);
    let files = files_with_extension(&shared.join("example-robot-data/robots"), "urdf");
    assert!(files.len() >= 20, "found only {} URDFs", files.len());
    for file in files {
        let model = RobotModel::load(&file, &packages)
            .unwrap_or_else(|e| panic!("{} failed to load: {e}", file.display()));
        let text = std::fs::read_to_string(&file).unwrap();
        let (links, joints) = urdf_counts(&text);
        assert_eq!(model.links.len(), links, "{}", file.display());
        assert_eq!(model.joints.len(), joints, "{}", file.display());
        if links > 0 {
            assert!(model.total_mass_kg() > 0.0, "{}", file.display());
        }
    }
}

#[test]
fn panda_mimic_finger_is_coupled_not_actuated() {
    let _cpu = crate::not_real_time();
    let Some(shared) = shared_dir() else { return };
    let packages = PackagePaths::new([shared.clone()]);
    let file = shared.join("example-robot-data/robots/panda_description/urdf/panda.urdf");
    let model = RobotModel::load(&file, &packages).unwrap();
    let finger2 = model.joint_by_name("panda_finger_joint2").unwrap();
    let mimic = model.joints[finger2.0 as usize]
        .mimic
        .expect("finger 2 mimics finger 1");
    assert_eq!(
        model.joints[mimic.joint.0 as usize].name,
        "panda_finger_joint1"
    );
    // 7 arm joints + 1 finger; the mimic finger follows through a coupling.
    assert_eq!(model.dofs.len(), 8);
}

/// MJCF bodies and joints under `<worldbody>`, counted independently.
fn mjcf_counts(text: &str) -> (usize, usize) {
    let doc = roxmltree::Document::parse(text).unwrap();
    let world = doc
        .descendants()
        .find(|n| n.has_tag_name("worldbody"))
        .expect("a worldbody");
    let bodies = world
        .descendants()
        .filter(|n| n.has_tag_name("body"))
        .count();
    let joints = world
        .descendants()
        .filter(|n| n.has_tag_name("joint") || n.has_tag_name("freejoint"))
        .count();
    (bodies, joints)
}

#[test]
fn every_shared_mjcf_loads_with_the_files_body_and_joint_counts() {
    let _cpu = crate::not_real_time();
    let Some(shared) = shared_dir() else { return };
    let files = files_with_extension(&shared.join("mjcf"), "xml");
    assert!(files.len() >= 4);
    for file in files {
        let model = RobotModel::load(&file, &PackagePaths::default())
            .unwrap_or_else(|e| panic!("{} failed to load: {e}", file.display()));
        let (bodies, joints) = mjcf_counts(&std::fs::read_to_string(&file).unwrap());
        assert_eq!(model.links.len(), bodies, "{}", file.display());
        assert_eq!(model.joints.len(), joints, "{}", file.display());
    }
}

/// Regression: rapier3d-mjcf 0.36.1 blew up to NaN stepping Gymnasium's inverted_pendulum.xml
/// and reacher.xml, because its contact encoding let `contype="0"` geoms collide (the cart
/// with the rail it overlaps). Every shared MJCF model must step 2 s of simulated time with
/// finite state, at its own timestep and at 2 ms, with its self contacts on.
#[test]
fn regression_mjcf_nan_motor_every_shared_model_steps_finite() {
    let _cpu = crate::not_real_time();
    let Some(shared) = shared_dir() else { return };
    for file in files_with_extension(&shared.join("mjcf"), "xml") {
        let native = Scene::single_robot(&file, false, &PackagePaths::default()).unwrap();
        assert!(native.robots[0].self_collisions);
        let mut fine = native.clone();
        fine.world.dt_secs = 0.002;
        for scene in [native, fine] {
            let scene = Arc::new(scene);
            let mut world = World::new(scene.clone(), WorldOptions::default()).unwrap();
            let steps = (2.0 / scene.world.dt_secs).round() as usize;
            for _ in 0..steps {
                world.step();
            }
            assert_eq!(
                world.termination(),
                None,
                "{} at dt {}",
                file.display(),
                scene.world.dt_secs
            );
            assert!(world.robots[0].position.iter().all(|q| q.is_finite()));
        }
    }
}

/// Each fixed-base arm holds its initial pose under gravity with its default PD gains within
/// 0.02 rad over 2 s.
#[test]
fn shared_arms_hold_their_initial_pose_under_gravity() {
    let _cpu = crate::not_real_time();
    let Some(shared) = shared_dir() else { return };
    let packages = PackagePaths::new([shared.clone()]);
    let robots = shared.join("example-robot-data/robots");
    for file in [
        "ur_description/urdf/ur3_robot.urdf",
        "ur_description/urdf/ur5_robot.urdf",
        "ur_description/urdf/ur10_robot.urdf",
        "panda_description/urdf/panda.urdf",
    ] {
        let path = robots.join(file);
        let scene = Arc::new(Scene::single_robot(&path, true, &packages).unwrap());
        let initial = scene.robots[0].initial_positions.clone();
        let mut world = World::new(scene.clone(), WorldOptions::default()).unwrap();
        let steps = (2.0 / scene.world.dt_secs).round() as usize;
        let mut worst = 0.0f64;
        for _ in 0..steps {
            world.step();
            for (q, q0) in world.robots[0].position.iter().zip(&initial) {
                worst = worst.max((q - q0).abs());
            }
        }
        assert_eq!(world.termination(), None, "{file}");
        assert!(
            worst < 0.02,
            "{file}: drifted {worst} rad from its initial pose"
        );
    }
}

#[test]
fn project_robots_load_with_their_actuated_joints() {
    let _cpu = crate::not_real_time();
    let repo = crate::repo();
    let arm = RobotModel::load(
        &repo.join("scenes/robots/rivet_arm6.urdf"),
        &PackagePaths::default(),
    )
    .unwrap();
    let names: Vec<&str> = arm
        .dofs
        .iter()
        .map(|d| arm.joints[d.joint.0 as usize].name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "shoulder_pan",
            "shoulder_lift",
            "elbow",
            "wrist_1",
            "wrist_2",
            "wrist_3",
            "finger_left_joint",
            "finger_right_joint"
        ]
    );
    assert!(arm.joints.iter().any(|j| j.kind == JointKind::Prismatic));
    assert!(
        arm.joints
            .iter()
            .filter(|j| j.soft_limits.is_some())
            .count()
            == 6
    );
    let rover = RobotModel::load(
        &repo.join("scenes/robots/rivet_rover.urdf"),
        &PackagePaths::default(),
    )
    .unwrap();
    assert_eq!(rover.dofs.len(), 2);
    assert!(
        rover
            .joints
            .iter()
            .filter(|j| j.kind == JointKind::Continuous)
            .count()
            == 2
    );
}
