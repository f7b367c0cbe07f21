// Appended to camera.wgsl when the light casts shadows: one shadow map per world, a layer of
// a depth array, seen orthographically along the light.

@group(0) @binding(0) var shadow_maps: texture_depth_2d_array;
@group(0) @binding(1) var shadow_sampler: sampler_comparison;

// The fraction of the light reaching a point with shadow-map coordinates `s` (u, v, depth
// along the light) in layer `layer`: 1 off the map, else the 2x2-filtered comparison with the
// nearest caster's depth.
fn light_reaching(s: vec3<f32>, layer: u32) -> f32 {
    if any(s.xy < vec2<f32>(0.0)) || any(s.xy > vec2<f32>(1.0)) {
        return 1.0;
    }
    return textureSampleCompareLevel(shadow_maps, shadow_sampler, s.xy, layer, clamp(s.z, 0.0, 1.0));
}
