//! The daemon's side of the control socket.
//!
//! [`serve`] binds the socket (mode 0600), accepts connections and reads one request per
//! line. Each request, with who sent it ([`Caller`], from `SO_PEERCRED`), goes to the node as
//! a [`Call`] through the handler the daemon gives; the answer goes back as one line. Callers
//! other than root (or the daemon's own user) are refused. Connections, line lengths and the
//! wait for an answer are bounded (a line is read whole before its length is checked: only root
//! can connect).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{oneshot, Semaphore};

use super::{Request, Response, MAX_REQUEST_BYTES};

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 32;
/// How long an answer may take (an admin command waits for its commit inside this).
pub const ANSWER_WAIT: Duration = Duration::from_secs(10);

/// Who sent a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The peer's user id.
    pub uid: u32,
    /// The peer's process id, if the kernel told.
    pub pid: Option<i32>,
}

/// A request handed to the node, with where to answer.
#[derive(Debug)]
pub struct Call {
    /// The request.
    pub req: Request,
    /// Who asked.
    pub caller: Caller,
    /// Where the answer goes (dropped = "no answer").
    pub reply: oneshot::Sender<Response>,
}

/// Why the socket could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("control socket {}: {what}: {source}; check --control-socket and that its directory is writable", path.display())]
pub struct ServeError {
    /// The socket path.
    pub path: PathBuf,
    /// What failed.
    pub what: &'static str,
    /// The OS error.
    pub source: std::io::Error,
}

/// Binds `path` (replacing a stale socket file, creating its directory with mode 0700 if
/// missing) and serves it until the process ends. `handle` gets every request.
pub fn bind(path: &Path) -> Result<UnixListener, ServeError> {
    let err = |what, source| ServeError {
        path: path.to_path_buf(),
        what,
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(|e| err("cannot create its directory", e))?;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err("cannot remove the old socket", e)),
    }
    let listener = UnixListener::bind(path).map_err(|e| err("cannot bind", e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| err("cannot set mode 0600", e))?;
    Ok(listener)
}

/// Accepts connections forever; every request goes to `handle`.
pub async fn serve<H>(listener: UnixListener, handle: H)
where
    H: Fn(Call) + Send + Sync + 'static,
{
    let handle = Arc::new(handle);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "control socket: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            connection(stream, &*handle).await;
            drop(permit);
        });
    }
}

async fn connection<H: Fn(Call)>(stream: UnixStream, handle: &H) {
    let caller = match stream.peer_cred() {
        Ok(c) => Caller {
            uid: c.uid(),
            pid: c.pid(),
        },
        Err(e) => {
            tracing::warn!(error = %e, "control socket: no peer credentials; refused");
            return;
        }
    };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let (read, mut write) = stream.into_split();
    if caller.uid != 0 && caller.uid != me {
        tracing::warn!(uid = caller.uid, pid = ?caller.pid, "control socket: caller is not root; refused");
        let _ = send(
            &mut write,
            &Response::refused("only root may use the control socket"),
        )
        .await;
        return;
    }
    let mut lines = BufReader::new(read).lines();
    loop {
        let line = match tokio::time::timeout(Duration::from_secs(3600), lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            _ => return,
        };
        if line.len() > MAX_REQUEST_BYTES {
            let _ = send(&mut write, &Response::refused("request line too long")).await;
            return;
        }
        if line.trim().is_empty() {
            continue;
        }
        let req: Request = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                let r = Response::refused(format!("cannot read the request: {e}"));
                if send(&mut write, &r).await.is_err() {
                    return;
                }
                continue;
            }
        };
        if let Request::Watch { interval_ms } = req {
            let every = Duration::from_millis(u64::from(interval_ms.unwrap_or(1000).max(100)));
            loop {
                let r = ask(handle, Request::Status, caller).await;
                if send(&mut write, &r).await.is_err() {
                    return;
                }
                tokio::time::sleep(every).await;
            }
        }
        let r = ask(handle, req, caller).await;
        if send(&mut write, &r).await.is_err() {
            return;
        }
    }
}

async fn ask<H: Fn(Call)>(handle: &H, req: Request, caller: Caller) -> Response {
    let (tx, rx) = oneshot::channel();
    handle(Call {
        req,
        caller,
        reply: tx,
    });
    match tokio::time::timeout(ANSWER_WAIT, rx).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Response::refused("the node dropped the request (is it shutting down?)"),
        Err(_) => Response::refused(format!(
            "no answer within {} s; the request may still take effect",
            ANSWER_WAIT.as_secs()
        )),
    }
}

async fn send(write: &mut tokio::net::unix::OwnedWriteHalf, r: &Response) -> std::io::Result<()> {
    let mut line = serde_json::to_string(r).map_err(std::io::Error::other)?;
    line.push('\n');
    write.write_all(line.as_bytes()).await
}
