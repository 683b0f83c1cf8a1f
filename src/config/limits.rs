//! The limits of a `cluster.toml`: how large the file may be, how many of each thing it may
//! hold, and the range of every number in it. One table, read by validation, by the loader's
//! messages for numbers that do not fit their type, and checked against `docs/config.md` by a
//! test, so the three cannot drift apart.
//!
//! The counts sit well below what the dense ids of [`crate::policy::spec`] can number
//! ([`NodeId`] and [`GroupId`] are 16-bit, [`PathId`] 8-bit, a [`PathSet`] holds 32 paths) and
//! below the simulator's 128 nodes; the compile-time assertions at the end keep it so. The
//! ranges are what an HA operator would find sane: nothing that must happen may be 0 or may
//! take days, and failure detection always ends within minutes.

use super::locate::Loc;
use crate::policy::message::PathSet;
use crate::policy::spec::{GroupId, NodeId, PathId, ResourceId};

/// The largest config file read: 1 MiB. A cluster at every count limit fits in a fraction.
pub const MAX_FILE_BYTES: usize = 1 << 20;
/// The most members: nodes and the witness together.
pub const MAX_NODES: usize = 64;
/// The most resource groups.
pub const MAX_GROUPS: usize = 1024;
/// The most resources in one group.
pub const MAX_RESOURCES_PER_GROUP: usize = 64;
/// The most resources in the whole cluster.
pub const MAX_RESOURCES: usize = 4096;
/// The most heartbeat paths (network and disk together).
pub const MAX_PATHS: usize = PathSet::MAX_PATHS;
/// The most scheduled moves.
pub const MAX_SCHEDULES: usize = 256;
/// The most notification targets.
pub const MAX_NOTIFICATIONS: usize = 32;

/// The allowed values of one numeric field, inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// The smallest value allowed (besides 0 where `zero_is_off`).
    pub min: u64,
    /// The largest value allowed.
    pub max: u64,
    /// 0 is allowed too and turns the feature off.
    pub zero_is_off: bool,
}

impl Range {
    const fn new(min: u64, max: u64) -> Range {
        Range {
            min,
            max,
            zero_is_off: false,
        }
    }

    const fn or_off(min: u64, max: u64) -> Range {
        Range {
            min,
            max,
            zero_is_off: true,
        }
    }

    /// Whether `value` is allowed.
    pub fn contains(&self, value: u64) -> bool {
        (self.min..=self.max).contains(&value) || (self.zero_is_off && value == 0)
    }

    /// `10 to 60000`, or `1000 to 86400000 (or 0, off)`: how messages name it.
    pub fn describe(&self) -> String {
        self.describe_in("")
    }

    /// The same with a unit after the maximum: `10 to 60000 ms`.
    pub fn describe_in(&self, unit: &str) -> String {
        let off = if self.zero_is_off { " (or 0, off)" } else { "" };
        format!("{} to {}{unit}{off}", self.min, self.max)
    }
}

/// A day and an hour, in ms.
const DAY_MS: u64 = 86_400_000;
const HOUR_MS: u64 = 3_600_000;
/// A health check's interval and timeout, wherever they are given.
const CHECK_INTERVAL: Range = Range::new(10, DAY_MS);
const CHECK_TIMEOUT: Range = Range::new(1, HOUR_MS);
/// How long starting or stopping one resource may take.
const ACTION_TIMEOUT: Range = Range::new(1, HOUR_MS);

/// Every numeric field by its path (table keys joined by `.`, array indices left out, `*` for
/// any key of a map) and its range. `[timing] max_clock_drift`, a fraction, is checked on its
/// own (0 to 0.1).
pub const RANGES: &[(&str, Range)] = &[
    ("timing.lease_ms", Range::new(10, 60_000)),
    ("timing.lease_renew_ms", Range::new(1, 30_000)),
    ("timing.takeover_margin_ms", Range::new(1, 60_000)),
    ("timing.stop_budget_ms", Range::new(1, 60_000)),
    ("timing.raft_tick_ms", Range::new(1, 1_000)),
    ("timing.election_ticks", Range::new(2, 1_000)),
    ("timing.heartbeat_ticks", Range::new(1, 999)),
    ("monitor.quick_interval_ms", CHECK_INTERVAL),
    ("monitor.quick_timeout_ms", CHECK_TIMEOUT),
    ("monitor.deep_interval_ms", CHECK_INTERVAL),
    ("monitor.deep_timeout_ms", CHECK_TIMEOUT),
    ("monitor.start_timeout_ms", ACTION_TIMEOUT),
    ("monitor.stop_timeout_ms", ACTION_TIMEOUT),
    ("path.interval_ms", Range::new(1, 60_000)),
    ("path.misses", Range::new(1, 100)),
    ("path.slot_bytes", Range::new(512, 1 << 20)),
    ("node.capacity", Range::new(0, 1_000_000)),
    ("fencing.pill_timeout_ms", Range::new(1, 600_000)),
    ("fencing.timeout_ms", Range::new(1, 600_000)),
    ("fencing.delay_ms.*", Range::new(0, 600_000)),
    ("fencing.monitor_interval_ms", Range::or_off(1_000, DAY_MS)),
    ("group.copies", Range::new(1, MAX_NODES as u64)),
    ("group.max_restarts", Range::new(0, 100)),
    ("group.restart_window_ms", Range::new(0, DAY_MS)),
    ("group.restart_backoff_ms", Range::new(0, 3_600_000)),
    ("group.restart_backoff_max_ms", Range::new(0, 3_600_000)),
    ("group.failure_timeout_ms", Range::new(0, 7 * DAY_MS)),
    ("group.load", Range::new(0, 1_000_000)),
    ("group.resource.quick.interval_ms", CHECK_INTERVAL),
    ("group.resource.quick.timeout_ms", CHECK_TIMEOUT),
    ("group.resource.deep.interval_ms", CHECK_INTERVAL),
    ("group.resource.deep.timeout_ms", CHECK_TIMEOUT),
    ("group.resource.start_timeout_ms", ACTION_TIMEOUT),
    ("group.resource.stop_timeout_ms", ACTION_TIMEOUT),
    ("group.resource.migration_threshold", Range::new(1, 100)),
    ("notification.timeout_ms", Range::new(1, 600_000)),
];

/// The longest failure detection on a path (`interval_ms × misses`): ten minutes.
pub const MAX_DETECTION_MS: u64 = 600_000;
/// The longest election timeout (`raft_tick_ms × election_ticks`): a minute. raft-rs
/// randomises it up to twice that, so a dead leader is replaced within two minutes.
pub const MAX_ELECTION_MS: u64 = 60_000;

/// The range of the field at `loc`, if it is a numeric field.
pub(crate) fn range_at(loc: &Loc) -> Option<Range> {
    let keys = loc.keys();
    let exact = keys.join(".");
    let any_key = match keys.split_last() {
        Some((_, parent)) if !parent.is_empty() => format!("{}.*", parent.join(".")),
        _ => String::new(),
    };
    RANGES
        .iter()
        .find(|(k, _)| *k == exact || *k == any_key)
        .map(|(_, r)| *r)
}

// The counts fit the id types and the simulator, and the disk path's slot area.
const _: () = assert!(MAX_NODES <= NodeId::MAX as usize + 1);
const _: () = assert!(MAX_NODES <= crate::sim::MAX_NODES);
const _: () = assert!(MAX_GROUPS <= GroupId::MAX as usize + 1);
const _: () = assert!(MAX_RESOURCES_PER_GROUP <= ResourceId::MAX as usize + 1);
const _: () = assert!(MAX_PATHS <= PathId::MAX as usize + 1);
const _: () = assert!(
    MAX_NODES as u64 * (1 << 20) <= crate::transport::disk::SLOT_AREA_BYTES_MAX,
    "every node's slot at the largest slot_bytes fits the disk path's slot area"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_found_through_indices_and_map_keys() {
        let loc = Loc::root()
            .key("group")
            .at(3)
            .key("resource")
            .at(0)
            .key("quick")
            .key("timeout_ms");
        assert_eq!(range_at(&loc), Some(CHECK_TIMEOUT));
        let loc = Loc::root().key("fencing").key("delay_ms").key("n1");
        assert_eq!(range_at(&loc), Some(Range::new(0, 600_000)));
        assert_eq!(range_at(&Loc::root().key("timing").key("nope")), None);
        assert_eq!(range_at(&Loc::root().key("cluster").key("name")), None);
    }

    #[test]
    fn ranges_describe_themselves() {
        assert_eq!(Range::new(10, 60_000).describe(), "10 to 60000");
        let off = Range::or_off(1_000, DAY_MS);
        assert_eq!(off.describe(), "1000 to 86400000 (or 0, off)");
        assert!(off.contains(0) && off.contains(1_000) && !off.contains(999));
    }

    /// The config reference states every range the code enforces.
    #[test]
    fn the_config_reference_lists_every_range() {
        let doc = include_str!("../../docs/config.md");
        for (field, range) in RANGES {
            let row = format!("| `{field}` | {} |", range.describe());
            assert!(doc.contains(&row), "docs/config.md lacks the row {row:?}");
        }
        for (what, n) in [
            ("nodes", MAX_NODES),
            ("groups", MAX_GROUPS),
            ("resources per group", MAX_RESOURCES_PER_GROUP),
            ("resources", MAX_RESOURCES),
            ("paths", MAX_PATHS),
            ("schedules", MAX_SCHEDULES),
            ("notifications", MAX_NOTIFICATIONS),
        ] {
            let row = format!("| {what} | {n} |");
            assert!(doc.contains(&row), "docs/config.md lacks the row {row:?}");
        }
    }
}
