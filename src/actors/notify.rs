//! `[[notification]]`: every event of the event log also goes, filtered by `events`, to the
//! system log, a script, or a webhook (docs/runtime.md, "Notifications").
//!
//! Never blocking the node: [`Notifier::send`] only puts the event into a bounded queue per
//! notification ([`QUEUE`] events) and returns; each notification has a thread of its own that
//! delivers its queue in order. A hook that hangs is killed at its `timeout_ms` and delays only
//! its own queue; when a queue is full, new events for it are dropped and counted in the log.
//!
//! | kind | delivery |
//! |---|---|
//! | `log` | one RFC 5424 datagram per event to `socket` (default `/dev/log`, which journald and rsyslog read): facility daemon, `APP-NAME` eterned, `MSGID` the event's name (a stable id per kind to filter on), the event's scalar fields as structured data `[eterne@32473 …]`, the JSON line as the message |
//! | `script` | `command` run with the event as environment variables (`ETERNE_EVENT`, and `ETERNE_<FIELD>` for each scalar field, upper-cased) and its JSON line on stdin; in a process group of its own, killed with it at `timeout_ms` or when the daemon ends; a non-zero exit is logged |
//! | `webhook` | an HTTP/1.1 `POST` of the JSON line to `url` (`http://` or `https://`, TLS with the CA bundle `ca`, default the system's), each try bounded by `timeout_ms`, 3 tries 0.5 s and 1 s apart; any 2xx is delivered |
//!
//! Blocking IO, in those threads only: no async runtime is needed, and none is held up.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::config::{NotificationConfig, NotificationKind};

/// Events one notification may have waiting before new ones are dropped.
pub const QUEUE: usize = 256;
/// Tries of one webhook delivery, and the waits between them.
const WEBHOOK_BACKOFF: [Duration; 2] = [Duration::from_millis(500), Duration::from_secs(1)];
/// The system log socket, unless `socket` says otherwise.
pub const SYSLOG_SOCKET: &str = "/dev/log";
/// The CA bundle for `https://` webhooks, unless `ca` says otherwise (Debian's).
pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// The structured-data id of our fields (32473 is the enterprise number RFC 5612 sets aside
/// for examples and documentation; we have none of our own).
const SD_ID: &str = "eterne@32473";

/// One event, as the event log wrote it.
struct Note {
    event: String,
    line: String,
    fields: Map<String, Value>,
}

/// One `[[notification]]`: its queue and what it lets through.
struct Sink {
    what: String,
    events: Vec<String>,
    tx: SyncSender<Arc<Note>>,
    dropped: AtomicU64,
}

/// Every `[[notification]]` of the config, each with its delivering thread.
#[derive(Default)]
pub struct Notifier {
    sinks: Vec<Sink>,
}

impl Notifier {
    /// Starts a thread per notification. One that cannot start is logged and left out.
    pub fn start(notifications: &[NotificationConfig]) -> Notifier {
        let mut sinks = Vec::new();
        for (i, n) in notifications.iter().enumerate() {
            let (tx, rx) = sync_channel::<Arc<Note>>(QUEUE);
            let what = describe(n);
            let n2 = n.clone();
            let started = std::thread::Builder::new()
                .name(format!("notify-{i}"))
                .spawn(move || deliver_all(&n2, rx));
            match started {
                Ok(_) => sinks.push(Sink {
                    what,
                    events: n.events.clone(),
                    tx,
                    dropped: AtomicU64::new(0),
                }),
                Err(e) => tracing::error!(notification = %what, error = %e,
                    "cannot start the notification's thread; it gets no events"),
            }
        }
        Notifier { sinks }
    }

    /// Hands `event` to every notification that wants it; never waits.
    pub fn send(&self, event: &str, line: &str, fields: &Map<String, Value>) {
        let mut note = None;
        for s in &self.sinks {
            if !s.events.is_empty() && !s.events.iter().any(|e| e == event) {
                continue;
            }
            let note = note
                .get_or_insert_with(|| {
                    Arc::new(Note {
                        event: event.to_string(),
                        line: line.to_string(),
                        fields: fields.clone(),
                    })
                })
                .clone();
            match s.tx.try_send(note) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    let n = s.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                    if n.is_power_of_two() {
                        tracing::warn!(notification = %s.what, dropped = n,
                            "notification queue full ({QUEUE} waiting): events dropped");
                    }
                }
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }
}

fn describe(n: &NotificationConfig) -> String {
    match n.kind {
        NotificationKind::Log => format!("log {}", n.socket.as_deref().unwrap_or(SYSLOG_SOCKET)),
        NotificationKind::Script => format!("script {}", n.command.as_deref().unwrap_or("")),
        NotificationKind::Webhook => format!("webhook {}", n.url.as_deref().unwrap_or("")),
    }
}

/// The thread of one notification: deliver each event in turn until the node ends.
fn deliver_all(n: &NotificationConfig, rx: Receiver<Arc<Note>>) {
    let timeout = Duration::from_millis(u64::from(n.timeout_ms.max(1)));
    let what = describe(n);
    let tls = match (&n.kind, &n.url) {
        (NotificationKind::Webhook, Some(u)) if u.starts_with("https://") => {
            match tls_config(n.ca.as_deref().unwrap_or(CA_BUNDLE)) {
                Ok(c) => Some(Arc::new(c)),
                Err(e) => {
                    tracing::error!(notification = %what, error = %e,
                        "webhook: no TLS trust; its events are dropped");
                    for _ in rx {}
                    return;
                }
            }
        }
        _ => None,
    };
    let syslog = UnixDatagram::unbound().ok();
    for note in rx {
        let r = match n.kind {
            NotificationKind::Log => match &syslog {
                Some(sock) => sock
                    .send_to(
                        syslog_line(&note).as_bytes(),
                        n.socket.as_deref().unwrap_or(SYSLOG_SOCKET),
                    )
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                None => Err("no datagram socket".into()),
            },
            NotificationKind::Script => {
                run_script(n.command.as_deref().unwrap_or(""), &note, timeout)
            }
            NotificationKind::Webhook => {
                post_with_retries(n.url.as_deref().unwrap_or(""), &note, timeout, tls.clone())
            }
        };
        if let Err(e) = r {
            tracing::warn!(notification = %what, event = %note.event, error = %e,
                "notification not delivered");
        }
    }
}

/// Scalar fields as (name, text): what environment variables and structured data carry.
fn scalars(fields: &Map<String, Value>) -> impl Iterator<Item = (&str, String)> {
    fields.iter().filter_map(|(k, v)| {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return None,
        };
        Some((k.as_str(), text))
    })
}

/// The RFC 5424 line of `note`.
fn syslog_line(note: &Note) -> String {
    let warn = [
        "failed",
        "lost",
        "fence",
        "multiple",
        "mismatch",
        "stopped_hard",
        "refused",
    ];
    // Facility daemon (3); severity warning (4) or notice (5).
    let severity = if warn.iter().any(|w| note.event.contains(w)) {
        4
    } else {
        5
    };
    let time = note
        .fields
        .get("time")
        .and_then(Value::as_str)
        .unwrap_or("-");
    let host = crate::resources::process::host_name()
        .map(|h| h.split('.').next().unwrap_or("-").to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "-".into());
    let msgid: String = note
        .event
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(32)
        .collect();
    let mut sd = format!("[{SD_ID}");
    for (k, v) in scalars(&note.fields) {
        let name: String = k
            .chars()
            .filter(|c| c.is_ascii_graphic() && !matches!(c, '=' | ']' | '"' | ' '))
            .take(32)
            .collect();
        let value = v
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace(']', "\\]");
        sd.push_str(&format!(" {name}=\"{value}\""));
    }
    sd.push(']');
    format!(
        "<{}>1 {time} {host} eterned {} {msgid} {sd} {}",
        3 * 8 + severity,
        std::process::id(),
        note.line
    )
}

/// Runs a hook: environment and stdin, bounded by `timeout`.
fn run_script(command: &str, note: &Note, timeout: Duration) -> Result<(), String> {
    let mut cmd = Command::new(command);
    cmd.env("ETERNE_EVENT", &note.event)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    // SAFETY: prctl(2) only, between fork and exec. A hook outlives nothing of ours: it dies
    // with this thread, which lives as long as the daemon.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    for (k, v) in scalars(&note.fields) {
        let key: String = k
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        cmd.env(format!("ETERNE_{key}"), v.replace('\0', ""));
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {command}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin must not hold us: one line fits a pipe.
        let _ = stdin.write_all(format!("{}\n", note.line).as_bytes());
    }
    let until = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(st)) if st.success() => return Ok(()),
            Ok(Some(st)) => return Err(format!("{command} ended with {st}")),
            Ok(None) if Instant::now() >= until => {
                let pid = child.id() as i32;
                // SAFETY: kill(2) of the process group our child leads.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
                let _ = child.wait();
                return Err(format!(
                    "{command} gave no answer within timeout_ms ({} ms) and was killed",
                    timeout.as_millis()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("waiting for {command}: {e}")),
        }
    }
}

/// `scheme://host[:port]/path` of a webhook's url.
fn split_url(url: &str) -> Option<(bool, String, u16, String)> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        (false, url.strip_prefix("http://")?)
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            (h.trim_matches(['[', ']']), p.parse().ok()?)
        }
        _ => (authority, if tls { 443 } else { 80 }),
    };
    if host.is_empty() {
        return None;
    }
    Some((tls, host.to_string(), port, path))
}

fn post_with_retries(
    url: &str,
    note: &Note,
    timeout: Duration,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<(), String> {
    let mut last = String::new();
    for attempt in 0..=WEBHOOK_BACKOFF.len() {
        match post(url, &note.line, timeout, tls.clone()) {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
        if let Some(wait) = WEBHOOK_BACKOFF.get(attempt) {
            std::thread::sleep(*wait);
        }
    }
    Err(format!("{} tries: {last}", WEBHOOK_BACKOFF.len() + 1))
}

/// One POST of `body`; Ok on a 2xx answer.
fn post(
    url: &str,
    body: &str,
    timeout: Duration,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<(), String> {
    let (https, host, port, path) = split_url(url).ok_or(format!("cannot read url {url}"))?;
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("{host}: {e}"))?
        .next()
        .ok_or(format!("{host}: no address"))?;
    let tcp = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{addr}: {e}"))?;
    let _ = tcp.set_read_timeout(Some(timeout));
    let _ = tcp.set_write_timeout(Some(timeout));
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: eterned\r\nContent-Type: \
         application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut answer = Vec::new();
    let io = |s: &mut dyn ReadWrite, answer: &mut Vec<u8>| -> std::io::Result<()> {
        s.write_all(request.as_bytes())?;
        s.flush()?;
        // The status line is enough; read until it is complete, bounded.
        let mut buf = [0u8; 512];
        while !answer.contains(&b'\n') && answer.len() < 8192 {
            let n = s.read(&mut buf)?;
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
        Ok(())
    };
    let started = Instant::now();
    let r = if https {
        let config = tls.ok_or("no TLS configuration")?;
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| format!("{host}: {e}"))?;
        let conn = rustls::ClientConnection::new(config, name).map_err(|e| format!("TLS: {e}"))?;
        let mut s = rustls::StreamOwned::new(conn, tcp);
        io(&mut s, &mut answer)
    } else {
        let mut s = tcp;
        io(&mut s, &mut answer)
    };
    r.map_err(|e| format!("{url}: {e} after {} ms", started.elapsed().as_millis()))?;
    let status = String::from_utf8_lossy(&answer);
    let line = status.lines().next().unwrap_or("");
    let code = line.split_whitespace().nth(1).unwrap_or("");
    if code.starts_with('2') && code.len() == 3 {
        Ok(())
    } else {
        Err(format!("{url} answered {line:?}"))
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A TLS client that trusts the certificates of the PEM bundle `ca`.
fn tls_config(ca: &str) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    let certs =
        CertificateDer::pem_file_iter(PathBuf::from(ca)).map_err(|e| format!("{ca}: {e}"))?;
    for c in certs.flatten() {
        let _ = roots.add(c);
    }
    if roots.is_empty() {
        return Err(format!("{ca}: no certificate"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hook_gets_the_event_in_its_environment_and_on_stdin_and_is_killed_at_its_timeout() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let out = dir.path().join("out");
        let hook = dir.path().join("hook");
        std::fs::write(
            &hook,
            format!(
                "#!/bin/sh\nread -r line\necho \"$ETERNE_EVENT $ETERNE_GROUP $ETERNE_EPOCH $line\" > {}\n\
                 [ \"$ETERNE_GROUP\" = slow ] && exec sleep 100\nexit 0\n",
                out.display()
            ),
        )
        .expect("hook");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let note = |group: &str| {
            let mut fields = Map::new();
            fields.insert("group".into(), group.into());
            fields.insert("epoch".into(), 4.into());
            Note {
                event: "failover".into(),
                line: format!("{{\"group\":\"{group}\"}}"),
                fields,
            }
        };
        let cmd = hook.to_str().expect("utf-8");
        run_script(cmd, &note("web"), Duration::from_secs(5)).expect("ran");
        assert_eq!(
            std::fs::read_to_string(&out).expect("out"),
            "failover web 4 {\"group\":\"web\"}\n"
        );
        let t0 = Instant::now();
        let e = run_script(cmd, &note("slow"), Duration::from_millis(200)).expect_err("killed");
        assert!(e.contains("was killed"), "{e}");
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "bounded by its timeout"
        );
        assert!(run_script("/nonexistent", &note("web"), Duration::from_secs(1)).is_err());
    }

    #[test]
    fn an_https_webhook_is_posted_over_tls_with_the_configured_ca() {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let dir = tempfile::tempdir().expect("a temp dir");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, cert.pem()).expect("ca");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .expect("server config");
        let server = Arc::new(server);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let got = std::thread::spawn(move || {
            let (tcp, _) = listener.accept().expect("accept");
            tcp.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let conn = rustls::ServerConnection::new(server).expect("conn");
            let mut s = rustls::StreamOwned::new(conn, tcp);
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !String::from_utf8_lossy(&buf).ends_with("}") {
                let n = s.read(&mut chunk).expect("read");
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                .expect("answer");
            s.flush().expect("flush");
            String::from_utf8_lossy(&buf).into_owned()
        });
        let tls = Arc::new(tls_config(ca.to_str().expect("utf-8")).expect("trust"));
        let url = format!("https://localhost:{port}/hook");
        post(
            &url,
            "{\"event\":\"failover\"}",
            Duration::from_secs(5),
            Some(tls),
        )
        .expect("delivered");
        let request = got.join().expect("the server");
        assert!(request.starts_with("POST /hook HTTP/1.1\r\n"), "{request}");
        assert!(
            request.ends_with("\r\n\r\n{\"event\":\"failover\"}"),
            "{request}"
        );
        assert!(tls_config("/nonexistent.pem").is_err());
    }

    #[test]
    fn a_url_is_split_into_its_parts() {
        assert_eq!(
            split_url("https://alerts.example/hook?x=1"),
            Some((true, "alerts.example".into(), 443, "/hook?x=1".into()))
        );
        assert_eq!(
            split_url("http://127.0.0.1:8099"),
            Some((false, "127.0.0.1".into(), 8099, "/".into()))
        );
        assert_eq!(
            split_url("http://[::1]:81/a"),
            Some((false, "::1".into(), 81, "/a".into()))
        );
        assert_eq!(split_url("ftp://x/"), None);
        assert_eq!(split_url("http://:80/"), None);
    }

    #[test]
    fn a_syslog_line_carries_the_event_as_msgid_and_structured_data() {
        let mut fields = Map::new();
        fields.insert("time".into(), "2026-12-05T10:00:00Z".into());
        fields.insert("group".into(), "web\"]".into());
        fields.insert("epoch".into(), 7.into());
        let note = Note {
            event: "failover".into(),
            line: "{\"event\":\"failover\"}".into(),
            fields,
        };
        let line = syslog_line(&note);
        assert!(line.starts_with("<29>1 2026-12-05T10:00:00Z "), "{line}");
        assert!(line.contains(" eterned "), "{line}");
        assert!(line.contains(" failover [eterne@32473 "), "{line}");
        assert!(line.contains("epoch=\"7\""), "{line}");
        assert!(line.contains("group=\"web\\\"\\]\""), "escaped: {line}");
        assert!(line.ends_with("{\"event\":\"failover\"}"), "{line}");
    }
}
