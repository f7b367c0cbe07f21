//! The GPU: picking an adapter (a real GPU when present, else a CPU software adapter) and
//! opening a device on it, headless.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use crate::PerceptionError;

/// Which adapters the renderer may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AdapterChoice {
    /// The best adapter found: discrete GPU, then integrated, then virtual, then a CPU
    /// software adapter (Vulkan before GL at each rank).
    #[default]
    Auto,
    /// Only CPU software adapters (Mesa lavapipe over Vulkan, llvmpipe over GL).
    Software,
}

/// The adapter in use, reported by [`GpuContext::adapter`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AdapterReport {
    /// The adapter's name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// The wgpu backend: `vulkan` or `gl`.
    pub backend: String,
    /// `discrete_gpu`, `integrated_gpu`, `virtual_gpu`, `cpu` or `other`.
    pub device_type: String,
    /// Whether this is a CPU software adapter.
    pub software: bool,
    /// Driver name and version as the backend reports them.
    pub driver: String,
}

/// A wgpu device and queue on a chosen adapter. Cheap to share between renderers (clone the
/// `Arc` it lives in).
pub struct GpuContext {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    report: AdapterReport,
    limits: wgpu::Limits,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.report)
            .finish_non_exhaustive()
    }
}

fn rank(info: &wgpu::AdapterInfo) -> u32 {
    let device = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 2,
        wgpu::DeviceType::VirtualGpu => 4,
        wgpu::DeviceType::Cpu => 6,
        wgpu::DeviceType::Other => 8,
    };
    let backend = u32::from(info.backend != wgpu::Backend::Vulkan);
    device + backend
}

fn is_software(info: &wgpu::AdapterInfo) -> bool {
    info.device_type == wgpu::DeviceType::Cpu
        || info.name.contains("llvmpipe")
        || info.name.contains("lavapipe")
        || info.name.contains("SwiftShader")
}

impl GpuContext {
    /// Opens a device on the best adapter allowed by `choice`. Fails with
    /// [`PerceptionError::NoAdapter`], listing what was found, when there is none; on a machine
    /// without a GPU install Mesa's `mesa-vulkan-drivers` and `libvulkan1` (lavapipe) or
    /// `libegl-mesa0` (llvmpipe over GL).
    pub fn new(choice: AdapterChoice) -> Result<Self, PerceptionError> {
        let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle();
        descriptor.backends = wgpu::Backends::VULKAN | wgpu::Backends::GL;
        let instance = wgpu::Instance::new(descriptor);
        let adapters = block_on(instance.enumerate_adapters(descriptor_backends()));
        let mut candidates: Vec<(u32, usize, wgpu::Adapter)> = adapters
            .into_iter()
            .enumerate()
            .map(|(i, a)| (rank(&a.get_info()), i, a))
            .filter(|(_, _, a)| choice == AdapterChoice::Auto || is_software(&a.get_info()))
            .collect();
        candidates.sort_by_key(|(rank, index, _)| (*rank, *index));
        let mut failures = Vec::new();
        for (_, _, adapter) in candidates {
            let info = adapter.get_info();
            let limits = wgpu::Limits::downlevel_defaults().using_resolution(adapter.limits());
            let request = wgpu::DeviceDescriptor {
                label: Some("rivet-perception"),
                // Lets one draw serve every camera of an atlas (see `Renderer`).
                required_features: adapter.features() & wgpu::Features::CLIP_DISTANCES,
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            };
            match block_on(adapter.request_device(&request)) {
                Ok((device, queue)) => {
                    if is_software(&info) {
                        keep_freed_heap();
                    }
                    let report = AdapterReport {
                        software: is_software(&info),
                        name: info.name.clone(),
                        backend: match info.backend {
                            wgpu::Backend::Vulkan => "vulkan".into(),
                            wgpu::Backend::Gl => "gl".into(),
                            other => format!("{other:?}").to_lowercase(),
                        },
                        device_type: match info.device_type {
                            wgpu::DeviceType::DiscreteGpu => "discrete_gpu",
                            wgpu::DeviceType::IntegratedGpu => "integrated_gpu",
                            wgpu::DeviceType::VirtualGpu => "virtual_gpu",
                            wgpu::DeviceType::Cpu => "cpu",
                            wgpu::DeviceType::Other => "other",
                        }
                        .into(),
                        driver: format!("{} {}", info.driver, info.driver_info)
                            .trim()
                            .to_string(),
                    };
                    return Ok(Self {
                        device,
                        queue,
                        report,
                        limits,
                    });
                }
                Err(e) => failures.push(format!("{} ({:?}): {e}", info.name, info.backend)),
            }
        }
        Err(PerceptionError::NoAdapter {
            details: if failures.is_empty() {
                match choice {
                    AdapterChoice::Auto => "no Vulkan or GL adapter found".into(),
                    AdapterChoice::Software => "no CPU software adapter found".into(),
                }
            } else {
                failures.join("; ")
            },
        })
    }

    /// The adapter in use.
    pub fn adapter(&self) -> &AdapterReport {
        &self.report
    }

    /// The device limits requested (downlevel defaults at the adapter's texture sizes).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }
}

/// Mesa's software rasterizer allocates scratch memory for each submission (megabytes, with
/// malloc) and frees it at the end. glibc hands a freed heap top above 128 KiB back to the
/// kernel, so the next submission faults every page in again: with 16 cameras at 128x128 on
/// lavapipe, the submitting thread spent a third of its time in page faults and `madvise`, and
/// letting glibc keep up to 256 MiB of freed heap (`M_TRIM_THRESHOLD`) rendered 1.5x the
/// frames per second (BENCHMARKS.md, "Cameras and lidar"). A process-wide setting: it is left
/// alone when the user sets it (`MALLOC_TRIM_THRESHOLD_`, or `GLIBC_TUNABLES` with
/// `trim_threshold`).
fn keep_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let user_set = std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_some()
                || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("trim_threshold"));
            if !user_set {
                #[allow(unsafe_code, reason = "mallopt is a C function")]
                // SAFETY: mallopt takes no pointers and accepts any value for this parameter;
                // glibc serialises it with the allocator's own lock.
                unsafe {
                    libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
                }
            }
        });
    }
}

fn descriptor_backends() -> wgpu::Backends {
    wgpu::Backends::VULKAN | wgpu::Backends::GL
}

/// Drives a future to completion on this thread. wgpu's native futures are ready at once or
/// after the device is polled, so there is no reactor to run; this yields between polls.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::yield_now();
    }
}
