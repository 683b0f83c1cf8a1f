//! `eternectl`: the EterneCluster command line.
//!
//! One subcommand enum, one handler per command. Today: `config check`. The commands that talk
//! to the local daemon (`status`, `move`, `standby`, …) are added as further variants of
//! [`Command`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use eterne::config::ClusterConfig;

/// The EterneCluster command line.
#[derive(Parser, Debug)]
#[command(name = "eternectl", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Top-level commands.
#[derive(Subcommand, Debug)]
enum Command {
    /// Work with cluster.toml files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

/// `eternectl config …`
#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Load and validate a cluster.toml; print every error, or a summary and the digest.
    Check {
        /// The config file to check.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Config {
            command: ConfigCommand::Check { file },
        } => config_check(&file),
    }
}

/// Exit 0 and a one-line summary when the file is valid; exit 1 and every error otherwise.
fn config_check(file: &std::path::Path) -> ExitCode {
    match ClusterConfig::load(file) {
        Ok(config) => {
            let spec = config.spec();
            let nodes = spec.nodes.iter().filter(|n| !n.witness).count();
            let witness = if config.witness.is_some() {
                " + witness"
            } else {
                ""
            };
            let resources: usize = spec.groups.iter().map(|g| g.resources.len()).sum();
            println!(
                "{}: ok — {nodes} nodes{witness}, {} groups, {resources} resources, digest {:#018x}",
                file.display(),
                spec.groups.len(),
                spec.digest
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors.errors {
                eprintln!("{e}");
            }
            let n = errors.errors.len();
            eprintln!(
                "{}: {n} error{}",
                file.display(),
                if n == 1 { "" } else { "s" }
            );
            ExitCode::FAILURE
        }
    }
}
