//! Shadows of the directional light: one shadow map per world seen in a frame (a layer of a
//! depth array texture), rendered orthographically along the light and fitted to that world's
//! shadow casters.

use nalgebra::{Matrix4, Point3, Vector3};

/// Side of each world's shadow map, texels.
pub const SHADOW_MAP_PX: u32 = 1024;
/// Depth format of the shadow maps.
pub(super) const SHADOW_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Depth32Float;

/// The shadow maps and what samples them; layers grow to the most worlds a frame has seen.
pub(super) struct ShadowMaps {
    layout: wgpu::BindGroupLayout,
    sampler: wgpu::Sampler,
    /// One render-attachment view per layer.
    pub(super) layer_views: Vec<wgpu::TextureView>,
    pub(super) bind_group: wgpu::BindGroup,
    /// The distinct worlds of this frame's cameras, sorted: layer `k` is `worlds[k]`'s map.
    pub(super) worlds: Vec<u32>,
    /// Per layer: light clip space from world, and shadow-map coordinates (u, v, biased depth)
    /// from world.
    pub(super) light_clip_from_world: Vec<Matrix4<f64>>,
    pub(super) shadow_from_world: Vec<Matrix4<f64>>,
}

impl ShadowMaps {
    pub(super) fn new(device: &wgpu::Device) -> Self {
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("shadow maps"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Texture {
                        sample_type: wgpu::TextureSampleType::Depth,
                        view_dimension: wgpu::TextureViewDimension::D2Array,
                        multisampled: false,
                    },
                    count: None,
                },
                wgpu::BindGroupLayoutEntry {
                    binding: 1,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Comparison),
                    count: None,
                },
            ],
        });
        let sampler = device.create_sampler(&wgpu::SamplerDescriptor {
            label: Some("shadow maps"),
            address_mode_u: wgpu::AddressMode::ClampToEdge,
            address_mode_v: wgpu::AddressMode::ClampToEdge,
            mag_filter: wgpu::FilterMode::Linear,
            min_filter: wgpu::FilterMode::Linear,
            compare: Some(wgpu::CompareFunction::LessEqual),
            ..wgpu::SamplerDescriptor::default()
        });
        // Two layers at least: GL cannot tell a one-layer array from a plain 2D texture.
        let (layer_views, bind_group) = Self::textures(device, &layout, &sampler, 2);
        Self {
            layout,
            sampler,
            layer_views,
            bind_group,
            worlds: Vec::new(),
            light_clip_from_world: Vec::new(),
            shadow_from_world: Vec::new(),
        }
    }

    pub(super) fn layout(&self) -> &wgpu::BindGroupLayout {
        &self.layout
    }

    fn textures(
        device: &wgpu::Device,
        layout: &wgpu::BindGroupLayout,
        sampler: &wgpu::Sampler,
        layers: u32,
    ) -> (Vec<wgpu::TextureView>, wgpu::BindGroup) {
        let texture = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("shadow maps"),
            size: wgpu::Extent3d {
                width: SHADOW_MAP_PX,
                height: SHADOW_MAP_PX,
                depth_or_array_layers: layers,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: SHADOW_FORMAT,
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::TEXTURE_BINDING,
            view_formats: &[],
        });
        let layer_views = (0..layers)
            .map(|k| {
                texture.create_view(&wgpu::TextureViewDescriptor {
                    label: Some("shadow map"),
                    dimension: Some(wgpu::TextureViewDimension::D2),
                    base_array_layer: k,
                    array_layer_count: Some(1),
                    ..wgpu::TextureViewDescriptor::default()
                })
            })
            .collect();
        let array = texture.create_view(&wgpu::TextureViewDescriptor {
            label: Some("shadow maps"),
            dimension: Some(wgpu::TextureViewDimension::D2Array),
            ..wgpu::TextureViewDescriptor::default()
        });
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("shadow maps"),
            layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::TextureView(&array),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: wgpu::BindingResource::Sampler(sampler),
                },
            ],
        });
        (layer_views, bind_group)
    }

    /// Makes room for `layers` maps (reallocating only when more are needed than ever before).
    pub(super) fn reserve(&mut self, device: &wgpu::Device, layers: usize) {
        if layers > self.layer_views.len() {
            let (views, bind_group) =
                Self::textures(device, &self.layout, &self.sampler, layers as u32);
            self.layer_views = views;
            self.bind_group = bind_group;
        }
    }
}

/// The orthographic view along the unit direction `travel` (the way the light goes) that
/// holds every sphere (centre, radius) of `casters`: light clip space from world (x and y in
/// [-1, 1], depth in [0, 1] from the sphere nearest the light to the farthest), and shadow-map
/// coordinates from world (u, v in [0, 1], v down; depth less a bias of two texels plus 2 mm,
/// against self-shadowing). Without casters, nothing is ever in shadow.
pub(super) fn fit(
    travel: &Vector3<f64>,
    casters: impl Iterator<Item = (Point3<f64>, f64)>,
) -> (Matrix4<f64>, Matrix4<f64>) {
    let helper = if travel.z.abs() < 0.9 {
        Vector3::z()
    } else {
        Vector3::x()
    };
    let x = helper.cross(travel).normalize();
    let y = travel.cross(&x);
    let mut lo = Vector3::repeat(f64::INFINITY);
    let mut hi = Vector3::repeat(f64::NEG_INFINITY);
    for (c, r) in casters {
        let p = Vector3::new(x.dot(&c.coords), y.dot(&c.coords), travel.dot(&c.coords));
        lo = lo.inf(&p.add_scalar(-r));
        hi = hi.sup(&p.add_scalar(r));
    }
    if !(lo.x.is_finite() && hi.x.is_finite()) {
        // No casters: any point maps to a cleared texel (depth 1) with a depth of 0.
        return (Matrix4::zeros(), Matrix4::zeros());
    }
    let centre = (lo + hi) * 0.5;
    let half = ((hi - lo) * 0.5).sup(&Vector3::repeat(1e-6));
    let light_from_world = Matrix4::new(
        x.x, x.y, x.z, 0.0, //
        y.x, y.y, y.z, 0.0, //
        travel.x, travel.y, travel.z, 0.0, //
        0.0, 0.0, 0.0, 1.0,
    );
    let depth = 2.0 * half.z;
    let clip_from_light = Matrix4::new(
        1.0 / half.x,
        0.0,
        0.0,
        -centre.x / half.x, //
        0.0,
        1.0 / half.y,
        0.0,
        -centre.y / half.y, //
        0.0,
        0.0,
        1.0 / depth,
        -lo.z / depth, //
        0.0,
        0.0,
        0.0,
        1.0,
    );
    let light_clip_from_world = clip_from_light * light_from_world;
    let texel_m = 2.0 * half.x.max(half.y) / f64::from(SHADOW_MAP_PX);
    let bias = (2.0 * texel_m + 0.002) / depth;
    let map_from_clip = Matrix4::new(
        0.5, 0.0, 0.0, 0.5, //
        0.0, -0.5, 0.0, 0.5, //
        0.0, 0.0, 1.0, -bias, //
        0.0, 0.0, 0.0, 1.0,
    );
    (light_clip_from_world, map_from_clip * light_clip_from_world)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fit_holds_the_casters_and_maps_the_nearest_to_depth_zero() {
        let travel = Vector3::new(1.0, 0.0, -1.0).normalize();
        let casters = [
            (Point3::new(0.0, 0.0, 0.5), 0.5),
            (Point3::new(2.0, 1.0, 0.2), 0.2),
        ];
        let (clip, map) = fit(&travel, casters.iter().copied());
        for (c, r) in casters {
            // The sphere's points along the light and across it stay inside the view.
            for d in [travel, -travel, Vector3::y(), -Vector3::y()] {
                let p = clip * (c + d * r).to_homogeneous();
                assert!(p.x.abs() <= 1.0 + 1e-9 && p.y.abs() <= 1.0 + 1e-9, "{p:?}");
                assert!((-1e-9..=1.0 + 1e-9).contains(&p.z), "{p:?}");
            }
        }
        // Along the light, depth grows: a point further along is deeper.
        let a = clip * Point3::new(0.0, 0.0, 0.5).to_homogeneous();
        let b = clip * (Point3::new(0.0, 0.0, 0.5) + travel * 0.1).to_homogeneous();
        assert!(b.z > a.z && (b.x - a.x).abs() < 1e-12 && (b.y - a.y).abs() < 1e-12);
        // Map coordinates are clip's, halved and shifted, v down, depth biased a little less.
        let m = map * Point3::new(2.0, 1.0, 0.2).to_homogeneous();
        let q = clip * Point3::new(2.0, 1.0, 0.2).to_homogeneous();
        assert!((m.x - (0.5 * q.x + 0.5)).abs() < 1e-12);
        assert!((m.y - (0.5 - 0.5 * q.y)).abs() < 1e-12);
        assert!(m.z < q.z && q.z - m.z < 0.01);
        // No casters: zero maps (everything lit).
        let (clip, _) = fit(&travel, std::iter::empty());
        assert_eq!(clip, Matrix4::zeros());
    }
}
