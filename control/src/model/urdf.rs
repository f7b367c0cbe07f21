//! Building a [`RobotTree`] from a parsed URDF, validating everything the algorithms rely on.

use std::collections::{BTreeMap, BTreeSet};

use nalgebra::{Isometry3, Matrix3, Translation3, UnitQuaternion, Vector3};

use super::{
    Body, Frame, Joint, JointId, JointKind, Link, LinkId, Mimic, Motion, RobotTree, SoftLimits,
};

/// A robot description that cannot be turned into a tree: which element and what is wrong.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{element}: {message}")]
pub struct ModelError {
    /// The element at fault (e.g. `joint 'elbow'`, `link 'forearm'`, `robot`).
    pub element: String,
    /// What is wrong.
    pub message: String,
}

fn err(element: impl Into<String>, message: impl Into<String>) -> ModelError {
    ModelError {
        element: element.into(),
        message: message.into(),
    }
}

fn finite3(v: &[f64; 3]) -> bool {
    v.iter().all(|x| x.is_finite())
}

/// URDF `<origin xyz rpy>` as an isometry (fixed-axis roll, pitch, yaw).
pub(crate) fn pose(origin: &urdf_rs::Pose) -> Isometry3<f64> {
    let [x, y, z] = *origin.xyz;
    let [r, p, yw] = *origin.rpy;
    Isometry3::from_parts(
        Translation3::new(x, y, z),
        UnitQuaternion::from_euler_angles(r, p, yw),
    )
}

impl RobotTree {
    /// Builds and validates a tree from a parsed URDF.
    pub fn from_urdf(robot: &urdf_rs::Robot) -> Result<Self, ModelError> {
        let mut link_index: BTreeMap<&str, LinkId> = BTreeMap::new();
        let mut links = Vec::with_capacity(robot.links.len());
        if robot.links.is_empty() {
            return Err(err("robot", "the robot has no links"));
        }
        for (i, link) in robot.links.iter().enumerate() {
            let element = format!("link '{}'", link.name);
            if link_index
                .insert(link.name.as_str(), LinkId(i as u32))
                .is_some()
            {
                return Err(err(element, "duplicate link name"));
            }
            let inertial = &link.inertial;
            let mass = inertial.mass.value;
            if !mass.is_finite() || mass < 0.0 {
                return Err(err(
                    element,
                    format!("<mass value=\"{mass}\">: mass must be finite and >= 0 kg"),
                ));
            }
            let i3 = &inertial.inertia;
            let terms = [i3.ixx, i3.ixy, i3.ixz, i3.iyy, i3.iyz, i3.izz];
            if terms.iter().any(|t| !t.is_finite()) || i3.ixx < 0.0 || i3.iyy < 0.0 || i3.izz < 0.0
            {
                return Err(err(
                    element,
                    format!(
                        "<inertia>: {terms:?} must be finite with non-negative diagonal (kg·m²)"
                    ),
                ));
            }
            if !finite3(&inertial.origin.xyz) || !finite3(&inertial.origin.rpy) {
                return Err(err(element, "<inertial><origin> is not finite"));
            }
            let frame = pose(&inertial.origin);
            let r = frame.rotation.to_rotation_matrix().into_inner();
            let local = Matrix3::new(
                i3.ixx, i3.ixy, i3.ixz, i3.ixy, i3.iyy, i3.iyz, i3.ixz, i3.iyz, i3.izz,
            );
            links.push(Link {
                name: link.name.clone(),
                parent_joint: None,
                mass,
                com: frame.translation.vector,
                inertia: r * local * r.transpose(),
            });
        }

        let mut joint_index: BTreeMap<&str, usize> = BTreeMap::new();
        let mut joints: Vec<Joint> = Vec::with_capacity(robot.joints.len());
        for (j, joint) in robot.joints.iter().enumerate() {
            let element = format!("joint '{}'", joint.name);
            if joint_index.insert(joint.name.as_str(), j).is_some() {
                return Err(err(element, "duplicate joint name"));
            }
            let find = |name: &str, role: &str| {
                link_index.get(name).copied().ok_or_else(|| {
                    err(
                        element.clone(),
                        format!("<{role} link=\"{name}\">: no such link"),
                    )
                })
            };
            let parent = find(&joint.parent.link, "parent")?;
            let child = find(&joint.child.link, "child")?;
            if parent == child {
                return Err(err(element, "parent and child are the same link"));
            }
            if let Some(previous) = links[child.0 as usize].parent_joint {
                return Err(err(
                    element,
                    format!(
                        "link '{}' already has parent joint '{}': a URDF must be a tree",
                        joint.child.link, robot.joints[previous.0 as usize].name
                    ),
                ));
            }
            links[child.0 as usize].parent_joint = Some(JointId(j as u32));
            let kind = match joint.joint_type {
                urdf_rs::JointType::Fixed => JointKind::Fixed,
                urdf_rs::JointType::Revolute => JointKind::Revolute,
                urdf_rs::JointType::Continuous => JointKind::Continuous,
                urdf_rs::JointType::Prismatic => JointKind::Prismatic,
                ref other => {
                    return Err(err(
                        element,
                        format!(
                            "joint type {other:?} is not supported (use fixed, revolute, continuous or prismatic)"
                        ),
                    ));
                }
            };
            if !finite3(&joint.origin.xyz) || !finite3(&joint.origin.rpy) {
                return Err(err(element, "<origin> is not finite"));
            }
            let a = *joint.axis.xyz;
            let norm = (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt();
            if kind != JointKind::Fixed && (!norm.is_finite() || norm < 1e-9) {
                return Err(err(
                    element,
                    format!("<axis xyz=\"{a:?}\"> must be a finite non-zero vector"),
                ));
            }
            let axis = if norm > 1e-9 && norm.is_finite() {
                Vector3::new(a[0] / norm, a[1] / norm, a[2] / norm)
            } else {
                Vector3::x()
            };
            let limit = &joint.limit;
            for (name, value) in [
                ("lower", limit.lower),
                ("upper", limit.upper),
                ("effort", limit.effort),
                ("velocity", limit.velocity),
            ] {
                if !value.is_finite() {
                    return Err(err(
                        element,
                        format!("<limit {name}=\"{value}\"> is not finite"),
                    ));
                }
            }
            if limit.effort < 0.0 || limit.velocity < 0.0 {
                return Err(err(
                    element,
                    format!(
                        "<limit effort=\"{}\" velocity=\"{}\">: must be >= 0",
                        limit.effort, limit.velocity
                    ),
                ));
            }
            let limits = if matches!(kind, JointKind::Revolute | JointKind::Prismatic) {
                if limit.lower > limit.upper {
                    return Err(err(
                        element,
                        format!(
                            "<limit lower=\"{}\" upper=\"{}\">: lower is greater than upper",
                            limit.lower, limit.upper
                        ),
                    ));
                }
                Some([limit.lower, limit.upper])
            } else {
                None
            };
            let (damping, friction) = joint
                .dynamics
                .as_ref()
                .map_or((0.0, 0.0), |d| (d.damping, d.friction));
            if !(damping.is_finite() && damping >= 0.0 && friction.is_finite() && friction >= 0.0) {
                return Err(err(
                    element,
                    format!(
                        "<dynamics damping=\"{damping}\" friction=\"{friction}\">: must be finite and >= 0"
                    ),
                ));
            }
            let soft_limits = match &joint.safety_controller {
                Some(s) => {
                    let values = [
                        s.soft_lower_limit,
                        s.soft_upper_limit,
                        s.k_position,
                        s.k_velocity,
                    ];
                    if values.iter().any(|v| !v.is_finite())
                        || s.soft_lower_limit > s.soft_upper_limit
                        || s.k_position < 0.0
                        || s.k_velocity < 0.0
                    {
                        return Err(err(
                            element,
                            format!(
                                "<safety_controller>: {values:?} must be finite with soft_lower_limit <= soft_upper_limit and non-negative gains"
                            ),
                        ));
                    }
                    Some(SoftLimits {
                        lower: s.soft_lower_limit,
                        upper: s.soft_upper_limit,
                        k_position: s.k_position,
                        k_velocity: s.k_velocity,
                    })
                }
                None => None,
            };
            joints.push(Joint {
                name: joint.name.clone(),
                kind,
                parent,
                child,
                origin: pose(&joint.origin),
                axis,
                limits,
                effort_limit: (limit.effort > 0.0).then_some(limit.effort),
                velocity_limit: (limit.velocity > 0.0).then_some(limit.velocity),
                damping,
                friction,
                soft_limits,
                mimic: None,
                dof: None,
            });
        }

        // Mimic relations, resolved once all joint names are known.
        for (j, joint) in robot.joints.iter().enumerate() {
            if let Some(mimic) = &joint.mimic {
                let element = format!("joint '{}'", joint.name);
                let Some(&leader) = joint_index.get(mimic.joint.as_str()) else {
                    return Err(err(
                        element,
                        format!("<mimic joint=\"{}\">: no such joint", mimic.joint),
                    ));
                };
                let multiplier = mimic.multiplier.unwrap_or(1.0);
                let offset = mimic.offset.unwrap_or(0.0);
                if leader == j
                    || !joints[j].kind.is_actuatable()
                    || !joints[leader].kind.is_actuatable()
                    || robot.joints[leader].mimic.is_some()
                    || !multiplier.is_finite()
                    || !offset.is_finite()
                {
                    return Err(err(
                        element,
                        format!(
                            "<mimic joint=\"{}\">: a mimic must follow a different one-DoF joint that is not itself a mimic, with finite multiplier and offset",
                            mimic.joint
                        ),
                    ));
                }
                joints[j].mimic = Some(Mimic {
                    joint: JointId(leader as u32),
                    multiplier,
                    offset,
                });
            }
        }

        // Coordinates: independent one-DoF joints in file order.
        let mut dof_joints = Vec::new();
        for (j, joint) in joints.iter_mut().enumerate() {
            if joint.kind.is_actuatable() && joint.mimic.is_none() {
                joint.dof = Some(dof_joints.len());
                dof_joints.push(JointId(j as u32));
            }
        }
        for j in 0..joints.len() {
            if let Some(m) = joints[j].mimic {
                joints[j].dof = joints[m.joint.0 as usize].dof;
            }
        }

        // Tree shape: exactly one root, every link reachable from it.
        let roots: Vec<usize> = (0..links.len())
            .filter(|&i| links[i].parent_joint.is_none())
            .collect();
        let root = match roots.as_slice() {
            [r] => *r,
            [] => return Err(err("robot", "no root link: the joints form a cycle")),
            many => {
                let names: Vec<&str> = many.iter().map(|&i| links[i].name.as_str()).collect();
                return Err(err(
                    "robot",
                    format!("several root links {names:?}: a URDF must be one connected tree"),
                ));
            }
        };
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); links.len()];
        for (j, joint) in joints.iter().enumerate() {
            children[joint.parent.0 as usize].push(j);
        }

        // Breadth-first over links, merging fixed joints into their parent's body.
        let mut bodies = vec![Body {
            parent: usize::MAX,
            motion: Motion::Root,
            origin: Isometry3::identity(),
            axis: Vector3::z(),
            dof: 0,
            mult: 0.0,
            offset: 0.0,
            mass: 0.0,
            com: Vector3::zeros(),
            inertia: Matrix3::zeros(),
        }];
        let mut link_body: Vec<Option<(usize, Isometry3<f64>)>> = vec![None; links.len()];
        link_body[root] = Some((0, Isometry3::identity()));
        let mut queue = std::collections::VecDeque::from([root]);
        let mut seen = BTreeSet::from([root]);
        while let Some(l) = queue.pop_front() {
            let (body, in_body) = link_body[l].expect("visited links have a body");
            for &j in &children[l] {
                let joint = &joints[j];
                let c = joint.child.0 as usize;
                if !seen.insert(c) {
                    return Err(err(
                        format!("joint '{}'", joint.name),
                        "the joints form a cycle",
                    ));
                }
                let origin = in_body * joint.origin;
                if joint.kind == JointKind::Fixed {
                    link_body[c] = Some((body, origin));
                } else {
                    let (dof, mult, offset) = match joint.mimic {
                        Some(m) => (joint.dof.unwrap_or(0), m.multiplier, m.offset),
                        None => (joint.dof.unwrap_or(0), 1.0, 0.0),
                    };
                    bodies.push(Body {
                        parent: body,
                        motion: if joint.kind == JointKind::Prismatic {
                            Motion::Prismatic
                        } else {
                            Motion::Revolute
                        },
                        origin,
                        axis: joint.axis,
                        dof,
                        mult,
                        offset,
                        mass: 0.0,
                        com: Vector3::zeros(),
                        inertia: Matrix3::zeros(),
                    });
                    link_body[c] = Some((bodies.len() - 1, Isometry3::identity()));
                }
                queue.push_back(c);
            }
        }
        if seen.len() != links.len() {
            let unreachable: Vec<&str> = (0..links.len())
                .filter(|i| !seen.contains(i))
                .map(|i| links[i].name.as_str())
                .collect();
            return Err(err(
                "robot",
                format!("links {unreachable:?} are on a cycle, not reachable from the root"),
            ));
        }
        let link_body: Vec<(usize, Isometry3<f64>)> = link_body
            .into_iter()
            .map(|b| b.expect("all reached"))
            .collect();

        // Merge link inertias into their bodies (parallel-axis theorem).
        for (l, link) in links.iter().enumerate() {
            let (b, in_body) = link_body[l];
            let r = in_body.rotation.to_rotation_matrix().into_inner();
            let com = in_body * nalgebra::Point3::from(link.com);
            add_inertia(
                &mut bodies[b],
                link.mass,
                com.coords,
                r * link.inertia * r.transpose(),
            );
        }

        let frames = links
            .iter()
            .enumerate()
            .map(|(l, link)| Frame {
                name: link.name.clone(),
                link: LinkId(l as u32),
                offset: Isometry3::identity(),
                body: link_body[l].0,
                in_body: link_body[l].1,
            })
            .collect();

        Ok(Self {
            name: robot.name.clone(),
            links,
            joints,
            frames,
            root: LinkId(root as u32),
            gravity: Vector3::new(0.0, 0.0, -9.81),
            dof_joints,
            bodies,
            link_body,
        })
    }
}

/// Adds a mass `m` with centre `c` and inertia `i` about `c` (body axes) to a body.
fn add_inertia(body: &mut Body, m: f64, c: Vector3<f64>, i: Matrix3<f64>) {
    let total = body.mass + m;
    if total <= 0.0 {
        return;
    }
    let com = (body.com * body.mass + c * m) / total;
    let shift =
        |mass: f64, d: Vector3<f64>| mass * (Matrix3::identity() * d.dot(&d) - d * d.transpose());
    body.inertia = body.inertia + shift(body.mass, body.com - com) + i + shift(m, c - com);
    body.mass = total;
    body.com = com;
}
