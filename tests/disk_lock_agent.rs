//! The `disk_lock` agent's lease method on a shared temp file (no root needed): two nodes
//! contend and one holds it; a stop hands it over; a crashed holder's lease is taken only after
//! it expired; a newer epoch fences a live holder and an older epoch never takes it back; a
//! corrupt record is not taken for a free one. Plus one root-only test on a real loop device.
//!
//! Both "nodes" are agents in this process, each with its own device handle, as two nodes have.
//! Every wait is bounded; the only timing assertions are lower bounds the protocol guarantees
//! (a lease is never taken before it was watched for `lease_ms`).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use eterne::policy::group::Outcome;
use eterne::policy::spec::{MonitorSpec, ResourceSpec};
use eterne::resources::disk_lock::layout::{Device, IoMode};
use eterne::resources::{build, Agent, AgentEvent, Depth, Report};
use support::agent::Timings;
use support::wait::bounded;
use tokio::sync::mpsc;

/// The bound of every wait.
const LIMIT: Duration = Duration::from_secs(20);
const LEASE_MS: u64 = 400;
const RENEW_MS: u64 = 100;

fn spec(device: &Path, node: u16, start_timeout_ms: u32) -> ResourceSpec {
    let timings = Timings {
        quick: MonitorSpec {
            interval_ms: 1000,
            timeout_ms: 1000,
        },
        deep: None,
        start_ms: start_timeout_ms,
        stop_ms: 5000,
    };
    let (device, node) = (device.to_string_lossy(), node.to_string());
    let (lease, renew) = (LEASE_MS.to_string(), RENEW_MS.to_string());
    let params = [
        ("device", device.as_ref()),
        ("node_slot", &node),
        ("nodes", "2"),
        ("lease_ms", &lease),
        ("renew_ms", &renew),
    ];
    support::agent::resource("lock", "disk_lock", &params, &timings)
}

/// The agent of node `node` on `device`; `start` waits at most `start_timeout_ms`.
fn node(
    device: &Path,
    node: u16,
    start_timeout_ms: u32,
) -> (Box<dyn Agent>, mpsc::Receiver<AgentEvent>) {
    let (ctx, rx) = support::agent::context(1, 0, "lock", std::env::temp_dir(), 16);
    let a = build(&spec(device, node, start_timeout_ms), &ctx).expect("valid parameters");
    (a, rx)
}

fn device() -> tempfile::NamedTempFile {
    tempfile::NamedTempFile::new().expect("temp file")
}

fn ok(r: Report, what: &str) {
    assert_eq!(r.outcome, Outcome::Ok, "{what}: {}", r.reason);
}

#[tokio::test]
async fn two_nodes_contend_and_only_one_holds() {
    let dev = device();
    let (a, _ea) = node(dev.path(), 0, 1500);
    let (b, _eb) = node(dev.path(), 1, 1500);
    a.validate().await.expect("validate");
    let (ra, rb) = bounded(LIMIT, "both starts", async {
        tokio::join!(a.start(5), b.start(5))
    })
    .await;
    let winners = [&ra, &rb]
        .iter()
        .filter(|r| r.outcome == Outcome::Ok)
        .count();
    assert_eq!(winners, 1, "exactly one holds it: {ra:?} / {rb:?}");
    let (holder, other, lost) = if ra.outcome == Outcome::Ok {
        (&a, &b, rb)
    } else {
        (&b, &a, ra)
    };
    assert_eq!(lost.outcome, Outcome::Failed);
    assert!(lost.reason.contains("held by node slot"), "{}", lost.reason);
    ok(holder.monitor(Depth::Quick).await, "holder monitor");
    ok(holder.probe().await, "holder probe");
    assert_eq!(other.probe().await.outcome, Outcome::NotRunning);
    assert_eq!(
        other.monitor(Depth::Quick).await.outcome,
        Outcome::NotRunning
    );
    // The loser still holds nothing after a few renewals of the holder.
    tokio::time::sleep(Duration::from_millis(3 * RENEW_MS)).await;
    ok(holder.monitor(Depth::Deep).await, "holder still holds");
    ok(holder.stop().await, "stop");
    ok(other.stop().await, "stop of a non-holder");
}

#[tokio::test]
async fn a_stopped_holder_hands_over_and_stop_is_idempotent() {
    let dev = device();
    let (a, _ea) = node(dev.path(), 0, 5000);
    let (b, _eb) = node(dev.path(), 1, 5000);
    ok(bounded(LIMIT, "start a", a.start(1)).await, "start a");
    ok(a.start(1).await, "a second start of the holder");
    let r = bounded(LIMIT, "stop a", a.stop()).await;
    ok(r.clone(), "stop a");
    assert!(r.reason.contains("released"), "{}", r.reason);
    assert_eq!(a.probe().await.outcome, Outcome::NotRunning);
    let r = bounded(LIMIT, "start b", b.start(2)).await;
    ok(r.clone(), "start b");
    assert!(
        r.reason.contains("released"),
        "taken as released: {}",
        r.reason
    );
    ok(b.monitor(Depth::Quick).await, "b monitor");
    ok(b.stop().await, "stop b");
    let r = b.stop().await;
    ok(r.clone(), "second stop");
    assert!(r.reason.contains("not ours"), "{}", r.reason);
}

#[tokio::test]
async fn a_crashed_holder_is_taken_over_only_after_expiry() {
    let dev = device();
    let (a, _ea) = node(dev.path(), 0, 5000);
    let (b, _eb) = node(dev.path(), 1, 5000);
    ok(bounded(LIMIT, "start a", a.start(1)).await, "start a");
    // Crash: the agent (and its renewals) vanishes without releasing.
    drop(a);
    let crashed = Instant::now();
    let r = bounded(LIMIT, "start b", b.start(2)).await;
    ok(r.clone(), "start b");
    assert!(
        crashed.elapsed() >= Duration::from_millis(LEASE_MS),
        "taken before the lease could have expired: {:?}",
        crashed.elapsed()
    );
    ok(b.monitor(Depth::Quick).await, "b monitor");
    ok(b.stop().await, "stop b");
}

#[tokio::test]
async fn a_live_holder_of_the_same_epoch_is_never_taken_over() {
    let dev = device();
    let (a, _ea) = node(dev.path(), 0, 5000);
    let (b, _eb) = node(dev.path(), 1, 3 * LEASE_MS as u32);
    ok(bounded(LIMIT, "start a", a.start(3)).await, "start a");
    let r = bounded(LIMIT, "start b", b.start(3)).await;
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.reason);
    assert!(r.reason.contains("node slot 0"), "{}", r.reason);
    ok(a.monitor(Depth::Quick).await, "a still holds it");
    ok(a.stop().await, "stop a");
}

#[tokio::test]
async fn a_newer_epoch_fences_the_holder_and_an_older_one_never_takes_it_back() {
    let dev = device();
    let (a, mut ea) = node(dev.path(), 0, 5000);
    let (b, _eb) = node(dev.path(), 1, 5000);
    ok(bounded(LIMIT, "start a", a.start(4)).await, "start a");

    // b at epoch 5: its request fences a at a's next renewal; a stops renewing and tells its
    // group; once the group stopped a (release), b has it.
    let b_start = b.start(5);
    let fence = async {
        let ev = bounded(LIMIT, "fence event", ea.recv())
            .await
            .expect("channel open");
        let AgentEvent::Failed { reason, .. } = ev else {
            panic!("unexpected event {ev:?}");
        };
        assert!(reason.contains("fenced"), "{reason}");
        assert_eq!(a.monitor(Depth::Quick).await.outcome, Outcome::Failed);
        ok(a.stop().await, "the fenced group stops");
    };
    let (rb, ()) = bounded(LIMIT, "handover", async { tokio::join!(b_start, fence) }).await;
    ok(rb, "start b");
    ok(b.monitor(Depth::Quick).await, "b holds it");

    // a's old epoch never takes it back: not while b holds it, not after b released it.
    let r = bounded(LIMIT, "start a again", a.start(4)).await;
    assert_eq!(r.outcome, Outcome::Failed);
    assert!(
        r.reason.contains("epoch 5") && r.reason.contains("newer"),
        "{}",
        r.reason
    );
    ok(
        b.monitor(Depth::Quick).await,
        "b is not fenced by an older request",
    );
    ok(b.stop().await, "stop b");
    let r = bounded(LIMIT, "start a after release", a.start(4)).await;
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.reason);
    assert!(r.reason.contains("epoch 5"), "{}", r.reason);
    // A newer activation of a may.
    ok(
        bounded(LIMIT, "start a at 6", a.start(6)).await,
        "start a at epoch 6",
    );
    ok(a.stop().await, "stop a");
}

#[tokio::test]
async fn a_corrupt_record_is_not_free_until_it_expired() {
    let dev = device();
    std::fs::write(dev.path(), vec![0xa5u8; 3 * 4096]).expect("scribble");
    let (a, _ea) = node(dev.path(), 0, 5000);
    let t0 = Instant::now();
    let r = bounded(LIMIT, "start a", a.start(1)).await;
    ok(r.clone(), "start a");
    assert!(r.reason.contains("unreadable"), "{}", r.reason);
    assert!(
        t0.elapsed() >= Duration::from_millis(LEASE_MS),
        "a corrupt record was taken without the expiry wait"
    );
    ok(a.stop().await, "stop");
}

/// A loop device over a file, detached when dropped.
struct Loop {
    dev: PathBuf,
    _backing: tempfile::NamedTempFile,
}

impl Loop {
    fn new() -> Loop {
        // Not on tmpfs if avoidable: the loop device does direct IO either way.
        let backing = tempfile::NamedTempFile::new_in("/var/tmp")
            .or_else(|_| tempfile::NamedTempFile::new())
            .expect("backing file");
        backing.as_file().set_len(1 << 20).expect("size");
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(backing.path())
            .output()
            .expect("run losetup");
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dev = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        Loop {
            dev,
            _backing: backing,
        }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).output();
    }
}

#[tokio::test]
async fn the_lease_on_a_loop_device() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("skipped: the loop-device disk_lock test needs root (losetup)");
        return;
    }
    let lo = Loop::new();
    let direct = Device::open(&lo.dev, 2).expect("open the loop device");
    assert_eq!(
        direct.mode(),
        IoMode::Direct,
        "a block device takes O_DIRECT"
    );
    drop(direct);
    let (a, _ea) = node(&lo.dev, 0, 5000);
    let (b, _eb) = node(&lo.dev, 1, 2 * LEASE_MS as u32);
    a.validate().await.expect("validate on a block device");
    ok(bounded(LIMIT, "start a", a.start(1)).await, "start a");
    let r = bounded(LIMIT, "start b", b.start(1)).await;
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.reason);
    ok(a.monitor(Depth::Deep).await, "a holds it");
    ok(a.stop().await, "stop a");
    ok(bounded(LIMIT, "start b", b.start(2)).await, "start b");
    ok(b.stop().await, "stop b");
}

/// The scsi_pr method against a device without persistent reservations (`/dev/null`): every
/// operation fails with sg_persist's own error, none hangs, and nothing claims to hold a disk.
/// (No device here supports PR; see `disk_lock::scsi_pr` for what is left untested.)
#[tokio::test]
async fn scsi_pr_on_a_device_without_reservations_fails_cleanly() {
    let found = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .any(|d| Path::new(d).join("sg_persist").is_file());
    if !found {
        println!("skipped: sg_persist is not installed (scripts/setup.sh installs sg3-utils)");
        return;
    }
    let (ctx, _rx) = support::agent::context(1, 0, "lun", std::env::temp_dir(), 4);
    let mut s = spec(Path::new("/dev/null"), 0, 5000);
    s.params = vec![
        ("method".into(), "scsi_pr".into()),
        ("device".into(), "/dev/null".into()),
        ("node_slot".into(), "0".into()),
    ];
    let a = build(&s, &ctx).expect("valid parameters");
    a.validate()
        .await
        .expect("a device, and sg_persist in PATH");
    let r = bounded(LIMIT, "start", a.start(1)).await;
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.reason);
    assert!(r.reason.contains("sg_persist"), "{}", r.reason);
    let r = bounded(LIMIT, "probe", a.probe()).await;
    assert_ne!(r.outcome, Outcome::Ok, "{}", r.reason);
    assert_eq!(
        bounded(LIMIT, "stop", a.stop()).await.outcome,
        Outcome::Failed
    );

    // A regular file is refused by validate: scsi_pr needs a LUN.
    let file = device();
    let mut s = spec(file.path(), 0, 5000);
    s.params = vec![
        ("method".into(), "scsi_pr".into()),
        ("device".into(), file.path().to_string_lossy().into_owned()),
        ("node_slot".into(), "0".into()),
    ];
    let a = build(&s, &ctx).expect("valid parameters");
    assert!(a.validate().await.is_err());
}
