//! Scene loading: every kind of bad input gives an error naming the file and the element, and
//! no input panics (property test over mutated scene files).

use std::path::PathBuf;

use proptest::prelude::*;

use super::*;

const ARM_URDF: &str = r#"<robot name="two_link">
  <link name="base"><inertial><mass value="1"/><inertia ixx="0.01" ixy="0" ixz="0" iyy="0.01" iyz="0" izz="0.01"/></inertial>
    <visual><geometry><box size="0.1 0.1 0.1"/></geometry></visual></link>
  <link name="upper"><inertial><origin xyz="0 0 0.2"/><mass value="1"/><inertia ixx="0.01" ixy="0" ixz="0" iyy="0.01" iyz="0" izz="0.001"/></inertial>
    <collision><origin xyz="0 0 0.2"/><geometry><cylinder radius="0.03" length="0.4"/></geometry></collision></link>
  <link name="lower"><inertial><origin xyz="0 0 0.15"/><mass value="0.5"/><inertia ixx="0.005" ixy="0" ixz="0" iyy="0.005" iyz="0" izz="0.001"/></inertial></link>
  <joint name="shoulder" type="revolute"><parent link="base"/><child link="upper"/><origin xyz="0 0 0.05"/><axis xyz="0 1 0"/>
    <limit lower="-2" upper="2" effort="50" velocity="3"/><dynamics damping="0.5" friction="0.1"/></joint>
  <joint name="elbow" type="revolute"><parent link="upper"/><child link="lower"/><origin xyz="0 0 0.4"/><axis xyz="0 1 0"/>
    <limit lower="-2.5" upper="2.5" effort="20" velocity="3"/></joint>
</robot>"#;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("arm.urdf"), ARM_URDF).unwrap();
        Self { dir }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn load(&self, text: &str) -> Result<Scene, SimError> {
        let p = self.write("scene.toml", text);
        Scene::load(&p, &PackagePaths::default())
    }
}

const GOOD: &str = r#"
[world]
timestep_secs = 0.002

[[robot]]
name = "arm"
urdf = "arm.urdf"
initial_joints = { shoulder = 0.3 }

[robot.joints.elbow]
kp = 100.0

[[prop]]
name = "brick"
shape = { box = { size = [0.2, 0.1, 0.06] } }
position = [0.5, 0.0, 0.03]
mass = 2.3

[[actor]]
name = "worker"
shape = { capsule = { radius = 0.25, length = 1.2 } }
path = [[0.0, 2.0, 0.85], [4.0, 2.0, 0.85]]
speed = 1.0
"#;

fn message(e: SimError) -> String {
    e.to_string()
}

#[test]
fn good_scene_resolves_defaults_from_the_urdf() {
    let f = Fixture::new();
    let scene = f.load(GOOD).unwrap();
    let arm = &scene.robots[0];
    assert_eq!(arm.model.dofs.len(), 2);
    assert_eq!(arm.initial_positions, vec![0.3, 0.0]);
    let shoulder = &arm.actuators[0];
    assert_eq!(shoulder.effort_limit, 50.0);
    assert_eq!(shoulder.velocity_limit, 3.0);
    assert_eq!(shoulder.damping, 0.5);
    assert_eq!(shoulder.friction, 0.1);
    assert_eq!(shoulder.kp, None);
    assert_eq!(arm.actuators[1].kp, Some(100.0));
    assert_eq!(scene.props[0].mass_kg, Some(2.3));
    assert_eq!(scene.content_hash.len(), 64);
}

#[test]
fn malformed_toml_reports_line_and_column() {
    let f = Fixture::new();
    let e = message(f.load("[world]\ntimestep_secs = = 0.1\n").unwrap_err());
    assert!(e.contains("scene.toml:2:"), "{e}");
}

#[test]
fn unknown_keys_are_rejected_with_their_position() {
    let f = Fixture::new();
    let e = message(f.load("[world]\ntimestep = 0.01\n").unwrap_err());
    assert!(
        e.contains("scene.toml:2:1") && e.contains("timestep"),
        "{e}"
    );
    let e = message(
        f.load(&GOOD.replace("mass = 2.3", "mass = 2.3\nmas = 1.0"))
            .unwrap_err(),
    );
    assert!(e.contains("mas"), "{e}");
}

#[test]
fn missing_robot_file_names_the_path() {
    let f = Fixture::new();
    let e = message(f.load(&GOOD.replace("arm.urdf", "nope.urdf")).unwrap_err());
    assert!(e.contains("nope.urdf") && e.contains("cannot read"), "{e}");
}

#[test]
fn unknown_joint_names_are_rejected() {
    let f = Fixture::new();
    let e = message(
        f.load(&GOOD.replace("shoulder = 0.3", "wrist = 0.3"))
            .unwrap_err(),
    );
    assert!(e.contains("initial_joints.wrist"), "{e}");
}

#[test]
fn out_of_range_values_name_the_element() {
    let f = Fixture::new();
    for (from, to, expect) in [
        ("mass = 2.3", "mass = -1.0", "prop[0] 'brick'.mass"),
        (
            "timestep_secs = 0.002",
            "timestep_secs = 0.0",
            "world.timestep_secs",
        ),
        (
            "shoulder = 0.3",
            "shoulder = 3.0",
            "outside the joint limits",
        ),
        ("speed = 1.0", "speed = -1.0", "actor[0] 'worker'.speed"),
        ("kp = 100.0", "kp = -5.0", "joints.elbow.kp"),
        (
            "size = [0.2, 0.1, 0.06]",
            "size = [0.2, 0.0, 0.06]",
            "shape.size",
        ),
    ] {
        let text = GOOD.replace(from, to);
        assert_ne!(text, GOOD, "{from}");
        let e = message(f.load(&text).unwrap_err());
        assert!(e.contains(expect), "{from} -> {to}: {e}");
    }
}

fn urdf_error(f: &Fixture, urdf: &str) -> String {
    let p = f.write("bad.urdf", urdf);
    message(RobotModel::load(&p, &PackagePaths::default()).unwrap_err())
}

#[test]
fn urdf_with_a_missing_link_is_rejected() {
    let f = Fixture::new();
    let e = urdf_error(
        &f,
        &ARM_URDF.replace(r#"<child link="lower"/>"#, r#"<child link="forearm"/>"#),
    );
    assert!(e.contains("joint 'elbow'") && e.contains("forearm"), "{e}");
}

#[test]
fn urdf_with_a_cycle_is_rejected() {
    let f = Fixture::new();
    let cyclic = ARM_URDF.replace(
        "</robot>",
        r#"<joint name="loop" type="fixed"><parent link="lower"/><child link="base"/></joint></robot>"#,
    );
    let e = urdf_error(&f, &cyclic);
    assert!(e.contains("cycle"), "{e}");
}

#[test]
fn urdf_with_a_negative_or_nan_mass_is_rejected() {
    let f = Fixture::new();
    let e = urdf_error(
        &f,
        &ARM_URDF.replacen(r#"<mass value="1"/>"#, r#"<mass value="-1"/>"#, 1),
    );
    assert!(e.contains("link 'base'") && e.contains("mass"), "{e}");
    let e = urdf_error(
        &f,
        &ARM_URDF.replacen(r#"<mass value="1"/>"#, r#"<mass value="NaN"/>"#, 1),
    );
    assert!(e.contains("link 'base'"), "{e}");
}

#[test]
fn urdf_with_inverted_limits_is_rejected() {
    let f = Fixture::new();
    let e = urdf_error(
        &f,
        &ARM_URDF.replace(r#"lower="-2" upper="2""#, r#"lower="2" upper="-2""#),
    );
    assert!(
        e.contains("joint 'shoulder'") && e.contains("lower is greater"),
        "{e}"
    );
}

#[test]
fn urdf_that_is_not_xml_is_rejected() {
    let f = Fixture::new();
    let e = urdf_error(&f, "<robot name=");
    assert!(e.contains("bad.urdf"), "{e}");
}

#[test]
fn missing_mesh_lists_the_searched_paths() {
    let f = Fixture::new();
    let urdf = ARM_URDF.replace(
        r#"<box size="0.1 0.1 0.1"/>"#,
        r#"<mesh filename="package://tools/meshes/base.stl"/>"#,
    );
    let p = f.write("mesh.urdf", &urdf);
    let packages = PackagePaths::new([f.dir.path().to_path_buf()]);
    let e = message(RobotModel::load(&p, &packages).unwrap_err());
    assert!(
        e.contains("package://tools/meshes/base.stl") && e.contains("tools/meshes/base.stl"),
        "{e}"
    );
}

#[test]
fn package_uris_resolve_by_package_name() {
    let f = Fixture::new();
    let mesh_dir = f.dir.path().join("pkgs/tools/meshes");
    std::fs::create_dir_all(&mesh_dir).unwrap();
    // A unit right-angled tetrahedron as ASCII STL.
    let stl = "solid t\nfacet normal 0 0 -1\nouter loop\nvertex 0 0 0\nvertex 0 1 0\nvertex 1 0 0\nendloop\nendfacet\n\
               facet normal 0 -1 0\nouter loop\nvertex 0 0 0\nvertex 1 0 0\nvertex 0 0 1\nendloop\nendfacet\n\
               facet normal -1 0 0\nouter loop\nvertex 0 0 0\nvertex 0 0 1\nvertex 0 1 0\nendloop\nendfacet\n\
               facet normal 1 1 1\nouter loop\nvertex 1 0 0\nvertex 0 1 0\nvertex 0 0 1\nendloop\nendfacet\nendsolid t\n";
    std::fs::write(mesh_dir.join("base.stl"), stl).unwrap();
    let urdf = ARM_URDF.replace(
        r#"<box size="0.1 0.1 0.1"/>"#,
        r#"<mesh filename="package://tools/meshes/base.stl" scale="2 2 2"/>"#,
    );
    let p = f.write("mesh.urdf", &urdf);
    let packages = PackagePaths::new([f.dir.path().join("pkgs")]);
    let model = RobotModel::load(&p, &packages).unwrap();
    match &model.links[0].visuals[0].geometry {
        Geometry::Mesh(mesh) => {
            assert_eq!(mesh.triangles.len(), 4);
            let max = mesh
                .positions
                .iter()
                .flatten()
                .fold(0.0f32, |a, &b| a.max(b));
            assert_eq!(max, 2.0);
        }
        other => panic!("expected a mesh, got {other:?}"),
    }
}

#[test]
fn mimic_joints_are_read() {
    let f = Fixture::new();
    let urdf = ARM_URDF.replace(
        r#"<limit lower="-2.5" upper="2.5" effort="20" velocity="3"/></joint>"#,
        r#"<limit lower="-2.5" upper="2.5" effort="20" velocity="3"/><mimic joint="shoulder" multiplier="-1" offset="0.1"/></joint>"#,
    );
    let p = f.write("mimic.urdf", &urdf);
    let model = RobotModel::load(&p, &PackagePaths::default()).unwrap();
    let elbow = &model.joints[1];
    let mimic = elbow.mimic.unwrap();
    assert_eq!(
        (mimic.joint.0, mimic.multiplier, mimic.offset),
        (0, -1.0, 0.1)
    );
    // A mimic joint is driven by its leader, not by an actuator.
    assert_eq!(model.dofs.len(), 1);
    let bad = urdf.replace(r#"mimic joint="shoulder""#, r#"mimic joint="ghost""#);
    let e = urdf_error(&f, &bad);
    assert!(e.contains("ghost"), "{e}");
}

/// Replaces the byte range `[at, at+len)` of `text` (clamped to char boundaries).
fn splice(text: &str, at: usize, len: usize, with: &str) -> String {
    let mut start = at.min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (start + len).min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    format!("{}{}{}", &text[..start], with, &text[end..])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any edit of a valid scene either loads or returns an error; it never panics.
    #[test]
    fn mutated_scenes_never_panic(
        at in 0usize..GOOD.len(),
        len in 0usize..12,
        with in prop_oneof![
            Just(String::new()), Just("-".to_string()), Just("nan".to_string()),
            Just("1e309".to_string()), Just("]".to_string()), Just("\"".to_string()),
            Just("[[prop]]\n".to_string()), Just("0".to_string()), "[ -~]{0,6}",
        ],
    ) {
        let f = Fixture::new();
        let text = splice(GOOD, at, len, &with);
        let _ = f.load(&text);
    }

    /// Arbitrary numbers in numeric fields are accepted only when they are valid.
    #[test]
    fn arbitrary_numbers_are_validated(mass in proptest::num::f64::ANY, speed in proptest::num::f64::ANY) {
        let f = Fixture::new();
        let text = GOOD
            .replace("mass = 2.3", &format!("mass = {mass:?}"))
            .replace("speed = 1.0", &format!("speed = {speed:?}"));
        match f.load(&text) {
            Ok(scene) => {
                prop_assert!(mass.is_finite() && mass > 0.0);
                prop_assert!(speed.is_finite() && speed > 0.0);
                prop_assert_eq!(scene.props[0].mass_kg, Some(mass));
            }
            Err(e) => prop_assert!(!(mass.is_finite() && mass > 0.0 && speed.is_finite() && speed > 0.0), "{e}"),
        }
    }
}

#[test]
fn schema_covers_every_section() {
    let schema = json_schema().to_string();
    for key in [
        "timestep_secs",
        "initial_joints",
        "effort_limit",
        "link_friction",
        "restitution",
        "speed",
    ] {
        assert!(schema.contains(key), "{key}");
    }
}
