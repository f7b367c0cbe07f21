// One pass renders every camera tile of the atlas. Each drawn instance is one (camera,
// instance) pair (an instance-rate vertex buffer): clip-from-mesh (the camera's projection,
// its world-to-camera transform and the instance's pose, multiplied in f64 on the CPU), the
// placement of the camera's tile in the atlas, the direction to the light in the mesh frame
// (scaled by its intensity) with the ambient, the linear RGBA colour and the ids, then (read
// only with shadows) the shadow-map coordinates from mesh and the world's shadow-map layer.
//
// Camera clip space is placed in its tile by scaling and offsetting x and y. Where the adapter
// has clip distances, the vertex stage also clips each triangle to the camera's frustum sides,
// i.e. to its tile, so one draw per mesh serves every camera; elsewhere the renderer scissors
// each camera's draws to its tile.
//
// Lines starting `// shadows: ` are code when the light casts shadows (shadow.wgsl is then
// appended), and the same for `// clip_to_tiles: `.
//
// Targets: 0 lit colour (Rgba8Unorm), 1 linear depth along the optical axis in metres
// (R32Float: depth textures cannot be read back on every backend), 2 instance and semantic ids
// (Rg32Uint). A hardware depth buffer (Depth32Float) does the visibility test only.

struct EntryIn {
    @location(2) clip_from_mesh_0: vec4<f32>,
    @location(3) clip_from_mesh_1: vec4<f32>,
    @location(4) clip_from_mesh_2: vec4<f32>,
    @location(5) clip_from_mesh_3: vec4<f32>,
    // x, y: scale; z, w: offset (times clip w) from camera to atlas clip space.
    @location(6) placement: vec4<f32>,
    // xyz: direction to the light in the mesh frame times its intensity; w: ambient.
    @location(7) light: vec4<f32>,
    @location(8) color: vec4<f32>,
    @location(9) ids: vec2<u32>,
    // shadows: @location(10) shadow_from_mesh_0: vec4<f32>,
    // shadows: @location(11) shadow_from_mesh_1: vec4<f32>,
    // shadows: @location(12) shadow_from_mesh_2: vec4<f32>,
    // shadows: @location(13) shadow_from_mesh_3: vec4<f32>,
    // shadows: @location(14) shadow_layer: u32,
};

struct VertexIn {
    @location(0) position_in_mesh: vec3<f32>,
    @location(1) normal_in_mesh: vec3<f32>,
};

struct VertexOut {
    @builtin(position) clip: vec4<f32>,
    // clip_to_tiles: @builtin(clip_distances) tile: array<f32, 4>,
    @location(0) normal_in_mesh: vec3<f32>,
    @location(1) z_in_camera: f32,
    @location(2) @interpolate(flat) color: vec4<f32>,
    @location(3) @interpolate(flat) light: vec4<f32>,
    @location(4) @interpolate(flat) ids: vec2<u32>,
    // shadows: @location(5) shadow: vec3<f32>,
    // shadows: @location(6) @interpolate(flat) shadow_layer: u32,
};

@vertex
fn vs_main(v: VertexIn, e: EntryIn) -> VertexOut {
    let clip_from_mesh = mat4x4<f32>(
        e.clip_from_mesh_0,
        e.clip_from_mesh_1,
        e.clip_from_mesh_2,
        e.clip_from_mesh_3,
    );
    // The projection's last row is (0, 0, 1, 0): clip w is the depth along the optical axis.
    let c = clip_from_mesh * vec4<f32>(v.position_in_mesh, 1.0);
    var out: VertexOut;
    out.clip = vec4<f32>(
        c.x * e.placement.x + c.w * e.placement.z,
        c.y * e.placement.y + c.w * e.placement.w,
        c.z,
        c.w,
    );
    // clip_to_tiles: out.tile = array<f32, 4>(c.w + c.x, c.w - c.x, c.w + c.y, c.w - c.y);
    out.normal_in_mesh = v.normal_in_mesh;
    out.z_in_camera = c.w;
    out.color = e.color;
    out.light = e.light;
    out.ids = e.ids;
    // shadows: let shadow_from_mesh = mat4x4<f32>(e.shadow_from_mesh_0, e.shadow_from_mesh_1, e.shadow_from_mesh_2, e.shadow_from_mesh_3);
    // shadows: out.shadow = (shadow_from_mesh * vec4<f32>(v.position_in_mesh, 1.0)).xyz;
    // shadows: out.shadow_layer = e.shadow_layer;
    return out;
}

// The vertex stage's outputs less its clip distances (a vertex-only built-in).
struct FragmentIn {
    @location(0) normal_in_mesh: vec3<f32>,
    @location(1) z_in_camera: f32,
    @location(2) @interpolate(flat) color: vec4<f32>,
    @location(3) @interpolate(flat) light: vec4<f32>,
    @location(4) @interpolate(flat) ids: vec2<u32>,
    // shadows: @location(5) shadow: vec3<f32>,
    // shadows: @location(6) @interpolate(flat) shadow_layer: u32,
};

struct FragmentOut {
    @location(0) color: vec4<f32>,
    @location(1) depth_m: f32,
    @location(2) ids: vec2<u32>,
};

@fragment
fn fs_main(in: FragmentIn, @builtin(front_facing) front: bool) -> FragmentOut {
    var n = normalize(in.normal_in_mesh);
    if !front {
        n = -n;
    }
    var lit = 1.0;
    // shadows: lit = light_reaching(in.shadow, in.shadow_layer);
    let shade = in.light.w + lit * max(dot(n, in.light.xyz), 0.0);
    var out: FragmentOut;
    out.color = vec4<f32>(clamp(in.color.rgb * shade, vec3<f32>(0.0), vec3<f32>(1.0)), 1.0);
    out.depth_m = in.z_in_camera;
    out.ids = in.ids;
    return out;
}
