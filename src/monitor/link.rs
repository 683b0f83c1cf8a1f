//! The wire between the core and the monitor: one `SOCK_SEQPACKET` unix socket pair, one
//! JSON message per packet.
//!
//! Why a seqpacket socket rather than a pipe or shared memory: it keeps message boundaries (no
//! framing code), it is two-way on one descriptor, and the peer's death shows as end of file on
//! the next read, at once, which is the second of the two ways each process learns the other is
//! gone (the first is a pidfd). Shared memory would survive the writer's death without saying
//! so; a pipe needs two of them.
//!
//! The socket is handed to the child as descriptor [`LINK_FD`], with the role and the other
//! process's pid in the environment ([`ROLE_ENV`], [`PEER_ENV`]).
//!
//! Times cross the link as `CLOCK_MONOTONIC` nanoseconds ([`mono_ns`]): both processes read the
//! same kernel clock, whereas each core's own µs clock starts at its own start.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::schema::FenceActionConfig;
pub use crate::config::schema::OnStopFailure;
use crate::policy::spec::NodeId;
use crate::resources::HardStop;
use crate::transport::disk::pill::PillPlace;

/// The descriptor number the link has in a child.
pub const LINK_FD: RawFd = 3;
/// `core` or `monitor`: which of the two this process is (unset: the monitor of a first start).
pub const ROLE_ENV: &str = "ETERNE_ROLE";
/// The pid of the process at the other end of the link (set for a monitor the core started).
pub const PEER_ENV: &str = "ETERNE_PEER_PID";
/// The largest message either side sends (a node's holdings of many resources fit easily).
const MAX_MESSAGE: usize = 1 << 20;

/// What the core tells the monitor.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum ToMonitor {
    /// The core is up: what it would stop hard, and how often it says it is alive.
    Hello {
        /// Its pid.
        pid: u32,
        /// Every exclusive resource this node may run, and how to stop it without the core.
        holdings: Vec<HardStop>,
        /// The interval of [`ToMonitor::Alive`] (ms).
        alive_every_ms: u64,
        /// What to do when a hard stop fails (this node's `on_stop_failure`).
        on_stop_failure: OnStopFailure,
        /// `[fencing] method = "poison_pill"`: where this node's pills are.
        #[serde(default)]
        pill: Option<PillWatch>,
    },
    /// The core's actor thread stepped (sent every `alive_every_ms`).
    Alive,
    /// Exclusive resources may be active here: they must be down by `deadline_ns`. `None`:
    /// nothing exclusive may be active here.
    Arm(Option<Armed>),
    /// The core is about to exit on purpose with this code (a drain that finished or gave up).
    Exiting {
        /// The exit code.
        code: i32,
    },
}

/// Where the monitor reads this node's poison pills, and what it does after one.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PillWatch {
    /// The disk path's device and shape.
    pub place: PillPlace,
    /// This node's id (its pill block).
    pub me: NodeId,
    /// How often to read it (the disk path's `interval_ms`).
    pub every_ms: u64,
    /// After everything stopped: `reboot` the machine, or `off` (the monitor exits and the
    /// node stays out until started again).
    pub action: FenceActionConfig,
}

/// An armed deadline (monotonic ns).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Armed {
    /// Everything exclusive must be down by then: the lease's end (or, without a lease, the
    /// stop budget from when the core knew it had none).
    pub deadline_ns: u64,
    /// The deadline less the stop budget: a core that is silent by then will not stop in time,
    /// so the monitor stops hard.
    pub stop_at_ns: u64,
    /// The lease the core holds, for a core that starts after this one died.
    pub lease: Option<Inherited>,
}

/// A lease a core held, handed to the next core of this node.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Inherited {
    /// When the lease ends (monotonic ns).
    pub until_ns: u64,
    /// The raft index the core had applied: the next core uses the lease only once its own
    /// log has reached it, so it never acts on an older state than the one the lease was
    /// used with.
    pub applied: u64,
}

/// What the monitor tells a core it started.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum ToCore {
    /// Sent once, first: what the previous core of this node left.
    Start {
        /// Its lease, if it held one and the monitor has not stopped anything since.
        lease: Option<Inherited>,
        /// What the monitor stopped hard since the previous core (for the event log).
        stopped_hard: Vec<String>,
    },
}

/// `CLOCK_MONOTONIC` now, in ns.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// One end of the link.
#[derive(Debug)]
pub struct Link {
    fd: OwnedFd,
}

/// What a receive found.
#[derive(Debug)]
pub enum Received<T> {
    /// A message.
    Message(T),
    /// Nothing waiting (non-blocking receive).
    Nothing,
    /// The other end is gone.
    Closed,
    /// A packet that does not decode (logged and dropped by the caller).
    Malformed(String),
}

impl Link {
    /// A connected pair: one end for this process, one for the child.
    pub fn pair() -> io::Result<(Link, OwnedFd)> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: socketpair writes two descriptors into the array we own.
        let r = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors are new and owned by nobody else.
        let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok((Link { fd: a }, b))
    }

    /// The link this process was started with ([`LINK_FD`]), if its role says it has one.
    pub fn inherited() -> Option<Link> {
        std::env::var_os(ROLE_ENV)?;
        // SAFETY: fcntl(F_GETFD) only asks whether the descriptor is open.
        if unsafe { libc::fcntl(LINK_FD, libc::F_GETFD) } < 0 {
            return None;
        }
        // SAFETY: the parent put the link at LINK_FD for us and nothing else in this process
        // owns it; we take it once, at start.
        let fd = unsafe { OwnedFd::from_raw_fd(LINK_FD) };
        // Not inherited further: the children of this process get their own link or none.
        // SAFETY: fcntl on a descriptor we own.
        unsafe { libc::fcntl(LINK_FD, libc::F_SETFD, libc::FD_CLOEXEC) };
        Some(Link { fd })
    }

    /// The raw descriptor (for poll).
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Send one message without blocking. A full socket (the other side is not reading) drops
    /// it: the messages are states, and the next one replaces it.
    pub fn send<T: Serialize>(&self, msg: &T) -> io::Result<()> {
        let bytes = serde_json::to_vec(msg).map_err(io::Error::other)?;
        // SAFETY: send(2) of a buffer we own; MSG_NOSIGNAL so a dead peer is an error, not a
        // SIGPIPE.
        let n = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Receive one message, waiting at most `timeout_ms` (0: do not wait; -1: forever).
    pub fn recv<T: for<'de> Deserialize<'de>>(&self, timeout_ms: i32) -> Received<T> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if n == 0 {
            return Received::Nothing;
        }
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Received::Nothing
            } else {
                Received::Closed
            };
        }
        self.recv_now()
    }

    /// Receive one message if one is waiting.
    pub fn recv_now<T: for<'de> Deserialize<'de>>(&self) -> Received<T> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        // SAFETY: recv(2) into a buffer we own, of its length.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n == 0 {
            return Received::Closed;
        }
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Received::Nothing,
                _ => Received::Closed,
            };
        }
        match serde_json::from_slice(&buf[..n as usize]) {
            Ok(m) => Received::Message(m),
            Err(e) => Received::Malformed(e.to_string()),
        }
    }
}

/// Start this same program again in `role`, with `child_end` as its link and `peer` (this
/// process) named in its environment; the rest of the command line is ours.
pub fn spawn_role(role: &str, child_end: OwnedFd) -> io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    // The program's own path, so that both processes are named `eterned` in ps and top; the
    // kernel's link to it when the file was replaced or removed since (an upgrade in place).
    let exe = std::env::current_exe()
        .ok()
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("/proc/self/exe"));
    let mut cmd = std::process::Command::new(exe);
    cmd.args(std::env::args_os().skip(1))
        .env(ROLE_ENV, role)
        .env(PEER_ENV, std::process::id().to_string());
    let fd = child_end.as_raw_fd();
    // SAFETY: the closure runs between fork and exec and calls only dup2 and fcntl, which are
    // async-signal-safe; `fd` stays open in the parent until spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            if fd == LINK_FD {
                // dup2 onto itself would leave close-on-exec set: clear it instead.
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(fd, LINK_FD) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn();
    drop(child_end);
    child
}
