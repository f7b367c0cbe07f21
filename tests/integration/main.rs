//! Cross-crate tests of Rivet: robot import against the shared corpus, physics behaviour,
//! determinism and the `rivet` CLI contract. One test binary on purpose (link time).
//!
//! Tests that read `../shared/` (the example robots and MJCF models beside the repository) say
//! so; outside CI they skip with a message when it is absent, in CI (`CI` set) they fail.

mod alloc;
mod cli;
mod control;
mod deploy;
mod determinism;
mod learn;
mod robots;
mod scenarios;
mod sensors;
mod sysid;
mod view;

use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Tests run in parallel on a 2-core CI machine. A test that runs a robot in real time
/// (`rivet robot serve` and `rivet deploy` over zenoh) holds this lock exclusively; every
/// other test holds it shared. So a real-time test runs alone: a served robot that competes
/// for the CPU falls behind real time and its states stop (seen in CI beside training, and
/// beside the CLI tests), and the test would measure the machine, not the code.
static CPU: RwLock<()> = RwLock::new(());

/// For a test that runs a robot in real time: waits until no other test runs.
pub fn real_time() -> RwLockWriteGuard<'static, ()> {
    CPU.write().unwrap_or_else(PoisonError::into_inner)
}

/// For every other test: waits while a real-time test runs.
pub fn not_real_time() -> RwLockReadGuard<'static, ()> {
    CPU.read().unwrap_or_else(PoisonError::into_inner)
}

/// The repository root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared`, or `None` (with a message) when it is absent outside CI.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = repo().join("../shared");
    if dir.join("example-robot-data").is_dir() && dir.join("mjcf").is_dir() {
        return Some(dir);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{} is missing: CI must have the shared corpus beside the repository",
            dir.display()
        );
    }
    eprintln!(
        "SKIPPED: {} is absent (this test reads the shared robot corpus)",
        dir.display()
    );
    None
}

/// All files under `dir` (recursively) with the extension `ext`, sorted.
pub fn files_with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == ext) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
