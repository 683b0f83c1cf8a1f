//! The `filesystem` agent: fsck, then mount; on stop kill the holders, then unmount
//! (design.md §7).
//!
//! # Parameters
//!
//! | parameter | meaning |
//! |---|---|
//! | `device` | Required. What to mount: a block device (`/dev/sdb1`, `/dev/mapper/vg-data`), `UUID=…`, `LABEL=…`, `PARTUUID=…`, `PARTLABEL=…`, or a source that is no block device (`server:/export`, `tmpfs`). |
//! | `directory` | Required. The absolute mount point; created (with its parents) if missing. |
//! | `fstype` | The filesystem type (`ext4`, `xfs`, `nfs`, …). Default: `mount` detects it. |
//! | `options` | Mount options, comma-separated as for `mount -o`, e.g. `"noatime,data=ordered"`. |
//! | `fsck` | `true` (default) or `false`: check a block device before mounting it. |
//! | `kill_timeout_ms` | How long `stop` waits after SIGTERM to the processes that hold the filesystem before it SIGKILLs them. Must be below the resource's `stop_timeout_ms`. Default: a third of it. |
//!
//! # How it works
//!
//! - `start`: already mounted at `directory` (the same device) → Ok. Something else mounted
//!   there, or the device mounted somewhere else → Failed (two mounts of one disk are how
//!   disks get corrupted). Otherwise create `directory`, run fsck on a block device
//!   (`fsck.<fstype> -p` if `fstype` is given and that checker exists, else `fsck -a`; exit
//!   0 or 1 — nothing wrong, or errors corrected — pass; 2 and above fail the start with
//!   fsck's last words), then `mount [-t fstype] [-o options] device directory`.
//!   `mount(8)` of util-linux, not the mount(2) system call: it resolves `UUID=`/`LABEL=`,
//!   detects the type, splits options into flags and filesystem data, and runs the helpers
//!   (`mount.nfs`, `mount.cifs`) — all of which we would otherwise re-implement. Both fsck and
//!   mount run like OCF agents (own process group, killed if the caller gives up).
//! - `stop`: not mounted → Ok. Otherwise find every process that holds the filesystem — its
//!   cwd, root, executable, an open descriptor or a mapped file on it, told by the device
//!   number (`st_dev`, and the device field of `/proc/<pid>/maps`), which also catches deleted
//!   files and other mount namespaces and needs no `fuser` — SIGTERM them, wait up to
//!   `kill_timeout_ms` for them to go, SIGKILL the rest; then `umount2(2)`, retried a bounded
//!   number of times (holders that appeared meanwhile are SIGKILLed before each retry).
//!   Signals go through a pidfd opened while the process was seen holding the filesystem, so
//!   a recycled pid is never hit. The daemon itself and init are never signalled. A lazy
//!   unmount is never used: the filesystem would stay alive and the disk could still be
//!   written while another node mounts it. A stop that leaves the device mounted (here or at
//!   another mount point) is Failed: a reason to fence.
//! - `monitor(Quick)` and `probe`: parse `/proc/self/mountinfo`; the device is mounted at
//!   `directory` (compared by major:minor for a block device, by source otherwise) → Ok;
//!   nothing there → NotRunning; something else there → Failed.
//! - `monitor(Deep)`: the quick check, then write 4 KiB of random bytes to
//!   `<directory>/.eterne-check-<host name>`, fsync, read them back with O_DIRECT where the
//!   filesystem allows it (else after dropping the cached pages), compare, delete.

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::captured::{prepare_child, run_captured};
use super::pidfd::{pidfd_exited, pidfd_open, pidfd_send_signal};
use super::process;
use super::{known_params, lookup, param_err};
use super::{Agent, AgentContext, AgentError, Depth, HardStop, Report};
use crate::policy::spec::ResourceSpec;

/// Every parameter the agent knows; anything else is a typo and refused.
pub const PARAMS: &[&str] = &[
    "device",
    "directory",
    "fstype",
    "options",
    "fsck",
    "kill_timeout_ms",
];

/// `PATH` for mount and fsck when the daemon has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How often `stop` looks whether the holders have gone.
const HOLDER_POLL: Duration = Duration::from_millis(50);
/// After SIGKILL, how long `stop` waits for the holders to be gone before it tries to
/// unmount anyway (a process stuck in the kernel may never go).
const KILL_WAIT: Duration = Duration::from_secs(5);
/// Bound on the number of looks of one wait for holders (besides its time bound).
const HOLDER_POLLS_MAX: u32 = 10_000;
/// Unmount attempts, at most.
const UMOUNT_TRIES_MAX: u32 = 10;
/// Pause between two unmount attempts.
const UMOUNT_PAUSE: Duration = Duration::from_millis(200);
/// Size of the deep check's file (one page: the unit of O_DIRECT on common filesystems).
const CHECK_BYTES: usize = 4096;
/// The deep check's file name, before the host name.
const CHECK_FILE_PREFIX: &str = ".eterne-check-";

/// The `filesystem` agent. See the module documentation for parameters and behaviour.
#[derive(Debug)]
pub struct Filesystem {
    /// The resource's name, for messages.
    name: String,
    /// What to mount, as given.
    device: String,
    /// The mount point, absolute and normalized.
    directory: PathBuf,
    /// `-t` for mount, and which fsck to run.
    fstype: Option<String>,
    /// `-o` for mount.
    options: Option<String>,
    /// Run fsck before mounting a block device.
    fsck: bool,
    /// SIGTERM → SIGKILL for the holders.
    kill_timeout: Duration,
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Device major number (of the filesystem, as `st_dev` reports it).
    pub major: u32,
    /// Device minor number.
    pub minor: u32,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// The filesystem type.
    pub fstype: String,
    /// The mount source (`/dev/sdb1`, `server:/export`, …).
    pub source: String,
}

/// What is mounted at our directory.
#[derive(Debug)]
enum AtDir {
    /// Nothing.
    Nothing,
    /// Our device, on top.
    Ours(MountEntry),
    /// Something else (on top; ours may be below it).
    Other(MountEntry),
}

/// How we recognise our device in the mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// A block device: by major:minor.
    Block(u32, u32),
    /// Anything else: by mount source.
    Source(String),
}

impl Expect {
    fn matches(&self, e: &MountEntry) -> bool {
        match self {
            Expect::Block(ma, mi) => e.major == *ma && e.minor == *mi,
            Expect::Source(s) => e.source == *s,
        }
    }
}

impl Filesystem {
    /// Parses and checks the parameters of `spec` (syntax only; [`Agent::validate`] checks
    /// the node).
    pub fn new(spec: &ResourceSpec, _ctx: &AgentContext) -> Result<Self, AgentError> {
        let name = spec.name.as_str();
        let err = |param: &str, problem: String| param_err(name, param, problem);
        known_params(spec, "a filesystem", PARAMS)?;
        let device = match lookup(spec, "device").map(str::trim) {
            Some(d) if !d.is_empty() && !d.starts_with('-') && !d.contains(['\0', '\n']) => {
                d.to_string()
            }
            Some(d) => {
                return Err(err(
                    "device",
                    format!("{d:?} is not a device; give one like \"/dev/sdb1\" or \"UUID=…\""),
                ))
            }
            None => {
                return Err(err(
                    "device",
                    "is missing; give the device to mount, e.g. device = \"/dev/sdb1\"".to_string(),
                ))
            }
        };
        let directory = match lookup(spec, "directory").map(str::trim) {
            None => {
                return Err(err(
                    "directory",
                    "is missing; give the mount point, e.g. directory = \"/srv/data\"".to_string(),
                ))
            }
            Some(d) => normalize_dir(d).ok_or_else(|| {
                err(
                    "directory",
                    format!(
                        "{d:?} is not an absolute directory other than /; give one like \
                         \"/srv/data\" (no . or .. parts)"
                    ),
                )
            })?,
        };
        let fstype = match lookup(spec, "fstype").map(str::trim) {
            None => None,
            Some(t)
                if !t.is_empty()
                    && t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) =>
            {
                Some(t.to_string())
            }
            Some(t) => {
                return Err(err(
                    "fstype",
                    format!("{t:?} is not a filesystem type; give one like \"ext4\""),
                ))
            }
        };
        let options = match lookup(spec, "options").map(str::trim) {
            None => None,
            Some(o) if !o.is_empty() && !o.contains(|c: char| c.is_whitespace() || c == '\0') => {
                Some(o.to_string())
            }
            Some(o) => {
                return Err(err(
                    "options",
                    format!(
                        "{o:?} is not a mount option list; write them comma-separated without \
                         spaces, e.g. \"noatime,nodev\""
                    ),
                ))
            }
        };
        let fsck = match lookup(spec, "fsck").map(|v| v.trim().to_ascii_lowercase()) {
            None => true,
            Some(v) => match v.as_str() {
                "true" | "yes" | "on" | "1" => true,
                "false" | "no" | "off" | "0" => false,
                _ => return Err(err("fsck", format!("{v:?} is not true or false"))),
            },
        };
        let stop_ms = u64::from(spec.stop_timeout_ms);
        let kill_ms = match lookup(spec, "kill_timeout_ms") {
            None => (stop_ms / 3).max(1),
            Some(v) => {
                let ms: u64 = v.trim().parse().ok().filter(|&ms| ms > 0).ok_or_else(|| {
                    err(
                        "kill_timeout_ms",
                        format!("{v:?} is not a positive number of milliseconds"),
                    )
                })?;
                if stop_ms > 0 && ms >= stop_ms {
                    return Err(err(
                        "kill_timeout_ms",
                        format!(
                            "{ms} ms is not below the resource's stop_timeout_ms ({stop_ms} ms): \
                             the stop would be cut off before the holders are killed and the \
                             filesystem unmounted; give a smaller value or raise \
                             stop_timeout_ms"
                        ),
                    ));
                }
                ms
            }
        };
        Ok(Self {
            name: name.to_string(),
            device,
            directory,
            fstype,
            options,
            fsck,
            kill_timeout: Duration::from_millis(kill_ms),
        })
    }

    /// The mount point.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// The device node `device` names, if it names one (`UUID=x` → `/dev/disk/by-uuid/x`).
    fn device_path(&self) -> Option<PathBuf> {
        let d = self.device.as_str();
        for (prefix, dir) in [
            ("UUID=", "by-uuid"),
            ("LABEL=", "by-label"),
            ("PARTUUID=", "by-partuuid"),
            ("PARTLABEL=", "by-partlabel"),
        ] {
            if let Some(v) = d.strip_prefix(prefix) {
                return Some(Path::new("/dev/disk").join(dir).join(v));
            }
        }
        d.starts_with('/').then(|| PathBuf::from(d))
    }

    /// How to recognise the device in the mount table, and whether it is a block device.
    fn expect(&self) -> Expect {
        if let Some(p) = self.device_path() {
            if let Ok(m) = std::fs::metadata(&p) {
                if m.file_type().is_block_device() {
                    let (ma, mi) = split_dev(m.rdev());
                    return Expect::Block(ma, mi);
                }
            }
        }
        Expect::Source(self.device.clone())
    }

    /// The mount point as the mount table writes it (symlinks resolved).
    fn table_dir(&self) -> PathBuf {
        std::fs::canonicalize(&self.directory).unwrap_or_else(|_| self.directory.clone())
    }

    fn at_dir(&self, table: &[MountEntry], expect: &Expect) -> AtDir {
        let dir = self.table_dir();
        match table.iter().rev().find(|e| e.mount_point == dir) {
            None => AtDir::Nothing,
            Some(e) if expect.matches(e) => AtDir::Ours(e.clone()),
            Some(e) => AtDir::Other(e.clone()),
        }
    }

    /// Mount points other than ours where our (block) device is mounted.
    fn elsewhere(&self, table: &[MountEntry], expect: &Expect) -> Vec<PathBuf> {
        if !matches!(expect, Expect::Block(..)) {
            return Vec::new();
        }
        let dir = self.table_dir();
        table
            .iter()
            .filter(|e| expect.matches(e) && e.mount_point != dir)
            .map(|e| e.mount_point.clone())
            .collect()
    }

    /// A command like an OCF agent runs (own group, killed if the caller gives up).
    fn command(&self, program: &str) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(program);
        let path = std::env::var_os("PATH").filter(|p| !p.is_empty());
        cmd.env("PATH", path.unwrap_or_else(|| DEFAULT_PATH.into()))
            // fsck and mount print messages we show; keep them in one language.
            .env("LC_ALL", "C");
        prepare_child(&mut cmd);
        cmd
    }

    /// The fsck to run: `fsck.<fstype> -p` if that exists, else `fsck -a`.
    fn fsck_command(&self, dev: &Path) -> (String, tokio::process::Command) {
        let specific = self
            .fstype
            .as_ref()
            .map(|t| format!("fsck.{t}"))
            .filter(|p| find_program(p).is_some());
        let (program, flag) = match specific {
            Some(p) => (p, "-p"),
            None => ("fsck".to_string(), "-a"),
        };
        let mut cmd = self.command(&program);
        cmd.arg(flag).arg(dev);
        (format!("{program} {flag}"), cmd)
    }

    async fn run_fsck(&self, dev: &Path) -> Result<(), String> {
        let (what, cmd) = self.fsck_command(dev);
        let fin = run_captured(cmd, false).await?;
        let out = fin.output.trim().replace('\n', " | ");
        match fin.status.code() {
            Some(0) => Ok(()),
            Some(1) => {
                tracing::warn!(resource = %self.name, device = %dev.display(), output = %fin.output, "fsck corrected errors");
                Ok(())
            }
            Some(c) => Err(format!(
                "{what} {} exited with {c} ({}); the filesystem needs repair by hand: {out}",
                dev.display(),
                fsck_meaning(c)
            )),
            None => Err(format!("{what} {} was killed: {out}", dev.display())),
        }
    }

    async fn run_mount(&self) -> Result<(), String> {
        let mut cmd = self.command("mount");
        if let Some(t) = &self.fstype {
            cmd.arg("-t").arg(t);
        }
        if let Some(o) = &self.options {
            cmd.arg("-o").arg(o);
        }
        cmd.arg(&self.device).arg(&self.directory);
        let fin = run_captured(cmd, false).await?;
        if fin.status.success() {
            Ok(())
        } else {
            Err(format!(
                "mount {} {} failed ({}): {}",
                self.device,
                self.directory.display(),
                fin.status,
                fin.output.trim().replace('\n', " | ")
            ))
        }
    }

    async fn do_start(&self) -> Result<String, String> {
        let expect = self.expect();
        let table = read_mountinfo()?;
        match self.at_dir(&table, &expect) {
            AtDir::Ours(_) => {
                return Ok(format!(
                    "{} already mounted at {}",
                    self.device,
                    self.directory.display()
                ))
            }
            AtDir::Other(e) => return Err(self.other_there(&e)),
            AtDir::Nothing => {}
        }
        let elsewhere = self.elsewhere(&table, &expect);
        if !elsewhere.is_empty() {
            return Err(format!(
                "{} is already mounted at {}; unmount it there first (one disk, one mount)",
                self.device,
                show_paths(&elsewhere)
            ));
        }
        std::fs::create_dir_all(&self.directory)
            .map_err(|e| format!("cannot create {}: {e}", self.directory.display()))?;
        if self.fsck && matches!(expect, Expect::Block(..)) {
            if let Some(dev) = self.device_path() {
                self.run_fsck(&dev).await?;
            }
        }
        self.run_mount().await?;
        match self.at_dir(&read_mountinfo()?, &self.expect()) {
            AtDir::Ours(e) => Ok(format!(
                "mounted {} ({}) at {}",
                self.device,
                e.fstype,
                self.directory.display()
            )),
            AtDir::Other(e) => Err(self.other_there(&e)),
            AtDir::Nothing => Err(format!(
                "mount said yes but nothing is mounted at {}",
                self.directory.display()
            )),
        }
    }

    fn other_there(&self, e: &MountEntry) -> String {
        format!(
            "{} has {} ({}) mounted, not {}",
            self.directory.display(),
            e.source,
            e.fstype,
            self.device
        )
    }

    async fn do_stop(&self) -> Result<String, String> {
        let expect = self.expect();
        let table = read_mountinfo()?;
        let entry = match self.at_dir(&table, &expect) {
            AtDir::Ours(e) => e,
            // The device named a node that is gone (a pulled disk, a udev link not there):
            // what is mounted at our directory may well be ours. Never call that stopped.
            AtDir::Other(e)
                if self.device_path().is_some() && matches!(expect, Expect::Source(_)) =>
            {
                return Err(format!(
                    "{} is mounted at {}, and {} cannot be found to tell whether it is ours; \
                     unmount it by hand once you know",
                    e.source,
                    self.directory.display(),
                    self.device
                ));
            }
            AtDir::Nothing | AtDir::Other(_) => {
                let elsewhere = self.elsewhere(&table, &expect);
                if !elsewhere.is_empty() {
                    return Err(format!(
                        "not mounted at {}, but {} is mounted at {}: the disk may still be \
                         written",
                        self.directory.display(),
                        self.device,
                        show_paths(&elsewhere)
                    ));
                }
                return Ok(format!("not mounted at {}", self.directory.display()));
            }
        };
        let dev = (entry.major, entry.minor);
        let killed = self.kill_holders(dev).await;
        let mut tries = 0;
        loop {
            tries += 1;
            let dir = entry.mount_point.clone();
            let r = tokio::task::spawn_blocking(move || umount(&dir))
                .await
                .map_err(|e| format!("umount task: {e}"))?;
            match r {
                Ok(()) => break,
                // Not a mount point (any more): someone unmounted it meanwhile.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < UMOUNT_TRIES_MAX => {
                    // Someone opened it since: no grace this time.
                    let late = signal_holders(dev, libc::SIGKILL).await;
                    tracing::warn!(resource = %self.name, directory = %self.directory.display(), tries, killed = ?late, "filesystem busy; retrying the unmount");
                    tokio::time::sleep(UMOUNT_PAUSE).await;
                }
                Err(e) => {
                    let held = scan_holders(dev).await;
                    return Err(format!(
                        "cannot unmount {} after {tries} tries: {e}{}; not unmounted \
                         lazily, the disk could still be written",
                        self.directory.display(),
                        if held.is_empty() {
                            String::new()
                        } else {
                            format!(" (held by pids {held:?})")
                        }
                    ));
                }
            }
        }
        let table = read_mountinfo()?;
        if let AtDir::Ours(_) = self.at_dir(&table, &expect) {
            return Err(format!(
                "{} is still mounted at {} (mounted more than once there?)",
                self.device,
                self.directory.display()
            ));
        }
        let elsewhere = self.elsewhere(&table, &expect);
        if !elsewhere.is_empty() {
            return Err(format!(
                "unmounted {}, but {} is still mounted at {}: the disk may still be written",
                self.directory.display(),
                self.device,
                show_paths(&elsewhere)
            ));
        }
        Ok(if killed.is_empty() {
            format!("unmounted {}", self.directory.display())
        } else {
            format!(
                "unmounted {} after killing holders {killed:?}",
                self.directory.display()
            )
        })
    }

    /// SIGTERM to every holder, up to `kill_timeout` for them to go, SIGKILL to the rest and
    /// up to [`KILL_WAIT`] for those. Returns the pids signalled.
    async fn kill_holders(&self, dev: (u32, u32)) -> Vec<u32> {
        let termed = signal_holders(dev, libc::SIGTERM).await;
        if termed.is_empty() {
            return termed;
        }
        tracing::info!(resource = %self.name, directory = %self.directory.display(), pids = ?termed, "SIGTERM to the processes holding the filesystem");
        if wait_no_holders(dev, self.kill_timeout).await {
            return termed;
        }
        let killed = signal_holders(dev, libc::SIGKILL).await;
        tracing::warn!(resource = %self.name, directory = %self.directory.display(), pids = ?killed, kill_timeout_ms = self.kill_timeout.as_millis() as u64, "SIGKILL to holders that outlived SIGTERM");
        wait_no_holders(dev, KILL_WAIT).await;
        let mut all = termed;
        for p in killed {
            if !all.contains(&p) {
                all.push(p);
            }
        }
        all
    }

    async fn quick(&self) -> Report {
        let table = match read_mountinfo() {
            Ok(t) => t,
            Err(e) => return Report::failed(e),
        };
        match self.at_dir(&table, &self.expect()) {
            AtDir::Ours(e) => Report::ok(format!(
                "{} ({}) mounted at {}",
                self.device,
                e.fstype,
                self.directory.display()
            )),
            AtDir::Nothing => {
                Report::not_running(format!("nothing mounted at {}", self.directory.display()))
            }
            AtDir::Other(e) => Report::failed(self.other_there(&e)),
        }
    }
}

/// The monitor's hard stop of a mount (see [`super::hard_stop`]): SIGKILL of every process
/// that holds the filesystem mounted at `directory`, then a lazy unmount. Nothing mounted
/// there is `Ok`. Blocking (reads /proc).
pub fn force_unmount(directory: &Path) -> Result<(), String> {
    let table = read_mountinfo()?;
    let Some(e) = table.iter().rev().find(|e| e.mount_point == directory) else {
        return Ok(());
    };
    let dev = (e.major, e.minor);
    for pid in holders_blocking(dev) {
        // SAFETY: kill(2) of a pid that holds the filesystem; no memory is involved.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
    let c = std::ffi::CString::new(directory.as_os_str().as_bytes())
        .map_err(|_| "NUL in the mount point".to_string())?;
    // SAFETY: a valid NUL-terminated path and plain flags.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW) } < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINVAL) {
            return Err(format!("cannot detach {}: {e}", directory.display()));
        }
    }
    Ok(())
}

#[async_trait]
impl Agent for Filesystem {
    fn hard_stop(&self) -> Option<HardStop> {
        Some(HardStop::Unmount {
            resource: self.name.clone(),
            directory: self.directory.clone(),
        })
    }

    async fn validate(&self) -> Result<(), AgentError> {
        let expect = self.expect();
        if let Some(p) = self.device_path() {
            match std::fs::metadata(&p) {
                Ok(m) if m.file_type().is_block_device() => {}
                Ok(_) => {
                    return Err(param_err(
                        &self.name,
                        "device",
                        format!("{} is not a block device on this node", p.display()),
                    ))
                }
                Err(e) => {
                    return Err(param_err(
                        &self.name,
                        "device",
                        format!("{} does not exist on this node ({e})", p.display()),
                    ))
                }
            }
        }
        if self.directory.exists() && !self.directory.is_dir() {
            return Err(param_err(
                &self.name,
                "directory",
                format!("{} exists and is not a directory", self.directory.display()),
            ));
        }
        if find_program("mount").is_none() {
            return Err(param_err(
                &self.name,
                "device",
                "mount(8) is not found in PATH; install util-linux".to_string(),
            ));
        }
        if self.fsck && matches!(expect, Expect::Block(..)) {
            let specific = self.fstype.as_ref().map(|t| format!("fsck.{t}"));
            let found = specific.as_deref().and_then(find_program).is_some()
                || find_program("fsck").is_some();
            if !found {
                return Err(param_err(
                    &self.name,
                    "fsck",
                    "no fsck is found in PATH; install it (e2fsprogs, xfsprogs, …) or set \
                     fsck = \"false\""
                        .to_string(),
                ));
            }
        }
        Ok(())
    }

    async fn start(&self, _epoch: u64) -> Report {
        match self.do_start().await {
            Ok(why) => {
                tracing::info!(resource = %self.name, reason = %why, "filesystem started");
                Report::ok(why)
            }
            Err(why) => {
                tracing::warn!(resource = %self.name, reason = %why, "filesystem start failed");
                Report::failed(why)
            }
        }
    }

    async fn stop(&self) -> Report {
        match self.do_stop().await {
            Ok(why) => {
                tracing::info!(resource = %self.name, reason = %why, "filesystem stopped");
                Report::ok(why)
            }
            Err(why) => {
                tracing::warn!(resource = %self.name, reason = %why, "filesystem stop failed");
                Report::failed(why)
            }
        }
    }

    async fn monitor(&self, depth: Depth) -> Report {
        let quick = self.quick().await;
        if depth == Depth::Quick || quick.outcome != crate::policy::group::Outcome::Ok {
            return quick;
        }
        let file = self
            .directory
            .join(format!("{CHECK_FILE_PREFIX}{}", host_name()));
        let shown = file.display().to_string();
        match tokio::task::spawn_blocking(move || write_read_back(&file)).await {
            Ok(Ok(how)) => Report::ok(format!(
                "{}; {shown} written and read back{how}",
                quick.reason
            )),
            Ok(Err(e)) => Report::failed(format!("deep check on {shown}: {e}")),
            Err(e) => Report::failed(format!("deep check task: {e}")),
        }
    }

    async fn probe(&self) -> Report {
        self.quick().await
    }
}

/// `/srv/data/` → `/srv/data`; `None` for relative paths, `/`, `.` or `..` parts.
fn normalize_dir(d: &str) -> Option<PathBuf> {
    if !d.starts_with('/') || d.contains('\0') {
        return None;
    }
    let mut out = PathBuf::from("/");
    for c in Path::new(d).components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => out.push(n),
            _ => return None,
        }
    }
    (out != Path::new("/")).then_some(out)
}

/// glibc's `major()`/`minor()` of a `dev_t`.
fn split_dev(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as u32, minor as u32)
}

fn read_mountinfo() -> Result<Vec<MountEntry>, String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|t| parse_mountinfo(&t))
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))
}

/// Parses `/proc/<pid>/mountinfo` (proc(5)); malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let (ma, mi) = fields.get(2)?.split_once(':')?;
            let mount_point = unescape_octal(fields.get(4)?);
            let sep = fields.iter().position(|f| *f == "-")?;
            Some(MountEntry {
                major: ma.parse().ok()?,
                minor: mi.parse().ok()?,
                mount_point: PathBuf::from(std::ffi::OsStr::from_bytes(&mount_point)),
                fstype: fields.get(sep + 1)?.to_string(),
                source: String::from_utf8_lossy(&unescape_octal(fields.get(sep + 2)?)).into_owned(),
            })
        })
        .collect()
}

/// The kernel writes space, tab, newline and backslash in mountinfo as `\ooo`.
fn unescape_octal(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = oct.iter().fold(0u32, |a, c| a * 8 + u32::from(c - b'0'));
                if let Ok(byte) = u8::try_from(v) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn show_paths(p: &[PathBuf]) -> String {
    p.iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What an fsck exit code means (fsck(8); the codes are bits).
fn fsck_meaning(code: i32) -> &'static str {
    if code & 8 != 0 {
        "operational error"
    } else if code & 4 != 0 {
        "errors left uncorrected"
    } else if code & 2 != 0 {
        "errors corrected, the system should be rebooted"
    } else if code & 16 != 0 {
        "usage error"
    } else if code & 32 != 0 {
        "cancelled"
    } else {
        "failure"
    }
}

/// umount2(2) without a lazy detach, never following a symlink at the mount point.
fn umount(dir: &Path) -> io::Result<()> {
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in the path"))?;
    // SAFETY: a valid NUL-terminated path and plain flags.
    if unsafe { libc::umount2(c.as_ptr(), libc::UMOUNT_NOFOLLOW) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Holders: processes that keep the filesystem busy.

/// Whether `pid` holds the filesystem `dev` (cwd, root, exe, an open file or a mapping on it).
fn holds(pid: u32, dev: (u32, u32)) -> bool {
    let on_dev = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| split_dev(m.dev()) == dev)
            .unwrap_or(false)
    };
    let base = PathBuf::from(format!("/proc/{pid}"));
    if ["cwd", "root", "exe"].iter().any(|l| on_dev(&base.join(l))) {
        return true;
    }
    if let Ok(fds) = std::fs::read_dir(base.join("fd")) {
        if fds.flatten().any(|fd| on_dev(&fd.path())) {
            return true;
        }
    }
    std::fs::read_to_string(base.join("maps"))
        .map(|maps| maps.lines().any(|l| map_dev(l) == Some(dev)))
        .unwrap_or(false)
}

/// The device of a `/proc/<pid>/maps` line with a file (`…  08:01 1234  /path`), in hex.
fn map_dev(line: &str) -> Option<(u32, u32)> {
    let mut f = line.split_whitespace();
    let dev = f.nth(3)?;
    let inode: u64 = f.next()?.parse().ok()?;
    if inode == 0 {
        return None;
    }
    let (ma, mi) = dev.split_once(':')?;
    Some((
        u32::from_str_radix(ma, 16).ok()?,
        u32::from_str_radix(mi, 16).ok()?,
    ))
}

/// Every process (but ourselves and init) that holds `dev`. Blocking: reads /proc.
fn holders_blocking(dev: (u32, u32)) -> Vec<u32> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me && pid != 1 && holds(pid, dev))
        .collect();
    pids.sort_unstable();
    pids
}

/// [`holders_blocking`] off the runtime's threads (a stat on a hung filesystem blocks).
async fn scan_holders(dev: (u32, u32)) -> Vec<u32> {
    tokio::task::spawn_blocking(move || holders_blocking(dev))
        .await
        .unwrap_or_default()
}

/// Sends `sig` to every holder of `dev`, each through a pidfd opened while it was seen
/// holding it. Returns the pids signalled.
async fn signal_holders(dev: (u32, u32), sig: libc::c_int) -> Vec<u32> {
    tokio::task::spawn_blocking(move || {
        holders_blocking(dev)
            .into_iter()
            .filter(|&pid| {
                let Ok(fd) = pidfd_open(pid) else {
                    return false;
                };
                // The pidfd pins the process; if it still holds the filesystem now and has not
                // exited, /proc/<pid> was this very process.
                holds(pid, dev) && !pidfd_exited(&fd) && pidfd_send_signal(&fd, sig).is_ok()
            })
            .collect()
    })
    .await
    .unwrap_or_default()
}

/// Waits until nobody holds `dev`, up to `limit`; true if nobody does.
async fn wait_no_holders(dev: (u32, u32), limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    for _ in 0..HOLDER_POLLS_MAX {
        if scan_holders(dev).await.is_empty() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        tokio::time::sleep(HOLDER_POLL.min(deadline - now)).await;
    }
    false
}

// ---------------------------------------------------------------------------------------------
// The deep check.

/// This node's host name, made safe for a file name.
fn host_name() -> String {
    let raw = process::host_name().unwrap_or_default();
    let clean: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() || clean.starts_with('.') {
        "node".to_string()
    } else {
        clean
    }
}

/// Writes random bytes to `file`, fsyncs, reads them back past the page cache where it can,
/// compares and deletes the file. `Ok(note)` says how it was read.
fn write_read_back(file: &Path) -> Result<String, String> {
    let mut data = vec![0u8; CHECK_BYTES];
    fill_random(&mut data).map_err(|e| format!("getrandom: {e}"))?;
    let result = write_then_read(file, &data);
    let removed = std::fs::remove_file(file);
    let how = result?;
    removed.map_err(|e| format!("cannot remove it: {e}"))?;
    Ok(how)
}

fn write_then_read(file: &Path, data: &[u8]) -> Result<String, String> {
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(file)
            .map_err(|e| format!("cannot create: {e}"))?;
        f.write_all(data).map_err(|e| format!("write: {e}"))?;
        f.sync_all().map_err(|e| format!("fsync: {e}"))?;
    }
    // An aligned buffer for O_DIRECT: a page inside a two-page allocation.
    let mut raw = vec![0u8; 2 * CHECK_BYTES];
    let off = raw.as_ptr().align_offset(CHECK_BYTES);
    let buf = &mut raw[off..off + CHECK_BYTES];
    let direct = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT | libc::O_NOFOLLOW)
        .open(file);
    let (mut f, how) = match direct {
        Ok(f) => (f, " (O_DIRECT)"),
        // tmpfs and some others refuse O_DIRECT: read after dropping the cached pages.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            let f = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(file)
                .map_err(|e| format!("cannot open to read back: {e}"))?;
            // SAFETY: posix_fadvise on a valid descriptor; advice only.
            unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            (f, " (buffered: no O_DIRECT here)")
        }
        Err(e) => return Err(format!("cannot open to read back: {e}")),
    };
    f.read_exact(buf).map_err(|e| format!("read back: {e}"))?;
    if buf != data {
        let at = buf.iter().zip(data).position(|(a, b)| a != b).unwrap_or(0);
        return Err(format!(
            "read back other bytes than written (first difference at byte {at})"
        ));
    }
    Ok(how.to_string())
}

fn fill_random(buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    // getrandom returns at most 32 MiB per call; a few calls at most for our page.
    for _ in 0..16 {
        if done == buf.len() {
            return Ok(());
        }
        // SAFETY: the pointer and length describe the rest of `buf`.
        let n = unsafe {
            libc::getrandom(
                buf[done..].as_mut_ptr().cast::<libc::c_void>(),
                buf.len() - done,
                0,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        done += n as usize;
    }
    if done == buf.len() {
        Ok(())
    } else {
        Err(io::Error::other("getrandom gave too few bytes"))
    }
}

/// A program in `PATH` (or the default PATH), as execvp would find it.
fn find_program(prog: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| DEFAULT_PATH.to_string());
    process::find_program(prog, &path).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    fn new(params: &[(&str, &str)]) -> Result<Filesystem, AgentError> {
        let spec = ResourceSpec {
            start_timeout_ms: 30000,
            stop_timeout_ms: 9000,
            ..crate::policy::testutil::agent_resource("data", "filesystem", params)
        };
        let (tx, _rx) = mpsc::channel(1);
        let ctx = AgentContext {
            group: 0,
            resource: 0,
            name: "data".into(),
            run_dir: "/run/eterne".into(),
            events: tx,
        };
        Filesystem::new(&spec, &ctx)
    }

    #[test]
    fn defaults() {
        let f = new(&[("device", "UUID=abc"), ("directory", "/srv/data/")]).unwrap();
        assert_eq!(f.directory(), Path::new("/srv/data"));
        assert!(f.fsck);
        assert_eq!(f.kill_timeout, Duration::from_millis(3000));
        assert_eq!(
            f.device_path(),
            Some(PathBuf::from("/dev/disk/by-uuid/abc"))
        );
        let nfs = new(&[("device", "srv:/export"), ("directory", "/mnt/x")]).unwrap();
        assert_eq!(nfs.device_path(), None);
        assert_eq!(nfs.expect(), Expect::Source("srv:/export".into()));
    }

    #[test]
    fn bad_params_name_the_parameter() {
        let ok: &[(&str, &str)] = &[("device", "/dev/sdb1"), ("directory", "/srv/d")];
        let with = |extra: (&'static str, &'static str)| {
            let mut v = ok.to_vec();
            v.retain(|(k, _)| *k != extra.0);
            v.push(extra);
            v
        };
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![("directory", "/srv/d")], "device"),
            (vec![("device", "/dev/sdb1")], "directory"),
            (with(("device", "-o")), "device"),
            (with(("directory", "srv/d")), "directory"),
            (with(("directory", "/")), "directory"),
            (with(("directory", "/srv/../etc")), "directory"),
            (with(("fstype", "ext 4")), "fstype"),
            (with(("options", "ro, noatime")), "options"),
            (with(("fsck", "maybe")), "fsck"),
            (with(("kill_timeout_ms", "9000")), "kill_timeout_ms"),
            (with(("kill_timeout_ms", "0")), "kill_timeout_ms"),
            (with(("mountpoint", "/x")), "mountpoint"),
        ];
        for (params, want) in cases {
            match new(&params) {
                Err(AgentError::Param {
                    resource, param, ..
                }) => {
                    assert_eq!((resource.as_str(), param.as_str()), ("data", want))
                }
                other => panic!("{params:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn mountinfo_lines() {
        let text = "36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw\n\
                    40 36 7:3 / /srv/with\\040space rw shared:5 - ext4 /dev/loop3 rw\n\
                    41 36 0:52 / /mnt/nfs rw - nfs4 srv:/export rw\n\
                    garbage\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 3);
        assert_eq!((m[0].major, m[0].minor), (98, 0));
        assert_eq!(m[1].mount_point, Path::new("/srv/with space"));
        assert_eq!(
            (m[1].fstype.as_str(), m[1].source.as_str()),
            ("ext4", "/dev/loop3")
        );
        assert_eq!(m[2].source, "srv:/export");
        assert!(
            !parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo").unwrap()).is_empty()
        );
    }

    #[test]
    fn devices_and_maps() {
        assert_eq!(split_dev(0x0801), (8, 1));
        assert_eq!(split_dev(0x0700), (7, 0));
        // A large minor (loop devices beyond 255) uses the high bits.
        assert_eq!(split_dev((259 << 8) | (0x12 << 20) | 0x34), (259, 0x1234));
        let line = "7f1c-7f1d r-xp 00000000 fd:01 1234   /usr/lib/x.so";
        assert_eq!(map_dev(line), Some((0xfd, 1)));
        assert_eq!(map_dev("7f1c-7f1d rw-p 00000000 00:00 0 [heap]"), None);
        assert_eq!(fsck_meaning(4), "errors left uncorrected");
        assert_eq!(fsck_meaning(8), "operational error");
    }

    #[test]
    fn deep_check_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join(".eterne-check-test");
        let how = write_read_back(&f).unwrap();
        assert!(!f.exists());
        assert!(
            how.contains("O_DIRECT") || how.contains("buffered"),
            "{how}"
        );
        assert!(!host_name().is_empty());
    }
}
