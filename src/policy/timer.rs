//! The node core's timers: one enum naming every deadline the core keeps, one table holding
//! them, and one [`TimerTable::next_timeout`] the shell waits for (after quinn-proto's
//! `TimerTable`).
//!
//! Periodic timers (heartbeats, the raft tick, lease renewal, reports) are re-armed by the core
//! when they fire; the others mirror a deadline owned by a part of the core (the detector, the
//! lease, the local groups, the coordinator) and are copied in after every pass.

use super::spec::PathId;

/// A deadline of the node core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// Send the next heartbeat on this path.
    Heartbeat(PathId),
    /// Tick consensus (elections, raft heartbeats).
    RaftTick,
    /// Ask the coordinator to renew our lease (or, as the coordinator, grant our own).
    LeaseRenew,
    /// Repeat the reports the coordinator still waits for.
    Report,
    /// The failure detector's earliest deadline: a path or a peer may be lost.
    Detector,
    /// The lease reaches its stop point: exclusive resources must start stopping.
    LeaseStop,
    /// The earliest deadline of the local groups (an operation's timeout, a monitor, a retry).
    LocalGroups,
    /// The coordinator must run a pass (a retry, a lease that runs out, patience that ends).
    CoordinatorWake,
    /// Two nodes with fencing: a fence to retry, a `Solo` or `Joined` to propose again.
    TwoNode,
}

/// The timers that are not per path, in table order.
const FIXED: usize = 8;

impl Timer {
    fn slot(self) -> usize {
        match self {
            Timer::RaftTick => 0,
            Timer::LeaseRenew => 1,
            Timer::Report => 2,
            Timer::Detector => 3,
            Timer::LeaseStop => 4,
            Timer::LocalGroups => 5,
            Timer::CoordinatorWake => 6,
            Timer::TwoNode => 7,
            Timer::Heartbeat(p) => FIXED + usize::from(p),
        }
    }
}

/// Every deadline of one node core, in µs of the shell's monotonic clock; `None` = not armed.
#[derive(Clone, Debug)]
pub struct TimerTable {
    at: Vec<Option<u64>>,
}

impl TimerTable {
    /// A table with a heartbeat timer for each of `paths` paths, nothing armed.
    pub fn new(paths: usize) -> TimerTable {
        TimerTable {
            at: vec![None; FIXED + paths],
        }
    }

    /// Arm (`Some`) or disarm (`None`) a timer.
    pub fn set(&mut self, t: Timer, at_us: Option<u64>) {
        self.at[t.slot()] = at_us;
    }

    /// When a timer fires, if armed.
    pub fn get(&self, t: Timer) -> Option<u64> {
        self.at[t.slot()]
    }

    /// Whether a timer is armed and due at `now_us`.
    pub fn is_due(&self, t: Timer, now_us: u64) -> bool {
        self.get(t).is_some_and(|at| now_us >= at)
    }

    /// Re-arm a periodic timer that fired at `now_us`, one `period_us` after it was due rather
    /// than after now: the periodic timers all start at boot, so they stay in phase and fire on
    /// the same wake-up instead of each a few microseconds apart. One that fell a whole period
    /// behind restarts from now.
    pub fn advance(&mut self, t: Timer, now_us: u64, period_us: u64) {
        let slot = &mut self.at[t.slot()];
        let mut next = slot.unwrap_or(now_us) + period_us;
        if next <= now_us {
            next = now_us + period_us;
        }
        *slot = Some(next);
    }

    /// The earliest armed deadline.
    pub fn next_timeout(&self) -> Option<u64> {
        self.at.iter().flatten().copied().min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earliest_armed_timer_is_next() {
        let mut t = TimerTable::new(2);
        assert_eq!(t.next_timeout(), None);
        t.set(Timer::RaftTick, Some(500));
        t.set(Timer::Heartbeat(1), Some(300));
        t.set(Timer::CoordinatorWake, Some(900));
        assert_eq!(t.next_timeout(), Some(300));
        t.set(Timer::Heartbeat(1), None);
        assert_eq!(t.next_timeout(), Some(500));
        assert!(t.is_due(Timer::RaftTick, 500));
        assert!(!t.is_due(Timer::RaftTick, 499));
        assert!(!t.is_due(Timer::Detector, u64::MAX));
    }

    #[test]
    fn a_periodic_timer_keeps_its_phase_unless_it_fell_a_period_behind() {
        let mut t = TimerTable::new(0);
        t.set(Timer::Report, Some(1_000));
        t.advance(Timer::Report, 1_030, 100);
        assert_eq!(t.get(Timer::Report), Some(1_100));
        t.advance(Timer::Report, 1_450, 100);
        assert_eq!(t.get(Timer::Report), Some(1_550));
    }
}
