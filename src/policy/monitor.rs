//! What the monitor process decides (docs/runtime.md "The two processes"), as pure rules: the
//! monitor in `src/monitor/` reads its clock and acts on the verdict, and the simulator's
//! model of the monitor asks the same rules, so the two cannot drift apart.
//!
//! Times are in whatever unit the caller uses throughout (the monitor: monotonic ns; the
//! simulator: a node's local µs); [`Rules`] carries the two silences in that unit.

/// What the core has told the monitor: by when everything exclusive here must be down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline {
    /// Everything exclusive must be down by then: the lease's end.
    pub deadline: u64,
    /// The deadline less the stop budget: a core absent by then will not stop in time.
    pub stop_at: u64,
}

/// The core as the monitor sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoreSeen {
    /// No core process (it died and the new one is not started yet).
    Absent,
    /// A core process that has not said anything yet.
    Starting,
    /// A core that last said something at this time.
    Heard(u64),
}

/// How often a core says it is alive (µs), for a stop budget of `stop_budget_us`: a quarter
/// of the budget, within 5 to 50 ms, so that a core that falls silent well before its stop
/// point is known to be silent when the stop point comes, with the budget still ahead.
pub fn alive_every_us(stop_budget_us: u64) -> u64 {
    (stop_budget_us / 4).clamp(5_000, 50_000)
}

/// How many alive messages in a row a core may miss before it counts as silent.
pub const MISSED_ALIVE: u64 = 3;

/// The two silences, in the caller's unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    /// A core silent this long at its stop point will not stop in time.
    pub silent: u64,
    /// A core silent this long is wedged: killed and started again.
    pub wedged: u64,
}

impl Rules {
    /// The rules for a core that says it is alive every `alive_every`: silent after
    /// [`MISSED_ALIVE`] missed messages; wedged after `wedged`.
    pub fn new(alive_every: u64, wedged: u64) -> Rules {
        Rules {
            silent: MISSED_ALIVE * alive_every,
            wedged,
        }
    }
}

/// What the monitor must do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing.
    Wait,
    /// Kill the core if it lives and stop every exclusive resource hard, now.
    StopHard {
        /// Whether the core is absent or silent (else the deadline itself passed).
        core_absent: bool,
    },
    /// The core is wedged: kill it (a new one starts).
    KillWedged,
}

impl CoreSeen {
    /// Whether the core has been silent for at least `d` at `now` (a core not heard from yet
    /// counts as silent: it cannot stop anything before it is up).
    fn silent(self, now: u64, d: u64) -> bool {
        match self {
            CoreSeen::Absent | CoreSeen::Starting => true,
            CoreSeen::Heard(at) => now.saturating_sub(at) >= d,
        }
    }
}

/// The monitor's verdict at `now`.
///
/// Armed, it stops hard once the stop point has passed with no core able to stop in time
/// (absent, or silent for [`Rules::silent`]), and at the deadline itself whatever the core
/// says: a core that lets its lease run out with resources up is broken. A core heard from
/// once and silent for [`Rules::wedged`] is killed, armed or not.
pub fn verdict(armed: Option<Deadline>, core: CoreSeen, now: u64, rules: Rules) -> Verdict {
    if let Some(a) = armed {
        let core_absent = core.silent(now, rules.silent);
        if now >= a.deadline || (now >= a.stop_at && core_absent) {
            return Verdict::StopHard { core_absent };
        }
    }
    match core {
        CoreSeen::Heard(at) if now.saturating_sub(at) >= rules.wedged => Verdict::KillWedged,
        _ => Verdict::Wait,
    }
}

/// What the monitor does when its core has ended and it starts the next one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextCore {
    /// Stop every exclusive resource hard first, while no core is up.
    pub stop_hard_first: bool,
    /// Hand the next core the lease the old one held (it ends at `lease_until`).
    pub hand_lease: bool,
}

/// When the core has ended at `now` and another is about to start: whether to stop hard first
/// and whether the next core gets the old lease (which ends at `lease_until`, if there is one).
///
/// A core that died at or past its stop point (or its deadline) left no one to stop what
/// runs: the monitor stops hard at once, with no core up, and the next core starts without a
/// lease. Handing that core the lease instead would get it killed the moment it started (a
/// core not heard from yet counts as absent), so one death would cost two restarts toward
/// the crash-loop limit, and the hard stop would wait for the new process to be spawned.
/// Otherwise the next core inherits a lease that has not ended.
pub fn next_core(
    armed: Option<Deadline>,
    lease_until: Option<u64>,
    now: u64,
    rules: Rules,
) -> NextCore {
    let stop_hard_first = matches!(
        verdict(armed, CoreSeen::Absent, now, rules),
        Verdict::StopHard { .. }
    );
    NextCore {
        stop_hard_first,
        hand_lease: !stop_hard_first && lease_until.is_some_and(|until| until > now),
    }
}

/// The earliest time after which [`verdict`] can change without news from the core (for a
/// caller that sleeps until then, as the simulator does; the monitor itself polls).
pub fn next_check(armed: Option<Deadline>, core: CoreSeen, rules: Rules) -> Option<u64> {
    let silent_at = match core {
        CoreSeen::Absent | CoreSeen::Starting => None,
        CoreSeen::Heard(at) => Some(at),
    };
    let armed_at = armed.map(|a| match silent_at {
        // The stop point counts once the core is silent too.
        Some(at) => a
            .deadline
            .min(a.stop_at.max(at.saturating_add(rules.silent))),
        None => a.stop_at,
    });
    let wedged_at = silent_at.map(|at| at.saturating_add(rules.wedged));
    match (armed_at, wedged_at) {
        (Some(a), Some(w)) => Some(a.min(w)),
        (a, w) => a.or(w),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules = Rules {
        silent: 250,
        wedged: 2_000,
    };
    const ARMED: Option<Deadline> = Some(Deadline {
        deadline: 1_000,
        stop_at: 940,
    });

    #[test]
    fn a_core_is_silent_after_missing_a_few_alive_messages_sent_well_inside_the_budget() {
        // The default stop budget (60 ms): alive every 15 ms, silent after 45.
        assert_eq!(alive_every_us(60_000), 15_000);
        assert_eq!(Rules::new(alive_every_us(60_000), 2_000_000).silent, 45_000);
        // Bounded both ways: a tiny budget is not polled faster than every 5 ms, a large one
        // still hears the core every 50 ms.
        assert_eq!(alive_every_us(8_000), 5_000);
        assert_eq!(alive_every_us(10_000_000), 50_000);
        // A core paused right after it renewed (deadline 150 ms on) is silent at the stop
        // point (90 ms on), so the monitor stops hard then, not at the deadline.
        let armed = Some(Deadline {
            deadline: 150_000,
            stop_at: 90_000,
        });
        let rules = Rules::new(alive_every_us(60_000), 2_000_000);
        assert_eq!(
            verdict(armed, CoreSeen::Heard(0), 90_000, rules),
            Verdict::StopHard { core_absent: true }
        );
    }

    #[test]
    fn a_live_core_is_left_to_stop_by_itself_until_the_deadline() {
        assert_eq!(
            verdict(ARMED, CoreSeen::Heard(900), 990, RULES),
            Verdict::Wait
        );
        assert_eq!(
            verdict(ARMED, CoreSeen::Heard(990), 1_000, RULES),
            Verdict::StopHard { core_absent: false }
        );
    }

    #[test]
    fn an_absent_or_silent_core_is_stopped_for_at_the_stop_point() {
        for core in [CoreSeen::Absent, CoreSeen::Starting, CoreSeen::Heard(600)] {
            assert_eq!(verdict(ARMED, core, 939, RULES), Verdict::Wait, "{core:?}");
            assert_eq!(
                verdict(ARMED, core, 940, RULES),
                Verdict::StopHard { core_absent: true },
                "{core:?}"
            );
        }
    }

    #[test]
    fn unarmed_nothing_is_stopped_and_only_a_wedged_core_is_killed() {
        for core in [CoreSeen::Absent, CoreSeen::Starting] {
            assert_eq!(verdict(None, core, 1_000_000, RULES), Verdict::Wait);
        }
        assert_eq!(
            verdict(None, CoreSeen::Heard(0), 1_999, RULES),
            Verdict::Wait
        );
        assert_eq!(
            verdict(None, CoreSeen::Heard(0), 2_000, RULES),
            Verdict::KillWedged
        );
    }

    #[test]
    fn a_core_dead_past_its_stop_point_is_stopped_for_before_the_next_core_starts() {
        // Died before the stop point: the next core inherits the lease and may renew it.
        assert_eq!(
            next_core(ARMED, Some(1_000), 900, RULES),
            NextCore {
                stop_hard_first: false,
                hand_lease: true
            }
        );
        // Died at or past it, the lease not over yet: stopped hard now, no lease handed (the
        // monitor used to hand it and then kill the new core for it at its first check).
        for now in [940, 999, 1_000] {
            assert_eq!(
                next_core(ARMED, Some(1_000), now, RULES),
                NextCore {
                    stop_hard_first: true,
                    hand_lease: false
                },
                "at {now}"
            );
        }
        // Nothing armed: nothing to stop; an ended lease is never handed on.
        assert_eq!(
            next_core(None, Some(1_000), 1_001, RULES),
            NextCore {
                stop_hard_first: false,
                hand_lease: false
            }
        );
    }

    #[test]
    fn the_next_check_is_when_the_verdict_can_change() {
        // Heard recently: the deadline comes before the silence would count.
        assert_eq!(next_check(ARMED, CoreSeen::Heard(900), RULES), Some(1_000));
        // Silent since 600: the stop point (940) is after 600 + 250.
        assert_eq!(next_check(ARMED, CoreSeen::Heard(600), RULES), Some(940));
        // Silent since 700: it counts at 950.
        assert_eq!(next_check(ARMED, CoreSeen::Heard(700), RULES), Some(950));
        assert_eq!(next_check(ARMED, CoreSeen::Absent, RULES), Some(940));
        assert_eq!(next_check(None, CoreSeen::Heard(10), RULES), Some(2_010));
        assert_eq!(next_check(None, CoreSeen::Absent, RULES), None);
        // Whatever the times, the verdict at the next check is not Wait, or nothing changes.
        for heard in [0, 500, 700, 900, 999] {
            let core = CoreSeen::Heard(heard);
            let at = next_check(ARMED, core, RULES).expect("armed");
            assert_ne!(
                verdict(ARMED, core, at, RULES),
                Verdict::Wait,
                "heard {heard}"
            );
            assert_eq!(
                verdict(ARMED, core, at - 1, RULES),
                Verdict::Wait,
                "heard {heard}"
            );
        }
    }
}
