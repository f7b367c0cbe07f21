// One pass renders every camera tile of the atlas. Per camera (a dynamic uniform offset): the
// projection from the OpenCV camera frame (x right, y down, z forward) to clip space, the
// world-to-camera transform and the light. Per instance (an instance-rate vertex buffer): the
// world-from-mesh transform (rigid), the linear RGBA colour and the instance and semantic ids.
//
// Targets: 0 lit colour (Rgba8Unorm), 1 linear depth along the optical axis in metres
// (R32Float: depth textures cannot be read back on every backend), 2 instance and semantic ids
// (Rg32Uint). A hardware depth buffer (Depth32Float) does the visibility test only.

struct Camera {
    clip_from_camera: mat4x4<f32>,
    camera_from_world: mat4x4<f32>,
    // Direction the light travels, world frame, unit length (w unused).
    light_dir_in_world: vec4<f32>,
    // x: ambient, y: directional intensity.
    light: vec4<f32>,
};

@group(0) @binding(0) var<uniform> camera: Camera;

struct VertexIn {
    @location(0) position_in_mesh: vec3<f32>,
    @location(1) normal_in_mesh: vec3<f32>,
};

struct InstanceIn {
    @location(2) world_from_mesh_0: vec4<f32>,
    @location(3) world_from_mesh_1: vec4<f32>,
    @location(4) world_from_mesh_2: vec4<f32>,
    @location(5) world_from_mesh_3: vec4<f32>,
    @location(6) color: vec4<f32>,
    @location(7) ids: vec2<u32>,
};

struct VertexOut {
    @builtin(position) clip: vec4<f32>,
    @location(0) normal_in_world: vec3<f32>,
    @location(1) z_in_camera: f32,
    @location(2) color: vec4<f32>,
    @location(3) @interpolate(flat) ids: vec2<u32>,
};

@vertex
fn vs_main(v: VertexIn, i: InstanceIn) -> VertexOut {
    let world_from_mesh = mat4x4<f32>(
        i.world_from_mesh_0,
        i.world_from_mesh_1,
        i.world_from_mesh_2,
        i.world_from_mesh_3,
    );
    let p_in_world = world_from_mesh * vec4<f32>(v.position_in_mesh, 1.0);
    let p_in_camera = camera.camera_from_world * p_in_world;
    var out: VertexOut;
    out.clip = camera.clip_from_camera * p_in_camera;
    out.normal_in_world = (world_from_mesh * vec4<f32>(v.normal_in_mesh, 0.0)).xyz;
    out.z_in_camera = p_in_camera.z;
    out.color = i.color;
    out.ids = i.ids;
    return out;
}

struct FragmentOut {
    @location(0) color: vec4<f32>,
    @location(1) depth_m: f32,
    @location(2) ids: vec2<u32>,
};

@fragment
fn fs_main(in: VertexOut, @builtin(front_facing) front: bool) -> FragmentOut {
    var n = normalize(in.normal_in_world);
    if !front {
        n = -n;
    }
    let lambert = max(dot(n, -camera.light_dir_in_world.xyz), 0.0);
    let shade = camera.light.x + camera.light.y * lambert;
    var out: FragmentOut;
    out.color = vec4<f32>(clamp(in.color.rgb * shade, vec3<f32>(0.0), vec3<f32>(1.0)), 1.0);
    out.depth_m = in.z_in_camera;
    out.ids = in.ids;
    return out;
}
