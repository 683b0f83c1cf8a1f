//! The application's process: spawning it (and the command of a health check) in a session
//! of its own as the resource's user, writing and removing its pidfile, adopting an instance
//! that a pidfile names, watching for its exit and reporting it, signalling and sweeping its
//! process group, and looking up the user to run as.
//!
//! The user lookup lives here, not with the parameters: it asks the node (NSS, which may
//! block), and what it finds (ids, groups, home) is only ever used to set up a child.

use std::ffi::{CStr, CString};
use std::fs::OpenOptions;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::{mpsc, watch};

use super::{Application, Found};
use crate::policy::spec::{GroupId, ResourceId};
use crate::resources::pidfd::{pidfd_exited, pidfd_open, pidfd_send_signal};
use crate::resources::pidfile;
use crate::resources::process::{
    group_exists, in_own_session, kill_group, AbortOnDrop, Credentials, SessionSetup,
};
use crate::resources::AgentEvent;

/// `getpwnam_r`'s buffer grows up to this size, no further.
const PASSWD_BUF_MAX: usize = 1 << 20;

/// A process we started or adopted.
#[derive(Debug)]
pub(super) struct Instance {
    /// What operations need; cheap to clone out of the lock.
    pub(super) handle: Handle,
    /// The task that waits for the exit; aborted when the instance is forgotten.
    _watcher: AbortOnDrop,
}

/// The shared part of an [`Instance`].
#[derive(Debug, Clone)]
pub(super) struct Handle {
    /// Main process (and process group, since it called setsid).
    pub(super) pid: u32,
    /// Its start time (`/proc/<pid>/stat` field 22).
    pub(super) start: u64,
    /// Refers to exactly our process, even after its pid is recycled: signals go through it.
    pidfd: Arc<OwnedFd>,
    /// `Some(how it ended)` once the process has exited.
    exit: watch::Receiver<Option<String>>,
    /// Set by `stop` before it signals: the exit it causes is not reported as an event.
    pub(super) expected: Arc<AtomicBool>,
}

impl Handle {
    /// A handle on process `pid` (started at `start`), and the sender its exit is told on.
    fn new(pid: u32, start: u64, pidfd: OwnedFd) -> (Handle, watch::Sender<Option<String>>) {
        let (tx, rx) = watch::channel(None);
        let handle = Handle {
            pid,
            start,
            pidfd: Arc::new(pidfd),
            exit: rx,
            expected: Arc::new(AtomicBool::new(false)),
        };
        (handle, tx)
    }

    pub(super) fn exited(&self) -> Option<String> {
        self.exit.borrow().clone()
    }

    /// Waits until the process has exited, up to `limit`; true if it did.
    pub(super) async fn wait_exit(&self, limit: Duration) -> bool {
        let mut rx = self.exit.clone();
        let exited = tokio::time::timeout(limit, rx.wait_for(Option::is_some)).await;
        matches!(exited, Ok(Ok(_)))
    }

    /// Signals the main process (through its pidfd) and its process group.
    pub(super) fn signal(&self, sig: libc::c_int) {
        // The pidfd cannot hit a recycled pid. The group is signalled by id: while any member
        // lives, the kernel does not hand its id to another process.
        let _ = pidfd_send_signal(&self.pidfd, sig);
        kill_group(self.pid, sig);
    }
}

/// A user to run as, looked up on this node.
#[derive(Debug, Clone)]
pub(super) struct User {
    name: String,
    uid: libc::uid_t,
    gid: libc::gid_t,
    home: String,
    groups: Vec<libc::gid_t>,
}

impl Application {
    /// Adopts the instance named by the pidfile if it is still that very process.
    pub(super) fn adopt(&self) -> Found {
        let path = &self.params.pidfile;
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Found::Gone(format!("no pidfile {}", path.display()), None)
            }
            Err(e) => {
                return Found::Unknown(format!("cannot read pidfile {}: {e}", path.display()))
            }
        };
        // We write pidfiles atomically: one we cannot parse is not ours to trust.
        let Some((pid, start)) = pidfile::parse(&text) else {
            let why = format!("pidfile {} is malformed: {text:?}", path.display());
            return Found::Gone(why, None);
        };
        let same = |pid| match pidfile::start_time(pid) {
            Ok(t) if t == start => Ok(true),
            Ok(_) => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(format!("pid {pid}: /proc/{pid}/stat: {e}")),
        };
        let stale = || {
            let why = format!("pid {pid} of the pidfile is gone (stale pidfile)");
            Found::Gone(why, Some((pid, start)))
        };
        match same(pid) {
            Ok(true) => {}
            Ok(false) => return stale(),
            Err(e) => return Found::Unknown(e),
        }
        let pidfd = match pidfd_open(pid) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return stale(),
            Err(e) => return Found::Unknown(format!("pid {pid}: pidfd_open: {e}")),
        };
        // The pid may have been recycled between the first look and pidfd_open: look again
        // now that the pidfd pins whichever process it is.
        match same(pid) {
            Ok(true) => {}
            Ok(false) => return stale(),
            Err(e) => return Found::Unknown(e),
        }
        if pidfd_exited(&pidfd) {
            return Found::Gone(format!("pid {pid} has exited"), Some((pid, start)));
        }
        let watched = pidfd.try_clone().map_err(|e| e.to_string()).and_then(|fd| {
            // SAFETY: the OwnedFd is moved into the AsyncFd, which alone owns and closes it.
            unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
                .map_err(|e| e.to_string())
        });
        let async_fd = match watched {
            Ok(fd) => fd,
            Err(e) => return Found::Unknown(format!("pid {pid}: cannot watch its pidfd: {e}")),
        };
        let (handle, tx) = Handle::new(pid, start, pidfd);
        let reporter = self.reporter(&handle, tx);
        let task = tokio::spawn(async move {
            // A pidfd turns readable when its process terminates.
            let _ = async_fd.readable().await;
            reporter.report("exited (adopted process: exit status unknown)".to_string());
        });
        self.set_instance(Some(Instance {
            handle: handle.clone(),
            _watcher: AbortOnDrop(task),
        }));
        tracing::info!(resource = %self.name, pid, "adopted running instance from pidfile");
        Found::Running(handle)
    }

    fn reporter(&self, h: &Handle, tx: watch::Sender<Option<String>>) -> ExitReporter {
        ExitReporter {
            tx,
            expected: h.expected.clone(),
            events: self.events.clone(),
            name: self.name.clone(),
            group: self.group,
            resource: self.resource,
            pid: h.pid,
        }
    }

    /// Spawns the process and records it. No `.await` between spawn and record, so a caller
    /// that gives up on `start` never loses a process.
    pub(super) fn spawn(&self, user: Option<&User>) -> Result<Handle, String> {
        if let Some(dir) = self.params.pidfile.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let mut cmd = self.command(&self.params.argv, user, true)?;
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {:?}: {e}", self.params.argv[0]))?;
        let Some(pid) = child.id() else {
            return Err("the process vanished at once".to_string());
        };
        let kill_now = |child: &mut tokio::process::Child| {
            kill_group(pid, libc::SIGKILL);
            let _ = child.start_kill();
        };
        let ids = pidfile::start_time(pid)
            .map_err(|e| format!("pid {pid}: /proc/{pid}/stat: {e}"))
            .and_then(|st| {
                pidfd_open(pid)
                    .map(|fd| (st, fd))
                    .map_err(|e| format!("pid {pid}: pidfd_open: {e}"))
            });
        let (start, pidfd) = match ids {
            Ok(v) => v,
            Err(e) => {
                kill_now(&mut child);
                return Err(e);
            }
        };
        if let Err(e) = pidfile::write(&self.params.pidfile, pid, start) {
            // Without a pidfile a restarted daemon could not find this process and would
            // start a second copy: refuse to run it.
            kill_now(&mut child);
            return Err(format!(
                "cannot write pidfile {}: {e}",
                self.params.pidfile.display()
            ));
        }
        let (handle, tx) = Handle::new(pid, start, pidfd);
        let reporter = self.reporter(&handle, tx);
        let task = tokio::spawn(async move {
            let how = match child.wait().await {
                Ok(status) => describe_exit(status),
                Err(e) => format!("exited (wait failed: {e})"),
            };
            reporter.report(how);
        });
        self.set_instance(Some(Instance {
            handle: handle.clone(),
            _watcher: AbortOnDrop(task),
        }));
        tracing::info!(resource = %self.name, pid, "started");
        Ok(handle)
    }

    /// A command for the application or one of its checks: its own session, the user, cwd
    /// and environment of the resource.
    pub(super) fn command(
        &self,
        argv: &[String],
        user: Option<&User>,
        with_log: bool,
    ) -> Result<tokio::process::Command, String> {
        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..]).stdin(Stdio::null());
        if let Some(u) = user {
            cmd.env("HOME", &u.home)
                .env("USER", &u.name)
                .env("LOGNAME", &u.name);
        }
        cmd.envs(self.params.env.iter().map(|(k, v)| (k, v)));
        match (&self.params.log_file, with_log) {
            (Some(path), true) => {
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o640)
                    // The daemon opens it as root: never through a planted symlink.
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(path)
                    .map_err(|e| format!("cannot open log_file {}: {e}", path.display()))?;
                let f2 = f
                    .try_clone()
                    .map_err(|e| format!("log_file {}: {e}", path.display()))?;
                cmd.stdout(Stdio::from(f)).stderr(Stdio::from(f2));
            }
            _ => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        // Switch user only if it is another one (a non-root daemon cannot setgroups).
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        let credentials = user.filter(|u| u.uid != me).map(|u| Credentials {
            uid: u.uid,
            gid: u.gid,
            groups: u.groups.clone(),
        });
        let cwd = match &self.params.cwd {
            Some(p) => Some(
                CString::new(p.as_os_str().as_bytes())
                    .map_err(|_| format!("cwd {} contains a NUL byte", p.display()))?,
            ),
            None => None,
        };
        let setup = SessionSetup {
            credentials,
            cwd,
            ..SessionSetup::default()
        };
        in_own_session(cmd.as_std_mut(), setup);
        Ok(cmd)
    }

    /// The user to run as, looked up now (NSS may block: off the runtime's threads).
    pub(super) async fn user(&self) -> Result<Option<User>, String> {
        let Some(name) = self.params.user.clone() else {
            return Ok(None);
        };
        let found = tokio::task::spawn_blocking(move || lookup_user(&name))
            .await
            .map_err(|e| format!("user lookup: {e}"))?;
        match found {
            Ok(Some(u)) => Ok(Some(u)),
            Ok(None) => Err(format!(
                "user {:?} does not exist on this node",
                self.params.user.as_deref().unwrap_or_default()
            )),
            Err(e) => Err(format!("user lookup: {e}")),
        }
    }

    pub(super) fn remove_pidfile(&self) {
        match std::fs::remove_file(&self.params.pidfile) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(
                resource = %self.name,
                pidfile = %self.params.pidfile.display(),
                error = %e,
                "cannot remove pidfile"
            ),
        }
    }
}

/// What the exit-watch task needs to report an exit.
struct ExitReporter {
    tx: watch::Sender<Option<String>>,
    expected: Arc<AtomicBool>,
    events: mpsc::Sender<AgentEvent>,
    name: String,
    group: GroupId,
    resource: ResourceId,
    pid: u32,
}

impl ExitReporter {
    /// Records the exit and, unless `stop` caused it, sends the event.
    fn report(self, how: String) {
        self.tx.send_replace(Some(how.clone()));
        if self.expected.load(Ordering::SeqCst) {
            return;
        }
        tracing::warn!(resource = %self.name, pid = self.pid, how = %how, "process exited");
        let ev = AgentEvent::Exited {
            group: self.group,
            resource: self.resource,
            pid: self.pid,
            reason: how,
        };
        // Never block the watcher on a full channel: hand the send to a task of its own.
        let events = self.events;
        tokio::spawn(async move {
            let _ = events.send(ev).await;
        });
    }
}

/// SIGKILLs what is left of an instance's process group once its main process `pid` (started
/// at `start`) is gone. While any member lives the kernel keeps the group's id from being
/// handed out; the one risk is a recycled `pid` that made itself a group leader, and then a
/// process `pid` with another start time exists: such a group is not ours and is left alone.
pub(super) fn sweep_group(pid: u32, start: u64) {
    match pidfile::start_time(pid) {
        Ok(t) if t != start => {}
        // Gone, or still our (zombie or dying) process.
        _ => {
            kill_group(pid, libc::SIGKILL);
        }
    }
}

/// Whether any live process (not a zombie) is left in group `pgid`. Zombies do not count: an
/// orphan waits for init to reap it, and some inits (in containers) take their time.
pub(super) fn group_has_members(pgid: u32) -> bool {
    if !group_exists(pgid) {
        return false;
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return true;
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .any(|stat| {
            // After the name: state (field 3), ppid (4), pgrp (5).
            let fields = stat.rfind(')').map(|i| stat[i + 1..].split_whitespace());
            let mut f = fields.into_iter().flatten();
            let state = f.next();
            let pgrp = f.nth(1).and_then(|p| p.parse::<u32>().ok());
            pgrp == Some(pgid) && state != Some("Z")
        })
}

/// `exited with status N` / `killed by signal N`.
pub(super) fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "exited".to_string(),
    }
}

/// `getpwnam_r` and `getgrouplist`. `Ok(None)`: no such user.
fn lookup_user(name: &str) -> io::Result<Option<User>> {
    let cname = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in user name"))?;
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    loop {
        // SAFETY: passwd is plain old data; zeroed is a valid value to be filled in.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; buf's length is passed.
        let rc = unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                &mut pw,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < PASSWD_BUF_MAX {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        if result.is_null() {
            return Ok(None);
        }
        let home = if pw.pw_dir.is_null() {
            "/".to_string()
        } else {
            // SAFETY: getpwnam_r filled pw_dir with a NUL-terminated string inside buf.
            unsafe { CStr::from_ptr(pw.pw_dir) }
                .to_string_lossy()
                .into_owned()
        };
        let groups = group_list(&cname, pw.pw_gid)?;
        return Ok(Some(User {
            name: name.to_string(),
            uid: pw.pw_uid,
            gid: pw.pw_gid,
            home,
            groups,
        }));
    }
}

/// The user's groups (primary included), as `initgroups` would set them.
fn group_list(cname: &CString, gid: libc::gid_t) -> io::Result<Vec<libc::gid_t>> {
    let mut n: libc::c_int = 64;
    for _ in 0..4 {
        let mut groups: Vec<libc::gid_t> = vec![0; n.max(1) as usize];
        let mut got = n;
        // SAFETY: groups has room for `got` entries; the call writes at most that many and
        // sets `got` to the number needed.
        let rc = unsafe { libc::getgrouplist(cname.as_ptr(), gid, groups.as_mut_ptr(), &mut got) };
        if rc >= 0 {
            groups.truncate(got.max(0) as usize);
            return Ok(groups);
        }
        n = got.max(n * 2);
    }
    Err(io::Error::other(
        "getgrouplist: the group list keeps growing",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_looked_up() {
        let root = lookup_user("root").unwrap().unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert!(root.groups.contains(&0));
        assert!(lookup_user("no-such-user-eterne").unwrap().is_none());
    }
}
