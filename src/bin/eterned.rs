//! `eterned`: the EterneCluster daemon, one per node. See [`eterne::actors::daemon`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use eterne::actors::daemon::{self, Options};
use eterne::control::DEFAULT_SOCKET;
use eterne::monitor::{self, link::ROLE_ENV};
use eterne::storage::DEFAULT_STATE_DIR;
use eterne::transport::certs::DEFAULT_TLS_DIR;

/// The EterneCluster daemon.
#[derive(Parser, Debug)]
#[command(name = "eterned", version, about)]
struct Cli {
    /// The cluster.toml (the same file on every node).
    #[arg(long)]
    config: PathBuf,
    /// This node's name in the config (default: the hostname).
    #[arg(long)]
    node: Option<String>,
    /// The consensus log, the event log and the drain marker.
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// ca.crt, NODE.crt and NODE.key.
    #[arg(long, default_value = DEFAULT_TLS_DIR)]
    tls_dir: PathBuf,
    /// Where agents keep pidfiles (must survive a daemon restart).
    #[arg(long, default_value = "/run/eterne")]
    run_dir: PathBuf,
    /// The control socket (mode 0600).
    #[arg(long, default_value = DEFAULT_SOCKET)]
    control_socket: PathBuf,
    /// The event log, JSON lines (default: STATE_DIR/events.jsonl).
    #[arg(long)]
    events: Option<PathBuf>,
    /// Run as a witness: consensus only, no resources.
    #[arg(long)]
    witness: bool,
    /// A hardware watchdog device (e.g. /dev/watchdog), petted by the monitor process; it stops
    /// petting (the machine resets) only when it could not stop the exclusive resources in
    /// time.
    #[arg(long)]
    watchdog_device: Option<PathBuf>,
    /// Do not ask for real-time priority and locked memory.
    #[arg(long)]
    no_realtime: bool,
    /// Accept fault-injection requests on the control socket (tests only).
    #[arg(long, hide = true)]
    test_faults: bool,
    /// Applied log entries between two snapshots of the cluster state (each one compacts the
    /// raft log; a lower number keeps the log and the boot replay shorter, at the cost of
    /// more snapshot writes).
    #[arg(long, default_value_t = eterne::policy::snapshot::SNAPSHOT_EVERY,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    snapshot_every: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ETERNE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // A log line that cannot be written (stderr a file on a full disk) is lost, never a
        // panic: by default the subscriber reports it with `eprintln!`, which panics when
        // stderr fails, and took both processes down with it.
        .log_internal_errors(false)
        .init();
    // `eterned` is two processes (see eterne::monitor): as started, the monitor, which starts
    // the core; the core and a monitor the core restarts say so in their environment.
    if std::env::var(ROLE_ENV).as_deref() != Ok("core") {
        let code = monitor::run(monitor::Options {
            watchdog_device: cli.watchdog_device,
        });
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let code = daemon::run(Options {
        config: cli.config,
        node: cli.node,
        state_dir: cli.state_dir,
        tls_dir: cli.tls_dir,
        run_dir: cli.run_dir,
        control_socket: cli.control_socket,
        events: cli.events,
        witness: cli.witness,
        no_realtime: cli.no_realtime,
        test_faults: cli.test_faults,
        snapshot_every: cli.snapshot_every,
    });
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
