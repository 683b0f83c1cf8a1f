//! `[[notification]]` against real receivers: a script hook, a webhook (an HTTP server of
//! the test on loopback) and the system log (a datagram socket of the test, where `/dev/log`
//! would be), on a three-node loopback cluster. A hook that hangs and a webhook that never
//! answers sit beside them and must delay nothing.

mod cluster;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cluster::loopback::{Opts, APP};
use cluster::{support, Cluster};

/// How long a receiver listens before it stops by itself.
const LISTEN: Duration = Duration::from_secs(90);

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// An HTTP server on loopback that answers 200 and keeps (arrival µs, body) of every POST.
/// What a receiver got: (arrival µs, body) per request.
type Received = Arc<Mutex<Vec<(u64, String)>>>;

fn http_receiver() -> (u16, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = got.clone();
    std::thread::spawn(move || {
        let until = Instant::now() + LISTEN;
        while Instant::now() < until {
            let Ok((mut s, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            let _ = s.set_nonblocking(false);
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Headers, then Content-Length bytes of body.
            let body = loop {
                let Ok(n) = s.read(&mut chunk) else {
                    break None;
                };
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if body.len() >= len {
                        break Some(body[..len].to_string());
                    }
                }
            };
            if let Some(body) = body {
                keep.lock().unwrap().push((unix_us(), body));
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            }
        }
    });
    (port, got)
}

/// The events named `event` among JSON bodies.
fn named(got: &[(u64, String)], event: &str) -> Vec<(u64, serde_json::Value)> {
    got.iter()
        .filter_map(|(t, b)| Some((*t, serde_json::from_str::<serde_json::Value>(b).ok()?)))
        .filter(|(_, v)| v["event"] == event)
        .collect()
}

#[test]
fn hooks_webhooks_and_the_system_log_hear_a_failover_within_a_second() {
    let test = "hooks_webhooks_and_the_system_log_hear_a_failover_within_a_second";
    if support::skip_unless_root(test, "eterned (a root service); CI runs as root") {
        return;
    }
    let scratch = tempfile::tempdir().expect("a temp dir");
    let (port, webhook) = http_receiver();
    // A webhook that accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    let log_sock = scratch.path().join("log.sock");
    let syslog = UnixDatagram::bind(&log_sock).expect("the test's syslog socket");
    syslog
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let hook = scratch.path().join("hook.sh");
    let hook_out = scratch.path().join("hook.out");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nread -r line\necho \"$(date +%s%6N) $ETERNE_EVENT $ETERNE_GROUP $ETERNE_ON $line\" >> {}\n",
            hook_out.display()
        ),
    )
    .expect("hook");
    let hang = scratch.path().join("hang.sh");
    std::fs::write(&hang, "#!/bin/sh\nexec sleep 1000\n").expect("hanging hook");
    for f in [&hook, &hang] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let extra = format!(
        "\n[[notification]]\nkind = \"script\"\ncommand = \"{}\"\nevents = [\"failover\"]\n\
         \n[[notification]]\nkind = \"script\"\ncommand = \"{}\"\ntimeout_ms = 600000\n\
         \n[[notification]]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\n\
         \n[[notification]]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{silent_port}/\"\n\
         timeout_ms = 30000\n\
         \n[[notification]]\nkind = \"log\"\nsocket = \"{}\"\nevents = [\"failover\"]\n",
        hook.display(),
        hang.display(),
        log_sock.display()
    );
    let mut c = Cluster::loopback(
        46,
        &Opts {
            extra,
            ..Opts::default()
        },
    );
    c.start_all();
    c.wait_for("the cluster forms", |c| c.formed());
    c.wait_for("demo runs on n1", |c| c.on("demo").as_deref() == Some("n1"));
    assert!(
        !named(&webhook.lock().unwrap(), "daemon_started").is_empty(),
        "the webhook has every event without a filter"
    );

    c.kill_daemon(0);
    assert!(c.kill_app(0, APP).is_some(), "n1 ran the application");
    c.wait_for("demo fails over to n2", |c| {
        c.on("demo").as_deref() == Some("n2")
    });
    let failover = c
        .events_named(1, "failover")
        .into_iter()
        .find(|e| e["group"] == "demo")
        .expect("n2 logged the failover");
    let at = failover["unix_us"].as_u64().expect("its time");

    c.wait_for("the webhook receives n2's failover", |_| {
        named(&webhook.lock().unwrap(), "failover")
            .iter()
            .any(|(_, v)| v["node"] == "n2")
    });
    let (got_at, body) = named(&webhook.lock().unwrap(), "failover")
        .into_iter()
        .find(|(_, v)| v["node"] == "n2")
        .expect("n2's failover");
    assert_eq!(body["group"], "demo");
    println!("webhook: failover after {} µs", got_at.saturating_sub(at));
    assert!(got_at.saturating_sub(at) < 1_000_000, "within 1 s: {body}");

    c.wait_for("the hook ran for the failover", |_| {
        std::fs::read_to_string(&hook_out).is_ok_and(|t| t.contains(" failover demo n2 {"))
    });
    let lines = std::fs::read_to_string(&hook_out).expect("hook output");
    let first = lines.lines().next().expect("a line");
    let ran_at: u64 = first
        .split(' ')
        .next()
        .and_then(|t| t.parse().ok())
        .expect("the hook's time");
    println!("script: failover after {} µs", ran_at.saturating_sub(at));
    assert!(ran_at.saturating_sub(at) < 1_000_000, "within 1 s: {first}");
    assert!(
        lines.lines().all(|l| l.contains(" failover ")),
        "the hook's filter lets only failovers through: {lines}"
    );

    let until = Instant::now() + Duration::from_secs(10);
    let mut seen = String::new();
    while Instant::now() < until && !seen.contains(" failover [eterne@32473 ") {
        let mut buf = [0u8; 8192];
        if let Ok(n) = syslog.recv(&mut buf) {
            seen = String::from_utf8_lossy(&buf[..n]).into_owned();
        }
    }
    assert!(
        seen.starts_with('<') && seen.contains(" eterned ") && seen.contains("group=\"demo\""),
        "an RFC 5424 line with the event as MSGID and its fields: {seen}"
    );
    drop(silent);
}
