//! Headless camera rendering with wgpu: lit RGB, linear depth, instance and semantic ids, for
//! many cameras (of many worlds) at once.
//!
//! A [`Renderer`] owns the meshes (uploaded once), one atlas of tiles (one per camera) with
//! four attachments (colour `Rgba8Unorm`, linear depth `R32Float`, ids `Rg32Uint` and the
//! visibility buffer `Depth32Float`) and three read-back buffers, all sized at construction.
//! [`Renderer::render`] draws every camera's tile in one render pass, copies the three images
//! back in the same submission, and de-tiles them into a caller-owned [`Frame`]: one submission
//! and one wait per frame whatever the number of cameras, and no allocation of ours once a
//! frame has drawn as many (camera, instance) pairs as any before it.
//!
//! Each drawn (camera, instance) pair is one instance of an instanced draw, carrying its
//! clip-from-mesh transform (composed in f64) and its tile's place in the atlas. Where the
//! adapter has clip distances (most Vulkan drivers, lavapipe included; Metal; desktop GL),
//! the vertex shader clips each pair to its tile and one draw per mesh serves every camera;
//! elsewhere draws are per camera and mesh, scissored to the tile. A pair is drawn only if the
//! instance's bounding sphere reaches into the camera's view frustum
//! ([`Renderer::drawn_pairs`] counts them).
//!
//! Closed meshes wound outward ([`MeshData::is_closed_outward`]: every primitive but the
//! plane, and watertight mesh files) are drawn with back faces culled, so a camera inside one
//! (say, in its own link's housing) sees through it; open or inconsistently wound meshes are
//! drawn from both sides.
//!
//! With [`Lighting::shadows`], each world seen in a frame first gets a shadow map: a depth
//! pass along the light over that world's instances (flat meshes, like the ground, excepted),
//! into one layer of a depth array; the camera pass then dims the directional light where the
//! map has a caster nearer the light (2x2-filtered comparison).
//!
//! Conventions: the camera frame is OpenCV's (x right, y down, z along the optical axis), pixel
//! centres are at integer coordinates (see [`crate::cloud`]), depth is metres along z with 0
//! where no surface lies within `[near_m, far_m]`, and id 0 is the background.

mod gpu;
mod lens;
mod mesh;
mod shadow;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use nalgebra::{Isometry3, Matrix4};

pub use gpu::{AdapterChoice, AdapterReport, GpuContext};
pub use lens::{CameraModel, Distortion, MAX_IMAGE_SIDE_PX};
pub use mesh::{MeshData, ROUND_SEGMENTS};
pub use shadow::SHADOW_MAP_PX;

use crate::PerceptionError;

/// Index of a mesh in the list a [`Renderer`] was built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MeshId(pub u32);

/// One object to draw: a mesh at a pose in one world, with its colour and ids.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Instance {
    /// The world it belongs to (cameras only see instances of their own world).
    pub world: u32,
    /// The mesh.
    pub mesh: MeshId,
    /// Pose of the mesh frame in the world.
    pub world_from_mesh: Isometry3<f64>,
    /// Linear RGBA colour in [0, 1] (alpha is ignored: everything is opaque).
    pub color: [f32; 4],
    /// Written to the instance-id image (0 is reserved for the background).
    pub instance_id: u32,
    /// Written to the semantic-id image (0 is reserved for the background).
    pub semantic_id: u32,
}

/// Where a camera is this frame: its world and its pose (OpenCV camera frame).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CameraPose {
    /// The world the camera looks into.
    pub world: u32,
    /// Pose of the camera frame (x right, y down, z forward) in the world.
    pub world_from_camera: Isometry3<f64>,
}

/// Scene lighting: ambient plus one directional light, and the background colour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lighting {
    /// Ambient intensity, a fraction of the surface colour. Default: 0.35.
    pub ambient: f32,
    /// Directional intensity at normal incidence. Default: 0.65.
    pub directional: f32,
    /// Direction the light travels, world frame (need not be unit length). Default: a sun high
    /// in the sky, `[0.3, 0.2, -1.0]` (z up).
    pub direction_in_world: [f32; 3],
    /// Linear RGB of pixels where nothing is hit. Default: a pale sky, `[0.62, 0.74, 0.86]`.
    pub background: [f32; 3],
    /// Whether the directional light casts shadows: each world seen in a frame gets a
    /// [`SHADOW_MAP_PX`]-square shadow map, an orthographic view along the light fitted to the
    /// world's instances except flat meshes (the ground plane), which receive shadows but cast
    /// none. Default: false.
    pub shadows: bool,
}

impl Default for Lighting {
    fn default() -> Self {
        Self {
            ambient: 0.35,
            directional: 0.65,
            direction_in_world: [0.3, 0.2, -1.0],
            background: [0.62, 0.74, 0.86],
            shadows: false,
        }
    }
}

/// The images of one camera, row-major, `width_px * height_px` pixels each.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraImages {
    /// Image width, pixels.
    pub width_px: u32,
    /// Image height, pixels.
    pub height_px: u32,
    /// Lit colour, RGBA 8 bits per channel (alpha 255).
    pub rgba8: Vec<u8>,
    /// Depth along the optical axis, metres; 0 where nothing lies within `[near_m, far_m]`.
    pub depth_m: Vec<f32>,
    /// Instance id of the surface seen at each pixel; 0 for the background.
    pub instance_id: Vec<u32>,
    /// Semantic (class) id of the surface seen at each pixel; 0 for the background.
    pub semantic_id: Vec<u32>,
}

/// One rendered frame: the images of every camera, in the renderer's camera order.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// Per camera.
    pub cameras: Vec<CameraImages>,
}

/// Bytes per vertex: position and normal, 3 f32 each.
const VERTEX_BYTES: u64 = 24;
/// 32-bit words per drawn (camera, instance) pair: clip-from-mesh (16), the tile's placement
/// in the atlas (4), the light in the mesh frame and the ambient (4), colour (4), instance and
/// semantic id (2), shadow-map coordinates from mesh (16), the shadow map's layer (1), and one
/// word of padding. Shadow-map passes use the same layout (clip being the light's).
const ENTRY_WORDS: usize = 48;

const COLOR_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;
const DEPTH_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::R32Float;
const IDS_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rg32Uint;
const ZBUFFER_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Depth32Float;

/// Where a mesh lives in the shared vertex and index buffers, and whether its back faces are
/// culled (closed meshes wound outward, see [`MeshData::is_closed_outward`]).
#[derive(Debug, Clone, Copy)]
struct MeshRange {
    first_index: u32,
    index_count: u32,
    base_vertex: i32,
    cull_back_faces: bool,
    /// A sphere holding the mesh, in its frame: centre (m) and radius (m).
    bound: ([f64; 3], f64),
    /// Flat (no thickness along some axis, like the ground plane): casts no shadow.
    flat: bool,
}

/// A camera's tile in the atlas, and its optional distortion lookup table.
#[derive(Debug, Clone)]
struct Tile {
    x: u32,
    y: u32,
    width: u32,
    height: u32,
    remap: Option<Vec<u32>>,
}

/// A run of sorted instances sharing a world and a mesh.
#[derive(Debug, Clone, Copy)]
struct DrawGroup {
    world: u32,
    mesh: u32,
    first_instance: u32,
    end_instance: u32,
}

/// One instanced draw of a mesh over a run of entries; `camera` is the tile to scissor to when
/// the adapter cannot clip to tiles in the vertex shader.
#[derive(Debug, Clone, Copy)]
struct Draw {
    mesh: u32,
    first_entry: u32,
    end_entry: u32,
    camera: Option<u32>,
}

/// One read-back target: the texture, its view and the buffer it is copied into.
struct Target {
    texture: wgpu::Texture,
    view: wgpu::TextureView,
    buffer: wgpu::Buffer,
    bytes_per_pixel: u32,
    padded_row_bytes: u32,
}

/// Renders a fixed set of cameras over a fixed set of meshes. See the module documentation.
pub struct Renderer {
    gpu: Arc<GpuContext>,
    cameras: Vec<CameraModel>,
    tiles: Vec<Tile>,
    lighting: Lighting,
    atlas: (u32, u32),
    meshes: Vec<MeshRange>,
    /// Draws closed meshes with back faces culled.
    culling_pipeline: wgpu::RenderPipeline,
    /// Draws open meshes from both sides.
    two_sided_pipeline: wgpu::RenderPipeline,
    /// With [`Lighting::shadows`]: the shadow maps, the depth-only pipeline that renders
    /// them, and this frame's draws into them (with their layer).
    shadows: Option<(shadow::ShadowMaps, wgpu::RenderPipeline)>,
    shadow_draws: Vec<(u32, Draw)>,
    vertex_buffer: wgpu::Buffer,
    index_buffer: wgpu::Buffer,
    /// Per (camera, instance) pair drawn: grows to the largest frame's need, then is reused.
    entry_buffer: wgpu::Buffer,
    /// Whether the vertex shader clips each camera's geometry to its tile (clip distances),
    /// so one draw per mesh serves every camera; otherwise each camera's draws are scissored.
    clip_to_tiles: bool,
    color: Target,
    depth: Target,
    ids: Target,
    zbuffer_view: wgpu::TextureView,
    max_instances: usize,
    // Per-frame scratch, sized at construction.
    order: Vec<u32>,
    entry_words: Vec<f32>,
    groups: Vec<DrawGroup>,
    draws: Vec<Draw>,
    pairs: Vec<(u32, usize)>,
    clip_from_world: Vec<Matrix4<f64>>,
    /// Per camera: its frustum's six planes, unit normals pointing in.
    frusta: Vec<[[f64; 4]; 6]>,
    drawn_pairs: usize,
    camera_worlds: Vec<u32>,
    mapped: Arc<AtomicU32>,
    background_rgba8: [u8; 4],
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("adapter", self.gpu.adapter())
            .field("cameras", &self.cameras.len())
            .field("atlas", &self.atlas)
            .finish_non_exhaustive()
    }
}

fn render_error(what: impl std::fmt::Display) -> PerceptionError {
    PerceptionError::Render {
        message: what.to_string(),
    }
}

/// A sphere around `positions`: the centre of their bounding box and the farthest distance
/// from it.
fn bounding_sphere(positions: &[[f32; 3]]) -> ([f64; 3], f64) {
    if positions.is_empty() {
        return ([0.0; 3], 0.0);
    }
    let mut lo = [f64::INFINITY; 3];
    let mut hi = [f64::NEG_INFINITY; 3];
    for p in positions {
        for a in 0..3 {
            lo[a] = lo[a].min(f64::from(p[a]));
            hi[a] = hi[a].max(f64::from(p[a]));
        }
    }
    let centre = [0, 1, 2].map(|a| 0.5 * (lo[a] + hi[a]));
    let radius = positions
        .iter()
        .map(|p| {
            (0..3)
                .map(|a| (f64::from(p[a]) - centre[a]).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .fold(0.0, f64::max);
    (centre, radius)
}

/// The planes of the view volume of clip-from-world `m` (wgpu's: -w <= x, y <= w and
/// 0 <= z <= w), as `[a, b, c, d]` with `a x + b y + c z + d >= 0` inside and `(a, b, c)` unit.
fn frustum_planes(m: &Matrix4<f64>) -> [[f64; 4]; 6] {
    let row = |i: usize| nalgebra::Vector4::new(m[(i, 0)], m[(i, 1)], m[(i, 2)], m[(i, 3)]);
    let (x, y, z, w) = (row(0), row(1), row(2), row(3));
    [w + x, w - x, w + y, w - y, z, w - z].map(|p| {
        let n = p.xyz().norm();
        let p = if n > 0.0 { p / n } else { p };
        [p.x, p.y, p.z, p.w]
    })
}

/// Whether a sphere reaches into the volume bounded by `planes` (conservative: a sphere
/// outside near a corner may be kept, never one inside dropped).
fn sphere_in_frustum(planes: &[[f64; 4]; 6], centre: &nalgebra::Point3<f64>, radius: f64) -> bool {
    planes
        .iter()
        .all(|p| p[0] * centre.x + p[1] * centre.y + p[2] * centre.z + p[3] >= -radius)
}

/// A vertex buffer for `entries` (at least one) (camera, instance) pairs.
fn entry_buffer(device: &wgpu::Device, entries: usize) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("entries"),
        size: (entries.max(1) * ENTRY_WORDS * 4) as u64,
        usage: wgpu::BufferUsages::VERTEX | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// The camera shader; with `clip_to_tiles`, its vertex stage writes clip distances that keep
/// each camera's triangles inside its tile.
fn shader_source(clip_to_tiles: bool, shadows: bool) -> String {
    let mut source = include_str!("camera.wgsl").to_string();
    if clip_to_tiles {
        source = format!(
            "enable clip_distances;\n{}",
            source.replace("// clip_to_tiles: ", "")
        );
    }
    if shadows {
        source = source.replace("// shadows: ", "") + include_str!("shadow.wgsl");
    }
    source
}

/// Whether `positions` have no extent along some axis (a plane).
fn is_flat(positions: &[[f32; 3]]) -> bool {
    (0..3).any(|a| {
        let (lo, hi) = positions
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), p| {
                (lo.min(p[a]), hi.max(p[a]))
            });
        hi - lo <= 0.0
    })
}

/// Packs tiles left to right in rows (shelves) no wider than `max_side`.
fn pack_tiles(
    cameras: &[CameraModel],
    max_side: u32,
) -> Result<(Vec<Tile>, (u32, u32)), PerceptionError> {
    let (mut x, mut y, mut row_height, mut width) = (0u32, 0u32, 0u32, 0u32);
    let mut tiles = Vec::with_capacity(cameras.len());
    for camera in cameras {
        let (w, h) = (camera.intrinsics.width_px, camera.intrinsics.height_px);
        if x > 0 && x + w > max_side {
            x = 0;
            y += row_height;
            row_height = 0;
        }
        tiles.push(Tile {
            x,
            y,
            width: w,
            height: h,
            remap: camera.remap_table(),
        });
        x += w;
        width = width.max(x);
        row_height = row_height.max(h);
    }
    let height = y + row_height;
    if width > max_side || height > max_side {
        return Err(PerceptionError::InvalidConfig {
            config: "Renderer",
            field: "cameras",
            value: cameras.len() as f64,
            reason: "the cameras' images do not fit in one atlas texture on this adapter",
        });
    }
    Ok((tiles, (width.max(1), height.max(1))))
}

impl Renderer {
    /// Builds a renderer for `cameras` (one atlas tile each) over `meshes`, drawing at most
    /// `max_instances` instances per frame.
    pub fn new(
        gpu: Arc<GpuContext>,
        meshes: &[MeshData],
        cameras: &[CameraModel],
        max_instances: usize,
        lighting: Lighting,
    ) -> Result<Self, PerceptionError> {
        Self::build(gpu, meshes, cameras, max_instances, lighting, true)
    }

    /// [`Self::new`], clipping to tiles in the shader only if `clip_to_tiles` and the adapter
    /// can (tests turn it off to check the scissored path on any adapter).
    fn build(
        gpu: Arc<GpuContext>,
        meshes: &[MeshData],
        cameras: &[CameraModel],
        max_instances: usize,
        lighting: Lighting,
        clip_to_tiles: bool,
    ) -> Result<Self, PerceptionError> {
        for camera in cameras {
            camera.validate()?;
        }
        for (i, m) in meshes.iter().enumerate() {
            if m.normals.len() != m.positions.len() || !m.indices.len().is_multiple_of(3) {
                return Err(PerceptionError::LengthMismatch {
                    input: "MeshData.normals",
                    expected: m.positions.len(),
                    got: m.normals.len(),
                });
            }
            if m.indices.iter().any(|&k| k as usize >= m.positions.len()) {
                return Err(render_error(format!("mesh {i} has an index out of range")));
            }
        }
        let device = &gpu.device;
        let max_side = gpu.limits().max_texture_dimension_2d.min(MAX_IMAGE_SIDE_PX);
        let (tiles, atlas) = pack_tiles(cameras, max_side)?;

        // Geometry: all meshes in one vertex and one index buffer.
        let mut vertex_words: Vec<f32> = Vec::new();
        let mut indices: Vec<u32> = Vec::new();
        let mut ranges = Vec::with_capacity(meshes.len());
        for m in meshes {
            ranges.push(MeshRange {
                first_index: indices.len() as u32,
                index_count: m.indices.len() as u32,
                base_vertex: (vertex_words.len() / 6) as i32,
                cull_back_faces: m.is_closed_outward(),
                bound: bounding_sphere(&m.positions),
                flat: is_flat(&m.positions),
            });
            for (p, n) in m.positions.iter().zip(&m.normals) {
                vertex_words.extend_from_slice(p);
                vertex_words.extend_from_slice(n);
            }
            indices.extend_from_slice(&m.indices);
        }
        // wgpu rejects zero-sized vertex and index buffers in draws; keep one dummy element.
        if vertex_words.is_empty() {
            vertex_words.resize(6, 0.0);
        }
        if indices.is_empty() {
            indices.resize(3, 0);
        }
        let vertex_buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("vertices"),
            size: (vertex_words.len() * 4) as u64,
            usage: wgpu::BufferUsages::VERTEX | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        gpu.queue
            .write_buffer(&vertex_buffer, 0, bytemuck::cast_slice(&vertex_words));
        let index_buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("indices"),
            size: (indices.len() * 4) as u64,
            usage: wgpu::BufferUsages::INDEX | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        gpu.queue
            .write_buffer(&index_buffer, 0, bytemuck::cast_slice(&indices));
        let max_instances = max_instances.max(1);
        // One camera's tile is the atlas: the rasteriser's own clipping keeps it inside.
        let clip_to_tiles = clip_to_tiles
            && cameras.len() > 1
            && gpu
                .device
                .features()
                .contains(wgpu::Features::CLIP_DISTANCES);
        let entry_buffer = entry_buffer(device, max_instances);
        let shadow_maps = lighting.shadows.then(|| shadow::ShadowMaps::new(device));
        let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("camera"),
            bind_group_layouts: &[shadow_maps.as_ref().map(shadow::ShadowMaps::layout)],
            immediate_size: 0,
        });
        let shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("camera.wgsl"),
            source: wgpu::ShaderSource::Wgsl(shader_source(clip_to_tiles, lighting.shadows).into()),
        });
        let vertex_attributes = wgpu::vertex_attr_array![0 => Float32x3, 1 => Float32x3];
        let entry_attributes = wgpu::vertex_attr_array![
            2 => Float32x4, 3 => Float32x4, 4 => Float32x4, 5 => Float32x4,
            6 => Float32x4, 7 => Float32x4, 8 => Float32x4, 9 => Uint32x2,
            10 => Float32x4, 11 => Float32x4, 12 => Float32x4, 13 => Float32x4, 14 => Uint32
        ];
        let buffers = [
            wgpu::VertexBufferLayout {
                array_stride: VERTEX_BYTES,
                step_mode: wgpu::VertexStepMode::Vertex,
                attributes: &vertex_attributes,
            },
            wgpu::VertexBufferLayout {
                array_stride: (ENTRY_WORDS * 4) as u64,
                step_mode: wgpu::VertexStepMode::Instance,
                attributes: &entry_attributes,
            },
        ];
        // Both passes run the same vertex stage over triangles and keep the nearest surface.
        let vertex = wgpu::VertexState {
            module: &shader,
            entry_point: Some("vs_main"),
            compilation_options: wgpu::PipelineCompilationOptions::default(),
            buffers: &buffers,
        };
        let primitive = |cull_mode| wgpu::PrimitiveState {
            topology: wgpu::PrimitiveTopology::TriangleList,
            front_face: wgpu::FrontFace::Ccw,
            cull_mode,
            ..wgpu::PrimitiveState::default()
        };
        let nearest = |format| {
            Some(wgpu::DepthStencilState {
                format,
                depth_write_enabled: Some(true),
                depth_compare: Some(wgpu::CompareFunction::Less),
                stencil: wgpu::StencilState::default(),
                bias: wgpu::DepthBiasState::default(),
            })
        };
        let pipeline = |label, cull_mode| {
            device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
                label: Some(label),
                layout: Some(&layout),
                vertex: vertex.clone(),
                primitive: primitive(cull_mode),
                depth_stencil: nearest(ZBUFFER_FORMAT),
                multisample: wgpu::MultisampleState::default(),
                fragment: Some(wgpu::FragmentState {
                    module: &shader,
                    entry_point: Some("fs_main"),
                    compilation_options: wgpu::PipelineCompilationOptions::default(),
                    targets: &[
                        Some(COLOR_FORMAT.into()),
                        Some(DEPTH_FORMAT.into()),
                        Some(IDS_FORMAT.into()),
                    ],
                }),
                multiview_mask: None,
                cache: None,
            })
        };
        let culling_pipeline = pipeline("camera, back faces culled", Some(wgpu::Face::Back));
        let two_sided_pipeline = pipeline("camera, two-sided", None);
        let shadows = shadow_maps.map(|maps| {
            let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some("shadow map"),
                bind_group_layouts: &[],
                immediate_size: 0,
            });
            let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
                label: Some("shadow map"),
                layout: Some(&layout),
                vertex: vertex.clone(),
                primitive: primitive(None),
                depth_stencil: nearest(shadow::SHADOW_FORMAT),
                multisample: wgpu::MultisampleState::default(),
                fragment: None,
                multiview_mask: None,
                cache: None,
            });
            (maps, pipeline)
        });

        let target = |label: &str, format: wgpu::TextureFormat, bytes_per_pixel: u32| {
            let texture = device.create_texture(&wgpu::TextureDescriptor {
                label: Some(label),
                size: wgpu::Extent3d {
                    width: atlas.0,
                    height: atlas.1,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format,
                usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
                view_formats: &[],
            });
            let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
            let padded_row_bytes = (atlas.0 * bytes_per_pixel)
                .div_ceil(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT)
                * wgpu::COPY_BYTES_PER_ROW_ALIGNMENT;
            let buffer = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: u64::from(padded_row_bytes) * u64::from(atlas.1),
                usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
                mapped_at_creation: false,
            });
            Target {
                texture,
                view,
                buffer,
                bytes_per_pixel,
                padded_row_bytes,
            }
        };
        let color = target("color", COLOR_FORMAT, 4);
        let depth = target("depth", DEPTH_FORMAT, 4);
        let ids = target("ids", IDS_FORMAT, 8);
        let zbuffer = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("zbuffer"),
            size: wgpu::Extent3d {
                width: atlas.0,
                height: atlas.1,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: ZBUFFER_FORMAT,
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT,
            view_formats: &[],
        });
        let zbuffer_view = zbuffer.create_view(&wgpu::TextureViewDescriptor::default());
        let q = |x: f32| (x.clamp(0.0, 1.0) * 255.0).round() as u8;
        let [br, bg, bb] = lighting.background;
        Ok(Self {
            background_rgba8: [q(br), q(bg), q(bb), 255],
            gpu,
            cameras: cameras.to_vec(),
            tiles,
            lighting,
            atlas,
            meshes: ranges,
            culling_pipeline,
            two_sided_pipeline,
            shadows,
            shadow_draws: Vec::new(),
            vertex_buffer,
            index_buffer,
            entry_buffer,
            clip_to_tiles,
            color,
            depth,
            ids,
            zbuffer_view,
            max_instances,
            order: Vec::with_capacity(max_instances),
            entry_words: Vec::with_capacity(max_instances * ENTRY_WORDS),
            groups: Vec::with_capacity(max_instances),
            draws: Vec::new(),
            pairs: Vec::new(),
            clip_from_world: Vec::with_capacity(cameras.len()),
            frusta: Vec::with_capacity(cameras.len()),
            drawn_pairs: 0,
            camera_worlds: vec![0; cameras.len()],
            mapped: Arc::new(AtomicU32::new(0)),
        })
    }

    /// The adapter this renderer draws on.
    pub fn adapter(&self) -> &AdapterReport {
        self.gpu.adapter()
    }

    /// The cameras, in tile and [`Frame`] order.
    pub fn cameras(&self) -> &[CameraModel] {
        &self.cameras
    }

    /// How many (camera, instance) pairs the last frame drew: the instances of each camera's
    /// world whose bounding sphere reaches into its view frustum.
    pub fn drawn_pairs(&self) -> usize {
        self.drawn_pairs
    }

    /// Atlas size in pixels (width, height).
    pub fn atlas_size(&self) -> (u32, u32) {
        self.atlas
    }

    /// A frame with buffers sized for every camera, to pass to [`Self::render`] again and again.
    pub fn new_frame(&self) -> Frame {
        Frame {
            cameras: self
                .cameras
                .iter()
                .map(|c| {
                    let n = c.intrinsics.pixel_count();
                    CameraImages {
                        width_px: c.intrinsics.width_px,
                        height_px: c.intrinsics.height_px,
                        rgba8: vec![0; 4 * n],
                        depth_m: vec![0.0; n],
                        instance_id: vec![0; n],
                        semantic_id: vec![0; n],
                    }
                })
                .collect(),
        }
    }

    /// Renders every camera at `poses[i]` (one pose per camera, in order) seeing the
    /// `instances` of its world, into `frame` (from [`Self::new_frame`]).
    pub fn render(
        &mut self,
        instances: &[Instance],
        poses: &[CameraPose],
        frame: &mut Frame,
    ) -> Result<(), PerceptionError> {
        if poses.len() != self.cameras.len() {
            return Err(PerceptionError::LengthMismatch {
                input: "poses",
                expected: self.cameras.len(),
                got: poses.len(),
            });
        }
        if instances.len() > self.max_instances {
            return Err(PerceptionError::LengthMismatch {
                input: "instances",
                expected: self.max_instances,
                got: instances.len(),
            });
        }
        if frame.cameras.len() != self.cameras.len()
            || frame
                .cameras
                .iter()
                .zip(&self.cameras)
                .any(|(f, c)| f.depth_m.len() != c.intrinsics.pixel_count())
        {
            return Err(PerceptionError::LengthMismatch {
                input: "frame.cameras",
                expected: self.cameras.len(),
                got: frame.cameras.len(),
            });
        }
        if let Some(bad) = instances
            .iter()
            .position(|i| i.mesh.0 as usize >= self.meshes.len())
        {
            return Err(render_error(format!(
                "instance {bad} uses mesh {} of {}",
                instances[bad].mesh.0,
                self.meshes.len()
            )));
        }
        self.upload(instances, poses);
        self.draw_and_copy();
        self.read_back(frame)
    }

    /// Sorts instances by (world, mesh), then writes one entry per (camera, instance of its
    /// world) pair and lists the draws: closed meshes first, then open ones; per mesh for all
    /// cameras at once when the shader clips to tiles, else per camera and mesh.
    fn upload(&mut self, instances: &[Instance], poses: &[CameraPose]) {
        self.order.clear();
        self.order.extend(0..instances.len() as u32);
        self.order.sort_unstable_by_key(|&i| {
            let inst = &instances[i as usize];
            (inst.world, inst.mesh.0, i)
        });
        self.groups.clear();
        for (slot, &i) in self.order.iter().enumerate() {
            let inst = &instances[i as usize];
            let slot = slot as u32;
            match self.groups.last_mut() {
                Some(g) if g.world == inst.world && g.mesh == inst.mesh.0 => {
                    g.end_instance = slot + 1
                }
                _ => self.groups.push(DrawGroup {
                    world: inst.world,
                    mesh: inst.mesh.0,
                    first_instance: slot,
                    end_instance: slot + 1,
                }),
            }
        }
        self.clip_from_world.clear();
        self.frusta.clear();
        for (c, (camera, pose)) in self.cameras.iter().zip(poses).enumerate() {
            self.camera_worlds[c] = pose.world;
            let m = clip_from_camera(camera) * pose.world_from_camera.inverse().to_homogeneous();
            self.clip_from_world.push(m);
            self.frusta.push(frustum_planes(&m));
        }
        let light = self.lighting;
        let d = light.direction_in_world.map(f64::from);
        let len = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
        let to_light = if len.is_finite() && len > 0.0 {
            -nalgebra::Vector3::from(d) / len
        } else {
            nalgebra::Vector3::z()
        };

        if let Some((maps, _)) = &mut self.shadows {
            let (groups, meshes, order) = (&self.groups, &self.meshes, &self.order);
            maps.worlds.clear();
            maps.worlds.extend_from_slice(&self.camera_worlds);
            maps.worlds.sort_unstable();
            maps.worlds.dedup();
            maps.reserve(&self.gpu.device, maps.worlds.len());
            maps.light_clip_from_world.clear();
            maps.shadow_from_world.clear();
            for &world in &maps.worlds {
                let start = groups.partition_point(|g| g.world < world);
                let casters = groups[start..]
                    .iter()
                    .take_while(|g| g.world == world)
                    .filter(|g| !meshes[g.mesh as usize].flat)
                    .flat_map(|g| {
                        let (centre, radius) = meshes[g.mesh as usize].bound;
                        (g.first_instance..g.end_instance).map(move |slot| {
                            let inst = &instances[order[slot as usize] as usize];
                            (
                                inst.world_from_mesh * nalgebra::Point3::from(centre),
                                radius,
                            )
                        })
                    });
                let (clip, map) = shadow::fit(&-to_light, casters);
                maps.light_clip_from_world.push(clip);
                maps.shadow_from_world.push(map);
            }
        }

        self.entry_words.clear();
        self.draws.clear();
        self.shadow_draws.clear();
        let (width, height) = (f64::from(self.atlas.0), f64::from(self.atlas.1));
        for culled in [true, false] {
            let of_kind = |g: &DrawGroup| {
                let m = &self.meshes[g.mesh as usize];
                m.cull_back_faces == culled && m.index_count > 0
            };
            // (camera, group) pairs in draw order.
            let mut pairs = std::mem::take(&mut self.pairs);
            pairs.clear();
            for (c, &world) in self.camera_worlds.iter().enumerate() {
                let start = self.groups.partition_point(|g| g.world < world);
                let end = start
                    + self.groups[start..]
                        .iter()
                        .take_while(|g| g.world == world)
                        .count();
                pairs.extend(
                    (start..end)
                        .filter(|&g| of_kind(&self.groups[g]))
                        .map(|g| (c as u32, g)),
                );
            }
            if self.clip_to_tiles {
                pairs.sort_by_key(|&(c, g)| (self.groups[g].mesh, c));
            }
            for &(c, g) in &pairs {
                let group = self.groups[g];
                let tile = &self.tiles[c as usize];
                // Camera clip space to the tile's part of the atlas's clip space.
                let (w, h) = (f64::from(tile.width), f64::from(tile.height));
                let placement = [
                    w / width,
                    h / height,
                    (2.0 * f64::from(tile.x) + w) / width - 1.0,
                    1.0 - (2.0 * f64::from(tile.y) + h) / height,
                ]
                .map(|x| x as f32);
                let first_entry = (self.entry_words.len() / ENTRY_WORDS) as u32;
                let (centre, radius) = self.meshes[group.mesh as usize].bound;
                for slot in group.first_instance..group.end_instance {
                    let inst = &instances[self.order[slot as usize] as usize];
                    let centre = inst.world_from_mesh * nalgebra::Point3::from(centre);
                    if !sphere_in_frustum(&self.frusta[c as usize], &centre, radius) {
                        continue;
                    }
                    let clip_from_mesh: Matrix4<f32> = (self.clip_from_world[c as usize]
                        * inst.world_from_mesh.to_homogeneous())
                    .cast();
                    let to_light_in_mesh = inst.world_from_mesh.rotation.inverse()
                        * to_light
                        * f64::from(light.directional);
                    self.entry_words
                        .extend_from_slice(clip_from_mesh.as_slice());
                    self.entry_words.extend_from_slice(&placement);
                    self.entry_words.extend_from_slice(&[
                        to_light_in_mesh.x as f32,
                        to_light_in_mesh.y as f32,
                        to_light_in_mesh.z as f32,
                        light.ambient,
                    ]);
                    self.entry_words.extend_from_slice(&inst.color);
                    self.entry_words.extend_from_slice(&[
                        f32::from_bits(inst.instance_id),
                        f32::from_bits(inst.semantic_id),
                    ]);
                    match &self.shadows {
                        Some((maps, _)) => {
                            let layer = maps.worlds.binary_search(&inst.world).unwrap_or(0);
                            let shadow_from_mesh: Matrix4<f32> = (maps.shadow_from_world[layer]
                                * inst.world_from_mesh.to_homogeneous())
                            .cast();
                            self.entry_words
                                .extend_from_slice(shadow_from_mesh.as_slice());
                            self.entry_words
                                .extend_from_slice(&[f32::from_bits(layer as u32), 0.0]);
                        }
                        None => self.entry_words.extend_from_slice(&[0.0; 18]),
                    }
                }
                let end_entry = (self.entry_words.len() / ENTRY_WORDS) as u32;
                if end_entry == first_entry {
                    continue;
                }
                let camera = (!self.clip_to_tiles).then_some(c);
                match self.draws.last_mut() {
                    Some(d)
                        if self.clip_to_tiles
                            && d.mesh == group.mesh
                            && d.end_entry == first_entry =>
                    {
                        d.end_entry = end_entry
                    }
                    _ => self.draws.push(Draw {
                        mesh: group.mesh,
                        first_entry,
                        end_entry,
                        camera,
                    }),
                }
            }
            self.pairs = pairs;
        }
        self.drawn_pairs = self.entry_words.len() / ENTRY_WORDS;
        // Shadow casters, per world's layer: one draw per mesh, clipped to the light's view.
        if let Some((maps, _)) = &self.shadows {
            for (layer, &world) in maps.worlds.iter().enumerate() {
                let start = self.groups.partition_point(|g| g.world < world);
                for group in self.groups[start..].iter().take_while(|g| g.world == world) {
                    let mesh = &self.meshes[group.mesh as usize];
                    if mesh.flat || mesh.index_count == 0 {
                        continue;
                    }
                    let first_entry = (self.entry_words.len() / ENTRY_WORDS) as u32;
                    for slot in group.first_instance..group.end_instance {
                        let inst = &instances[self.order[slot as usize] as usize];
                        let clip_from_mesh: Matrix4<f32> = (maps.light_clip_from_world[layer]
                            * inst.world_from_mesh.to_homogeneous())
                        .cast();
                        self.entry_words
                            .extend_from_slice(clip_from_mesh.as_slice());
                        self.entry_words.extend_from_slice(&[1.0, 1.0, 0.0, 0.0]);
                        self.entry_words.extend_from_slice(&[0.0; ENTRY_WORDS - 20]);
                    }
                    self.shadow_draws.push((
                        layer as u32,
                        Draw {
                            mesh: group.mesh,
                            first_entry,
                            end_entry: (self.entry_words.len() / ENTRY_WORDS) as u32,
                            camera: None,
                        },
                    ));
                }
            }
        }
        let bytes = (self.entry_words.len() * 4) as u64;
        if bytes > self.entry_buffer.size() {
            self.entry_buffer =
                entry_buffer(&self.gpu.device, self.entry_words.len() / ENTRY_WORDS);
        }
        if bytes > 0 {
            self.gpu.queue.write_buffer(
                &self.entry_buffer,
                0,
                bytemuck::cast_slice(&self.entry_words),
            );
        }
    }

    /// Sets the shared vertex, entry and index buffers.
    fn bind_geometry(&self, pass: &mut wgpu::RenderPass<'_>) {
        pass.set_vertex_buffer(0, self.vertex_buffer.slice(..));
        pass.set_vertex_buffer(1, self.entry_buffer.slice(..));
        pass.set_index_buffer(self.index_buffer.slice(..), wgpu::IndexFormat::Uint32);
    }

    /// Draws `draw`'s mesh once per entry of its run.
    fn draw(&self, pass: &mut wgpu::RenderPass<'_>, draw: &Draw) {
        let mesh = self.meshes[draw.mesh as usize];
        pass.draw_indexed(
            mesh.first_index..mesh.first_index + mesh.index_count,
            mesh.base_vertex,
            draw.first_entry..draw.end_entry,
        );
    }

    /// Records the render pass over all tiles and the three copies, and submits them.
    fn draw_and_copy(&mut self) {
        let mut encoder = self
            .gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("cameras"),
            });
        if let Some((maps, pipeline)) = &self.shadows {
            for (layer, view) in maps.layer_views.iter().enumerate().take(maps.worlds.len()) {
                let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
                    label: Some("shadow map"),
                    color_attachments: &[],
                    depth_stencil_attachment: Some(wgpu::RenderPassDepthStencilAttachment {
                        view,
                        depth_ops: Some(wgpu::Operations {
                            load: wgpu::LoadOp::Clear(1.0),
                            store: wgpu::StoreOp::Store,
                        }),
                        stencil_ops: None,
                    }),
                    timestamp_writes: None,
                    occlusion_query_set: None,
                    multiview_mask: None,
                });
                pass.set_pipeline(pipeline);
                self.bind_geometry(&mut pass);
                for (_, draw) in self
                    .shadow_draws
                    .iter()
                    .filter(|(l, _)| *l as usize == layer)
                {
                    self.draw(&mut pass, draw);
                }
            }
        }
        {
            let [r, g, b] = self.lighting.background.map(f64::from);
            let attachment = |view, clear| {
                Some(wgpu::RenderPassColorAttachment {
                    view,
                    depth_slice: None,
                    resolve_target: None,
                    ops: wgpu::Operations {
                        load: wgpu::LoadOp::Clear(clear),
                        store: wgpu::StoreOp::Store,
                    },
                })
            };
            let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some("cameras"),
                color_attachments: &[
                    attachment(&self.color.view, wgpu::Color { r, g, b, a: 1.0 }),
                    attachment(&self.depth.view, wgpu::Color::TRANSPARENT),
                    attachment(&self.ids.view, wgpu::Color::TRANSPARENT),
                ],
                depth_stencil_attachment: Some(wgpu::RenderPassDepthStencilAttachment {
                    view: &self.zbuffer_view,
                    depth_ops: Some(wgpu::Operations {
                        load: wgpu::LoadOp::Clear(1.0),
                        store: wgpu::StoreOp::Discard,
                    }),
                    stencil_ops: None,
                }),
                timestamp_writes: None,
                occlusion_query_set: None,
                multiview_mask: None,
            });
            self.bind_geometry(&mut pass);
            if let Some((maps, _)) = &self.shadows {
                pass.set_bind_group(0, &maps.bind_group, &[]);
            }
            let mut culling = None;
            let mut scissor = None;
            for draw in &self.draws {
                let mesh = self.meshes[draw.mesh as usize];
                if culling != Some(mesh.cull_back_faces) {
                    culling = Some(mesh.cull_back_faces);
                    pass.set_pipeline(if mesh.cull_back_faces {
                        &self.culling_pipeline
                    } else {
                        &self.two_sided_pipeline
                    });
                }
                if let Some(c) = draw.camera
                    && scissor != Some(c)
                {
                    scissor = Some(c);
                    let tile = &self.tiles[c as usize];
                    pass.set_scissor_rect(tile.x, tile.y, tile.width, tile.height);
                }
                self.draw(&mut pass, draw);
            }
        }
        for target in [&self.color, &self.depth, &self.ids] {
            encoder.copy_texture_to_buffer(
                wgpu::TexelCopyTextureInfo {
                    texture: &target.texture,
                    mip_level: 0,
                    origin: wgpu::Origin3d::ZERO,
                    aspect: wgpu::TextureAspect::All,
                },
                wgpu::TexelCopyBufferInfo {
                    buffer: &target.buffer,
                    layout: wgpu::TexelCopyBufferLayout {
                        offset: 0,
                        bytes_per_row: Some(target.padded_row_bytes),
                        rows_per_image: Some(self.atlas.1),
                    },
                },
                wgpu::Extent3d {
                    width: self.atlas.0,
                    height: self.atlas.1,
                    depth_or_array_layers: 1,
                },
            );
        }
        self.gpu.queue.submit([encoder.finish()]);
    }

    /// Waits for the copies, then de-tiles the three images of every camera into `frame`
    /// (through the distortion lookup table where a camera has one).
    fn read_back(&mut self, frame: &mut Frame) -> Result<(), PerceptionError> {
        self.mapped.store(0, Ordering::SeqCst);
        for target in [&self.color, &self.depth, &self.ids] {
            let mapped = self.mapped.clone();
            target
                .buffer
                .slice(..)
                .map_async(wgpu::MapMode::Read, move |result| {
                    // Bit 0..2: mapped; bit 8: a mapping failed.
                    let bit = if result.is_ok() { 1 } else { 1 << 8 };
                    mapped.fetch_add(bit, Ordering::SeqCst);
                });
        }
        self.gpu
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(render_error)?;
        let state = self.mapped.load(Ordering::SeqCst);
        if state != 3 {
            for target in [&self.color, &self.depth, &self.ids] {
                target.buffer.unmap();
            }
            return Err(render_error(format!(
                "reading the images back failed ({} of 3 buffers mapped)",
                state & 0xff
            )));
        }
        {
            let color = self.color.buffer.slice(..).get_mapped_range();
            let depth = self.depth.buffer.slice(..).get_mapped_range();
            let ids = self.ids.buffer.slice(..).get_mapped_range();
            for (tile, images) in self.tiles.iter().zip(&mut frame.cameras) {
                detile(
                    tile,
                    &self.color,
                    &color,
                    &self.depth,
                    &depth,
                    &self.ids,
                    &ids,
                    self.background_rgba8,
                    images,
                );
            }
        }
        for target in [&self.color, &self.depth, &self.ids] {
            target.buffer.unmap();
        }
        Ok(())
    }
}

/// Byte offset of pixel `(x, y)` of a tile in a target's read-back buffer.
fn pixel_offset(target: &Target, tile: &Tile, x: u32, y: u32) -> usize {
    ((tile.y + y) * target.padded_row_bytes + (tile.x + x) * target.bytes_per_pixel) as usize
}

fn word(bytes: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

#[allow(
    clippy::too_many_arguments,
    reason = "three targets, each a layout and its bytes"
)]
fn detile(
    tile: &Tile,
    color_target: &Target,
    color: &[u8],
    depth_target: &Target,
    depth: &[u8],
    ids_target: &Target,
    ids: &[u8],
    background: [u8; 4],
    out: &mut CameraImages,
) {
    let w = tile.width as usize;
    match &tile.remap {
        None => {
            for y in 0..tile.height {
                let row = y as usize * w;
                let c0 = pixel_offset(color_target, tile, 0, y);
                out.rgba8[4 * row..4 * (row + w)].copy_from_slice(&color[c0..c0 + 4 * w]);
                let d0 = pixel_offset(depth_target, tile, 0, y);
                bytemuck::cast_slice_mut::<f32, u8>(&mut out.depth_m[row..row + w])
                    .copy_from_slice(&depth[d0..d0 + 4 * w]);
                let i0 = pixel_offset(ids_target, tile, 0, y);
                let pairs = ids[i0..i0 + 8 * w].chunks_exact(8);
                let ids_out = out.instance_id[row..row + w]
                    .iter_mut()
                    .zip(&mut out.semantic_id[row..row + w]);
                for ((instance, semantic), pair) in ids_out.zip(pairs) {
                    *instance = word(pair, 0);
                    *semantic = word(pair, 4);
                }
            }
        }
        Some(table) => {
            for (i, &source) in table.iter().enumerate() {
                if source == u32::MAX {
                    out.rgba8[4 * i..4 * i + 4].copy_from_slice(&background);
                    out.depth_m[i] = 0.0;
                    out.instance_id[i] = 0;
                    out.semantic_id[i] = 0;
                    continue;
                }
                let (x, y) = (source % tile.width, source / tile.width);
                let c = pixel_offset(color_target, tile, x, y);
                out.rgba8[4 * i..4 * i + 4].copy_from_slice(&color[c..c + 4]);
                out.depth_m[i] =
                    f32::from_bits(word(depth, pixel_offset(depth_target, tile, x, y)));
                let k = pixel_offset(ids_target, tile, x, y);
                out.instance_id[i] = word(ids, k);
                out.semantic_id[i] = word(ids, k + 4);
            }
        }
    }
}

/// Projection from the OpenCV camera frame to wgpu's clip space for one tile: pixel `(u, v)`
/// (centre at integer coordinates) lands on the tile's pixel centre `(u + 0.5, v + 0.5)`, and
/// depth maps `[near, far]` to `[0, 1]`.
fn clip_from_camera(camera: &CameraModel) -> Matrix4<f64> {
    let k = &camera.intrinsics;
    let (w, h) = (f64::from(k.width_px), f64::from(k.height_px));
    let (near, far) = (camera.near_m, camera.far_m);
    let a = far / (far - near);
    let b = -far * near / (far - near);
    Matrix4::new(
        2.0 * k.fx_px / w,
        0.0,
        2.0 * (k.cx_px + 0.5) / w - 1.0,
        0.0,
        0.0,
        -2.0 * k.fy_px / h,
        1.0 - 2.0 * (k.cy_px + 0.5) / h,
        0.0,
        0.0,
        0.0,
        a,
        b,
        0.0,
        0.0,
        1.0,
        0.0,
    )
}

#[cfg(test)]
pub(crate) mod tests;
