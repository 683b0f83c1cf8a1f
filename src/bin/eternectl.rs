//! `eternectl`: the EterneCluster command line.
//!
//! One subcommand enum, one handler per command. Today: `config check`, `ca init`,
//! `cert issue NODE`. The commands that talk
//! to the local daemon (`status`, `move`, `standby`, …) are added as further variants of
//! [`Command`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use eterne::config::ClusterConfig;
use eterne::transport::certs::{self, DEFAULT_TLS_DIR};

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
    /// Work with the cluster's certificate authority.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
    /// Work with node certificates.
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
}

/// `eternectl ca …`
#[derive(Subcommand, Debug)]
enum CaCommand {
    /// Make the cluster CA: DIR/ca.crt (copy it to every node) and DIR/ca.key (keep it on
    /// this machine only).
    Init {
        /// Where to write the files.
        #[arg(long, default_value = DEFAULT_TLS_DIR)]
        dir: PathBuf,
        /// Replace an existing CA (every certificate it signed stops being accepted).
        #[arg(long)]
        force: bool,
    },
}

/// `eternectl cert …`
#[derive(Subcommand, Debug)]
enum CertCommand {
    /// Issue a certificate for NODE, signed by DIR/ca.key: DIR/NODE.crt and DIR/NODE.key.
    /// Copy them, with ca.crt, to NODE's TLS directory.
    Issue {
        /// The node's name, exactly as in cluster.toml.
        node: String,
        /// The directory holding ca.crt and ca.key, where the files are written.
        #[arg(long, default_value = DEFAULT_TLS_DIR)]
        dir: PathBuf,
        /// Replace an existing certificate and key for NODE.
        #[arg(long)]
        force: bool,
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
        Command::Ca {
            command: CaCommand::Init { dir, force },
        } => ca_init(&dir, force),
        Command::Cert {
            command: CertCommand::Issue { node, dir, force },
        } => cert_issue(&dir, &node, force),
    }
}

/// Exit 0 and the files written; exit 1 and the error (naming the file) otherwise.
fn ca_init(dir: &std::path::Path, force: bool) -> ExitCode {
    match certs::init_ca(dir, force) {
        Ok(files) => {
            println!(
                "{}: cluster CA certificate; copy it to every node",
                files.cert.display()
            );
            println!(
                "{}: CA key (mode 0600); keep it here, it signs node certificates",
                files.key.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("eternectl ca init: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Exit 0 and the files written; exit 1 and the error (naming the file) otherwise.
fn cert_issue(dir: &std::path::Path, node: &str, force: bool) -> ExitCode {
    match certs::issue_node_cert(dir, node, force) {
        Ok(files) => {
            println!("{}: certificate of node \"{node}\"", files.cert.display());
            println!("{}: its key (mode 0600)", files.key.display());
            println!(
                "copy both and {} to {DEFAULT_TLS_DIR}/ on \"{node}\"",
                dir.join("ca.crt").display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("eternectl cert issue: {e}");
            ExitCode::FAILURE
        }
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
