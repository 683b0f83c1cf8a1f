//! The application's health checks: what a check is ([`Check`]), the parsers of its
//! `host:port` and `http://` URL parameters, running one check bounded by its timeout, and
//! polling the quick check while `start` waits for the instance to be healthy. The HTTP check
//! is a minimal HTTP/1.1 GET that reads only the status line.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::process::{describe_exit, Handle};
use super::Application;
use crate::resources::process::KillGroupOnDrop;
use crate::resources::Report;

/// Health-check attempts during `start`, at most (the time bound is `start_timeout_ms`).
const START_CHECKS_MAX: u32 = 1000;
/// First pause between two failed health checks during `start`; doubles up to the max.
const START_CHECK_PAUSE_MIN: Duration = Duration::from_millis(50);
/// Longest pause between two failed health checks during `start`.
const START_CHECK_PAUSE_MAX: Duration = Duration::from_millis(1000);
/// The HTTP check reads at most this much of the answer to find its status line.
const HTTP_STATUS_LINE_MAX: usize = 1024;

/// One health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Check {
    /// Run a program; exit 0 = healthy.
    Command(Vec<String>),
    /// Connect to host:port.
    Tcp {
        /// Host name or address (no brackets).
        host: String,
        /// Port.
        port: u16,
    },
    /// GET a URL; 2xx/3xx = healthy.
    Http(HttpTarget),
}

/// A parsed `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HttpTarget {
    /// Host to connect to (no brackets).
    pub(super) host: String,
    /// Port (80 by default).
    pub(super) port: u16,
    /// The `Host:` header (the URL's authority as written).
    pub(super) authority: String,
    /// Path and query, starting with `/`.
    pub(super) path: String,
}

impl Check {
    fn describe(&self) -> String {
        match self {
            Check::Command(argv) => format!("check {:?}", argv[0]),
            Check::Tcp { host, port } => format!("tcp {host}:{port}"),
            Check::Http(t) => format!("http://{}{}", t.authority, t.path),
        }
    }
}

impl Application {
    /// Runs one health check, bounded by `limit`. `Ok(what passed)` or `Err(why not)`.
    pub(super) async fn run_check(&self, check: &Check, limit: Duration) -> Result<String, String> {
        match tokio::time::timeout(limit, self.run_check_unbounded(check)).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "{} gave no answer within {} ms",
                check.describe(),
                limit.as_millis()
            )),
        }
    }

    async fn run_check_unbounded(&self, check: &Check) -> Result<String, String> {
        match check {
            Check::Command(argv) => {
                let user = self.user().await?;
                let mut cmd = self.command(argv, user.as_ref(), false)?;
                cmd.kill_on_drop(true);
                let mut child = cmd
                    .spawn()
                    .map_err(|e| format!("cannot run check {:?}: {e}", argv[0]))?;
                // If the check is cut off (timeout), its whole group goes with it.
                let _group = KillGroupOnDrop(child.id());
                let status = child
                    .wait()
                    .await
                    .map_err(|e| format!("check {:?}: {e}", argv[0]))?;
                if status.success() {
                    Ok(format!("check {:?} passed", argv[0]))
                } else {
                    Err(format!("check {:?} {}", argv[0], describe_exit(status)))
                }
            }
            Check::Tcp { host, port } => {
                let s = TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(|e| format!("{}: {e}", check.describe()))?;
                // With nothing listening on a local port of the ephemeral range, TCP may
                // connect the socket to itself (simultaneous open): that is no server.
                if s.local_addr().ok() == s.peer_addr().ok() {
                    return Err(format!("{}: nothing listens", check.describe()));
                }
                Ok(format!("{} accepts connections", check.describe()))
            }
            Check::Http(t) => match http_get_status(t).await {
                Ok(code) if (200..400).contains(&code) => {
                    Ok(format!("{} answered {code}", check.describe()))
                }
                Ok(code) => Err(format!("{} answered {code}", check.describe())),
                Err(e) => Err(format!("{}: {e}", check.describe())),
            },
        }
    }

    /// During start: polls the quick check until it passes, the process exits, or
    /// `start_timeout` has passed (and at most [`START_CHECKS_MAX`] times).
    pub(super) async fn await_healthy(&self, h: &Handle, check: &Check) -> Report {
        let deadline = Instant::now() + self.start_timeout;
        let mut pause = START_CHECK_PAUSE_MIN;
        let mut last = String::new();
        for _ in 0..START_CHECKS_MAX {
            if let Some(how) = h.exited() {
                return Report::failed(format!("pid {} {how} during start", h.pid));
            }
            match self.run_check(check, self.quick_timeout).await {
                Ok(what) => return Report::ok(format!("pid {} running; {what}", h.pid)),
                Err(why) => last = why,
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(START_CHECK_PAUSE_MAX);
        }
        Report::failed(format!(
            "pid {} started but its quick check did not pass within start_timeout_ms \
             ({} ms): {last}",
            h.pid,
            self.start_timeout.as_millis()
        ))
    }
}

/// `host:port`, `[v6]:port`, or (with a default port) `host` / `[v6]`.
pub(super) fn parse_host_port(s: &str, default_port: Option<u16>) -> Result<(String, u16), String> {
    let bad = || format!("{s:?} is not host:port; write e.g. \"127.0.0.1:5432\" or \"[::1]:5432\"");
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(bad)?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return Err(bad()),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            Some(_) => return Err(bad()),
            None => (s, None),
        }
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(bad)?,
        None => default_port.ok_or_else(bad)?,
    };
    Ok((host.to_string(), port))
}

/// `http://host[:port][/path]`; the port defaults to 80 and the path to `/`.
pub(super) fn parse_http_url(s: &str) -> Result<HttpTarget, String> {
    if s.starts_with("https://") {
        return Err(format!(
            "{s:?}: https is not supported; check a plain-HTTP endpoint or use a tcp check"
        ));
    }
    let rest = s.strip_prefix("http://").ok_or_else(|| {
        format!("{s:?} is not an http:// URL; write e.g. \"http://127.0.0.1:8080/health\"")
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.contains('@') {
        return Err(format!("{s:?}: user:password@ in the URL is not supported"));
    }
    if path.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{s:?}: the path contains spaces or control characters"
        ));
    }
    let (host, port) = parse_host_port(authority, Some(80))
        .map_err(|_| format!("{s:?}: bad host or port in the URL"))?;
    Ok(HttpTarget {
        host,
        port,
        authority: authority.to_string(),
        path: path.to_string(),
    })
}

/// A minimal HTTP/1.1 GET: the status code of the answer.
async fn http_get_status(t: &HttpTarget) -> io::Result<u16> {
    let mut stream = TcpStream::connect((t.host.as_str(), t.port)).await?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: eterne-check\r\nAccept: */*\r\n\
         Connection: close\r\n\r\n",
        t.path, t.authority
    );
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.windows(2).any(|w| w == b"\r\n") && buf.len() < HTTP_STATUS_LINE_MAX {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    parse_status_line(&buf).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "not an HTTP answer: {:?}",
                String::from_utf8_lossy(&buf[..buf.len().min(64)])
            ),
        )
    })
}

/// `HTTP/1.x NNN ...` → NNN.
fn parse_status_line(buf: &[u8]) -> Option<u16> {
    let line = buf.split(|&b| b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(host: &str, port: u16, authority: &str, path: &str) -> HttpTarget {
        HttpTarget {
            host: host.into(),
            port,
            authority: authority.into(),
            path: path.into(),
        }
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(
            parse_status_line(b"HTTP/1.0 302 Found\r\nLocation: /"),
            Some(302)
        );
        assert_eq!(parse_status_line(b"HTTP/1.1 503\r\n"), Some(503));
        assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_status_line(b""), None);
    }

    #[test]
    fn status_lines_give_any_three_digit_code_and_refuse_the_rest() {
        // The parser gives the code; which codes are healthy is the check's business.
        assert_eq!(
            parse_status_line(b"HTTP/1.1 301 Moved Permanently\r\n"),
            Some(301)
        );
        assert_eq!(
            parse_status_line(b"HTTP/1.1 500 Internal Server Error\r\n\r\n"),
            Some(500)
        );
        // No CRLF yet (the answer was cut at the read limit): the line is all there is.
        assert_eq!(parse_status_line(b"HTTP/1.1 204 No Content"), Some(204));
        for garbage in [
            &b"HTTP/2 200\r\n"[..],
            b"HTTP/1.1 20 OK\r\n",
            b"HTTP/1.1 2000 OK\r\n",
            b"HTTP/1.1 abc OK\r\n",
            b"HTTP/1.1  200 OK\r\n",
            b"HTTP/1.1\r\n",
            b"http/1.1 200 OK\r\n",
            b" HTTP/1.1 200 OK\r\n",
            b"\r\nHTTP/1.1 200 OK\r\n",
            b"HTTP/1.1 \xff\xfe\xfd\r\n",
            b"<html>hello</html>",
        ] {
            assert_eq!(
                parse_status_line(garbage),
                None,
                "{:?}",
                String::from_utf8_lossy(garbage)
            );
        }
    }

    #[test]
    fn good_urls_parse() {
        assert_eq!(
            parse_http_url("http://127.0.0.1:8080/health").unwrap(),
            target("127.0.0.1", 8080, "127.0.0.1:8080", "/health")
        );
        // No port: 80; no path: `/`. The Host header is the authority as written.
        assert_eq!(
            parse_http_url("http://db.local").unwrap(),
            target("db.local", 80, "db.local", "/")
        );
        assert_eq!(
            parse_http_url("http://[fe80::1]:81/a/b?x=1&y=2").unwrap(),
            target("fe80::1", 81, "[fe80::1]:81", "/a/b?x=1&y=2")
        );
        assert_eq!(
            parse_http_url("http://h/").unwrap(),
            target("h", 80, "h", "/")
        );
    }

    #[test]
    fn bad_urls_are_refused_with_what_to_fix() {
        for (url, says) in [
            ("https://h/", "https is not supported"),
            ("ftp://h/", "is not an http:// URL"),
            ("h:80/health", "is not an http:// URL"),
            ("HTTP://h/", "is not an http:// URL"),
            ("", "is not an http:// URL"),
            ("http://user:pw@h/", "user:password@"),
            ("http://h/a b", "spaces or control characters"),
            ("http://h/a\tb", "spaces or control characters"),
            ("http://", "bad host or port"),
            ("http:///health", "bad host or port"),
            ("http://h:/", "bad host or port"),
            ("http://h:0/", "bad host or port"),
            ("http://h:65536/", "bad host or port"),
            ("http://h:http/", "bad host or port"),
            ("http://::1/", "bad host or port"),
            ("http://[::1/", "bad host or port"),
        ] {
            let e = parse_http_url(url).expect_err(url);
            assert!(e.contains(says), "{url:?}: {e}");
        }
    }

    #[test]
    fn host_port_needs_a_port_unless_there_is_a_default() {
        assert_eq!(
            parse_host_port("127.0.0.1:5432", None).unwrap(),
            ("127.0.0.1".to_string(), 5432)
        );
        assert_eq!(
            parse_host_port("[::1]:5432", None).unwrap(),
            ("::1".to_string(), 5432)
        );
        assert_eq!(
            parse_host_port("db.local", Some(80)).unwrap(),
            ("db.local".to_string(), 80)
        );
        assert_eq!(
            parse_host_port("[::1]", Some(80)).unwrap(),
            ("::1".to_string(), 80)
        );
        for bad in [
            "localhost",
            "[::1]",
            "::1:5432",
            "h:",
            ":5432",
            "h:0",
            "h:99999",
            "h:-1",
            "[::1]5432",
            "a b:1",
            "",
        ] {
            let e = parse_host_port(bad, None).expect_err(bad);
            assert!(e.contains("is not host:port"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn checks_describe_themselves_for_the_logs() {
        assert_eq!(
            Check::Command(vec!["/bin/true".into(), "-x".into()]).describe(),
            "check \"/bin/true\""
        );
        let tcp = Check::Tcp {
            host: "::1".into(),
            port: 5432,
        };
        assert_eq!(tcp.describe(), "tcp ::1:5432");
        let http = Check::Http(parse_http_url("http://[::1]:8080/health").unwrap());
        assert_eq!(http.describe(), "http://[::1]:8080/health");
    }
}
