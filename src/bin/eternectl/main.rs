//! `eternectl`: the EterneCluster command line.
//!
//! One subcommand enum, one handler per command: `config check`, `ca init`, `cert issue NODE`,
//! and the commands that talk to the local daemon over its control socket (`status`, `move`,
//! `standby`, `unstandby`, `maintenance`, `failback`, `clear`), and `agent test TYPE` (an agent
//! run through its contract on this node). Each says what happened in one
//! line; a refusal exits 1 with the reason.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use eterne::actors::daemon::{default_state_dir, lock_state_dir};
use eterne::config::ClusterConfig;
use eterne::control::client::{request, Client};
use eterne::control::{Request, Status, DEFAULT_SOCKET};
use eterne::policy::raft_log::StoreError;
use eterne::storage;
use eterne::transport::certs::{self, DEFAULT_TLS_DIR};
use raft::Storage as _;

/// How long a request may wait for the daemon (an admin command waits for its commit).
mod agent_test;
mod table;

use agent_test::agent_test;
use table::table;

const ANSWER_WAIT: Duration = Duration::from_secs(15);

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
    /// Show the cluster as this node sees it.
    Status {
        /// Print the raw JSON snapshot.
        #[arg(long)]
        json: bool,
        /// Keep printing a snapshot every second.
        #[arg(long)]
        watch: bool,
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Move GROUP to NODE, or to the next eligible node in its order.
    Move {
        group: String,
        node: Option<String>,
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Drain NODE: its groups move away and nothing is placed on it.
    Standby {
        node: String,
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Let NODE host groups again.
    Unstandby {
        node: String,
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Stop managing (on) or resume (off).
    Maintenance {
        state: OnOff,
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Return GROUP to its most preferred eligible node now.
    Failback {
        group: String,
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Stop GROUP everywhere and start it nowhere until `eternectl enable GROUP`.
    Disable {
        group: String,
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Let a disabled GROUP run again (where placement puts it).
    Enable {
        group: String,
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Leave RESOURCE to the administrator: monitored, never started or stopped, and its
    /// group neither moved nor stopped, until `eternectl manage RESOURCE`.
    Unmanage {
        resource: String,
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Give an unmanaged RESOURCE back to the cluster.
    Manage {
        resource: String,
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Look after this node's raft state (the daemon must be stopped to change it).
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
    /// Work with resource agents on this node.
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
    /// Forget the failure counts of a group (named, or through one of its resources).
    Clear {
        target: String,
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
}

/// `on` or `off`.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum OnOff {
    On,
    Off,
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

/// `eternectl state …`
#[derive(Subcommand, Debug)]
enum StateCommand {
    /// Read the raft log as a start would, changing nothing: its extent, term and vote, or
    /// the damage a start would refuse (file and offset).
    Check {
        /// The daemon's state directory.
        #[arg(long, default_value_os_t = default_state_dir().to_path_buf())]
        state_dir: PathBuf,
    },
    /// Set a damaged raft log aside and rejoin the cluster from the other nodes: they send
    /// the entries (or a snapshot); this node votes for nobody and stands for nothing until
    /// it holds what the coordinator had committed, so nothing the cluster acknowledged is
    /// lost. The old files are kept in the state directory. Needs the daemon stopped.
    Discard {
        #[arg(long, default_value_os_t = default_state_dir().to_path_buf())]
        state_dir: PathBuf,
        /// Required: say that this node's copy of the log goes, and the cluster's is used.
        #[arg(long)]
        rejoin_from_cluster: bool,
    },
}

/// `eternectl agent …`
#[derive(Subcommand, Debug)]
enum AgentCommand {
    /// Run an agent through its contract on this node, like ocf-tester: validate, probe,
    /// start, probe and monitor at each depth, start again, stop, monitor and probe again,
    /// stop again. It refuses to touch a resource that already runs here.
    Test {
        /// The resource type (`ip`, `application`, `service`, `filesystem`, `disk_lock`,
        /// `ocf`), or an OCF agent as `ocf:PROVIDER:AGENT`.
        kind: String,
        /// The resource's parameters, as `KEY=VALUE`.
        params: Vec<String>,
        /// The bound of start and validate.
        #[arg(long, default_value_t = 20_000)]
        start_timeout_ms: u32,
        /// The bound of stop.
        #[arg(long, default_value_t = 20_000)]
        stop_timeout_ms: u32,
        /// The bound of probe and monitor.
        #[arg(long, default_value_t = 10_000)]
        monitor_timeout_ms: u32,
        /// Where the agent keeps its runtime files (pidfiles).
        #[arg(long, default_value = "/run/eterne-agent-test")]
        run_dir: PathBuf,
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
        Command::Status {
            json,
            watch,
            socket,
        } => status(&socket, json, watch),
        Command::Move {
            group,
            node,
            socket,
        } => act(&socket, Request::Move { group, node }),
        Command::Standby { node, socket } => act(&socket, Request::Standby { node }),
        Command::Unstandby { node, socket } => act(&socket, Request::Unstandby { node }),
        Command::Maintenance { state, socket } => act(
            &socket,
            Request::Maintenance {
                on: matches!(state, OnOff::On),
            },
        ),
        Command::Failback { group, socket } => act(&socket, Request::Failback { group }),
        Command::Clear { target, socket } => act(&socket, Request::Clear { target }),
        Command::Disable { group, socket } => act(&socket, Request::Disable { group }),
        Command::Enable { group, socket } => act(&socket, Request::Enable { group }),
        Command::Unmanage { resource, socket } => act(&socket, Request::Unmanage { resource }),
        Command::Manage { resource, socket } => act(&socket, Request::Manage { resource }),
        Command::Agent {
            command:
                AgentCommand::Test {
                    kind,
                    params,
                    start_timeout_ms,
                    stop_timeout_ms,
                    monitor_timeout_ms,
                    run_dir,
                },
        } => agent_test(
            &kind,
            &params,
            [start_timeout_ms, stop_timeout_ms, monitor_timeout_ms],
            run_dir,
        ),
        Command::State {
            command: StateCommand::Check { state_dir },
        } => state_check(&state_dir),
        Command::State {
            command:
                StateCommand::Discard {
                    state_dir,
                    rejoin_from_cluster,
                },
        } => state_discard(&state_dir, rejoin_from_cluster),
    }
}

fn state_check(state_dir: &Path) -> ExitCode {
    let dir = state_dir.join(storage::RAFT_DIR);
    match storage::inspect(&dir) {
        Ok(i) => {
            let hs = i.log.hard_state();
            let first = i.log.first_index().unwrap_or(0);
            let last = i.log.last_index().unwrap_or(0);
            println!(
                "{}: entries {first}..={last}, snapshot at {}, term {}, vote {}, commit {}{}{}",
                dir.display(),
                i.log.snapshot_metadata().index,
                hs.term,
                hs.vote,
                hs.commit,
                if i.needs_rewrite {
                    "; a start drops a torn tail (never synced, so never acknowledged)"
                } else {
                    ""
                },
                if i.rejoining {
                    "; rejoining: votes once caught up"
                } else {
                    ""
                },
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("eternectl: {e}");
            if matches!(e, StoreError::Corrupt { .. }) {
                eprintln!(
                    "eternectl: a start refuses this log. With the daemon stopped, `eternectl \
                     state discard --state-dir {} --rejoin-from-cluster` sets it aside and \
                     rejoins from the other nodes",
                    state_dir.display()
                );
            }
            ExitCode::FAILURE
        }
    }
}

fn state_discard(state_dir: &Path, confirmed: bool) -> ExitCode {
    if !confirmed {
        eprintln!(
            "eternectl: state discard drops this node's raft log and rejoins from the cluster; \
             say so with --rejoin-from-cluster (the other nodes must hold a quorum)"
        );
        return ExitCode::FAILURE;
    }
    // The daemon's own lock: refused while it runs.
    let _lock = match lock_state_dir(state_dir) {
        Ok(l) => l,
        Err(why) => {
            eprintln!("eternectl: {why}; stop eterned first");
            return ExitCode::FAILURE;
        }
    };
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match storage::discard_for_rejoin(&state_dir.join(storage::RAFT_DIR), &stamp.to_string()) {
        Ok(aside) => {
            println!(
                "raft log set aside in {}; at its next start this node rejoins from the cluster \
                 and votes once caught up",
                aside.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("eternectl: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One request; its answer in one line; exit 1 if refused.
fn act(socket: &Path, req: Request) -> ExitCode {
    match request(socket, &req, ANSWER_WAIT) {
        Ok(r) if r.ok => {
            println!("{}", r.message);
            ExitCode::SUCCESS
        }
        Ok(r) => {
            eprintln!("refused: {}", r.message);
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("eternectl: {e}");
            ExitCode::FAILURE
        }
    }
}

fn status(socket: &Path, json: bool, watch: bool) -> ExitCode {
    let print = |s: &Status| {
        if json {
            match serde_json::to_string_pretty(s) {
                Ok(t) => println!("{t}"),
                Err(e) => eprintln!("eternectl: {e}"),
            }
        } else {
            print!("{}", table(s));
        }
    };
    let run = || -> Result<(), eterne::control::client::ClientError> {
        let mut c = Client::connect(socket, ANSWER_WAIT)?;
        c.send(&if watch {
            Request::Watch { interval_ms: None }
        } else {
            Request::Status {}
        })?;
        // On a terminal `--watch` redraws in place; into a pipe or file it appends, one
        // snapshot after another, so a log of it stays readable.
        // SAFETY: isatty(2) on our own stdout.
        let redraw = watch && !json && unsafe { libc::isatty(1) } == 1;
        loop {
            let r = c.read()?;
            if redraw {
                // Cursor home, then clear the screen.
                print!("\x1b[H\x1b[2J");
            }
            match &r.status {
                Some(s) => print(s),
                None => eprintln!("refused: {}", r.message),
            }
            if !watch {
                return Ok(());
            }
            if !redraw {
                println!();
            }
            let _ = std::io::Write::flush(&mut std::io::stdout());
        }
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eternectl: {e}");
            ExitCode::FAILURE
        }
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

/// `[fencing] agent` should be found on this machine: a node that coordinates without it
/// cannot fence, so it takes over nothing from a silent node, and `eterned` refuses to start
/// without it. `config check` runs anywhere (a workstation, a build host), so here a missing
/// agent is a warning on stderr, not an error.
fn fence_agent_check(file: &std::path::Path, config: &ClusterConfig) -> ExitCode {
    if let Some(f) = &config.fencing {
        if f.method == eterne::config::FenceMethod::PoisonPill {
            println!(
                "{}: fencing → poison pill on disk path {:?}",
                file.display(),
                f.path.as_deref().unwrap_or("")
            );
            return ExitCode::SUCCESS;
        }
        match eterne::resources::fence::locate(&f.agent) {
            Ok(p) => println!("{}: fencing → agent: {}", file.display(), p.display()),
            Err(e) => eprintln!(
                "{}: warning: fencing → agent: {e}; eterned will not start on a node without \
                 it (any node may coordinate, and the coordinator fences)",
                file.display()
            ),
        }
    }
    ExitCode::SUCCESS
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
            fence_agent_check(file, &config)
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
