//! IK tests. The 10,000-target tests read the UR5 and Panda from `../shared/example-robot-data`
//! (outside the repo); they skip with a message when it is absent, and fail when `CI` is set.

use nalgebra::{Isometry3, Vector3};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::model::tests::{TEST_ARM, random_q, shared_urdf};

fn mid_range(tree: &RobotTree) -> Vec<f64> {
    tree.position_limits()
        .iter()
        .map(|&[lo, hi]| {
            if lo.is_finite() && hi.is_finite() {
                0.5 * (lo + hi)
            } else {
                0.0
            }
        })
        .collect()
}

/// Solves IK for FK of `count` random in-limit configurations, from the mid-range
/// configuration, and checks each result independently with forward kinematics.
fn success_rate(tree: &RobotTree, frame: &str, count: usize, seed: u64) -> f64 {
    let frame = tree.frame_by_name(frame).expect("frame exists");
    let mut solver = IkSolver::new(tree, frame, IkOptions::default());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut data = tree.data();
    let start = mid_range(tree);
    let limits = tree.position_limits();
    let mut q = vec![0.0; tree.dof_count()];
    let mut ok = 0;
    for _ in 0..count {
        let truth = random_q(tree, &mut rng);
        tree.forward_kinematics(&truth, &mut data);
        let target = tree.frame_pose(frame, &data);
        let result = solver.solve(tree, &IkTarget::Pose(target), &start, &mut q);
        tree.forward_kinematics(&q, &mut data);
        let got = tree.frame_pose(frame, &data);
        let dp = (got.translation.vector - target.translation.vector).norm();
        let dr = got.rotation.angle_to(&target.rotation);
        let in_limits = q
            .iter()
            .zip(&limits)
            .all(|(v, [lo, hi])| *v >= *lo && *v <= *hi);
        assert!(in_limits, "IK left the joint limits: {q:?}");
        if result.is_ok() {
            assert!(
                dp < 1e-3 && dr < 0.01,
                "reported success but {dp} m, {dr} rad"
            );
            ok += 1;
        }
    }
    let rate = ok as f64 / count as f64;
    eprintln!("{}: IK success {ok}/{count}", tree.name);
    rate
}

#[test]
fn ur5_ten_thousand_pose_targets() {
    let Some(tree) = shared_urdf("ur_description/urdf/ur5_robot.urdf") else {
        return;
    };
    let rate = success_rate(&tree, "tool0", 10_000, 1);
    assert!(rate >= 0.995, "UR5 IK success rate {rate}");
}

#[test]
fn panda_ten_thousand_pose_targets() {
    let Some(tree) = shared_urdf("panda_description/urdf/panda.urdf") else {
        return;
    };
    let rate = success_rate(&tree, "panda_hand_tcp", 10_000, 2);
    assert!(rate >= 0.995, "Panda IK success rate {rate}");
}

#[test]
fn test_arm_pose_targets() {
    let tree = RobotTree::from_urdf_str(TEST_ARM).unwrap();
    // 4 coordinates cannot reach arbitrary 6-D poses, but FK of in-limit configurations can.
    let rate = success_rate(&tree, "tool", 500, 3);
    assert!(rate >= 0.99, "{rate}");
}

#[test]
fn position_only_targets_ignore_orientation() {
    let tree = RobotTree::from_urdf_str(TEST_ARM).unwrap();
    let frame = tree.frame_by_name("tool").unwrap();
    let mut solver = IkSolver::new(&tree, frame, IkOptions::default());
    let mut data = tree.data();
    tree.forward_kinematics(&[0.4, 0.3, 0.1, 0.0], &mut data);
    let p = tree.frame_pose(frame, &data).translation.vector;
    let mut q = vec![0.0; 4];
    let s = solver
        .solve(&tree, &IkTarget::Position(p), &[0.0; 4], &mut q)
        .unwrap();
    assert_eq!(s.orientation_error, 0.0);
    tree.forward_kinematics(&q, &mut data);
    assert!((tree.frame_pose(frame, &data).translation.vector - p).norm() < 1e-4);
}

#[test]
fn unreachable_targets_say_so_and_keep_the_best() {
    let tree = RobotTree::from_urdf_str(TEST_ARM).unwrap();
    let frame = tree.frame_by_name("tool").unwrap();
    let mut solver = IkSolver::new(
        &tree,
        frame,
        IkOptions {
            restarts: 3,
            ..IkOptions::default()
        },
    );
    let mut q = vec![0.0; 4];
    let err = solver
        .solve(
            &tree,
            &IkTarget::Position(Vector3::new(5.0, 0.0, 0.0)),
            &[0.0; 4],
            &mut q,
        )
        .unwrap_err();
    let IkError::Unreachable {
        position_error,
        attempts,
        ..
    } = err
    else {
        panic!("{err}");
    };
    assert_eq!(attempts, 4);
    // The arm reaches about 1 m: the best is its full stretch towards the target.
    assert!(
        position_error > 3.5 && position_error < 5.0,
        "{position_error}"
    );
    let mut data = tree.data();
    tree.forward_kinematics(&q, &mut data);
    let reached =
        (tree.frame_pose(frame, &data).translation.vector - Vector3::new(5.0, 0.0, 0.0)).norm();
    assert!((reached - position_error).abs() < 1e-9);
    assert!(err.to_string().contains("unreachable"));
}

#[test]
fn warm_start_at_the_solution_takes_one_iteration() {
    let tree = RobotTree::from_urdf_str(TEST_ARM).unwrap();
    let frame = tree.frame_by_name("tool").unwrap();
    let mut solver = IkSolver::new(&tree, frame, IkOptions::default());
    let q0 = [0.2, -0.4, 0.1, 0.7];
    let mut data = tree.data();
    tree.forward_kinematics(&q0, &mut data);
    let target = IkTarget::Pose(tree.frame_pose(frame, &data));
    let mut q = vec![0.0; 4];
    let s = solver.solve(&tree, &target, &q0, &mut q).unwrap();
    assert_eq!((s.iterations, s.attempts), (1, 1));
    assert_eq!(q, q0);
}

#[test]
fn posture_acts_in_the_null_space() {
    // Position-only targets leave the arm redundant: the posture decides the rest without
    // moving the tool.
    let tree = RobotTree::from_urdf_str(TEST_ARM).unwrap();
    let frame = tree.frame_by_name("tool").unwrap();
    let mut data = tree.data();
    tree.forward_kinematics(&[0.3, 0.5, 0.1, 0.2], &mut data);
    let p = tree.frame_pose(frame, &data).translation.vector;
    let posture = vec![0.0, 0.0, 0.0, 2.5];
    let start = [0.3, 0.5, 0.1, -1.0];
    let mut free = vec![0.0; 4];
    let mut held = vec![0.0; 4];
    IkSolver::new(&tree, frame, IkOptions::default())
        .solve(&tree, &IkTarget::Position(p), &start, &mut free)
        .unwrap();
    let options = IkOptions {
        posture: Some((posture.clone(), 0.2)),
        max_iterations: 200,
        ..IkOptions::default()
    };
    IkSolver::new(&tree, frame, options)
        .solve(&tree, &IkTarget::Position(p), &start, &mut held)
        .unwrap();
    let dist = |q: &[f64]| {
        q.iter()
            .zip(&posture)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    assert!(
        dist(&held) + 0.5 < dist(&free),
        "posture {held:?} vs free {free:?}"
    );
    tree.forward_kinematics(&held, &mut data);
    assert!((tree.frame_pose(frame, &data).translation.vector - p).norm() < 1e-4);
}

#[test]
fn solves_are_deterministic_and_inputs_are_checked() {
    let tree = RobotTree::from_urdf_str(TEST_ARM).unwrap();
    let frame = tree.frame_by_name("tool").unwrap();
    let mut solver = IkSolver::new(&tree, frame, IkOptions::default());
    let target = IkTarget::Pose(Isometry3::translation(0.3, 0.2, 0.6));
    let (mut a, mut b) = (vec![0.0; 4], vec![0.0; 4]);
    let ra = solver.solve(&tree, &target, &[0.0; 4], &mut a);
    let rb = solver.solve(&tree, &target, &[0.0; 4], &mut b);
    assert_eq!(ra, rb);
    assert_eq!(a, b);
    assert!(matches!(
        solver.solve(&tree, &target, &[0.0; 3], &mut a),
        Err(IkError::Invalid(_))
    ));
    assert!(matches!(
        solver.solve(&tree, &target, &[f64::NAN, 0.0, 0.0, 0.0], &mut a),
        Err(IkError::Invalid(_))
    ));
    let bad = IkTarget::Position(Vector3::new(f64::NAN, 0.0, 0.0));
    assert!(matches!(
        solver.solve(&tree, &bad, &[0.0; 4], &mut a),
        Err(IkError::Invalid(_))
    ));
}
