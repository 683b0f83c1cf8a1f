//! The event log: every [`Event`] of the node core, and every admin action, as one JSON line
//! (`--events FILE`, default `<state dir>/events.jsonl`), also logged with `tracing`.
//!
//! Each line has `time` (UTC, RFC 3339 with µs), `unix_us` (the same, as a number), `node`, `event` (a name from
//! [`crate::config::EVENT_NAMES`] where one fits: `failover`, `path_lost`, `node_lost`, …) and
//! the event's fields with names instead of ids:
//!
//! ```text
//! {"time":"2026-11-25T13:40:01.123456Z","node":"n2","event":"path_lost","peer":"n1","path":"lan"}
//! ```

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::control::snake;
use crate::policy::detector::LivenessEvent;
use crate::policy::message::{Event, FenceOutcome};
use crate::policy::spec::{ClusterSpec, GroupId, NodeId, PathId, ResourceId};
use crate::policy::state::{AdminCommand, Cause, Command};

/// How long after a failed open or write the event log tries its file again.
const REOPEN_AFTER: Duration = Duration::from_secs(1);

/// The event log file. A write error (a full disk) does not end it: the file is opened again
/// on the next event after [`REOPEN_AFTER`], so the log resumes once there is room, with a
/// line saying how many events it could not write. `SIGHUP` reopens it too, for log rotation.
pub struct EventLog {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    /// While `out` is gone: when to try again, and how many events were not written.
    retry_at: Option<Instant>,
    lost: u64,
    node: String,
    /// `[[notification]]`: where each event goes besides this file.
    notify: Option<super::notify::Notifier>,
}

impl EventLog {
    /// Opens (appends to) `path`, creating it with its directory. A log that cannot be opened
    /// is reported once and events then only go to `tracing`.
    pub fn open(path: &Path, node: &str) -> EventLog {
        let mut log = EventLog {
            path: path.to_path_buf(),
            out: None,
            retry_at: None,
            lost: 0,
            node: node.to_string(),
            notify: None,
        };
        log.reopen();
        log
    }

    /// Opens the file again by its path (after `SIGHUP`, or once a failure's wait is over):
    /// a rotated file is left to its rotator, a new one is started. A last line a failed
    /// write left half done is ended first, so every line stays whole JSON.
    pub fn reopen(&mut self) {
        let path = &self.path;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let opened = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .and_then(|mut f| {
                if ends_inside_a_line(&mut f)? {
                    f.write_all(b"\n")?;
                }
                Ok(f)
            });
        match opened {
            Ok(f) => {
                self.out = Some(BufWriter::new(f));
                self.retry_at = None;
                if self.lost > 0 {
                    let lost = std::mem::take(&mut self.lost);
                    tracing::warn!(file = %path.display(), lost, "event log reopened");
                    self.write("event_log_reopened", obj(json!({"lost": lost})));
                }
            }
            Err(e) => {
                if self.retry_at.is_none() {
                    tracing::error!(file = %path.display(), error = %e, "cannot open the event log; events go to the log only until it opens again");
                }
                self.out = None;
                self.retry_at = Some(Instant::now() + REOPEN_AFTER);
            }
        }
    }

    /// From now on every event also goes to these notifications.
    pub fn notify_to(&mut self, notifier: super::notify::Notifier) {
        self.notify = Some(notifier);
    }

    /// Writes one event line: `event` is its name, `fields` its fields.
    pub fn write(&mut self, event: &str, fields: Map<String, Value>) {
        let mut line = Map::new();
        line.insert("time".into(), Value::String(utc_now()));
        line.insert("unix_us".into(), Value::from(unix_us()));
        line.insert("node".into(), Value::String(self.node.clone()));
        line.insert("event".into(), Value::String(event.to_string()));
        line.extend(fields);
        let line = Value::Object(line);
        let text = line.to_string();
        tracing::info!(target: "eterne::event", event, line = %text, "event");
        if let (Some(n), Value::Object(fields)) = (&self.notify, &line) {
            n.send(event, &text, fields);
        }
        if self.out.is_none() && self.retry_at.is_some_and(|t| Instant::now() >= t) {
            self.reopen();
        }
        match &mut self.out {
            Some(out) => {
                let r = writeln!(out, "{text}").and_then(|()| out.flush());
                if let Err(e) = r {
                    tracing::error!(file = %self.path.display(), error = %e, "cannot write the event log; it is opened again in a second");
                    self.out = None;
                    self.retry_at = Some(Instant::now() + REOPEN_AFTER);
                    self.lost += 1;
                }
            }
            None => self.lost += 1,
        }
    }
}

/// Whether `f` ends with something other than a newline (a line a failed write cut short).
fn ends_inside_a_line(f: &mut File) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(false);
    }
    f.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

/// A JSON object's map (every event's fields are one).
pub(crate) fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Names for ids, for event fields.
pub struct Names<'a>(pub &'a ClusterSpec);

impl Names<'_> {
    /// A node's name.
    pub fn node(&self, n: NodeId) -> String {
        self.0
            .nodes
            .get(usize::from(n))
            .map_or_else(|| format!("node#{n}"), |s| s.name.clone())
    }
    /// A path's name.
    pub fn path(&self, p: PathId) -> String {
        self.0
            .paths
            .get(usize::from(p))
            .map_or_else(|| format!("path#{p}"), |s| s.name.clone())
    }
    /// A group's name.
    pub fn group(&self, g: GroupId) -> String {
        self.0
            .groups
            .get(usize::from(g))
            .map_or_else(|| format!("group#{g}"), |s| s.name.clone())
    }
    /// A resource's name.
    pub fn resource(&self, g: GroupId, r: ResourceId) -> String {
        self.0
            .groups
            .get(usize::from(g))
            .and_then(|gs| gs.resources.get(usize::from(r)))
            .map_or_else(|| format!("resource#{g}.{r}"), |s| s.name.clone())
    }

    /// An admin command in words.
    pub fn admin(&self, cmd: &AdminCommand) -> Value {
        match *cmd {
            AdminCommand::Move { group, to } => {
                json!({"action": "move", "group": self.group(group), "to": to.map(|n| self.node(n))})
            }
            AdminCommand::Standby { node, on } => {
                json!({"action": if on { "standby" } else { "unstandby" }, "target": self.node(node)})
            }
            AdminCommand::Maintenance { on } => json!({"action": "maintenance", "on": on}),
            AdminCommand::FailbackNow { group } => {
                json!({"action": "failback", "group": self.group(group)})
            }
            AdminCommand::Manage { resource, on } => {
                let name = self.0.resource_at(resource).map_or_else(
                    || format!("resource#{resource}"),
                    |(g, r)| self.resource(g, r),
                );
                json!({"action": if on { "manage" } else { "unmanage" }, "resource": name})
            }
            AdminCommand::Disable { group, on } => {
                json!({"action": if on { "disable" } else { "enable" }, "group": self.group(group)})
            }
            AdminCommand::ClearFailures { group, node } => {
                json!({"action": "clear", "group": self.group(group), "on": node.map(|n| self.node(n))})
            }
        }
    }
}

/// The event's name and fields.
pub fn describe(spec: &ClusterSpec, ev: &Event) -> (&'static str, Map<String, Value>) {
    let n = Names(spec);
    let (name, value) = match ev {
        Event::Liveness(l) => match *l {
            LivenessEvent::PathUp { peer, path } => (
                "path_restored",
                json!({"peer": n.node(peer), "path": n.path(path)}),
            ),
            LivenessEvent::PathLost { peer, path } => (
                "path_lost",
                json!({"peer": n.node(peer), "path": n.path(path)}),
            ),
            LivenessEvent::PeerSuspected { peer } => ("node_lost", json!({"peer": n.node(peer)})),
            LivenessEvent::PeerAlive { peer } => ("node_joined", json!({"peer": n.node(peer)})),
            LivenessEvent::PeerRestarted { peer } => {
                ("peer_restarted", json!({"peer": n.node(peer)}))
            }
        },
        Event::BecameCoordinator { term } => ("became_coordinator", json!({"term": term})),
        Event::SteppedDown { term } => ("stepped_down", json!({"term": term})),
        Event::Committed { index, cmd } => committed(&n, *index, cmd),
        Event::LeaseLost => ("lease_lost", json!({})),
        Event::LeaseAcquired => ("lease_acquired", json!({})),
        Event::ResourceFailed {
            group,
            resource,
            action,
            reason,
        } => (
            "resource_failed",
            json!({"group": n.group(*group), "resource": n.resource(*group, *resource),
                   "action": snake(action), "reason": reason}),
        ),
        Event::LocalRestart {
            group,
            resource,
            count,
        } => (
            "local_restart",
            json!({"group": n.group(*group), "resource": n.resource(*group, *resource), "count": count}),
        ),
        Event::Escalated { group } => ("group_cannot_run", json!({"group": n.group(*group)})),
        Event::GroupStatus {
            group,
            epoch,
            status,
        } => (
            "group_status",
            json!({"group": n.group(*group), "epoch": epoch, "status": snake(status)}),
        ),
        Event::ConfigMismatch { peer, digest } => (
            "config_mismatch",
            json!({"peer": n.node(*peer), "digest": format!("{digest:#018x}"), "ours": format!("{:#018x}", spec.digest)}),
        ),
        Event::ConfigDiffers { why: Some(why) } => (
            "config_differs",
            json!({"why": why, "ours": format!("{:#018x}", spec.digest)}),
        ),
        Event::ConfigDiffers { why: None } => (
            "config_agrees",
            json!({"ours": format!("{:#018x}", spec.digest)}),
        ),
        Event::Dropped { from, why } => ("dropped", json!({"from": n.node(*from), "why": why})),
        Event::SnapshotInstalled { index } => (
            "snapshot_installed",
            json!({"index": index, "why": "too far behind for entries; the coordinator's snapshot replaced the log"}),
        ),
        Event::Rejoined { through } => (
            "rejoined",
            json!({"through": through, "why": "the discarded log is caught up; voting again"}),
        ),
        Event::FollowerBehind {
            peer,
            acknowledged,
            ends_at,
        } => (
            "follower_behind",
            json!({"peer": n.node(*peer), "acknowledged": acknowledged, "ends_at": ends_at,
                   "why": "its log ends before entries it had acknowledged; catching it up"}),
        ),
        Event::AdminRefused { cmd, why } => (
            "admin_refused",
            json!({"command": n.admin(cmd), "why": why}),
        ),
        Event::SelfFence => (
            "fenced",
            json!({"why": "a stop failed; waiting for the watchdog"}),
        ),
        Event::FenceStarted { target, attempt } => (
            "fence_started",
            json!({"target": n.node(*target), "attempt": attempt}),
        ),
        Event::FenceSucceeded {
            target,
            attempt,
            outcome,
        } => ("fence_succeeded", fence(&n, *target, *attempt, outcome)),
        Event::FenceFailed {
            target,
            attempt,
            outcome,
        } => ("fence_failed", fence(&n, *target, *attempt, outcome)),
        Event::FenceDeviceFailed { outcome } => ("fence_device_failed", device(outcome)),
        Event::FenceDeviceRecovered { outcome } => ("fence_device_recovered", device(outcome)),
        Event::StateDiskFailed { why } => (
            "state_disk_failed",
            json!({"why": why, "effect": "this node gave up its lease, stops its exclusive groups and falls silent until its raft log can be written again (tried every second)"}),
        ),
        Event::StateDiskRecovered => (
            "state_disk_recovered",
            json!({"why": "the raft log is written again: this node is heard again and rejoins"}),
        ),
        Event::OrphanStopped { group } => (
            "orphan_stopped",
            json!({"group": n.group(*group), "why": "found active here, not placed here"}),
        ),
        Event::MultipleActive { group, placed } => (
            "multiple_active",
            json!({"group": n.group(*group), "placed": n.node(*placed), "why": "found active here while placed on another node: stopped here"}),
        ),
    };
    let map = match value {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    (name, map)
}

/// The fields of `fence_succeeded` and `fence_failed`.
fn fence(n: &Names<'_>, target: NodeId, attempt: u32, o: &FenceOutcome) -> Value {
    json!({
        "target": n.node(target),
        "attempt": attempt,
        "action": o.action,
        "exit_code": o.exit_code,
        "duration_ms": o.duration_ms,
        "reason": o.reason,
        "output": o.output,
    })
}

/// The fields of `fence_device_failed` and `fence_device_recovered`.
fn device(o: &FenceOutcome) -> Value {
    json!({
        "action": o.action,
        "exit_code": o.exit_code,
        "duration_ms": o.duration_ms,
        "reason": o.reason,
        "output": o.output,
    })
}

fn committed(n: &Names<'_>, index: u64, cmd: &Command) -> (&'static str, Value) {
    match *cmd {
        Command::Activate { group, node, cause } => {
            let name = match cause {
                Cause::Failure => "failover",
                Cause::Failback => "failback",
                Cause::Schedule => "scheduled_move",
                _ => "activate",
            };
            (
                name,
                json!({"index": index, "group": n.group(group), "on": n.node(node), "epoch": index, "cause": snake(&cause)}),
            )
        }
        Command::Stop {
            group,
            node,
            epoch,
            cause,
        } => (
            "stop",
            json!({"index": index, "group": n.group(group), "on": n.node(node), "epoch": epoch, "cause": snake(&cause)}),
        ),
        Command::Released {
            group,
            node,
            epoch,
            how,
        } => (
            "released",
            json!({"index": index, "group": n.group(group), "on": n.node(node), "epoch": epoch, "how": snake(&how)}),
        ),
        Command::Failed {
            group,
            node,
            epoch,
            everywhere,
        } => (
            "group_failed",
            json!({"index": index, "group": n.group(group), "on": n.node(node), "epoch": epoch,
                   "everywhere": everywhere}),
        ),
        Command::Fenced { node, through } => (
            "node_fenced",
            json!({"index": index, "node": n.node(node), "through": through}),
        ),
        Command::Solo {
            node,
            peer,
            through,
        } => (
            "going_alone",
            json!({"index": index, "node": n.node(node), "fenced": n.node(peer), "through": through}),
        ),
        Command::Joined { node, incarnation } => (
            "joined_committed",
            json!({"index": index, "node": n.node(node), "incarnation": incarnation}),
        ),
        Command::Admin(ref a) => (
            "admin_committed",
            json!({"index": index, "command": n.admin(a)}),
        ),
        Command::FailuresExpired { group, node } => (
            "failures_expired",
            json!({"index": index, "group": n.group(group), "node": n.node(node),
                   "why": "no failure there for the group's failure_timeout_ms: the node may host it again"}),
        ),
        Command::Config { digest } => (
            "config_committed",
            json!({"index": index, "digest": format!("{digest:#018x}"), "ours": format!("{:#018x}", n.0.digest)}),
        ),
        Command::ScheduleFired { index: s, stamp } => (
            "schedule_fired",
            json!({"index": index, "schedule": s, "minute": stamp}),
        ),
    }
}

/// Now, in µs since the Unix epoch (wall clock; for comparing events across nodes).
pub fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Now, UTC, RFC 3339 with microseconds.
pub fn utc_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, day) = crate::policy::schedule::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("eterne-events-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn lines(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).expect("every line is whole JSON"))
            .collect()
    }

    /// A full disk (here `/dev/full`, behind the log's path) does not end the log: once the
    /// path can be written again it resumes after its wait, ends the half line a failed
    /// write left, and says how many events it could not write.
    #[test]
    fn the_event_log_resumes_after_a_write_error_and_counts_what_it_lost() {
        let dir = scratch("full");
        let path = dir.join("events.jsonl");
        std::os::unix::fs::symlink("/dev/full", &path).unwrap();
        let mut log = EventLog::open(&path, "n1");
        log.write("first", Map::new());
        log.write("second", Map::new());
        assert!(log.out.is_none(), "the write error closed it");
        // Space again: a real file, with the half line a failed write left.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"{\"event\":\"whole\"}\n{\"half").unwrap();
        std::thread::sleep(REOPEN_AFTER + Duration::from_millis(100));
        log.write("third", Map::new());
        let text = std::fs::read_to_string(&path).unwrap();
        let mut it = text.lines();
        assert_eq!(it.next(), Some(r#"{"event":"whole"}"#));
        assert_eq!(
            it.next(),
            Some(r#"{"half"#),
            "the half line is ended, not joined"
        );
        let rest: Vec<Value> = it.map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(rest[0]["event"], "event_log_reopened");
        assert_eq!(rest[0]["lost"], 2);
        assert_eq!(rest[1]["event"], "third");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Log rotation: the file is moved away, `SIGHUP` (`reopen`) starts a new one by the path.
    #[test]
    fn reopen_starts_a_new_file_after_rotation() {
        let dir = scratch("rotate");
        let path = dir.join("events.jsonl");
        let mut log = EventLog::open(&path, "n1");
        log.write("before", Map::new());
        std::fs::rename(&path, dir.join("events.jsonl.1")).unwrap();
        log.reopen();
        log.write("after", Map::new());
        assert_eq!(lines(&dir.join("events.jsonl.1"))[0]["event"], "before");
        let now = lines(&path);
        assert_eq!(now.len(), 1);
        assert_eq!(now[0]["event"], "after");
        assert_eq!(now[0]["node"], "n1");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn utc_now_is_rfc3339() {
        let t = utc_now();
        assert_eq!(t.len(), "2026-11-25T13:40:01.123456Z".len(), "{t}");
        assert!(t.ends_with('Z'));
    }
}
