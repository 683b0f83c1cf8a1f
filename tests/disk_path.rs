//! The disk heartbeat path on a shared temporary file (and, as root, on a loop device):
//! several `DiskPath` instances, one per simulated node, open the same file.
//!
//! Every wait is bounded in rounds and in time, and waits for behaviour (a heartbeat from
//! another node) rather than for a duration: "B said nothing" is only asserted after a third
//! node was heard several times in the same stretch.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use eterne::policy::lease::Grant;
use eterne::policy::message::{Heartbeat, Message};
use eterne::policy::spec::NodeId;
use eterne::transport::disk::{slot_offset, DiskError, DiskPath, DiskPathConfig, IoMode};
use eterne::transport::Inbound;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

const PATH: u8 = 2;
const SLOT_BYTES: u32 = 4096;
const CLUSTER: &str = "test-cluster";
const DIGEST: u64 = 0xd16e57;

/// One simulated node: its disk path, what it received, and whether its core beats.
struct Node {
    me: NodeId,
    incarnation: u64,
    disk: Option<DiskPath>,
    rx: UnboundedReceiver<Inbound>,
    got: Vec<Inbound>,
    /// False models a wedged core: the IO thread runs, but no heartbeat is handed in.
    beating: bool,
}

fn config(device: &Path, me: NodeId, nodes: usize, incarnation: u64) -> DiskPathConfig {
    DiskPathConfig {
        path: PATH,
        device: device.to_path_buf(),
        slot_bytes: SLOT_BYTES,
        interval_ms: 10,
        cluster: CLUSTER.into(),
        me,
        nodes,
        incarnation,
        digest: DIGEST,
    }
}

fn start(device: &Path, me: NodeId, nodes: usize, incarnation: u64) -> Node {
    // Log lines show with a failing test's output (RUST_LOG=debug for more).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    let (tx, rx) = unbounded_channel();
    let disk = match DiskPath::start(config(device, me, nodes, incarnation), tx) {
        Ok(d) => d,
        Err(e) => panic!("node {me} could not start its disk path: {e}"),
    };
    Node {
        me,
        incarnation,
        disk: Some(disk),
        rx,
        got: Vec::new(),
        beating: true,
    }
}

impl Node {
    fn disk(&self) -> &DiskPath {
        self.disk.as_ref().expect("node is running")
    }

    fn stop(&mut self) {
        if let Some(d) = self.disk.take() {
            d.stop();
        }
    }

    fn heartbeats_from(&self, from: NodeId) -> Vec<Heartbeat> {
        self.got
            .iter()
            .filter_map(|i| match i {
                Inbound::Heartbeat { from: f, path, hb } if *f == from => {
                    assert_eq!(*path, PATH);
                    Some(*hb)
                }
                _ => None,
            })
            .collect()
    }

    fn messages(&self) -> Vec<(NodeId, Message)> {
        self.got
            .iter()
            .filter_map(|i| match i {
                Inbound::Message { from, path, msg } => {
                    assert_eq!(*path, PATH);
                    Some((*from, msg.clone()))
                }
                _ => None,
            })
            .collect()
    }
}

/// Rounds of: every running, beating node hands in a heartbeat, every node drains its inbox;
/// until `done` holds. At most 2000 rounds and 20 s. Returns whether `done` held.
fn run_until(nodes: &mut [Node], mut done: impl FnMut(&[Node]) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    for _ in 0..2000 {
        for n in nodes.iter_mut() {
            if let (Some(d), true) = (&n.disk, n.beating) {
                d.heartbeat(Heartbeat {
                    incarnation: n.incarnation,
                    digest: DIGEST,
                });
            }
            while let Ok(item) = n.rx.try_recv() {
                n.got.push(item);
            }
        }
        if done(nodes) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        sleep(Duration::from_millis(5));
    }
    false
}

/// Runs until `observer` has heard `count` more heartbeats from `witness`: a stretch long
/// enough that a node still writing would have been heard too.
fn run_heard(nodes: &mut [Node], observer: usize, witness: NodeId, count: usize) {
    let before = nodes[observer].heartbeats_from(witness).len();
    let heard = run_until(nodes, |n| {
        n[observer].heartbeats_from(witness).len() >= before + count
    });
    assert!(
        heard,
        "node {observer} never heard {count} heartbeats from node {witness}"
    );
}

/// Forgets what every node received so far, queued items included. Call it after a flush
/// (`run_heard`), so that nothing read before the change under test is still on its way.
fn clear(nodes: &mut [Node]) {
    for n in nodes {
        while n.rx.try_recv().is_ok() {}
        n.got.clear();
    }
}

/// The sequence number in `node`'s slot (layout: offset 32 of the slot, little-endian).
fn slot_seq(device: &Path, node: NodeId) -> u64 {
    let f = std::fs::File::open(device).expect("open the device");
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, slot_offset(node, SLOT_BYTES) + 32)
        .expect("read a slot");
    u64::from_le_bytes(b)
}

fn temp_device() -> tempfile::NamedTempFile {
    tempfile::NamedTempFile::new().expect("a temporary file")
}

fn everyone_heard_everyone(nodes: &[Node], count: usize) -> bool {
    nodes.iter().all(|n| {
        nodes
            .iter()
            .filter(|p| p.me != n.me)
            .all(|p| n.heartbeats_from(p.me).len() >= count)
    })
}

fn stop_all(nodes: &mut [Node]) {
    for n in nodes {
        n.stop();
    }
}

#[test]
fn three_nodes_exchange_heartbeats() {
    let dev = temp_device();
    let mut nodes: Vec<Node> = (0..3)
        .map(|i| start(dev.path(), i, 3, 10 + u64::from(i)))
        .collect();
    assert!(run_until(&mut nodes, |n| everyone_heard_everyone(n, 3)));
    for n in &nodes {
        for p in nodes.iter().filter(|p| p.me != n.me) {
            for hb in n.heartbeats_from(p.me) {
                assert_eq!(
                    hb,
                    Heartbeat {
                        incarnation: p.incarnation,
                        digest: DIGEST
                    }
                );
            }
        }
        assert!(n.messages().is_empty(), "nobody sent a lease message");
    }
    stop_all(&mut nodes);
}

#[test]
fn a_lease_request_and_a_grant_reach_only_their_node() {
    let dev = temp_device();
    let mut nodes: Vec<Node> = (0..3).map(|i| start(dev.path(), i, 3, 1)).collect();
    assert!(run_until(&mut nodes, |n| everyone_heard_everyone(n, 1)));

    // Node 1 asks node 0 (the leader) for a lease; other messages are not carried.
    nodes[1]
        .disk()
        .send(0, &Message::LeaseRequest { stamp_us: 5_000 });
    nodes[1].disk().send(
        0,
        &Message::Report {
            group: 0,
            epoch: 1,
            status: eterne::policy::group::GroupStatus::Running,
            stopping: false,
        },
    );
    assert!(run_until(&mut nodes, |n| !n[0].messages().is_empty()));
    assert_eq!(
        nodes[0].messages(),
        vec![(1, Message::LeaseRequest { stamp_us: 5_000 })]
    );

    let grant = Grant {
        term: 2,
        echo_us: 5_000,
        valid_us: 150_000,
        commit: 7,
    };
    nodes[0].disk().send(1, &Message::LeaseGrant(grant));
    assert!(run_until(&mut nodes, |n| !n[1].messages().is_empty()));

    // A stretch in which any repeat or misdelivery would show.
    run_heard(&mut nodes, 2, 0, 5);
    run_heard(&mut nodes, 1, 0, 5);
    assert_eq!(
        nodes[0].messages(),
        vec![(1, Message::LeaseRequest { stamp_us: 5_000 })],
        "the leader got the request once and nothing else"
    );
    assert_eq!(nodes[1].messages(), vec![(0, Message::LeaseGrant(grant))]);
    assert!(
        nodes[2].messages().is_empty(),
        "node 2 got {:?}",
        nodes[2].messages()
    );

    // A renewal: a new stamp is delivered again, and its grant.
    nodes[1]
        .disk()
        .send(0, &Message::LeaseRequest { stamp_us: 6_000 });
    assert!(run_until(&mut nodes, |n| n[0].messages().len() == 2));
    let renewed = Grant {
        echo_us: 6_000,
        ..grant
    };
    nodes[0].disk().send(1, &Message::LeaseGrant(renewed));
    assert!(run_until(&mut nodes, |n| n[1].messages().len() == 2));
    assert_eq!(nodes[1].messages()[1], (0, Message::LeaseGrant(renewed)));
    stop_all(&mut nodes);
}

#[test]
fn a_node_that_starts_later_is_news_from_its_first_record() {
    let dev = temp_device();
    let mut nodes = vec![start(dev.path(), 0, 2, 1)];
    nodes.push(start(dev.path(), 1, 2, 1));
    // Its very first write may already carry the request: it must not be taken as old.
    nodes[1]
        .disk()
        .send(0, &Message::LeaseRequest { stamp_us: 42 });
    assert!(run_until(&mut nodes, |n| !n[0].messages().is_empty()
        && !n[0].heartbeats_from(1).is_empty()));
    assert_eq!(
        nodes[0].messages(),
        vec![(1, Message::LeaseRequest { stamp_us: 42 })]
    );
    stop_all(&mut nodes);
}

#[test]
fn a_grant_older_than_this_run_is_not_delivered() {
    let dev = temp_device();
    let mut nodes: Vec<Node> = (0..2).map(|i| start(dev.path(), i, 2, 1)).collect();
    assert!(run_until(&mut nodes, |n| everyone_heard_everyone(n, 1)));
    nodes[1]
        .disk()
        .send(0, &Message::LeaseRequest { stamp_us: 9_000 });
    // A grant for a stamp from before node 1's first request in this run (a grant left over
    // for a previous incarnation) must not reach it.
    let stale = Grant {
        term: 1,
        echo_us: 8_000,
        valid_us: 150_000,
        commit: 1,
    };
    nodes[0].disk().send(1, &Message::LeaseGrant(stale));
    run_heard(&mut nodes, 1, 0, 5);
    assert!(
        nodes[1].messages().is_empty(),
        "got {:?}",
        nodes[1].messages()
    );
    stop_all(&mut nodes);
}

#[test]
fn a_peer_that_stops_writing_produces_no_more_heartbeats() {
    let dev = temp_device();
    let mut nodes: Vec<Node> = (0..3).map(|i| start(dev.path(), i, 3, 1)).collect();
    assert!(run_until(&mut nodes, |n| everyone_heard_everyone(n, 2)));
    nodes[1].stop();
    // Let a heartbeat that was already written be read, then forget everything.
    run_heard(&mut nodes, 0, 2, 2);
    clear(&mut nodes);
    run_heard(&mut nodes, 0, 2, 5);
    assert!(nodes[0].heartbeats_from(1).is_empty());
    assert!(nodes[2].heartbeats_from(1).is_empty());
    stop_all(&mut nodes);
}

#[test]
fn a_wedged_core_goes_silent_on_disk_although_its_io_thread_runs() {
    let dev = temp_device();
    let mut nodes: Vec<Node> = (0..3).map(|i| start(dev.path(), i, 3, 1)).collect();
    assert!(run_until(&mut nodes, |n| everyone_heard_everyone(n, 2)));
    nodes[1].beating = false;
    // Two more writes of node 1: the beat handed in last is on disk, the next write has none.
    let seq = slot_seq(dev.path(), 1);
    assert!(run_until(&mut nodes, |_| slot_seq(dev.path(), 1) >= seq + 2));
    run_heard(&mut nodes, 0, 2, 2);
    clear(&mut nodes);
    run_heard(&mut nodes, 0, 2, 5);
    assert!(nodes[0].heartbeats_from(1).is_empty());
    // It comes back as soon as its core beats again.
    nodes[1].beating = true;
    assert!(run_until(&mut nodes, |n| !n[0]
        .heartbeats_from(1)
        .is_empty()));
    stop_all(&mut nodes);
}

fn scribble(device: &Path, offset: u64, bytes: &[u8]) {
    let f = OpenOptions::new()
        .write(true)
        .open(device)
        .expect("open the device");
    f.write_all_at(bytes, offset)
        .expect("scribble on the device");
    f.sync_data().expect("sync");
}

#[test]
fn a_corrupted_slot_is_ignored_without_a_panic() {
    let dev = temp_device();
    let mut nodes: Vec<Node> = (0..3).map(|i| start(dev.path(), i, 3, 1)).collect();
    assert!(run_until(&mut nodes, |n| everyone_heard_everyone(n, 2)));
    nodes[1].stop();
    run_heard(&mut nodes, 0, 2, 2);
    clear(&mut nodes);

    // A torn record: the magic is intact, bytes in the middle are not (bad CRC).
    scribble(dev.path(), slot_offset(1, SLOT_BYTES) + 40, &[0xff; 24]);
    run_heard(&mut nodes, 0, 2, 5);
    // Garbage over the whole slot, magic included.
    scribble(
        dev.path(),
        slot_offset(1, SLOT_BYTES),
        &[0xa5; SLOT_BYTES as usize],
    );
    run_heard(&mut nodes, 0, 2, 5);
    run_heard(&mut nodes, 2, 0, 5);
    assert!(nodes[0].heartbeats_from(1).is_empty());
    assert!(nodes[2].heartbeats_from(1).is_empty());
    assert!(nodes.iter().all(|n| n.messages().is_empty()));

    // Node 1 comes back over its garbage slot and is heard again.
    nodes[1] = start(dev.path(), 1, 3, 2);
    assert!(run_until(&mut nodes, |n| n[0]
        .heartbeats_from(1)
        .iter()
        .any(|hb| hb.incarnation == 2)));

    // A live slot scribbled on while its node runs: ignored once, then overwritten.
    scribble(dev.path(), slot_offset(2, SLOT_BYTES) + 16, &[0x11; 8]);
    let before = nodes[0].heartbeats_from(2).len();
    assert!(run_until(&mut nodes, |n| n[0].heartbeats_from(2).len() >= before + 3));
    stop_all(&mut nodes);
}

fn start_err(device: &Path, cfg: DiskPathConfig) -> DiskError {
    let (tx, _rx) = unbounded_channel();
    match DiskPath::start(cfg, tx) {
        Ok(d) => {
            d.stop();
            panic!("{} was accepted", device.display());
        }
        Err(e) => e,
    }
}

#[test]
fn a_device_of_another_cluster_is_refused_with_a_clear_error() {
    let dev = temp_device();
    DiskPath::format(dev.path(), "other-cluster", 3, SLOT_BYTES).expect("format");
    let before = std::fs::read(dev.path()).expect("read the device");

    let err = start_err(dev.path(), config(dev.path(), 0, 3, 1));
    assert!(
        matches!(
            &err,
            DiskError::Mismatch {
                field: "cluster",
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    for part in [&dev.path().display().to_string(), "other-cluster", CLUSTER] {
        assert!(text.contains(part), "{text:?} does not name {part:?}");
    }

    let mut cfg = config(dev.path(), 0, 4, 1);
    cfg.cluster = "other-cluster".into();
    let err = start_err(dev.path(), cfg.clone());
    assert!(
        matches!(
            &err,
            DiskError::Mismatch {
                field: "node count",
                ..
            }
        ),
        "{err:?}"
    );
    cfg.nodes = 3;
    cfg.slot_bytes = 8192;
    let err = start_err(dev.path(), cfg);
    assert!(
        matches!(
            &err,
            DiskError::Mismatch {
                field: "slot_bytes",
                ..
            }
        ),
        "{err:?}"
    );

    assert_eq!(
        std::fs::read(dev.path()).expect("read"),
        before,
        "the device was changed"
    );
}

#[test]
fn a_device_holding_other_data_is_left_alone() {
    let dev = temp_device();
    let data: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    std::fs::write(dev.path(), &data).expect("write");
    let err = start_err(dev.path(), config(dev.path(), 0, 3, 1));
    assert!(matches!(&err, DiskError::Foreign { .. }), "{err:?}");
    assert!(err.to_string().contains(&dev.path().display().to_string()));
    assert_eq!(std::fs::read(dev.path()).expect("read"), data);
}

#[test]
fn a_missing_device_is_not_created() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let missing: PathBuf = dir.path().join("no-such-disk");
    let err = start_err(&missing, config(&missing, 0, 2, 1));
    assert!(matches!(&err, DiskError::Open { .. }), "{err:?}");
    assert!(!missing.exists());
}

#[test]
fn a_restarted_node_rejoins_without_erasing_the_others() {
    let dev = temp_device();
    let mut nodes: Vec<Node> = (0..3).map(|i| start(dev.path(), i, 3, 1)).collect();
    assert!(run_until(&mut nodes, |n| everyone_heard_everyone(n, 2)));
    // Node 0 (the leader) grants node 1 a lease, then node 1's daemon restarts.
    nodes[1]
        .disk()
        .send(0, &Message::LeaseRequest { stamp_us: 1_000 });
    assert!(run_until(&mut nodes, |n| !n[0].messages().is_empty()));
    let old = Grant {
        term: 1,
        echo_us: 1_000,
        valid_us: 150_000,
        commit: 1,
    };
    nodes[0].disk().send(1, &Message::LeaseGrant(old));
    assert!(run_until(&mut nodes, |n| !n[1].messages().is_empty()));
    nodes[1].stop();
    run_heard(&mut nodes, 0, 2, 2);
    clear(&mut nodes);
    let header_before = std::fs::read(dev.path()).expect("read")[..4096].to_vec();

    nodes[1] = start(dev.path(), 1, 3, 2);
    assert!(run_until(&mut nodes, |n| everyone_heard_everyone(n, 3)));
    assert!(nodes[0]
        .heartbeats_from(1)
        .iter()
        .all(|hb| hb.incarnation == 2));
    assert_eq!(
        &std::fs::read(dev.path()).expect("read")[..4096],
        &header_before[..]
    );
    // Nodes 0 and 2 never noticed anything but node 1's restart.
    assert!(nodes[1]
        .heartbeats_from(0)
        .iter()
        .all(|hb| hb.incarnation == 1));
    // The grant left for the old incarnation is not news to the new one.
    assert!(
        nodes[1].messages().is_empty(),
        "got {:?}",
        nodes[1].messages()
    );

    // The new incarnation asks with a stamp of its own clock; a fresh grant reaches it.
    nodes[1]
        .disk()
        .send(0, &Message::LeaseRequest { stamp_us: 500 });
    assert!(run_until(&mut nodes, |n| !n[0].messages().is_empty()));
    let fresh = Grant {
        echo_us: 500,
        ..old
    };
    nodes[0].disk().send(1, &Message::LeaseGrant(fresh));
    assert!(run_until(&mut nodes, |n| !n[1].messages().is_empty()));
    assert_eq!(nodes[1].messages(), vec![(0, Message::LeaseGrant(fresh))]);
    stop_all(&mut nodes);
}

/// A loop device, detached when dropped (also when the test fails).
struct Loop {
    dev: PathBuf,
}

impl Drop for Loop {
    fn drop(&mut self) {
        let status = Command::new("losetup").arg("-d").arg(&self.dev).status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!("could not detach {}: {status:?}", self.dev.display());
        }
    }
}

#[test]
fn direct_io_works_on_a_loop_device() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        // Straight to stderr, not through println!, so the line shows even when the test
        // harness captures the output of passing tests.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED direct_io_works_on_a_loop_device: needs root for losetup (euid {euid})"
        );
        return;
    }
    // A backing file on a real filesystem (not tmpfs), under the build directory.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temporary directory");
    let backing = dir.path().join("disk.img");
    let file = std::fs::File::create(&backing).expect("create the backing file");
    file.set_len(1 << 20).expect("size the backing file");
    drop(file);
    let out = Command::new("losetup")
        .args(["-f", "--show"])
        .arg(&backing)
        .output()
        .expect("run losetup");
    assert!(
        out.status.success(),
        "losetup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dev = Loop {
        dev: PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()),
    };

    let mut nodes: Vec<Node> = (0..2).map(|i| start(&dev.dev, i, 2, 1)).collect();
    for n in &nodes {
        assert_eq!(
            n.disk().io_mode(),
            IoMode::Direct,
            "{} refused O_DIRECT",
            dev.dev.display()
        );
    }
    assert!(run_until(&mut nodes, |n| everyone_heard_everyone(n, 3)));
    nodes[1]
        .disk()
        .send(0, &Message::LeaseRequest { stamp_us: 77 });
    assert!(run_until(&mut nodes, |n| !n[0].messages().is_empty()));
    stop_all(&mut nodes);
}
