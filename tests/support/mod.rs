//! What the tests share: whether they run as root (and the one line a root-only test prints
//! when it skips), bounded waits ([`wait`]), a Samba of a test's own ([`samba`]), and what
//! every harness that runs real `eterned` processes needs, whatever the network (the cluster
//! harness and `eterne-bench` share it). It uses only the library's dependencies (no
//! dev-dependencies), so the bench can include it with `#[path]`.

#![allow(dead_code)]

pub mod agent;
pub mod cores;
pub mod named;
pub mod netns;
pub mod samba;
pub mod small_disk;
pub mod wait;

use std::path::Path;
use std::time::Duration;

use eterne::control::client::request;
use eterne::control::{Request, Status};

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether root-only test `test` must skip: true (after printing one line saying so and why)
/// when this process is not root. `needs` says what root is needed for.
pub fn skip_unless_root(test: &str, needs: &str) -> bool {
    if is_root() {
        return false;
    }
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    println!("SKIPPED {test}: needs root for {needs} (euid {euid})");
    true
}

/// A daemon's status over its control socket, if it answers within 2 s.
pub fn status(socket: &Path) -> Option<Status> {
    request(socket, &Request::Status {}, Duration::from_secs(2))
        .ok()
        .and_then(|r| r.status)
}

/// Every given status (one per running node; None = did not answer) names the same coordinator and
/// sees every running node (by index) alive.
pub fn formed(statuses: &[Option<Status>], running: &[usize]) -> bool {
    let mut leader = None;
    for s in statuses {
        let Some(s) = s else { return false };
        if s.coordinator.is_none() || (leader.is_some() && leader != s.coordinator) {
            return false;
        }
        leader = s.coordinator.clone();
        if running.iter().any(|&j| !s.nodes[j].alive) {
            return false;
        }
    }
    leader.is_some()
}

/// The instance of `group` that this status's node says it runs (`running`), as (node, epoch).
pub fn running_here(s: &Status, group: &str) -> Option<(String, u64)> {
    let g = s.groups.iter().find(|g| g.name == group)?;
    g.instances
        .iter()
        .find(|inst| inst.node == s.node && inst.status.as_deref() == Some("running"))
        .map(|inst| (s.node.clone(), inst.epoch))
}

/// An event log (JSON lines) as values; unreadable lines are skipped.
pub fn read_events(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Prints the last 40 lines of a node's log and of its events (for a failed test).
pub fn dump(name: &str, log: &Path, events: &Path) {
    for (what, file) in [("log", log), ("events", events)] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        eprintln!("==== {name} {what} (last 40) ====");
        for l in tail.iter().rev() {
            eprintln!("{l}");
        }
    }
}

/// `eternectl` (the one built with the tests) with `args`: whether it succeeded, and what it
/// printed on stdout and stderr together.
pub fn eternectl<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> (bool, String) {
    let Some(bin) = option_env!("CARGO_BIN_EXE_eternectl") else {
        panic!("only integration tests run the eternectl built with them");
    };
    let out = std::process::Command::new(bin)
        .args(args)
        .output()
        .expect("run eternectl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
