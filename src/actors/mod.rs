//! The actix actor tree of `eterned` (design.md §4): thin shells that feed inputs to
//! [`crate::policy::node::NodeCore`] and carry out its effects. No decision lives in a handler.
//!
//! ```text
//! NodeActor            owns the NodeCore (and with it consensus), its one timer, the
//!  │                   transports, the event log, the control requests
//!  ├─ PeerActor        one per other node: routes what arrives from it to its paths
//!  │   └─ PathActor    one per heartbeat path to it: tracks the connection up/down, feeds
//!  │                   Input::Heartbeat / Input::Message to the node
//!  └─ GroupActor       one per group this node may run
//!      └─ ResourceActor one per resource: runs each AgentOp in its own task, bounded by the
//!                      op's deadline; forwards process exits as Input::ResourceFailed
//! ```
//!
//! **ConsensusActor is folded into NodeActor**: the node core owns the consensus core (raft is
//! one of the cores it composes, and placement reads its committed state in the same step), so
//! a separate actor would only add a mailbox hop between two halves of one state machine.
//!
//! - [`daemon`]: `eterned` itself: options, start-up order, signals.
//! - [`node`]: NodeActor. [`peer`]: PeerActor and PathActor. [`group`]: GroupActor and
//!   ResourceActor.
//! - [`messages`]: every message between the actors, and who sends it to whom.
//! - [`events`]: the JSON-lines event log. [`monitor`]: the core's side of the monitor process
//!   (what it is told, and a new monitor when the old one dies).
//! - [`writer`]: the raft log writer thread (the node core's `Persist` batches, fsync'ed).
//! - [`shutdown`]: every way the daemon ends (exit codes, the crash exit, the orderly stop).
//!
//! # Threads
//!
//! The actors run on the main thread (actix's local task set) of a multi-thread tokio runtime;
//! quinn's tasks and every agent operation run on the runtime's worker threads
//! (`tokio::spawn`), so a slow agent never delays a heartbeat or a consensus step. The disk
//! path has its own IO thread, the raft log its writer thread ([`writer`]): no fsync runs on
//! the actor thread. A thread watches the monitor process and replaces it when it dies.
//!
//! # Supervision
//!
//! Every child actor is started under an actix [`actix::Supervisor`], which restarts it when
//! it stops. A panic in a handler is caught by [`guard`] (actix itself would lose the actor)
//! and turned into a stop, hence a restart. [`Crashes`] counts restarts: more than
//! [`CRASH_LIMIT`] within [`CRASH_WINDOW`] escalate to the parent
//! ([`messages::ChildFailed`], sent to a `Recipient` the parent gave it) (a ResourceActor's crashes
//! become a resource failure its group recovers per policy; a GroupActor's or PeerActor's make
//! the node exit). The node itself does not restart in place: a panic in the node core leaves
//! it in an unknown state, so the core exits non-zero ([`EXIT_CRASH`]) and its monitor process
//! starts a new core at once, handing it the lease; resources live in their own sessions and
//! are adopted by probe.

pub mod daemon;
pub mod events;
pub mod group;
pub mod messages;
pub mod monitor;
pub mod node;
pub mod notify;
pub mod peer;
pub mod shutdown;
pub mod writer;

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// Crashes of one actor allowed within [`CRASH_WINDOW`] before they escalate.
pub const CRASH_LIMIT: usize = 3;
/// The window over which crashes are counted.
pub const CRASH_WINDOW: Duration = Duration::from_secs(60);
pub use shutdown::EXIT_CRASH;

/// The daemon's monotonic clock: `now_us` for the node core, from one [`Instant`] taken at
/// start. The policy never reads a clock; everything it is given comes from here.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
}

/// The clock starts at this many µs rather than 0, so that no deadline of the core is ever 0.
const CLOCK_BASE_US: u64 = 1_000_000;

impl Clock {
    /// A clock whose zero is now.
    pub fn start() -> Clock {
        Clock {
            start: Instant::now(),
        }
    }

    /// Microseconds on the daemon's monotonic clock.
    pub fn now_us(&self) -> u64 {
        CLOCK_BASE_US + self.start.elapsed().as_micros() as u64
    }

    /// The instant at `us` on this clock.
    pub fn instant(&self, us: u64) -> Instant {
        self.start + Duration::from_micros(us.saturating_sub(CLOCK_BASE_US))
    }

    /// How long from now until `us` (zero if past).
    pub fn until(&self, us: u64) -> Duration {
        Duration::from_micros(us.saturating_sub(self.now_us()))
    }
}

/// Recent crashes of one actor.
#[derive(Debug, Default)]
pub struct Crashes {
    at: VecDeque<Instant>,
}

impl Crashes {
    /// Records a crash now; true if crashes now exceed [`CRASH_LIMIT`] within
    /// [`CRASH_WINDOW`] (escalate).
    pub fn record(&mut self) -> bool {
        let now = Instant::now();
        while self
            .at
            .front()
            .is_some_and(|t| now.duration_since(*t) > CRASH_WINDOW)
        {
            self.at.pop_front();
        }
        self.at.push_back(now);
        self.at.len() > CRASH_LIMIT
    }
}

/// Runs a handler body, catching a panic. Returns `Err(message)` if it panicked.
pub fn guard<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_string());
        tracing::error!(actor = what, panic = %msg, "handler panicked");
        msg
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crashes_escalate_past_the_limit() {
        let mut c = Crashes::default();
        for _ in 0..CRASH_LIMIT {
            assert!(!c.record());
        }
        assert!(c.record());
    }

    #[test]
    fn guard_catches_a_panic() {
        let r: Result<(), String> = guard("test", || panic!("boom"));
        assert_eq!(r.unwrap_err(), "boom");
        assert_eq!(guard("test", || 7).unwrap(), 7);
    }

    #[test]
    fn clock_is_never_zero() {
        let c = Clock::start();
        assert!(c.now_us() >= CLOCK_BASE_US);
        assert!(c.instant(c.now_us()) <= Instant::now());
    }
}
