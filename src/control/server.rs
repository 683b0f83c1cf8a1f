//! The daemon's side of the control socket.
//!
//! [`serve`] binds the socket (mode 0600), accepts connections and reads one request per
//! line. Each request, with who sent it ([`Caller`], from `SO_PEERCRED`), goes to the node as
//! a [`Call`] through the handler the daemon gives; the answer goes back as one line. Callers
//! other than root (or the daemon's own user) are refused.
//!
//! Nothing a client does can lock the socket: every bound is a constant below.
//! - A connection costs a task and a small buffer until it sends a line; at most
//!   [`MAX_OPEN`] are open (more are closed at once), and one that sends no complete request
//!   within [`IDLE_TIMEOUT`] is closed. Idle or slow clients never hold what a request needs.
//! - A line is read with a bound: past [`MAX_REQUEST_BYTES`] without a newline it is refused
//!   and the connection closed, whatever the line's length; memory never grows with it.
//! - At most [`MAX_IN_FLIGHT`] requests wait for the node at once (a further one waits for a
//!   slot within its own [`ANSWER_WAIT`]); `watch` streams have their own limit,
//!   [`MAX_WATCHERS`], so watchers never crowd out `status` or an admin command.
//! - Every request is answered or refused within [`ANSWER_WAIT`].
//! - Unknown fields are refused, naming the field (`{"cmd":"move","nod":"n2"}` is a typo, not
//!   a move to nowhere): `Request` denies them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{oneshot, Semaphore};

use super::{parse_request, LineError, Request, Response, MAX_REQUEST_BYTES};

/// Connections open at once; a further one is closed as soon as it is accepted.
pub const MAX_OPEN: usize = 4096;
/// How long a connection may go without sending a complete request line.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests waiting for the node at once.
pub const MAX_IN_FLIGHT: usize = 32;
/// `watch` streams at once; a further one is refused.
pub const MAX_WATCHERS: usize = 64;
/// How long an answer may take (an admin command waits for its commit inside this).
pub const ANSWER_WAIT: Duration = Duration::from_secs(10);

/// What one connection may take.
struct Limits {
    open: Arc<Semaphore>,
    in_flight: Semaphore,
    watchers: Arc<Semaphore>,
}

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
    let limits = Arc::new(Limits {
        open: Arc::new(Semaphore::new(MAX_OPEN)),
        in_flight: Semaphore::new(MAX_IN_FLIGHT),
        watchers: Arc::new(Semaphore::new(MAX_WATCHERS)),
    });
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "control socket: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = limits.open.clone().try_acquire_owned() else {
            tracing::warn!(
                limit = MAX_OPEN,
                "control socket: too many open connections; closed a new one"
            );
            drop(stream);
            continue;
        };
        let (handle, limits) = (handle.clone(), limits.clone());
        tokio::spawn(async move {
            connection(stream, &*handle, &limits).await;
            drop(permit);
        });
    }
}

async fn connection<H: Fn(Call)>(stream: UnixStream, handle: &H, limits: &Limits) {
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
    let mut read = BufReader::with_capacity(1024, read);
    let mut buf = Vec::new();
    loop {
        let line = match tokio::time::timeout(IDLE_TIMEOUT, read_line(&mut read, &mut buf)).await {
            Ok(Ok(Line::Bytes(line))) => line,
            Ok(Ok(Line::TooLong)) => {
                let _ = send(
                    &mut write,
                    &Response::refused(LineError::TooLong.to_string()),
                )
                .await;
                return;
            }
            Ok(Ok(Line::End) | Err(_)) => return,
            Err(_) => {
                let why = format!(
                    "no complete request within {} s; closed",
                    IDLE_TIMEOUT.as_secs()
                );
                let _ = send(&mut write, &Response::refused(why)).await;
                return;
            }
        };
        let req = match parse_request(&line) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                let sent = send(&mut write, &Response::refused(e.to_string())).await;
                if e.closes() || sent.is_err() {
                    return;
                }
                continue;
            }
        };
        if let Request::Watch { interval_ms } = req {
            let Ok(_watching) = limits.watchers.clone().try_acquire_owned() else {
                let why = format!("already {MAX_WATCHERS} watchers on this node; try again later");
                let _ = send(&mut write, &Response::refused(why)).await;
                return;
            };
            let every = Duration::from_millis(u64::from(interval_ms.unwrap_or(1000).max(100)));
            loop {
                let r = ask(handle, &limits.in_flight, Request::Status {}, caller).await;
                if send(&mut write, &r).await.is_err() {
                    return;
                }
                tokio::time::sleep(every).await;
            }
        }
        let r = ask(handle, &limits.in_flight, req, caller).await;
        if send(&mut write, &r).await.is_err() {
            return;
        }
    }
}

/// One line read with a bound.
#[derive(Debug, PartialEq)]
enum Line {
    /// A line's bytes (without its newline), for [`parse_request`].
    Bytes(Vec<u8>),
    /// [`MAX_REQUEST_BYTES`] without a newline.
    TooLong,
    /// The client closed before a whole line.
    End,
}

/// Reads up to a newline, never holding more than [`MAX_REQUEST_BYTES`] + 1 bytes.
async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> std::io::Result<Line> {
    buf.clear();
    let n = (&mut *r)
        .take(MAX_REQUEST_BYTES as u64 + 1)
        .read_until(b'\n', buf)
        .await?;
    if n == 0 {
        return Ok(Line::End);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
    } else if buf.len() > MAX_REQUEST_BYTES {
        return Ok(Line::TooLong);
    }
    // Otherwise the stream ended inside a line: still a request.
    Ok(Line::Bytes(std::mem::take(buf)))
}

async fn ask<H: Fn(Call)>(
    handle: &H,
    in_flight: &Semaphore,
    req: Request,
    caller: Caller,
) -> Response {
    let answer = async {
        let Ok(_slot) = in_flight.acquire().await else {
            return Err(());
        };
        let (tx, rx) = oneshot::channel();
        handle(Call {
            req,
            caller,
            reply: tx,
        });
        rx.await.map_err(|_| ())
    };
    match tokio::time::timeout(ANSWER_WAIT, answer).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines_of(input: &[u8]) -> Vec<Line> {
        let mut r = BufReader::with_capacity(64, input);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        loop {
            let l = read_line(&mut r, &mut buf).await.unwrap();
            let end = matches!(l, Line::End | Line::TooLong);
            out.push(l);
            if end {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn lines_are_read_one_by_one_the_last_without_its_newline() {
        let got = lines_of(b"{\"cmd\":\"status\"}\n\nlast").await;
        assert_eq!(
            got,
            vec![
                Line::Bytes(br#"{"cmd":"status"}"#.to_vec()),
                Line::Bytes(Vec::new()),
                Line::Bytes(b"last".to_vec()),
                Line::End
            ]
        );
        assert_eq!(
            lines_of(b"\xff\xfe\n").await[0],
            Line::Bytes(b"\xff\xfe".to_vec())
        );
    }

    /// A line past the bound is refused after at most the bound and one byte were read: the
    /// rest of it is never taken in (a 200 MB line once took the daemon to 311 MB).
    #[tokio::test]
    async fn a_line_past_the_bound_is_refused_having_read_no_more_than_the_bound() {
        let mut long = vec![b'x'; 10 * MAX_REQUEST_BYTES];
        long.push(b'\n');
        let mut r = BufReader::with_capacity(1024, long.as_slice());
        let mut buf = Vec::new();
        assert_eq!(read_line(&mut r, &mut buf).await.unwrap(), Line::TooLong);
        assert_eq!(buf.len(), MAX_REQUEST_BYTES + 1);
        // A line of exactly the bound is still a request.
        let mut exact = vec![b'y'; MAX_REQUEST_BYTES];
        exact.push(b'\n');
        let mut r = BufReader::new(exact.as_slice());
        assert!(matches!(
            read_line(&mut r, &mut buf).await.unwrap(),
            Line::Bytes(t) if t.len() == MAX_REQUEST_BYTES
        ));
    }
}
