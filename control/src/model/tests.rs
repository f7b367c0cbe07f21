//! Model tests: validation errors, Jacobians against finite differences of forward kinematics,
//! inverse dynamics against the mass matrix, and energy consistency.
//!
//! Some tests read the UR5 and Panda from `../shared/example-robot-data` (outside the repo);
//! they skip with a message when it is absent, and fail when `CI` is set.

use nalgebra::{DVector, Isometry3, Matrix6xX, Vector3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;

/// A small arm exercising every feature: revolute, prismatic, continuous, fixed, mimic, offset
/// inertial frames.
pub(crate) const TEST_ARM: &str = r#"<robot name="t">
  <link name="base"><inertial><mass value="2"/><inertia ixx="0.1" ixy="0" ixz="0" iyy="0.1" iyz="0" izz="0.1"/></inertial></link>
  <link name="l1"><inertial><origin xyz="0.1 0.02 0.3" rpy="0.1 0.2 0.3"/><mass value="3"/><inertia ixx="0.05" ixy="0.001" ixz="0.002" iyy="0.04" iyz="0.003" izz="0.03"/></inertial></link>
  <link name="l2"><inertial><origin xyz="0.2 0 0" rpy="0 0 0"/><mass value="1.5"/><inertia ixx="0.01" ixy="0" ixz="0" iyy="0.02" iyz="0" izz="0.02"/></inertial></link>
  <link name="l3"><inertial><origin xyz="0 0 0.05" rpy="0 0 0"/><mass value="0.8"/><inertia ixx="0.002" ixy="0" ixz="0" iyy="0.002" iyz="0" izz="0.001"/></inertial></link>
  <link name="l4"><inertial><origin xyz="0.01 0.01 0.01" rpy="0 0 0"/><mass value="0.3"/><inertia ixx="0.001" ixy="0" ixz="0" iyy="0.001" iyz="0" izz="0.001"/></inertial></link>
  <link name="tool"><inertial><origin xyz="0 0 0.02" rpy="0 0 0"/><mass value="0.2"/><inertia ixx="0.0001" ixy="0" ixz="0" iyy="0.0001" iyz="0" izz="0.0001"/></inertial></link>
  <link name="finger"><inertial><mass value="0.05"/><inertia ixx="0.00001" ixy="0" ixz="0" iyy="0.00001" iyz="0" izz="0.00001"/></inertial></link>
  <joint name="j1" type="revolute"><parent link="base"/><child link="l1"/><origin xyz="0 0 0.1" rpy="0 0 0.2"/><axis xyz="0 0 1"/><limit lower="-3" upper="3" effort="100" velocity="2"/></joint>
  <joint name="j2" type="revolute"><parent link="l1"/><child link="l2"/><origin xyz="0 0.1 0.4" rpy="0.3 0 0"/><axis xyz="0 1 1"/><limit lower="-2" upper="2" effort="100" velocity="2"/>
    <safety_controller soft_lower_limit="-1.9" soft_upper_limit="1.9" k_position="10" k_velocity="5"/></joint>
  <joint name="j3" type="prismatic"><parent link="l2"/><child link="l3"/><origin xyz="0.4 0 0" rpy="0 0.5 0"/><axis xyz="1 0 0"/><limit lower="0" upper="0.3" effort="100" velocity="1"/></joint>
  <joint name="j4" type="continuous"><parent link="l3"/><child link="l4"/><origin xyz="0 0 0.1" rpy="0 0 0"/><axis xyz="0 0 1"/></joint>
  <joint name="fixed_tool" type="fixed"><parent link="l4"/><child link="tool"/><origin xyz="0 0.05 0.1" rpy="0.4 0 0"/></joint>
  <joint name="j5" type="revolute"><parent link="tool"/><child link="finger"/><origin xyz="0 0 0.05" rpy="0 0 0"/><axis xyz="1 0 0"/><limit lower="-1" upper="1" effort="10" velocity="1"/><mimic joint="j4" multiplier="-0.5" offset="0.1"/></joint>
</robot>"#;

/// The shared example-robot-data URDF `rel`, or `None` (with a message) when the shared
/// directory is absent outside CI.
pub(crate) fn shared_urdf(rel: &str) -> Option<RobotTree> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/example-robot-data/robots")
        .join(rel);
    if !path.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{} is missing and CI is set",
            path.display()
        );
        eprintln!("skipping: {} not found (needs ../shared)", path.display());
        return None;
    }
    Some(RobotTree::from_urdf_file(&path).expect("shared URDF loads"))
}

pub(crate) fn random_q(tree: &RobotTree, rng: &mut ChaCha8Rng) -> Vec<f64> {
    tree.position_limits()
        .iter()
        .map(|&[lo, hi]| {
            let (lo, hi) = (lo.max(-std::f64::consts::PI), hi.min(std::f64::consts::PI));
            rng.random_range(lo..=hi)
        })
        .collect()
}

fn trees() -> Vec<RobotTree> {
    let mut out = vec![RobotTree::from_urdf_str(TEST_ARM).unwrap()];
    out.extend(shared_urdf("ur_description/urdf/ur5_robot.urdf"));
    out.extend(shared_urdf("panda_description/urdf/panda.urdf"));
    out
}

#[test]
fn test_arm_structure() {
    let tree = RobotTree::from_urdf_str(TEST_ARM).unwrap();
    assert_eq!(tree.dof_count(), 4);
    assert_eq!(tree.links.len(), 7);
    // base + j1..j5 moving; the tool link is welded to l4.
    assert_eq!(tree.bodies.len(), 6);
    let j5 = &tree.joints[tree.joint_by_name("j5").unwrap().0 as usize];
    assert_eq!(j5.dof, Some(3));
    assert_eq!(j5.position(&[0.0, 0.0, 0.0, 1.0]), -0.4);
    let j2 = &tree.joints[1];
    assert_eq!(j2.soft_limits.unwrap().k_position, 10.0);
    assert!((tree.total_mass() - 7.85).abs() < 1e-12);
}

#[test]
fn bad_urdfs_name_the_element() {
    let cases = [
        (
            TEST_ARM.replace(r#"<mass value="3"/>"#, r#"<mass value="-3"/>"#),
            "link 'l1'",
            "mass",
        ),
        (
            TEST_ARM.replace(r#"<child link="l2"/>"#, r#"<child link="nope"/>"#),
            "joint 'j2'",
            "no such link",
        ),
        (
            TEST_ARM.replace(r#"lower="0" upper="0.3""#, r#"lower="0.5" upper="0.3""#),
            "joint 'j3'",
            "lower is greater",
        ),
        (
            TEST_ARM.replace(
                r#"<axis xyz="1 0 0"/><limit lower="0""#,
                r#"<axis xyz="0 0 0"/><limit lower="0""#,
            ),
            "joint 'j3'",
            "axis",
        ),
        (
            TEST_ARM.replace(r#"<mimic joint="j4""#, r#"<mimic joint="j9""#),
            "joint 'j5'",
            "no such joint",
        ),
        (
            TEST_ARM.replace(
                r#"<parent link="l3"/><child link="l4"/>"#,
                r#"<parent link="l4"/><child link="l3"/>"#,
            ),
            "joint 'j4'",
            "already has parent",
        ),
        (
            TEST_ARM.replace(r#"<link name="finger">"#, r#"<link name="tool">"#),
            "link 'tool'",
            "duplicate",
        ),
        (
            TEST_ARM.replace(r#"k_position="10""#, r#"k_position="NaN""#),
            "joint 'j2'",
            "safety_controller",
        ),
        (
            "<robot name=\"x\"><link name=\"a\"/><link name=\"b\"/></robot>".to_string(),
            "robot",
            "several root links",
        ),
        ("not xml".to_string(), "robot", "not a valid URDF"),
    ];
    for (text, element, needle) in cases {
        let e = RobotTree::from_urdf_str(&text).expect_err(needle);
        assert_eq!(e.element, element, "{e}");
        assert!(e.message.contains(needle), "{e}");
    }
}

/// Pose difference as (position error, rotation angle).
fn pose_distance(a: &Isometry3<f64>, b: &Isometry3<f64>) -> (f64, f64) {
    (
        (a.translation.vector - b.translation.vector).norm(),
        a.rotation.angle_to(&b.rotation),
    )
}

#[test]
fn forward_kinematics_composes_urdf_origins() {
    // Independent check: walk the URDF joints link by link with plain isometries.
    let tree = RobotTree::from_urdf_str(TEST_ARM).unwrap();
    let mut data = tree.data();
    let q = [0.3, -0.7, 0.12, 1.1];
    tree.forward_kinematics(&q, &mut data);
    let mut poses = vec![Isometry3::identity(); tree.links.len()];
    for joint in &tree.joints {
        let x = joint.position(&q);
        let motion = match joint.kind {
            JointKind::Prismatic => {
                Isometry3::translation(joint.axis.x * x, joint.axis.y * x, joint.axis.z * x)
            }
            JointKind::Fixed => Isometry3::identity(),
            _ => Isometry3::rotation(joint.axis * x),
        };
        poses[joint.child.0 as usize] = poses[joint.parent.0 as usize] * joint.origin * motion;
    }
    for (l, expected) in poses.iter().enumerate() {
        let got = tree.frame_pose(FrameId(l as u32), &data);
        let (dp, dr) = pose_distance(&got, expected);
        assert!(dp < 1e-12 && dr < 1e-12, "link {l}: {dp} {dr}");
    }
}

#[test]
fn jacobians_match_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for tree in trees() {
        let n = tree.dof_count();
        let mut data = tree.data();
        let mut jac = Matrix6xX::zeros(n);
        for _ in 0..20 {
            let q = random_q(&tree, &mut rng);
            tree.forward_kinematics(&q, &mut data);
            for f in 0..tree.frames.len() {
                let frame = FrameId(f as u32);
                tree.frame_jacobian(frame, &data, &mut jac);
                let base = tree.frame_pose(frame, &data);
                let h = 1e-6;
                for d in 0..n {
                    let mut qp = q.clone();
                    qp[d] += h;
                    let mut dp = tree.data();
                    tree.forward_kinematics(&qp, &mut dp);
                    let moved = tree.frame_pose(frame, &dp);
                    let lin = (moved.translation.vector - base.translation.vector) / h;
                    let ang = (moved.rotation * base.rotation.inverse()).scaled_axis() / h;
                    for r in 0..3 {
                        assert!(
                            (jac[(r, d)] - lin[r]).abs() < 1e-5,
                            "{} frame {f} dof {d}: linear {jac} vs {lin}",
                            tree.name
                        );
                        assert!(
                            (jac[(r + 3, d)] - ang[r]).abs() < 1e-5,
                            "{} frame {f} dof {d}: angular",
                            tree.name
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn inverse_dynamics_is_mass_matrix_plus_bias() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for tree in trees() {
        let n = tree.dof_count();
        let mut data = tree.data();
        for _ in 0..50 {
            let q = random_q(&tree, &mut rng);
            let qd: Vec<f64> = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
            let qdd: Vec<f64> = (0..n).map(|_| rng.random_range(-5.0..5.0)).collect();
            let tau = DVector::from_column_slice(tree.inverse_dynamics(&q, &qd, &qdd, &mut data));
            let bias = DVector::from_column_slice(tree.nonlinear_effects(&q, &qd, &mut data));
            let m = tree.mass_matrix(&q, &mut data).clone();
            let expected = &m * DVector::from_column_slice(&qdd) + &bias;
            assert!(
                (&tau - &expected).norm() < 1e-9 * (1.0 + tau.norm()),
                "{}: {tau} vs {expected}",
                tree.name
            );
            assert!((&m - m.transpose()).norm() < 1e-12);
            assert!(
                m.clone().cholesky().is_some(),
                "{}: M not positive definite",
                tree.name
            );
        }
    }
}

#[test]
fn gravity_torques_are_the_potential_energy_gradient() {
    // g(q) = dV/dq with V = -sum m_i gravity . com_i.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for tree in trees() {
        let mut data = tree.data();
        let energy = |q: &[f64]| {
            let mut d = tree.data();
            tree.forward_kinematics(q, &mut d);
            tree.links
                .iter()
                .enumerate()
                .map(|(l, link)| {
                    let com =
                        tree.frame_pose(FrameId(l as u32), &d) * nalgebra::Point3::from(link.com);
                    -link.mass * tree.gravity.dot(&com.coords)
                })
                .sum::<f64>()
        };
        for _ in 0..10 {
            let q = random_q(&tree, &mut rng);
            let g = tree.gravity_torques(&q, &mut data).to_vec();
            for d in 0..q.len() {
                let h = 1e-6;
                let (mut qp, mut qm) = (q.clone(), q.clone());
                qp[d] += h;
                qm[d] -= h;
                let fd = (energy(&qp) - energy(&qm)) / (2.0 * h);
                assert!(
                    (g[d] - fd).abs() < 1e-5 * (1.0 + fd.abs()),
                    "{} dof {d}: {} vs {fd}",
                    tree.name,
                    g[d]
                );
            }
        }
    }
}

#[test]
fn kinetic_energy_matches_body_velocities() {
    // 1/2 qd' M qd equals the sum of the bodies' kinetic energies computed from their velocities
    // (finite differences of forward kinematics).
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let tree = RobotTree::from_urdf_str(TEST_ARM).unwrap();
    let mut data = tree.data();
    for _ in 0..10 {
        let q = random_q(&tree, &mut rng);
        let qd: Vec<f64> = (0..q.len()).map(|_| rng.random_range(-1.0..1.0)).collect();
        let m = tree.mass_matrix(&q, &mut data).clone();
        let v = DVector::from_column_slice(&qd);
        let expected = 0.5 * v.dot(&(&m * &v));
        let h = 1e-7;
        let qp: Vec<f64> = q.iter().zip(&qd).map(|(a, b)| a + b * h).collect();
        let (mut d0, mut d1) = (tree.data(), tree.data());
        tree.forward_kinematics(&q, &mut d0);
        tree.forward_kinematics(&qp, &mut d1);
        let mut energy = 0.0;
        for (l, link) in tree.links.iter().enumerate() {
            let (a, b) = (
                tree.frame_pose(FrameId(l as u32), &d0),
                tree.frame_pose(FrameId(l as u32), &d1),
            );
            let c0 = a * nalgebra::Point3::from(link.com);
            let c1 = b * nalgebra::Point3::from(link.com);
            let vc = (c1 - c0) / h;
            let w = (b.rotation * a.rotation.inverse()).scaled_axis() / h;
            let r = a.rotation.to_rotation_matrix().into_inner();
            let inertia = r * link.inertia * r.transpose();
            energy += 0.5 * link.mass * vc.norm_squared() + 0.5 * w.dot(&(inertia * w));
        }
        assert!(
            (energy - expected).abs() < 1e-5 * (1.0 + expected),
            "{energy} vs {expected}"
        );
    }
}

#[test]
fn added_frames_ride_on_their_link() {
    let mut tree = RobotTree::from_urdf_str(TEST_ARM).unwrap();
    let tool = tree.link_by_name("tool").unwrap();
    let tcp = tree
        .add_frame("tcp", tool, Isometry3::translation(0.0, 0.0, 0.1))
        .unwrap();
    assert!(tree.add_frame("tcp", tool, Isometry3::identity()).is_err());
    let mut data = tree.data();
    tree.forward_kinematics(&[0.1, 0.2, 0.05, 0.4], &mut data);
    let expected =
        tree.frame_pose(tree.link_frame(tool), &data) * Isometry3::translation(0.0, 0.0, 0.1);
    let (dp, dr) = pose_distance(&tree.frame_pose(tcp, &data), &expected);
    assert!(dp < 1e-12 && dr < 1e-12);
    assert!(tree.dof_moves_frame(0, tcp) && tree.dof_moves_frame(3, tcp));
    let _ = Vector3::<f64>::zeros();
}
