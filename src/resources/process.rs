//! What the agents need from the operating system about processes, written once: the setup
//! of a child between fork and exec ([`in_own_session`]), killing a process group, guards that
//! kill a group or abort a task when dropped, finding a program as `execvp` would, and this
//! host's name.
//!
//! Every resource process runs in a session of its own (every agent spawns through
//! [`in_own_session`], which calls `setsid` before `exec`), so its process group id is its
//! pid, and killing the group takes everything it started along.

use std::ffi::CString;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::task::JoinHandle;

/// Older kernels lack close_range(2): descriptors are then marked close-on-exec one by one,
/// up to this number at most.
const FD_SWEEP_MAX: libc::c_int = 65536;
/// Signals a daemon may ignore or block that a child must find at their default (an ignored
/// signal stays ignored across exec; a shell script that pipes into `head` relies on
/// SIGPIPE).
const RESET_SIGNALS: &[libc::c_int] = &[
    libc::SIGPIPE,
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGCHLD,
    libc::SIGXFSZ,
];

/// What a child does between fork and exec besides `setsid`, which it always does. Each agent
/// asks for what its contract needs; the default is a bare session. The steps run in the
/// order of the fields.
#[derive(Debug, Clone, Default)]
pub struct SessionSetup {
    /// Put the signals a daemon may ignore back at their default disposition, and block none.
    pub reset_signals: bool,
    /// Run as this user (supplementary groups, group, then user id).
    pub credentials: Option<Credentials>,
    /// Enter this directory; after the user switch, so that it is entered with the user's
    /// rights.
    pub cwd: Option<CString>,
    /// Mark every descriptor above 2 close-on-exec.
    pub cloexec_from_3: bool,
}

/// The ids a child switches to, looked up before the fork (nothing is looked up after it).
#[derive(Debug, Clone)]
pub struct Credentials {
    /// `setuid`.
    pub uid: libc::uid_t,
    /// `setgid`.
    pub gid: libc::gid_t,
    /// `setgroups`: the supplementary groups, as `initgroups` would set them.
    pub groups: Vec<libc::gid_t>,
}

/// Makes `cmd` run in a session (and process group) of its own: no signal for the daemon's
/// process group or terminal reaches it, a daemon restart neither signals nor moves it, and
/// its group is what `stop` and the kill-on-drop guards signal. `setup` adds what the caller's
/// contract needs. A failing step fails the spawn with its errno. A tokio command passes
/// `cmd.as_std_mut()`.
pub fn in_own_session(cmd: &mut std::process::Command, setup: SessionSetup) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec. It only makes system calls
    // that are async-signal-safe (setsid, signal, sigprocmask, setgroups, setgid, setuid,
    // chdir, close_range, getrlimit, fcntl) on data prepared before the fork, and allocates
    // nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            if setup.reset_signals {
                for &sig in RESET_SIGNALS {
                    libc::signal(sig, libc::SIG_DFL);
                }
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            }
            if let Some(c) = &setup.credentials {
                if libc::setgroups(c.groups.len(), c.groups.as_ptr()) < 0
                    || libc::setgid(c.gid) < 0
                    || libc::setuid(c.uid) < 0
                {
                    return Err(io::Error::last_os_error());
                }
            }
            if let Some(dir) = &setup.cwd {
                if libc::chdir(dir.as_ptr()) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if setup.cloexec_from_3 {
                cloexec_from_3();
            }
            Ok(())
        });
    }
}

/// Marks every descriptor above 2 close-on-exec (in a forked child, before exec). Marked, not
/// closed: the pipe through which std reports a failed exec must stay open until the exec.
///
/// # Safety
///
/// Only to be called between fork and exec.
unsafe fn cloexec_from_3() {
    let r = libc::syscall(
        libc::SYS_close_range,
        3 as libc::c_uint,
        libc::c_uint::MAX,
        libc::CLOSE_RANGE_CLOEXEC,
    );
    if r == 0 {
        return;
    }
    // Before Linux 5.11: one by one, up to the descriptor limit.
    let mut lim: libc::rlimit = std::mem::zeroed();
    let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
        lim.rlim_cur.min(FD_SWEEP_MAX as libc::rlim_t) as libc::c_int
    } else {
        FD_SWEEP_MAX
    };
    for fd in 3..max {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
}

/// Sends `sig` to every process in group `pgid`; ESRCH (an empty group) is not an error.
pub fn kill_group(pgid: u32, sig: libc::c_int) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        // Never group 0 (our own) or 1 (init's).
        return;
    }
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
    unsafe {
        libc::kill(-pgid, sig);
    }
}

/// Whether group `pgid` has a member at all (zombies included): kill(2) with signal 0.
pub fn group_exists(pgid: u32) -> bool {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return false;
    };
    // SAFETY: kill(2) with signal 0 only checks; no memory is involved.
    pgid > 1 && unsafe { libc::kill(-pgid, 0) } == 0
}

/// SIGKILLs a process group when dropped, unless disarmed (`.0 = None`): a child cut off by
/// its timeout, or by the caller's future being dropped, takes its group along.
#[derive(Debug)]
pub struct KillGroupOnDrop(pub Option<u32>);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            kill_group(pgid, libc::SIGKILL);
        }
    }
}

/// Aborts a task when dropped: a watcher or a renewer lives exactly as long as its owner.
#[derive(Debug)]
pub struct AbortOnDrop(pub JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Finds a program as execvp would: a name with `/` as is, else the first executable file of
/// that name in the directories of `path_var` (a `PATH` value). The error says what to fix.
pub fn find_program(prog: &str, path_var: &str) -> Result<PathBuf, String> {
    let executable = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if prog.contains('/') {
        let p = PathBuf::from(prog);
        return if executable(&p) {
            Ok(p)
        } else {
            Err(format!(
                "{prog:?} is not an executable file on this node; install it or fix the path"
            ))
        };
    }
    path_var
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(prog))
        .find(|p| executable(p))
        .ok_or_else(|| {
            format!(
                "{prog:?} is not found in PATH ({path_var}); give an absolute path or install it"
            )
        })
}

/// This host's name as the kernel has it (`gethostname`), if it has one.
pub fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into our buffer.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).trim().to_string();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_like_execvp_finds_them() {
        assert!(find_program("sh", "/nonexistent:/bin:/usr/bin").is_ok());
        assert!(find_program("/bin/sh", "").is_ok());
        let missing = find_program("no-such-program-here", "/bin:/usr/bin").unwrap_err();
        assert!(missing.contains("not found in PATH"), "{missing}");
        assert!(find_program("/nonexistent/sh", "/bin").is_err());
    }

    #[test]
    fn this_host_has_a_name() {
        assert!(host_name().is_some_and(|n| !n.is_empty()));
    }

    /// Runs `sh -c script` set up by `setup`: its stdout, or the spawn error.
    async fn sh(script: &str, setup: SessionSetup) -> io::Result<String> {
        let mut cmd = tokio::process::Command::new("/bin/sh");
        cmd.args(["-c", script]);
        in_own_session(cmd.as_std_mut(), setup);
        let out = cmd.output().await?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    #[tokio::test]
    async fn a_child_leads_a_session_of_its_own_in_its_directory() {
        let setup = SessionSetup {
            cwd: Some(CString::new("/").unwrap()),
            ..SessionSetup::default()
        };
        let out = sh("cat /proc/$$/stat; pwd -P", setup).await.unwrap();
        let (stat, cwd) = out.split_once('\n').unwrap();
        let pid = stat.split(' ').next().unwrap();
        // After the name: state, ppid, pgrp, session.
        let after = &stat[stat.rfind(')').unwrap() + 1..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        assert_eq!((fields[2], fields[3]), (pid, pid), "{stat}");
        assert_eq!(cwd.trim_end(), "/");
    }

    #[tokio::test]
    async fn reset_signals_undoes_what_the_daemon_ignores() {
        // An ignored signal stays ignored across exec. SIGUSR2 is ignored for the length of
        // the test only; nothing in this crate uses it.
        // SAFETY: signal(2) with SIG_IGN installs no handler; the old disposition is put back.
        let old = unsafe { libc::signal(libc::SIGUSR2, libc::SIG_IGN) };
        let ignored = "grep '^SigIgn' /proc/$$/status";
        let kept = sh(ignored, SessionSetup::default()).await;
        let reset = SessionSetup {
            reset_signals: true,
            ..SessionSetup::default()
        };
        let cleared = sh(ignored, reset).await;
        // SAFETY: as above.
        unsafe { libc::signal(libc::SIGUSR2, old) };
        let usr2 = |out: io::Result<String>| {
            let out = out.unwrap();
            let hex = out.trim().trim_start_matches("SigIgn:").trim();
            let mask = u64::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("{out:?}"));
            mask & (1 << (libc::SIGUSR2 - 1)) != 0
        };
        assert!(
            usr2(kept),
            "without reset_signals the child keeps ignoring SIGUSR2"
        );
        assert!(
            !usr2(cleared),
            "with reset_signals SIGUSR2 is back at its default"
        );
    }

    #[tokio::test]
    async fn a_failing_step_fails_the_spawn() {
        let setup = SessionSetup {
            cwd: Some(CString::new("/nonexistent/eterne").unwrap()),
            ..SessionSetup::default()
        };
        let e = sh("true", setup).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
    }

    #[test]
    fn group_zero_and_init_are_never_signalled() {
        // Would kill the test's own group, or init's.
        kill_group(0, 0);
        kill_group(1, 0);
        assert!(!group_exists(0) && !group_exists(1));
    }
}
