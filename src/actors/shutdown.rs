//! Every way the daemon ends, in one place: the exit codes, the crash exit, and the orderly
//! stop of the transports and the disk path.
//!
//! | how it ends | code | who decides | what keeps running |
//! |---|---|---|---|
//! | drained (SIGTERM, everything handed off) | 0 | `policy::drain` | nothing of ours |
//! | the drain gave up (stops did not finish in time) | 1 ([`EXIT_DRAIN_GAVE_UP`]) | `policy::drain` | whatever would not stop |
//! | cannot start (a file, a port, a device) | 1 ([`EXIT_START`]) | `daemon::run` | nothing was started |
//! | bad config or options | 2 ([`EXIT_CONFIG`]) | `daemon::run` | nothing was started |
//! | the node core or a child crashed beyond repair | 70 ([`EXIT_CRASH`]) | [`crash`] | resources, for the next core to adopt |
//!
//! These are the core's codes; the monitor process (`crate::monitor`) starts a new core after
//! a crash (or any death by a signal) and ends with the core's code after any other end. Every
//! ending of the core, on purpose or not, leaves the monitor holding the deadline by which the
//! node's exclusive resources must be down: if no core renews the lease by then, the monitor
//! stops them hard.
//!
//! An orderly end ([`stop`]) closes every network transport (peers see the connections go at
//! once rather than by heartbeat loss), stops the disk path's worker, then stops the actor
//! system with the code. A crash does not: the process is in an unknown state, so it writes one
//! `daemon_crash` event and exits at once; resources are left as they are (a restart adopts
//! them; the lease and the watchdog bound how long they run unowned).

use serde_json::{Map, Value};

use super::events::EventLog;
use crate::transport::disk::DiskPath;
use crate::transport::Transport;

/// Exit code for a failure to start (a file, a port, a device).
pub const EXIT_START: i32 = 1;
/// Exit code when a drain did not finish in time.
pub const EXIT_DRAIN_GAVE_UP: i32 = 1;
/// Exit code for a bad config or bad options.
pub const EXIT_CONFIG: i32 = 2;
/// The exit code of a daemon that stops because its node core or a supervised child crashed
/// beyond repair: the monitor process starts a new core.
pub const EXIT_CRASH: i32 = 70;

/// The daemon cannot go on: record why (`fields` of a `daemon_crash` event) and exit with
/// [`EXIT_CRASH`] at once.
pub fn crash(events: &mut EventLog, fields: Map<String, Value>) -> ! {
    events.write("daemon_crash", fields);
    std::process::exit(EXIT_CRASH)
}

/// What an orderly end closes.
pub struct Teardown {
    /// The network transports still open.
    pub nets: Vec<Transport>,
    /// The disk path, if any.
    pub disk: Option<DiskPath>,
}

/// Close everything in `t`, then stop the actor system with `code`. Call from the node actor
/// once it has stopped itself; runs on the actor system.
pub fn stop(t: Teardown, code: i32) {
    actix::spawn(async move {
        for n in t.nets {
            n.shutdown().await;
        }
        if let Some(d) = t.disk {
            let _ = tokio::task::spawn_blocking(move || d.stop()).await;
        }
        actix::System::current().stop_with_code(code);
    });
}
