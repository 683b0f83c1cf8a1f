//! A run of an external program the way the OCF contract wants it, shared by the agents that
//! run one (`ocf`, `fence`, `filesystem` for fsck and mount, and `share` for Samba's `net`
//! and `smbcontrol`): [`prepare_child`] sets the child up (stdin from `/dev/null`, a session
//! and process group of its own, signals at their defaults, no descriptor past stderr),
//! [`run_captured`] runs it and keeps the end of what it printed, and [`last_words`] turns
//! that into the end of a reason.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{ExitStatus, Stdio};

use tokio::net::unix::pipe;

use super::process::{self, KillGroupOnDrop, SessionSetup};

/// How much of a run's output (stdout and stderr together, the end of it) is kept.
pub(crate) const OUTPUT_TAIL_BYTES: usize = 4096;
/// How much of that tail goes into a reason (the log line has all of it).
const REASON_TAIL_BYTES: usize = 512;
/// With `stdout_apart`, at most this much of stdout is kept (an OCF agent's `meta-data` that
/// prints more is refused as not an agent's meta-data).
pub(crate) const STDOUT_MAX_BYTES: usize = 1 << 20;
/// After the child exited, at most this many reads drain what it left in its pipe (a daemon
/// it left behind may keep writing: we do not follow it).
const DRAIN_READS_MAX: usize = 64;

/// `": <the last lines>"` of a run's output, or nothing if it printed nothing.
pub(crate) fn last_words(output: &str) -> String {
    let t = output.trim();
    if t.is_empty() {
        return String::new();
    }
    let mut start = t.len().saturating_sub(REASON_TAIL_BYTES);
    while !t.is_char_boundary(start) {
        start += 1;
    }
    let tail = &t[start..];
    let tail = if start > 0 {
        // Begin at a line if the cut left one.
        tail.split_once('\n').map(|(_, rest)| rest).unwrap_or(tail)
    } else {
        tail
    };
    format!(": {}", tail.replace('\n', " | "))
}

/// How a child run by [`run_captured`] ended, and what it printed.
#[derive(Debug)]
pub(crate) struct Finished {
    /// Its exit status.
    pub(crate) status: ExitStatus,
    /// The last [`OUTPUT_TAIL_BYTES`] of its output (with `stdout_apart`: of stderr only),
    /// as text.
    pub(crate) output: String,
    /// With `stdout_apart`: stdout, up to [`STDOUT_MAX_BYTES`].
    pub(crate) stdout: Vec<u8>,
    /// With `stdout_apart`: stdout was longer than [`STDOUT_MAX_BYTES`] and was cut.
    pub(crate) stdout_cut: bool,
}

/// Makes `cmd` run as the OCF contract wants: stdin from `/dev/null`, a session and process
/// group of its own, signals at their defaults and unblocked, every descriptor above 2 closed
/// at exec.
pub(crate) fn prepare_child(cmd: &mut tokio::process::Command) {
    cmd.stdin(Stdio::null());
    let setup = SessionSetup {
        reset_signals: true,
        cloexec_from_3: true,
        ..SessionSetup::default()
    };
    process::in_own_session(cmd.as_std_mut(), setup);
}

/// A pipe whose both ends are close-on-exec (no other child inherits them).
pub(crate) fn cloexec_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us these descriptors; nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The end of a stream: keeps the last `cap` bytes.
#[derive(Debug)]
struct Tail {
    bytes: Vec<u8>,
    cap: usize,
    cut: bool,
}

impl Tail {
    fn new(cap: usize) -> Self {
        Self {
            bytes: Vec::new(),
            cap,
            cut: false,
        }
    }

    fn push(&mut self, b: &[u8]) {
        self.bytes.extend_from_slice(b);
        if self.bytes.len() > 2 * self.cap {
            let excess = self.bytes.len() - self.cap;
            self.bytes.drain(..excess);
            self.cut = true;
        }
    }

    fn text(&self) -> String {
        let keep = &self.bytes[self.bytes.len().saturating_sub(self.cap)..];
        let text = String::from_utf8_lossy(keep);
        if self.cut || keep.len() < self.bytes.len() {
            format!("…{text}")
        } else {
            text.into_owned()
        }
    }
}

/// The beginning of a stream: keeps the first `cap` bytes.
#[derive(Debug)]
struct Head {
    bytes: Vec<u8>,
    cap: usize,
    cut: bool,
}

impl Head {
    fn push(&mut self, b: &[u8]) {
        let room = self.cap - self.bytes.len();
        self.bytes.extend_from_slice(&b[..b.len().min(room)]);
        self.cut |= b.len() > room;
    }
}

/// Where the bytes of one pipe go.
enum Sink<'a> {
    Tail(&'a mut Tail),
    Head(&'a mut Head),
}

impl Sink<'_> {
    fn push(&mut self, b: &[u8]) {
        match self {
            Sink::Tail(t) => t.push(b),
            Sink::Head(h) => h.push(b),
        }
    }
}

/// Reads what is available in one pipe, waiting for it. Empty: end of file.
async fn read_some(rx: &pipe::Receiver) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    loop {
        rx.readable().await?;
        match rx.try_read(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Reads what is left in a pipe without waiting (bounded).
fn drain(rx: &pipe::Receiver, sink: &mut Sink<'_>) {
    let mut buf = [0u8; 4096];
    for _ in 0..DRAIN_READS_MAX {
        match rx.try_read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => sink.push(&buf[..n]),
        }
    }
}

/// Spawns `cmd` (prepared by [`prepare_child`]), captures its output and waits for its exit.
/// stdout and stderr share one pipe, or with `stdout_apart` stdout is kept whole (bounded)
/// and apart from stderr. Dropping the future SIGKILLs the child's process group.
pub(crate) async fn run_captured(
    mut cmd: tokio::process::Command,
    stdout_apart: bool,
) -> Result<Finished, String> {
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    let pipe_err = |e: io::Error| format!("cannot make a pipe for {program}: {e}");
    let (out_r, out_w) = cloexec_pipe().map_err(pipe_err)?;
    let (err_r, err_w) = if stdout_apart {
        let (r, w) = cloexec_pipe().map_err(pipe_err)?;
        (Some(r), w)
    } else {
        (None, out_w.try_clone().map_err(pipe_err)?)
    };
    cmd.stdout(Stdio::from(out_w))
        .stderr(Stdio::from(err_w))
        .kill_on_drop(true);
    let spawned = cmd.spawn();
    // Our copies of the write ends go with the command.
    drop(cmd);
    let mut child = spawned.map_err(|e| format!("cannot run {program}: {e}"))?;
    // Declared after `child`, so dropped before it: the group dies while its leader is
    // still unreaped.
    let mut group = KillGroupOnDrop(child.id());
    let out = pipe::Receiver::from_owned_fd(out_r).map_err(pipe_err)?;
    let err = match err_r {
        Some(fd) => Some(pipe::Receiver::from_owned_fd(fd).map_err(pipe_err)?),
        None => None,
    };
    let mut tail = Tail::new(OUTPUT_TAIL_BYTES);
    let mut err_tail = Tail::new(OUTPUT_TAIL_BYTES);
    let mut head = Head {
        bytes: Vec::new(),
        cap: STDOUT_MAX_BYTES,
        cut: false,
    };
    let (mut out_open, mut err_open) = (true, err.is_some());
    let status = loop {
        tokio::select! {
            st = child.wait() => break st,
            r = read_some(&out), if out_open => match r {
                Ok(b) if !b.is_empty() => {
                    if stdout_apart { head.push(&b) } else { tail.push(&b) }
                }
                _ => out_open = false,
            },
            r = async { match &err { Some(e) => read_some(e).await, None => Ok(Vec::new()) } },
                if err_open => match r {
                Ok(b) if !b.is_empty() => err_tail.push(&b),
                _ => err_open = false,
            },
        }
    };
    // Reaped: from here on the group id may be reused once its last member is gone, and
    // what the agent left running on purpose must live.
    group.0 = None;
    let status = status.map_err(|e| format!("waiting for {program}: {e}"))?;
    if stdout_apart {
        drain(&out, &mut Sink::Head(&mut head));
    } else {
        drain(&out, &mut Sink::Tail(&mut tail));
    }
    if let Some(e) = &err {
        drain(e, &mut Sink::Tail(&mut err_tail));
    }
    Ok(Finished {
        status,
        output: if stdout_apart {
            err_tail.text()
        } else {
            tail.text()
        },
        stdout: head.bytes,
        stdout_cut: head.cut,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_keep_the_end_and_heads_the_beginning() {
        let mut t = Tail::new(8);
        for _ in 0..10 {
            t.push(b"0123456789");
        }
        assert_eq!(t.text(), "…23456789");
        let mut h = Head {
            bytes: Vec::new(),
            cap: 4,
            cut: false,
        };
        h.push(b"abc");
        h.push(b"def");
        assert_eq!((h.bytes.as_slice(), h.cut), (&b"abcd"[..], true));
        let long = "x".repeat(2000) + "\nthe end";
        assert_eq!(last_words(&long), ": the end");
        assert_eq!(last_words("  \n"), "");
    }
}
