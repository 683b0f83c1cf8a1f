//! What the agents need from the operating system about processes, written once: killing a
//! process group, guards that kill a group or abort a task when dropped, finding a program
//! as `execvp` would, and this host's name.
//!
//! Every resource process runs in a session of its own (the agents call `setsid` before
//! `exec`), so its process group id is its pid, and killing the group takes everything it
//! started along.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::task::JoinHandle;

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

    #[test]
    fn group_zero_and_init_are_never_signalled() {
        // Would kill the test's own group, or init's.
        kill_group(0, 0);
        kill_group(1, 0);
        assert!(!group_exists(0) && !group_exists(1));
    }
}
