//! The `filesystem` agent on a real ext4 filesystem on a loop device (root only): start with
//! fsck and mount, quick and deep monitors, stop that kills the processes holding the mount
//! (also one that ignores SIGTERM) before it unmounts, data that survives a stop and a start,
//! and an fsck that refuses a corrupted superblock.
//!
//! Tests assert behaviour, never timing: every wait is bounded by a generous [`LIMIT`] that only
//! turns a hang into a failure. `scripts/setup.sh` installs util-linux and e2fsprogs.

mod support;

use std::io::{Seek, SeekFrom, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use eterne::policy::group::Outcome;
use eterne::policy::spec::MonitorSpec;
use eterne::resources::{build, Agent, Depth};
use support::agent::Timings;
use support::wait::{bounded, eventually};

/// The bound of every wait: long enough for a loaded machine, short enough to fail a hang.
const LIMIT: Duration = Duration::from_secs(60);

/// An ext4 filesystem on a loop device over a temporary file. Dropping it kills the holders
/// the test started, unmounts what is left, detaches the loop device and removes the files,
/// also when the test fails.
struct LoopDisk {
    dir: tempfile::TempDir,
    dev: String,
    holders: Vec<Child>,
}

impl LoopDisk {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.img");
        std::fs::File::create(&image)
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        let dev = sh("losetup", &["-f", "--show", image.to_str().unwrap()])
            .trim()
            .to_string();
        let disk = LoopDisk {
            dir,
            dev,
            holders: Vec::new(),
        };
        sh("mkfs.ext4", &["-q", "-F", &disk.dev]);
        disk
    }

    fn mount_point(&self) -> PathBuf {
        self.dir.path().join("mnt/data")
    }

    fn mounted(&self) -> bool {
        let want = self.mount_point();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(want.to_str().unwrap()))
    }

    /// Starts a process that holds the mount; it is killed at the end if the agent did not.
    fn hold(&mut self, cmd: &mut Command) {
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .expect("start a holder process");
        self.holders.push(child);
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        for c in &mut self.holders {
            let _ = c.kill();
            let _ = c.wait();
        }
        for _ in 0..3 {
            if !self.mounted() {
                break;
            }
            let _ = Command::new("umount").arg(self.mount_point()).status();
        }
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

fn sh(prog: &str, args: &[&str]) -> String {
    let out = Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{prog}: {e}"));
    assert!(
        out.status.success(),
        "{prog} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The timings of the test filesystem: mkfs, fsck and mount on a loaded machine are slow.
const TIMINGS: Timings = Timings {
    quick: MonitorSpec {
        interval_ms: 1000,
        timeout_ms: 5000,
    },
    deep: Some(MonitorSpec {
        interval_ms: 10000,
        timeout_ms: 10000,
    }),
    start_ms: 30000,
    stop_ms: 30000,
};

fn agent(disk: &LoopDisk, extra: &[(&str, &str)]) -> Box<dyn Agent> {
    let mnt = disk.mount_point();
    let mut params = vec![
        ("device", disk.dev.as_str()),
        ("directory", mnt.to_str().unwrap()),
        ("fstype", "ext4"),
    ];
    params.extend_from_slice(extra);
    let spec = support::agent::resource("data", "filesystem", &params, &TIMINGS);
    let (ctx, _rx) = support::agent::context(0, 0, "data", std::env::temp_dir(), 4);
    build(&spec, &ctx).expect("well-formed parameters")
}

#[tokio::test]
async fn start_monitor_stop_kills_holders_and_keeps_the_data() {
    if support::skip_unless_root(
        "start_monitor_stop_kills_holders_and_keeps_the_data",
        "losetup and mount",
    ) {
        return;
    }
    let mut disk = LoopDisk::new();
    let mnt = disk.mount_point();
    let a = agent(&disk, &[("kill_timeout_ms", "500")]);
    a.validate().await.expect("validates");

    let r = bounded(LIMIT, "probe", a.probe()).await;
    assert_eq!(r.outcome, Outcome::NotRunning, "{r:?}");
    let r = bounded(LIMIT, "start", a.start(1)).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert!(disk.mounted(), "start mounted the filesystem");
    for depth in [Depth::Quick, Depth::Deep] {
        let r = bounded(LIMIT, "monitor", a.monitor(depth)).await;
        assert_eq!(r.outcome, Outcome::Ok, "{depth:?}: {r:?}");
    }
    let r = bounded(LIMIT, "probe", a.probe()).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    let r = bounded(LIMIT, "start again", a.start(1)).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert!(r.reason.contains("already mounted"), "{r:?}");

    {
        let mut f = std::fs::File::create(mnt.join("precious")).unwrap();
        f.write_all(b"written before the stop").unwrap();
        f.sync_all().unwrap();
    }

    // Holders: a cwd, an open file, and an open file of a process that ignores SIGTERM.
    disk.hold(Command::new("sleep").arg("1000").current_dir(&mnt));
    disk.hold(
        Command::new("sh")
            .args(["-c", "exec 3>\"$0/held\"; exec sleep 1000"])
            .arg(&mnt),
    );
    disk.hold(
        Command::new("sh")
            .args([
                "-c",
                "trap '' TERM; exec 3>\"$0/stubborn\"; exec sleep 1000",
            ])
            .arg(&mnt),
    );
    let ready = eventually(LIMIT, || {
        mnt.join("held").exists() && mnt.join("stubborn").exists()
    })
    .await;
    assert!(ready, "the holders opened their files");
    // Until the shells have exec'd sleep, they hold the files too; either way they hold.

    let r = bounded(LIMIT, "stop", a.stop()).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert!(r.reason.contains("killing holders"), "{r:?}");
    assert!(!disk.mounted(), "stop unmounted the filesystem");
    let mut signals = Vec::new();
    for c in &mut disk.holders {
        let mut status = None;
        let done = eventually(LIMIT, || {
            status = c.try_wait().ok().flatten();
            status.is_some()
        })
        .await;
        assert!(done, "holder {} survived the stop", c.id());
        signals.push(status.and_then(|s| s.signal()));
    }
    assert_eq!(
        signals,
        [
            Some(libc::SIGTERM),
            Some(libc::SIGTERM),
            Some(libc::SIGKILL)
        ],
        "polite holders went on SIGTERM, the stubborn one on SIGKILL"
    );

    let r = bounded(LIMIT, "monitor", a.monitor(Depth::Quick)).await;
    assert_eq!(r.outcome, Outcome::NotRunning, "{r:?}");
    let r = bounded(LIMIT, "probe", a.probe()).await;
    assert_eq!(r.outcome, Outcome::NotRunning, "{r:?}");
    let r = bounded(LIMIT, "stop again", a.stop()).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");

    let r = bounded(LIMIT, "start after stop", a.start(2)).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert_eq!(
        std::fs::read_to_string(mnt.join("precious")).unwrap(),
        "written before the stop"
    );
    let r = bounded(LIMIT, "deep monitor", a.monitor(Depth::Deep)).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    let r = bounded(LIMIT, "final stop", a.stop()).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert!(!disk.mounted());
}

/// Zeroes the primary ext4 superblock (bytes 1024..2048) through the device.
fn corrupt_superblock(dev: &str) {
    let mut f = std::fs::OpenOptions::new().write(true).open(dev).unwrap();
    f.seek(SeekFrom::Start(1024)).unwrap();
    f.write_all(&[0u8; 1024]).unwrap();
    f.sync_all().unwrap();
}

#[tokio::test]
async fn a_corrupted_superblock_fails_fsck_and_the_start() {
    if support::skip_unless_root(
        "a_corrupted_superblock_fails_fsck_and_the_start",
        "losetup and mount",
    ) {
        return;
    }
    let disk = LoopDisk::new();
    corrupt_superblock(&disk.dev);
    let a = agent(&disk, &[]);
    let r = bounded(LIMIT, "start", a.start(1)).await;
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    assert!(r.reason.contains("fsck"), "the reason names fsck: {r:?}");
    assert!(!disk.mounted(), "nothing was mounted");
    let r = bounded(LIMIT, "monitor", a.monitor(Depth::Quick)).await;
    assert_eq!(r.outcome, Outcome::NotRunning, "{r:?}");

    // Without fsck, mount refuses it and says why.
    let a = agent(&disk, &[("fsck", "false")]);
    let r = bounded(LIMIT, "start without fsck", a.start(1)).await;
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    assert!(r.reason.contains("mount"), "{r:?}");
    assert!(!disk.mounted());
}

#[tokio::test]
async fn another_filesystem_at_the_mount_point_is_not_ours() {
    if support::skip_unless_root(
        "another_filesystem_at_the_mount_point_is_not_ours",
        "losetup and mount",
    ) {
        return;
    }
    let disk = LoopDisk::new();
    let mnt = disk.mount_point();
    std::fs::create_dir_all(&mnt).unwrap();
    sh(
        "mount",
        &["-t", "tmpfs", "eterne-test", mnt.to_str().unwrap()],
    );
    let a = agent(&disk, &[]);
    let r = bounded(LIMIT, "monitor", a.monitor(Depth::Quick)).await;
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    let r = bounded(LIMIT, "start", a.start(1)).await;
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    assert!(r.reason.contains("eterne-test"), "{r:?}");
    // Stop leaves what is not ours alone.
    let r = bounded(LIMIT, "stop", a.stop()).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert!(disk.mounted(), "the tmpfs is still there");
    assert!(Path::new(&mnt).is_dir());
}
