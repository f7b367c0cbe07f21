//! Renderer correctness on a real adapter: depth against analytic ray intersections, ids,
//! determinism, batching. With `CI` set a missing adapter fails these tests; otherwise they
//! skip with a message.

use std::sync::Arc;

use nalgebra::{Isometry3, Point3, Translation3, UnitQuaternion, Vector3};

use super::*;

/// The shared GPU for tests, or `None` (skip) outside CI when there is no adapter.
pub(crate) fn test_gpu() -> Option<Arc<GpuContext>> {
    match GpuContext::new(AdapterChoice::Auto) {
        Ok(gpu) => {
            eprintln!("render tests on {:?}", gpu.adapter());
            Some(Arc::new(gpu))
        }
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("CI is set and no graphics adapter could be opened: {e}")
        }
        Err(e) => {
            eprintln!("skipping the render test: {e}");
            None
        }
    }
}

/// A camera at `eye` looking at `target` with world +z up in the image, as an OpenCV pose.
fn look_at(eye: [f64; 3], target: [f64; 3]) -> Isometry3<f64> {
    let eye = Point3::from(eye);
    let z = (Point3::from(target) - eye).normalize();
    let x = z.cross(&Vector3::z()).normalize();
    let y = z.cross(&x);
    let rotation = nalgebra::Rotation3::from_basis_unchecked(&[x, y, z]);
    Isometry3::from_parts(
        Translation3::from(eye.coords),
        UnitQuaternion::from_rotation_matrix(&rotation),
    )
}

/// Distance `t` along `origin + t dir` to a box (half extents `h`, pose `world_from_box`).
fn ray_box(
    origin: &Point3<f64>,
    dir: &Vector3<f64>,
    world_from_box: &Isometry3<f64>,
    h: [f64; 3],
) -> Option<f64> {
    let o = world_from_box.inverse_transform_point(origin);
    let d = world_from_box.inverse_transform_vector(dir);
    let (mut t0, mut t1) = (f64::NEG_INFINITY, f64::INFINITY);
    for a in 0..3 {
        if d[a].abs() < 1e-15 {
            if o[a].abs() > h[a] {
                return None;
            }
            continue;
        }
        let (ta, tb) = ((-h[a] - o[a]) / d[a], (h[a] - o[a]) / d[a]);
        t0 = t0.max(ta.min(tb));
        t1 = t1.min(ta.max(tb));
    }
    (t0 <= t1 && t0 > 0.0).then_some(t0)
}

/// Distance along the ray to the plane `n . p = c`.
fn ray_plane(origin: &Point3<f64>, dir: &Vector3<f64>, n: &Vector3<f64>, c: f64) -> Option<f64> {
    let denom = n.dot(dir);
    if denom.abs() < 1e-12 {
        return None;
    }
    let t = (c - n.dot(&origin.coords)) / denom;
    (t > 0.0).then_some(t)
}

struct BoxAndPlane {
    camera: CameraModel,
    world_from_camera: Isometry3<f64>,
    plane_pose: Isometry3<f64>,
    box_pose: Isometry3<f64>,
    half: [f64; 3],
}

fn box_and_plane() -> BoxAndPlane {
    let mut camera = CameraModel::from_fov(160, 120, 70.0, 0.05, 20.0);
    // An off-centre principal point and unequal focal lengths exercise the projection.
    camera.intrinsics.cx_px = 83.25;
    camera.intrinsics.cy_px = 57.5;
    camera.intrinsics.fy_px *= 1.05;
    BoxAndPlane {
        camera,
        world_from_camera: look_at([1.6, -1.1, 1.4], [0.0, 0.1, 0.1]),
        // A tilted plane through (0, 0, -0.05): 12° about x, then 7° about y.
        plane_pose: Isometry3::from_parts(
            Translation3::new(0.0, 0.0, -0.05),
            UnitQuaternion::from_euler_angles(0.21, 0.12, 0.0),
        ),
        box_pose: Isometry3::from_parts(
            Translation3::new(0.1, 0.05, 0.25),
            UnitQuaternion::from_euler_angles(0.3, -0.2, 0.7),
        ),
        half: [0.3, 0.2, 0.15],
    }
}

fn render_box_and_plane(gpu: &Arc<GpuContext>, s: &BoxAndPlane) -> Frame {
    let meshes = [
        MeshData::plane(20.0),
        MeshData::cuboid(s.half.map(|x| x as f32)),
    ];
    let mut renderer =
        Renderer::new(gpu.clone(), &meshes, &[s.camera], 8, Lighting::default()).unwrap();
    let instances = [
        Instance {
            world: 0,
            mesh: MeshId(0),
            world_from_mesh: s.plane_pose,
            color: [0.5, 0.5, 0.5, 1.0],
            instance_id: 1,
            semantic_id: 10,
        },
        Instance {
            world: 0,
            mesh: MeshId(1),
            world_from_mesh: s.box_pose,
            color: [0.8, 0.3, 0.2, 1.0],
            instance_id: 2,
            semantic_id: 20,
        },
    ];
    let mut frame = renderer.new_frame();
    renderer
        .render(
            &instances,
            &[CameraPose {
                world: 0,
                world_from_camera: s.world_from_camera,
            }],
            &mut frame,
        )
        .unwrap();
    frame
}

#[test]
fn depth_and_ids_of_a_plane_and_a_box_match_analytic_ray_casts() {
    let Some(gpu) = test_gpu() else { return };
    let s = box_and_plane();
    let frame = render_box_and_plane(&gpu, &s);
    let images = &frame.cameras[0];
    let k = s.camera.intrinsics;
    let plane_normal = s.plane_pose.rotation * Vector3::z();
    let plane_c = plane_normal.dot(&s.plane_pose.translation.vector);
    let origin = Point3::from(s.world_from_camera.translation.vector);
    let (mut good_depth, mut good_ids, mut box_pixels, mut plane_pixels) = (0, 0, 0, 0);
    for v in 0..k.height_px {
        for u in 0..k.width_px {
            let i = (v * k.width_px + u) as usize;
            // Ray with unit z in the camera frame, so t is the depth along the optical axis.
            let d_in_camera = Vector3::new(
                (f64::from(u) - k.cx_px) / k.fx_px,
                (f64::from(v) - k.cy_px) / k.fy_px,
                1.0,
            );
            let dir = s.world_from_camera.rotation * d_in_camera;
            let hit_box = ray_box(&origin, &dir, &s.box_pose, s.half);
            let hit_plane = ray_plane(&origin, &dir, &plane_normal, plane_c);
            let (expected_depth, expected_ids) = match (hit_box, hit_plane) {
                (Some(tb), Some(tp)) if tb < tp => (tb, (2, 20)),
                (Some(tb), None) => (tb, (2, 20)),
                (_, Some(tp)) if tp <= s.camera.far_m => (tp, (1, 10)),
                _ => (0.0, (0, 0)),
            };
            match expected_ids.0 {
                2 => box_pixels += 1,
                1 => plane_pixels += 1,
                _ => {}
            }
            if (f64::from(images.depth_m[i]) - expected_depth).abs() < 1e-3 {
                good_depth += 1;
            }
            if (images.instance_id[i], images.semantic_id[i]) == expected_ids {
                good_ids += 1;
            }
        }
    }
    let n = k.pixel_count() as f64;
    assert!(
        box_pixels > 500 && plane_pixels > 5000,
        "{box_pixels} {plane_pixels}"
    );
    assert!(
        good_depth as f64 >= 0.99 * n,
        "depth within 1 mm on {good_depth} of {n} pixels"
    );
    assert!(
        good_ids as f64 >= 0.99 * n,
        "ids right on {good_ids} of {n} pixels"
    );
    // Lit: the box's faces differ in shade, the background is the sky colour.
    let mut shades: Vec<[u8; 4]> = (0..k.pixel_count())
        .filter(|&i| images.instance_id[i] == 2)
        .map(|i| images.rgba8[4 * i..4 * i + 4].try_into().unwrap())
        .collect();
    shades.sort_unstable();
    shades.dedup();
    assert!(shades.len() >= 2, "one shade on a lit box: {shades:?}");
}

#[test]
fn rendering_twice_gives_identical_bytes() {
    let Some(gpu) = test_gpu() else { return };
    let s = box_and_plane();
    let a = render_box_and_plane(&gpu, &s);
    let b = render_box_and_plane(&gpu, &s);
    assert!(a == b, "two renders of the same scene differ");
}

/// Many cameras of several worlds in one atlas give the same images as each camera alone.
#[test]
fn batched_cameras_match_single_cameras_and_see_only_their_world() {
    let Some(gpu) = test_gpu() else { return };
    let s = box_and_plane();
    let meshes = [MeshData::plane(20.0), MeshData::cuboid([0.3, 0.2, 0.15])];
    let instances: Vec<Instance> = (0..3u32)
        .flat_map(|w| {
            [
                Instance {
                    world: w,
                    mesh: MeshId(0),
                    world_from_mesh: Isometry3::identity(),
                    color: [0.5, 0.5, 0.5, 1.0],
                    instance_id: 1,
                    semantic_id: 1,
                },
                Instance {
                    world: w,
                    mesh: MeshId(1),
                    // The box moves up by 10 cm per world.
                    world_from_mesh: Isometry3::translation(0.0, 0.0, 0.15 + 0.1 * f64::from(w)),
                    color: [0.8, 0.3, 0.2, 1.0],
                    instance_id: 2 + w,
                    semantic_id: 2,
                },
            ]
        })
        .collect();
    let cameras = vec![s.camera; 6];
    let poses: Vec<CameraPose> = (0..6u32)
        .map(|c| CameraPose {
            world: c % 3,
            world_from_camera: look_at([1.5 + 0.1 * f64::from(c), -1.0, 1.2], [0.0, 0.0, 0.1]),
        })
        .collect();
    let mut single =
        Renderer::new(gpu.clone(), &meshes, &[s.camera], 16, Lighting::default()).unwrap();
    let mut one = single.new_frame();
    // Clipped to tiles in the shader where the adapter can, and scissored.
    for clip_to_tiles in [true, false] {
        let mut batch = Renderer::build(
            gpu.clone(),
            &meshes,
            &cameras,
            16,
            Lighting::default(),
            clip_to_tiles,
        )
        .unwrap();
        eprintln!(
            "clip to tiles: asked {clip_to_tiles}, got {}",
            batch.clip_to_tiles
        );
        let mut frame = batch.new_frame();
        batch.render(&instances, &poses, &mut frame).unwrap();
        check_batch(&mut single, &mut one, &instances, &poses, &frame);
    }
}

fn check_batch(
    single: &mut Renderer,
    one: &mut Frame,
    instances: &[Instance],
    poses: &[CameraPose],
    frame: &Frame,
) {
    for (c, pose) in poses.iter().enumerate() {
        single.render(instances, &[*pose], one).unwrap();
        // Same pixels, ids and colours. Depth may differ in the last bits of f32: the batch
        // clips triangles elsewhere (to the tile, or the scissored path to the whole atlas),
        // so it interpolates from other vertices. Measured, as a fraction of the depth: at
        // most 1.4e-5 clipped to tiles and 1.1e-4 scissored (2 mm on the ground about 19 m
        // away, nearly edge-on).
        let (a, b) = (&one.cameras[0], &frame.cameras[c]);
        assert!(a.instance_id == b.instance_id, "camera {c}: ids differ");
        assert!(a.semantic_id == b.semantic_id, "camera {c}: classes differ");
        assert!(a.rgba8 == b.rgba8, "camera {c}: colours differ");
        let worst = a
            .depth_m
            .iter()
            .zip(&b.depth_m)
            .map(|(&x, &y)| (x - y).abs() / x.max(1.0))
            .fold(0.0f32, f32::max);
        assert!(
            worst < 2.5e-4,
            "camera {c}: depth differs by {worst} of the depth"
        );
        let ids: std::collections::BTreeSet<u32> =
            frame.cameras[c].instance_id.iter().copied().collect();
        let own_box = 2 + pose.world;
        assert!(ids.contains(&own_box), "camera {c} misses its box: {ids:?}");
        assert!(
            ids.iter().all(|&i| i <= 1 || i == own_box),
            "camera {c} sees another world: {ids:?}"
        );
    }
}

#[test]
fn bad_inputs_are_errors() {
    let Some(gpu) = test_gpu() else { return };
    let camera = CameraModel::from_fov(32, 24, 60.0, 0.1, 10.0);
    let mut r = Renderer::new(
        gpu,
        &[MeshData::cuboid([0.1; 3])],
        &[camera],
        1,
        Lighting::default(),
    )
    .unwrap();
    let mut frame = r.new_frame();
    let pose = CameraPose {
        world: 0,
        world_from_camera: Isometry3::identity(),
    };
    let inst = Instance {
        world: 0,
        mesh: MeshId(5),
        world_from_mesh: Isometry3::identity(),
        color: [1.0; 4],
        instance_id: 1,
        semantic_id: 1,
    };
    assert!(matches!(
        r.render(&[inst], &[pose], &mut frame),
        Err(PerceptionError::Render { .. })
    ));
    assert!(matches!(
        r.render(&[], &[pose, pose], &mut frame),
        Err(PerceptionError::LengthMismatch { input: "poses", .. })
    ));
    assert!(matches!(
        r.render(&[inst, inst], &[pose], &mut frame),
        Err(PerceptionError::LengthMismatch {
            input: "instances",
            ..
        })
    ));
    // Nothing in view: background everywhere.
    r.render(&[], &[pose], &mut frame).unwrap();
    assert!(frame.cameras[0].depth_m.iter().all(|&d| d == 0.0));
    assert!(frame.cameras[0].instance_id.iter().all(|&i| i == 0));
}

/// World 0's ground: mesh 0 (a plane) at the origin, grey, instance 1, class 1.
fn ground() -> Instance {
    Instance {
        world: 0,
        mesh: MeshId(0),
        world_from_mesh: Isometry3::identity(),
        color: [0.5, 0.5, 0.5, 1.0],
        instance_id: 1,
        semantic_id: 1,
    }
}

/// A box of world 0: mesh 1 at `pose`, red, instance `id`, class 2.
fn a_box(pose: Isometry3<f64>, id: u32) -> Instance {
    Instance {
        world: 0,
        mesh: MeshId(1),
        world_from_mesh: pose,
        color: [0.8, 0.3, 0.2, 1.0],
        instance_id: id,
        semantic_id: 2,
    }
}

#[test]
fn open_meshes_are_seen_from_both_sides_and_closed_ones_from_outside_only() {
    let Some(gpu) = test_gpu() else { return };
    let meshes = [MeshData::plane(5.0), MeshData::cuboid([0.5; 3])];
    let camera = CameraModel::from_fov(16, 16, 60.0, 0.05, 20.0);
    let mut r = Renderer::new(gpu, &meshes, &[camera], 1, Lighting::default()).unwrap();
    let mut frame = r.new_frame();
    let one = |mesh: u32| Instance {
        world: 0,
        mesh: MeshId(mesh),
        world_from_mesh: Isometry3::identity(),
        color: [0.5, 0.5, 0.5, 1.0],
        instance_id: 7,
        semantic_id: 3,
    };
    let view = |eye: [f64; 3], target: [f64; 3]| CameraPose {
        world: 0,
        world_from_camera: look_at(eye, target),
    };
    let centre = 16 * 8 + 8;
    // The plane faces +z; from below, the two-sided pipeline still draws it.
    for eye in [[0.3, 0.2, 2.0], [0.3, 0.2, -2.0]] {
        r.render(&[one(0)], &[view(eye, [0.0, 0.0, 0.0])], &mut frame)
            .unwrap();
        let images = &frame.cameras[0];
        assert_eq!(images.instance_id[centre], 7, "plane seen from {eye:?}");
        let expected = (Vector3::from(eye) - Vector3::new(0.0, 0.0, 0.0)).norm();
        assert!(
            (f64::from(images.depth_m[centre]) - expected).abs() < 0.05,
            "plane from {eye:?}: depth {} vs about {expected}",
            images.depth_m[centre]
        );
    }
    // The cube is closed and wound outward: its back faces are culled, so from outside the
    // near face is seen and from inside nothing is.
    r.render(
        &[one(1)],
        &[view([2.0, 0.3, 0.2], [0.0, 0.0, 0.0])],
        &mut frame,
    )
    .unwrap();
    assert_eq!(frame.cameras[0].instance_id[centre], 7);
    assert!((frame.cameras[0].depth_m[centre] - 1.5).abs() < 0.05);
    r.render(
        &[one(1)],
        &[view([0.1, 0.0, 0.0], [1.0, 0.2, 0.1])],
        &mut frame,
    )
    .unwrap();
    assert!(frame.cameras[0].instance_id.iter().all(|&i| i == 0));
}

#[test]
fn instances_outside_a_cameras_view_are_not_drawn_and_those_reaching_in_are() {
    let Some(gpu) = test_gpu() else { return };
    let meshes = [MeshData::plane(20.0), MeshData::cuboid([0.3; 3])];
    // 64 px wide, 60° across: the right edge of the view is the plane y = -x tan(30°) seen
    // from a camera at the origin looking along +x (z up).
    let camera = CameraModel::from_fov(64, 48, 60.0, 0.05, 10.0);
    let mut r = Renderer::new(gpu, &meshes, &[camera], 8, Lighting::default()).unwrap();
    let mut frame = r.new_frame();
    let pose = CameraPose {
        world: 0,
        world_from_camera: look_at([0.0, 0.0, 1.0], [1.0, 0.0, 1.0]),
    };
    let edge = 3.0 * (30.0f64).to_radians().tan();
    let box_at = |id: u32, x: f64, y: f64| a_box(Isometry3::translation(x, y, 1.0), id);
    let instances = [
        ground(),
        box_at(2, 3.0, 0.0),         // ahead
        box_at(3, -3.0, 0.0),        // behind
        box_at(4, 12.0, 0.0),        // beyond the far plane
        box_at(5, 3.0, -edge - 0.2), // centre outside the right edge, a corner inside
        box_at(6, 3.0, -edge - 1.0), // wholly right of the view
    ];
    r.render(&instances, &[pose], &mut frame).unwrap();
    assert_eq!(
        r.drawn_pairs(),
        3,
        "the ground, the box ahead and the one at the edge"
    );
    let seen: std::collections::BTreeSet<u32> =
        frame.cameras[0].instance_id.iter().copied().collect();
    assert!(seen.contains(&2) && seen.contains(&5), "{seen:?}");
    assert!(!seen.contains(&3) && !seen.contains(&4) && !seen.contains(&6));
}

/// With shadows, the ground is dark exactly where the ray from it towards the light hits the
/// box (>= 97% of ground pixels; the rest lie along the shadow's edge, filtered over 2x2
/// texels); without, the ground is lit everywhere.
#[test]
fn the_light_casts_the_box_shadow_where_rays_to_the_light_hit_the_box() {
    let Some(gpu) = test_gpu() else { return };
    let half = [0.2, 0.2, 0.3];
    let meshes = [
        MeshData::plane(5.0),
        MeshData::cuboid(half.map(|x| x as f32)),
    ];
    let camera = CameraModel::from_fov(96, 72, 60.0, 0.05, 20.0);
    let box_pose = Isometry3::translation(0.0, 0.0, 0.3);
    let instances = [ground(), a_box(box_pose, 2)];
    let pose = look_at([1.5, -1.5, 2.0], [0.7, 0.3, 0.0]);
    let travel = Vector3::new(1.0, 0.4, -0.7).normalize();
    let to_light = -travel;
    let k = camera.intrinsics;
    for shadows in [true, false] {
        let lighting = Lighting {
            direction_in_world: [travel.x as f32, travel.y as f32, travel.z as f32],
            shadows,
            ..Lighting::default()
        };
        // Ground colour lit and in shadow (red channel, 0-255).
        let lit = 255.0 * 0.5 * (lighting.ambient + lighting.directional * to_light.z as f32);
        let dark = 255.0 * 0.5 * lighting.ambient;
        let mut r = Renderer::new(gpu.clone(), &meshes, &[camera], 2, lighting).unwrap();
        let mut frame = r.new_frame();
        let camera_pose = CameraPose {
            world: 0,
            world_from_camera: pose,
        };
        r.render(&instances, &[camera_pose], &mut frame).unwrap();
        let images = &frame.cameras[0];
        let (mut ground, mut agree, mut shadowed, mut dark_seen) = (0, 0, 0, 0);
        for v in 0..k.height_px {
            for u in 0..k.width_px {
                let i = (v * k.width_px + u) as usize;
                if images.instance_id[i] != 1 {
                    continue;
                }
                ground += 1;
                let ray = Vector3::new(
                    (f64::from(u) - k.cx_px) / k.fx_px,
                    (f64::from(v) - k.cy_px) / k.fy_px,
                    1.0,
                );
                let p = pose * Point3::from(ray * f64::from(images.depth_m[i]));
                let in_shadow = ray_box(&p, &to_light, &box_pose, half).is_some();
                let is_dark = f32::from(images.rgba8[4 * i]) < 0.5 * (lit + dark);
                shadowed += usize::from(in_shadow);
                dark_seen += usize::from(is_dark);
                agree += usize::from(in_shadow == is_dark);
            }
        }
        if shadows {
            assert!(
                shadowed > 200,
                "only {shadowed} ground pixels in the shadow"
            );
            assert!(
                agree as f64 >= 0.97 * f64::from(ground),
                "{agree} of {ground} ground pixels agree with the ray to the light"
            );
        } else {
            assert_eq!(dark_seen, 0, "no shadows asked for, yet the ground is dark");
        }
        if !shadows {
            continue;
        }
        // Two worlds in one batch, each with its own shadow map: world 0 as above, world 1
        // has no box, so its ground is lit everywhere.
        let mut both = instances.to_vec();
        both.push(Instance {
            world: 1,
            ..instances[0]
        });
        let mut batch = Renderer::new(gpu.clone(), &meshes, &[camera; 2], 3, lighting).unwrap();
        let mut frames = batch.new_frame();
        let poses = [
            camera_pose,
            CameraPose {
                world: 1,
                ..camera_pose
            },
        ];
        batch.render(&both, &poses, &mut frames).unwrap();
        assert!(frames.cameras[0].instance_id == images.instance_id);
        assert!(
            frames.cameras[0].rgba8 == images.rgba8,
            "world 0 shaded differently"
        );
        let second = &frames.cameras[1];
        assert!(
            (0..second.instance_id.len())
                .filter(|&i| second.instance_id[i] == 1)
                .all(|i| f32::from(second.rgba8[4 * i]) > 0.5 * (lit + dark)),
            "world 1 has no box, yet its ground is dark"
        );
    }
}
