//! The drain on SIGTERM and the undrain on the next start, as small state machines.
//!
//! Draining puts this node in standby through the log (so the coordinator moves its groups
//! away in order, counting no failure) and waits until nothing is held here. The shell
//! feeds what the node core sees ([`DrainView`]) and the time; the machine says whether the
//! drain is done, has run past its bound, or must (re)submit the standby command.

use super::spec::NodeId;
use super::state::AdminCommand;

/// How often an unanswered standby / unstandby of our own is submitted again.
pub const RESUBMIT_US: u64 = 1_000_000;

/// What the drain looks at, from the node core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrainView {
    /// Standby of this node is committed.
    pub standby: bool,
    /// A coordinator is known (without one, nobody can move anything: the drain only waits
    /// for the local groups to stop).
    pub coordinator_known: bool,
    /// A local group still holds a resource, or the state still has an active instance here.
    pub holds_anything: bool,
}

/// What the shell must do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DrainStep {
    /// Nothing is held here any more: exit cleanly.
    Done,
    /// The bound passed before the drain finished: exit, saying so.
    GaveUp,
    /// Submit this command (standby of this node) to the node core.
    Submit(AdminCommand),
    /// Look again later.
    Wait,
}

/// A drain in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drain {
    me: NodeId,
    until_us: u64,
    last_submit_us: Option<u64>,
}

impl Drain {
    /// A drain of node `me` that started at `now_us` and may take `bound_us`.
    pub fn new(me: NodeId, now_us: u64, bound_us: u64) -> Drain {
        Drain {
            me,
            until_us: now_us.saturating_add(bound_us),
            last_submit_us: None,
        }
    }

    /// The next step, given what the node core sees now.
    pub fn step(&mut self, v: DrainView, now_us: u64) -> DrainStep {
        if !v.holds_anything && (v.standby || !v.coordinator_known) {
            return DrainStep::Done;
        }
        if now_us >= self.until_us {
            return DrainStep::GaveUp;
        }
        if !v.standby && due(self.last_submit_us, now_us) {
            self.last_submit_us = Some(now_us);
            return DrainStep::Submit(AdminCommand::Standby {
                node: self.me,
                on: true,
            });
        }
        DrainStep::Wait
    }
}

/// The undrain after a drained stop: submit `Standby { me, on: false }` once a coordinator
/// is known, again every [`RESUBMIT_US`] until the shell sees it committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undrain {
    me: NodeId,
    last_submit_us: Option<u64>,
}

impl Undrain {
    /// The undrain of node `me`.
    pub fn new(me: NodeId) -> Undrain {
        Undrain {
            me,
            last_submit_us: None,
        }
    }

    /// The command to submit now, if any.
    pub fn step(&mut self, coordinator_known: bool, now_us: u64) -> Option<AdminCommand> {
        if !coordinator_known || !due(self.last_submit_us, now_us) {
            return None;
        }
        self.last_submit_us = Some(now_us);
        Some(AdminCommand::Standby {
            node: self.me,
            on: false,
        })
    }
}

fn due(last_us: Option<u64>, now_us: u64) -> bool {
    last_us.is_none_or(|t| now_us.saturating_sub(t) >= RESUBMIT_US)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(standby: bool, coordinator_known: bool, holds_anything: bool) -> DrainView {
        DrainView {
            standby,
            coordinator_known,
            holds_anything,
        }
    }

    const STANDBY: AdminCommand = AdminCommand::Standby { node: 1, on: true };

    /// Each row: what the core sees, when, and the step the drain must take (one drain,
    /// started at 0 with a bound of 10 s, rows in order).
    #[test]
    fn a_drain_submits_standby_waits_for_it_and_for_the_groups_then_ends() {
        let mut d = Drain::new(1, 0, 10_000_000);
        let rows = [
            (view(false, true, true), 0, DrainStep::Submit(STANDBY)),
            (view(false, true, true), 500_000, DrainStep::Wait),
            (
                view(false, true, true),
                1_000_000,
                DrainStep::Submit(STANDBY),
            ),
            (view(true, true, true), 1_200_000, DrainStep::Wait),
            (view(true, true, false), 1_400_000, DrainStep::Done),
        ];
        for (i, (v, now, want)) in rows.into_iter().enumerate() {
            assert_eq!(d.step(v, now), want, "row {i}");
        }
    }

    #[test]
    fn without_a_coordinator_a_node_that_holds_nothing_is_done() {
        let mut d = Drain::new(1, 0, 10_000_000);
        assert_eq!(d.step(view(false, false, false), 0), DrainStep::Done);
    }

    #[test]
    fn holding_on_past_the_bound_gives_up() {
        let mut d = Drain::new(1, 0, 10_000_000);
        assert_eq!(d.step(view(true, true, true), 9_999_999), DrainStep::Wait);
        assert_eq!(
            d.step(view(true, true, true), 10_000_000),
            DrainStep::GaveUp
        );
    }

    #[test]
    fn undrain_waits_for_a_coordinator_and_repeats_every_second() {
        let mut u = Undrain::new(1);
        let off = AdminCommand::Standby { node: 1, on: false };
        assert_eq!(u.step(false, 0), None);
        assert_eq!(u.step(true, 100), Some(off.clone()));
        assert_eq!(u.step(true, 900_000), None);
        assert_eq!(u.step(true, 1_000_100), Some(off));
    }
}
