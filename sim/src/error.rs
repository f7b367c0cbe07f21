//! The simulator's error type: every variant names the file and the element at fault.

use std::path::PathBuf;

/// Errors from loading scenes and robots, building worlds and recording.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A file could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A scene file is not valid TOML or does not match the format.
    #[error("{path}:{line}:{column}: {message}")]
    Toml {
        /// The scene file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What is wrong (unknown key, wrong type, syntax).
        message: String,
    },
    /// A scene parsed but a value is invalid.
    #[error("{path}: {element}: {message}")]
    Scene {
        /// The scene file.
        path: PathBuf,
        /// The element at fault, as a path into the file (e.g. `robot[0].joints.elbow.kp`).
        element: String,
        /// What is wrong.
        message: String,
    },
    /// A robot description (URDF or MJCF) is malformed or unsupported.
    #[error("{path}: {element}: {message}")]
    Robot {
        /// The URDF or MJCF file.
        path: PathBuf,
        /// The element at fault (e.g. `joint 'elbow'`, `link 'forearm'`).
        element: String,
        /// What is wrong.
        message: String,
    },
    /// A mesh referenced by a robot or scene could not be found.
    #[error("{path}: {element}: mesh '{uri}' not found (searched: {})", searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    MeshNotFound {
        /// The file referencing the mesh.
        path: PathBuf,
        /// The element referencing it.
        element: String,
        /// The URI as written.
        uri: String,
        /// The candidate paths that were tried.
        searched: Vec<PathBuf>,
    },
    /// The simulation state became non-finite.
    #[error("non-finite state at t = {time_secs:.4} s (step {step}): {what}")]
    NonFinite {
        /// Simulated time (s).
        time_secs: f64,
        /// Step index.
        step: u64,
        /// Which body or joint.
        what: String,
    },
    /// Writing the rerun recording failed.
    #[error("recording {path}: {message}")]
    Recording {
        /// The .rrd file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

impl SimError {
    /// A robot-description error.
    pub fn robot(
        path: impl Into<PathBuf>,
        element: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::Robot {
            path: path.into(),
            element: element.into(),
            message: message.into(),
        }
    }

    /// A scene-validation error.
    pub fn scene(
        path: impl Into<PathBuf>,
        element: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::Scene {
            path: path.into(),
            element: element.into(),
            message: message.into(),
        }
    }
}
