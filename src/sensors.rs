//! The CLI's side of sensors: opening the GPU for a scene's cameras (reporting the adapter, or
//! why cameras are off), and summaries.

use std::sync::Arc;

use rivet_perception::render::{AdapterChoice, GpuContext};
use rivet_sim::{SensorSuite, World};
use serde_json::json;

/// Opens a graphics adapter, or says why there is none.
pub fn open_gpu() -> Result<Arc<GpuContext>, String> {
    GpuContext::new(AdapterChoice::Auto)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

/// The sensors of `world`'s scene, `None` when it declares none. Without a graphics adapter the
/// cameras are left out with a warning on stderr (unless `quiet`) and the rest runs.
pub fn suite_for(world: &World, quiet: bool) -> anyhow::Result<Option<SensorSuite>> {
    let model = &world.scene().sensors;
    if model.is_empty() {
        return Ok(None);
    }
    let (gpu, reason) = if model.cameras.is_empty() {
        (None, None)
    } else {
        match open_gpu() {
            Ok(gpu) => (Some(gpu), None),
            Err(reason) => {
                if !quiet {
                    eprintln!("warning: cameras disabled: {reason}");
                }
                (None, Some(reason))
            }
        }
    };
    Ok(Some(SensorSuite::new(world, gpu, reason)?))
}

/// A JSON summary of a run's sensors.
pub fn summary(suite: &SensorSuite) -> serde_json::Value {
    let model = suite.model();
    json!({
        "cameras": model.cameras.iter().map(|c| json!({
            "name": c.name,
            "resolution": [c.model.intrinsics.width_px, c.model.intrinsics.height_px],
            "rate_hz": c.rate_hz,
        })).collect::<Vec<_>>(),
        "sensors": model.sensors.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
        "classes": model.classes,
        "adapter": suite.adapter(),
        "cameras_disabled": suite.cameras_disabled(),
    })
}

/// One line for the human summary.
pub fn summary_line(summary: &serde_json::Value) -> String {
    let cameras = summary["cameras"].as_array().map_or(0, Vec::len);
    let sensors = summary["sensors"].as_array().map_or(0, Vec::len);
    let adapter = match (&summary["adapter"], &summary["cameras_disabled"]) {
        (serde_json::Value::Object(a), _) => format!(
            ", rendered on {} ({})",
            a.get("name").and_then(|n| n.as_str()).unwrap_or("?"),
            a.get("backend").and_then(|n| n.as_str()).unwrap_or("?")
        ),
        (_, serde_json::Value::String(reason)) => format!(", cameras disabled: {reason}"),
        _ => String::new(),
    };
    format!("{cameras} cameras, {sensors} other sensors{adapter}")
}
