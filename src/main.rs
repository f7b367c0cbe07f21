//! `rivet`: the command-line front end. It wires the crates together: scenes and physics from
//! `rivet-sim`, controllers from `rivet-control`, and (as later commands land) learning from
//! `rivet-policies`, and robots (deploy, the simulator served as a robot) from
//! `rivet-hw-bridge`.
//!
//! Every command that reports results accepts `--json` and then prints exactly one JSON object
//! on stdout; human-readable output and progress bars go to stderr.

mod bench;
mod bench_bridge;
mod bench_learn;
mod bench_sensors;
mod check;
mod deploy;
mod episode;
mod gap;
mod learn;
mod robot;
mod run;
mod sensors;
mod sysid;
mod view;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rivet_sim::PackagePaths;

/// Rivet: simulate worksite robots, record every episode for rerun.
#[derive(Parser, Debug)]
#[command(name = "rivet", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Folders searched for `package://` URIs.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct PackageArgs {
    /// Folder containing ROS packages by name, searched for `package://<name>/...` URIs
    /// (repeatable). Searched before the folders in $RIVET_PACKAGE_PATH and $ROS_PACKAGE_PATH
    /// (`:`-separated lists).
    #[arg(long = "package-path", value_name = "DIR")]
    pub package_path: Vec<PathBuf>,
}

impl PackageArgs {
    /// The search path: flags first, then the environment lists.
    pub fn resolve(&self) -> PackagePaths {
        let mut paths = PackagePaths::new(self.package_path.iter().cloned());
        for var in ["RIVET_PACKAGE_PATH", "ROS_PACKAGE_PATH"] {
            if let Ok(list) = std::env::var(var) {
                paths.extend_from_list(&list);
            }
        }
        paths
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a scenario headless and write a rerun recording.
    Run(run::RunArgs),
    /// Validate a scene, URDF or MJCF file and print the robot tree.
    Check(check::CheckArgs),
    /// Print the JSON Schema of the scene format.
    Schema,
    /// Measure performance.
    Bench(bench::BenchArgs),
    /// Train a policy on a scene's task (PPO, or behaviour cloning from its expert).
    Train(learn::TrainArgs),
    /// Evaluate a trained policy on a scene's task.
    Eval(learn::EvalArgs),
    /// Run a policy or controller on a robot over zenoh (ROS 2's rmw_zenoh wire format),
    /// through the safety filter, recording the episode as MCAP and .rrd.
    Deploy(deploy::DeployArgs),
    /// The simulator as a robot: `rivet robot serve <scene>`.
    Robot(robot::RobotArgs),
    /// Replay a recorded robot episode (MCAP) in simulation and measure the sim-to-real gap.
    Gap(gap::GapArgs),
    /// Fit a scene robot's physical parameters to recorded episodes; writes a scene overlay.
    Sysid(sysid::SysidArgs),
    /// Watch a scenario live in a window (the same simulation as `run`), teleoperate its
    /// robot, or save a screenshot. Needs the `viewer` cargo feature.
    View(view::ViewArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Check(args) => check::check(args),
        Command::Schema => {
            let schema = rivet_sim::scene::json_schema();
            match serde_json::to_string_pretty(&schema) {
                Ok(text) => {
                    println!("{text}");
                    Ok(())
                }
                Err(e) => Err(e.into()),
            }
        }
        Command::Bench(args) => bench::bench(args),
        Command::Train(args) => learn::train(args),
        Command::Eval(args) => learn::eval(args),
        Command::Deploy(args) => deploy::deploy(args),
        Command::Robot(args) => robot::robot(args),
        Command::Gap(args) => gap::gap(args),
        Command::Sysid(args) => sysid::sysid(args),
        Command::View(args) => view::view(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined with ": ", leaving out a cause whose text the message
/// already holds (our error types put their source in their own message).
fn error_chain(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let cause = cause.to_string();
        if text.is_empty() {
            text = cause;
        } else if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// Prints one JSON object on stdout.
pub fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_chain_names_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = anyhow::Error::from(rivet_sim::SimError::Io {
            path: "scenes/x.toml".into(),
            source: io,
        });
        assert_eq!(error_chain(&e), "scenes/x.toml: cannot read: no such file");
        let e = anyhow::anyhow!("the root cause").context("loading the scene");
        assert_eq!(error_chain(&e), "loading the scene: the root cause");
    }
}
