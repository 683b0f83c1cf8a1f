//! The QUIC transport over real sockets on 127.x loopback addresses, with certificates made in
//! a temporary directory by the same code as `eternectl ca init` / `cert issue`.
//!
//! Each test uses its own loopback addresses (127.<70 + path>.<test>.<node + 1>), so tests run
//! in parallel without sharing ports. Waits are bounded (generous timeouts); nothing asserts
//! how long anything took.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eterne::policy::group::GroupStatus;
use eterne::policy::message::{Heartbeat, Message};
use eterne::policy::spec::{NodeId, PathId};
use eterne::transport::certs;
use eterne::transport::envelope::{Body, Envelope, PROTOCOL_VERSION};
use eterne::transport::{Inbound, NetPath, TlsFiles, Transport, TransportConfig};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::time::{sleep, timeout, Instant};

/// How long any expected event may take before the test fails. Generous: CI machines are busy.
const WAIT: Duration = Duration::from_secs(20);
const PATHS: u8 = 2;

fn addr(test: u8, path: u8, node: usize) -> SocketAddr {
    SocketAddr::from(([127, 70 + path, test, node as u8 + 1], 7400))
}

fn config(
    test: u8,
    cluster: &str,
    nodes: &[&str],
    me: NodeId,
    incarnation: u64,
) -> TransportConfig {
    TransportConfig {
        cluster: cluster.to_string(),
        digest: 0xd1,
        me,
        incarnation,
        nodes: nodes.iter().map(|n| n.to_string()).collect(),
        paths: (0..PATHS)
            .map(|p| NetPath {
                id: p,
                name: format!("net-{p}"),
                addrs: (0..nodes.len()).map(|n| addr(test, p, n)).collect(),
                detect: std::time::Duration::from_millis(500),
            })
            .collect(),
    }
}

/// A CA in `dir` with certificates for `names`.
fn pki(dir: &Path, names: &[&str]) {
    certs::init_ca(dir, false).unwrap();
    for name in names {
        certs::issue_node_cert(dir, name, false).unwrap();
    }
}

struct Node {
    id: NodeId,
    t: Transport,
    rx: UnboundedReceiver<Inbound>,
}

async fn start(cfg: TransportConfig, dir: &Path) -> Node {
    let id = cfg.me;
    let name = cfg.nodes[usize::from(id)].clone();
    let (tx, rx) = unbounded_channel();
    let t = Transport::start(cfg, &TlsFiles::in_dir(dir, &name), tx)
        .await
        .unwrap();
    Node { id, t, rx }
}

/// Receives until `pred` matches; fails the test after [`WAIT`].
async fn wait_for(
    rx: &mut UnboundedReceiver<Inbound>,
    what: &str,
    mut pred: impl FnMut(&Inbound) -> bool,
) -> Inbound {
    let deadline = Instant::now() + WAIT;
    loop {
        match timeout(
            deadline.saturating_duration_since(Instant::now()),
            rx.recv(),
        )
        .await
        {
            Ok(Some(ev)) if pred(&ev) => return ev,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("inbound closed while waiting for {what}"),
            Err(_) => panic!("no {what} within {WAIT:?}"),
        }
    }
}

/// Waits until every one of `peers` is up on every path (other events are consumed).
async fn wait_up(node: &mut Node, peers: &[NodeId]) {
    let mut missing: Vec<(NodeId, PathId)> = peers
        .iter()
        .flat_map(|&p| (0..PATHS).map(move |path| (p, path)))
        .collect();
    while !missing.is_empty() {
        let ev = wait_for(&mut node.rx, "path up", |e| {
            matches!(e, Inbound::PathUp { .. })
        })
        .await;
        if let Inbound::PathUp { peer, path } = ev {
            missing.retain(|m| *m != (peer, path));
        }
    }
}

/// Waits for a refusal whose reason contains `needle`.
async fn wait_refused(node: &mut Node, needle: &str) -> (SocketAddr, String) {
    let ev = wait_for(
        &mut node.rx,
        &format!("refusal with {needle:?}"),
        |e| matches!(e, Inbound::Refused { why, .. } if why.contains(needle)),
    )
    .await;
    match ev {
        Inbound::Refused { remote, why, .. } => (remote, why),
        other => panic!("{other:?}"),
    }
}

fn report(epoch: u64) -> Message {
    Message::Report {
        group: 0,
        epoch,
        status: GroupStatus::Running,
        stopping: false,
    }
}

/// Sends `msg` from `from` to `to` until `to` receives it. Returns the paths it came on within
/// a short while of the first (a message sent while a path is still coming up is dropped by
/// design, hence the resend).
async fn deliver(from: &Node, to: &mut Node, msg: Message) -> Vec<PathId> {
    let deadline = Instant::now() + WAIT;
    loop {
        from.t.send(to.id, msg.clone());
        let mut paths = Vec::new();
        let window = if msg.on_every_path() { 500 } else { 200 };
        let _ = timeout(Duration::from_millis(window), async {
            while let Some(ev) = to.rx.recv().await {
                if let Inbound::Message {
                    from: f,
                    path,
                    msg: m,
                } = ev
                {
                    if f == from.id && m == msg {
                        paths.push(path);
                        if !msg.on_every_path() || paths.len() == PATHS as usize {
                            return;
                        }
                    }
                }
            }
        })
        .await;
        if !paths.is_empty() {
            paths.sort();
            return paths;
        }
        assert!(Instant::now() < deadline, "message {msg:?} not delivered");
    }
}

/// Waits (bounded) until `addrs` can be bound again.
async fn wait_free(addrs: &[SocketAddr]) {
    let deadline = Instant::now() + WAIT;
    for a in addrs {
        while std::net::UdpSocket::bind(a).is_err() {
            assert!(Instant::now() < deadline, "{a} still in use");
            sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Heartbeats from `from` on `path` until `to` sees one from it on that path.
async fn beat_until_seen(from: &Node, to: &mut Node, path: PathId, hb: Heartbeat) {
    let deadline = Instant::now() + WAIT;
    loop {
        from.t.heartbeat(path, hb);
        let got = timeout(Duration::from_millis(50), async {
            while let Some(ev) = to.rx.recv().await {
                if let Inbound::Heartbeat {
                    from: f,
                    path: p,
                    hb: h,
                } = ev
                {
                    if f == from.id && p == path {
                        return Some(h);
                    }
                }
            }
            None
        })
        .await;
        if let Ok(Some(h)) = got {
            assert_eq!(h, hb);
            return;
        }
        assert!(Instant::now() < deadline, "no heartbeat on path {path}");
    }
}

/// Log lines written while a test runs (the transport logs on the test's thread: the tests
/// run on tokio's current-thread runtime).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let logs = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || logs.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Waits until a log line contains every one of `needles`.
    async fn wait_line(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(line) = self
                .text()
                .lines()
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needles:?}:\n{}",
                self.text()
            );
            sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const THREE: [&str; 3] = ["alpha", "beta", "gamma"];

#[tokio::test]
async fn three_nodes_exchange_heartbeats_and_messages_on_two_paths() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path(), &THREE);
    let mut nodes = Vec::new();
    for me in 0..3 {
        nodes.push(start(config(1, "c1", &THREE, me, 100 + u64::from(me)), dir.path()).await);
    }
    for (i, node) in nodes.iter_mut().enumerate() {
        let peers: Vec<NodeId> = (0..3).filter(|&p| usize::from(p) != i).collect();
        wait_up(node, &peers).await;
    }
    for i in 0..3 {
        for j in 0..3 {
            if i == j {
                continue;
            }
            let (a, b) = two(&mut nodes, i, j);
            for path in 0..PATHS {
                let hb = Heartbeat {
                    incarnation: 100 + i as u64,
                    digest: 0xd1,
                };
                beat_until_seen(a, b, path, hb).await;
            }
            // A report travels on one path, the first one up.
            assert_eq!(
                deliver(a, b, report(i as u64 * 10 + j as u64)).await,
                vec![0]
            );
            // A lease request travels on every path.
            let lease = Message::LeaseRequest {
                stamp_us: (i * 10 + j) as u64,
            };
            assert_eq!(deliver(a, b, lease).await, vec![0, 1]);
        }
    }
    for n in nodes {
        n.t.shutdown().await;
    }
}

/// Two distinct nodes of a vector, mutably.
fn two(nodes: &mut [Node], i: usize, j: usize) -> (&Node, &mut Node) {
    assert_ne!(i, j);
    if i < j {
        let (l, r) = nodes.split_at_mut(j);
        (&l[i], &mut r[0])
    } else {
        let (l, r) = nodes.split_at_mut(i);
        (&r[0], &mut l[j])
    }
}

/// `bad` gets a certificate (and CA) of its own; the others must refuse it, whichever side
/// dials, and keep talking to each other.
async fn foreign_ca_is_refused(test: u8, bad: usize) {
    let good_dir = tempfile::tempdir().unwrap();
    let bad_dir = tempfile::tempdir().unwrap();
    pki(good_dir.path(), &THREE);
    pki(bad_dir.path(), &[THREE[bad]]);
    let mut nodes = Vec::new();
    for me in 0..3u16 {
        let dir = if usize::from(me) == bad {
            bad_dir.path()
        } else {
            good_dir.path()
        };
        nodes.push(start(config(test, "c", &THREE, me, 1), dir).await);
    }
    let good: Vec<usize> = (0..3).filter(|&i| i != bad).collect();
    for &g in &good {
        let (remote, why) = wait_refused(&mut nodes[g], "not signed by").await;
        assert!(
            (0..PATHS).any(|p| addr(test, p, bad) == remote),
            "refused {remote}, not the bad node: {why}"
        );
    }
    let (g0, g1) = (good[0], good[1]);
    wait_up(&mut nodes[g0], &[g1 as NodeId]).await;
    wait_up(&mut nodes[g1], &[g0 as NodeId]).await;
    let (a, b) = two(&mut nodes, g0, g1);
    deliver(a, b, report(1)).await;
    let (a, b) = two(&mut nodes, g1, g0);
    deliver(a, b, report(2)).await;
    // The bad node never got a path up, and nothing from it reached the good nodes.
    for &g in &good {
        while let Ok(ev) = nodes[g].rx.try_recv() {
            match ev {
                Inbound::PathUp { peer, .. }
                | Inbound::Heartbeat { from: peer, .. }
                | Inbound::Message { from: peer, .. } => assert_ne!(usize::from(peer), bad),
                _ => {}
            }
        }
    }
    for n in nodes {
        n.t.shutdown().await;
    }
}

#[tokio::test]
async fn an_acceptor_with_a_certificate_of_another_ca_is_refused() {
    // alpha and beta dial gamma: their TLS clients refuse gamma's certificate.
    foreign_ca_is_refused(2, 2).await;
}

#[tokio::test]
async fn a_dialer_with_a_certificate_of_another_ca_is_refused() {
    // alpha dials beta and gamma: their TLS servers refuse alpha's client certificate.
    foreign_ca_is_refused(3, 0).await;
}

#[tokio::test]
async fn a_certificate_for_a_name_not_in_the_config_is_refused() {
    let logs = Logs::default();
    let _guard = logs.install();
    let dir = tempfile::tempdir().unwrap();
    // "adam" has a good certificate from the cluster's CA, but is not a node of the config.
    // Its name sorts before the others', so it dials them.
    pki(dir.path(), &["alpha", "beta", "adam"]);
    let two_nodes = ["alpha", "beta"];
    let mut alpha = start(config(4, "c", &two_nodes, 0, 1), dir.path()).await;
    let mut beta = start(config(4, "c", &two_nodes, 1, 1), dir.path()).await;
    // adam's own config puts it first; its addresses are the third node's of test 4.
    let mut adam_cfg = config(4, "c", &["adam", "alpha", "beta"], 0, 1);
    for p in &mut adam_cfg.paths {
        p.addrs = vec![addr(4, p.id, 2), addr(4, p.id, 0), addr(4, p.id, 1)];
    }
    let adam = start(adam_cfg, dir.path()).await;
    for node in [&mut alpha, &mut beta] {
        let (remote, why) = wait_refused(node, "none of which is a node of the config").await;
        assert!(why.contains("valid for adam,"), "{why}");
        assert!(
            remote == addr(4, 0, 2) || remote == addr(4, 1, 2),
            "{remote}"
        );
    }
    wait_up(&mut alpha, &[1]).await;
    deliver(&alpha, &mut beta, report(4)).await;
    logs.wait_line(&[
        "peer refused",
        "none of which is a node of the config",
        "path=net-",
    ])
    .await;
    adam.t.shutdown().await;
    alpha.t.shutdown().await;
    beta.t.shutdown().await;
}

#[tokio::test]
async fn a_node_of_another_cluster_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path(), &["alpha", "beta"]);
    let nodes = ["alpha", "beta"];
    // alpha dials beta with the cluster name "other".
    let alpha = start(config(5, "other", &nodes, 0, 1), dir.path()).await;
    let mut beta = start(config(5, "c", &nodes, 1, 1), dir.path()).await;
    let (remote, why) = wait_refused(&mut beta, "cluster \"other\"").await;
    assert!(
        remote == addr(5, 0, 0) || remote == addr(5, 1, 0),
        "{remote}"
    );
    assert!(why.contains("this node is in cluster \"c\""), "{why}");
    alpha.t.shutdown().await;
    beta.t.shutdown().await;
}

/// A raw QUIC client holding a valid certificate for `name`: it completes the Hello, then
/// sends whatever the test wants.
async fn raw_client(
    dir: &Path,
    name: &str,
    local: SocketAddr,
    server: SocketAddr,
    server_name: &str,
) -> (quinn::Endpoint, quinn::Connection) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let files = TlsFiles::in_dir(dir, name);
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&files.ca).unwrap())
        .unwrap();
    let chain = vec![CertificateDer::from_pem_file(&files.cert).unwrap()];
    let key = PrivateKeyDer::from_pem_file(&files.key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    tls.alpn_protocols = vec![eterne::transport::ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client(local).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    let conn = endpoint
        .connect(server, server_name)
        .unwrap()
        .await
        .unwrap();
    (endpoint, conn)
}

fn envelope(cluster: &str, sender: &str, incarnation: u64, body: Body) -> Vec<u8> {
    Envelope {
        version: PROTOCOL_VERSION,
        cluster: cluster.to_string(),
        digest: 0xd1,
        sender: sender.to_string(),
        incarnation,
        body,
    }
    .encode()
    .unwrap()
}

async fn send_stream(conn: &quinn::Connection, bytes: &[u8]) {
    let mut s = conn.open_uni().await.unwrap();
    s.write_all(bytes).await.unwrap();
    s.finish().unwrap();
}

#[tokio::test]
async fn garbage_and_wrong_envelopes_are_dropped_and_logged() {
    let logs = Logs::default();
    let _guard = logs.install();
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path(), &["alpha", "beta"]);
    let nodes = ["alpha", "beta"];
    // Only beta runs a transport; "alpha" is a raw client with alpha's certificate.
    let mut beta = start(config(6, "c", &nodes, 1, 1), dir.path()).await;
    let (_endpoint, conn) =
        raw_client(dir.path(), "alpha", addr(6, 0, 0), addr(6, 0, 1), "beta").await;
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&envelope("c", "alpha", 9, Body::Hello))
        .await
        .unwrap();
    send.finish().unwrap();
    let ack = recv.read_to_end(4096).await.unwrap();
    let ack = Envelope::decode(
        &ack,
        eterne::transport::envelope::Expect {
            cluster: "c",
            sender: Some("beta"),
        },
    )
    .unwrap();
    assert_eq!(ack.body, Body::HelloAck);
    wait_for(&mut beta.rx, "path up", |e| {
        *e == Inbound::PathUp { peer: 0, path: 0 }
    })
    .await;

    // Garbage as a datagram and as a stream, another cluster's envelope, another sender's.
    conn.send_datagram(vec![0xc1; 64].into()).unwrap();
    send_stream(&conn, &[0xde, 0xad, 0xbe, 0xef]).await;
    let wrong_cluster = Body::Message(report(66));
    send_stream(&conn, &envelope("other", "alpha", 9, wrong_cluster)).await;
    let wrong_sender = Body::Message(report(67));
    send_stream(&conn, &envelope("c", "gamma", 9, wrong_sender)).await;
    let hb = Heartbeat {
        incarnation: 9,
        digest: 0xd1,
    };
    conn.send_datagram(envelope("other", "alpha", 9, Body::Heartbeat(hb)).into())
        .unwrap();
    for needle in [
        "malformed envelope",
        "cluster \"other\"",
        "sender \"gamma\"",
    ] {
        let line = logs.wait_line(&["envelope dropped", needle]).await;
        assert!(
            line.contains("peer=alpha") && line.contains("path=net-0"),
            "{line}"
        );
    }

    // The connection still works: a good heartbeat and a good message get through, and
    // nothing of the above did.
    let good = report(68);
    let deadline = Instant::now() + WAIT;
    let (mut got_hb, mut got_msg) = (false, false);
    while !(got_hb && got_msg) {
        assert!(Instant::now() < deadline, "good traffic not delivered");
        conn.send_datagram(envelope("c", "alpha", 9, Body::Heartbeat(hb)).into())
            .unwrap();
        if !got_msg {
            send_stream(
                &conn,
                &envelope("c", "alpha", 9, Body::Message(good.clone())),
            )
            .await;
        }
        let _ = timeout(Duration::from_millis(100), async {
            while let Some(ev) = beta.rx.recv().await {
                match ev {
                    Inbound::Heartbeat {
                        from: 0,
                        path: 0,
                        hb: h,
                    } => {
                        assert_eq!(h, hb);
                        got_hb = true;
                    }
                    Inbound::Message {
                        from: 0,
                        path: 0,
                        msg,
                    } => {
                        assert_eq!(msg, good, "a dropped envelope was delivered");
                        got_msg = true;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        })
        .await;
    }
    conn.close(0u32.into(), b"done");
    beta.t.shutdown().await;
}

/// Stops `which` of two nodes and starts it again with a new incarnation: the other side sees
/// the paths go down and come back, and traffic flows again.
async fn restart(test: u8, which: usize) {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path(), &["alpha", "beta"]);
    let names = ["alpha", "beta"];
    let mut nodes = vec![
        start(config(test, "c", &names, 0, 1), dir.path()).await,
        start(config(test, "c", &names, 1, 1), dir.path()).await,
    ];
    let other = 1 - which;
    wait_up(&mut nodes[other], &[which as NodeId]).await;
    wait_up(&mut nodes[which], &[other as NodeId]).await;
    let (a, b) = two(&mut nodes, other, which);
    deliver(a, b, report(1)).await;

    let stopped = nodes.remove(which);
    stopped.t.shutdown().await;
    let survivor = &mut nodes[0];
    for path in 0..PATHS {
        wait_for(&mut survivor.rx, "path down", |e| {
            *e == Inbound::PathDown {
                peer: which as NodeId,
                path,
            }
        })
        .await;
    }
    // Sending to a peer that is down drops the message without blocking or failing.
    survivor.t.send(which as NodeId, report(2));
    survivor.t.heartbeat(
        0,
        Heartbeat {
            incarnation: 1,
            digest: 0xd1,
        },
    );

    let restarted = start(config(test, "c", &names, which as NodeId, 2), dir.path()).await;
    nodes.insert(which, restarted);
    wait_up(&mut nodes[other], &[which as NodeId]).await;
    let (a, b) = two(&mut nodes, other, which);
    deliver(a, b, report(3)).await;
    let (a, b) = two(&mut nodes, which, other);
    beat_until_seen(
        a,
        b,
        1,
        Heartbeat {
            incarnation: 2,
            digest: 0xd1,
        },
    )
    .await;
    for n in nodes {
        n.t.shutdown().await;
    }
}

#[tokio::test]
async fn a_restarted_acceptor_is_reconnected() {
    restart(7, 1).await;
}

#[tokio::test]
async fn a_restarted_dialer_reconnects() {
    restart(8, 0).await;
}

/// `which` crashes: its runtime stops without closing anything, so the survivor's connection
/// is stale. When it comes back, its first answer to the survivor's traffic is a stateless
/// reset (the key is derived from its private key), the survivor drops the stale connection
/// and the path comes back.
async fn crash(test: u8, which: usize) {
    let logs = Logs::default();
    let _guard = logs.install();
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path(), &["alpha", "beta"]);
    let names = ["alpha", "beta"];
    let other = 1 - which;
    let mut survivor = start(config(test, "c", &names, other as NodeId, 1), dir.path()).await;

    // The node that will crash runs on a runtime of its own.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let cfg = config(test, "c", &names, which as NodeId, 1);
    let (tx, _crashed_rx) = unbounded_channel();
    let files = TlsFiles::in_dir(dir.path(), names[which]);
    let crashed = rt
        .spawn(async move { Transport::start(cfg, &files, tx).await.unwrap() })
        .await
        .unwrap();
    wait_up(&mut survivor, &[which as NodeId]).await;
    // Crash: every task of that runtime stops where it is; nothing is sent.
    rt.shutdown_background();
    drop(crashed);

    let hb = Heartbeat {
        incarnation: 1,
        digest: 0xd1,
    };
    // A crashed process's sockets are gone; here the runtime closes them in the background.
    wait_free(&[addr(test, 0, which), addr(test, 1, which)]).await;
    let mut restarted = start(config(test, "c", &names, which as NodeId, 2), dir.path()).await;
    // Per path: the stale connection goes down, then a new one comes up.
    let mut down = [false; PATHS as usize];
    let mut up = [false; PATHS as usize];
    let deadline = Instant::now() + WAIT;
    while up.iter().any(|u| !u) {
        assert!(
            Instant::now() < deadline,
            "paths not back: down {down:?}, up {up:?}"
        );
        for path in 0..PATHS {
            survivor.t.heartbeat(path, hb);
        }
        match timeout(Duration::from_millis(20), survivor.rx.recv()).await {
            Ok(Some(Inbound::PathDown { peer, path })) => {
                assert_eq!(usize::from(peer), which);
                down[usize::from(path)] = true;
            }
            Ok(Some(Inbound::PathUp { peer, path })) => {
                assert_eq!(usize::from(peer), which);
                assert!(
                    down[usize::from(path)],
                    "up again before the stale one went down"
                );
                up[usize::from(path)] = true;
            }
            _ => {}
        }
    }
    deliver(&survivor, &mut restarted, report(9)).await;
    beat_until_seen(
        &restarted,
        &mut survivor,
        0,
        Heartbeat {
            incarnation: 2,
            digest: 0xd1,
        },
    )
    .await;
    if which == 1 {
        // The dialer's stale connection ended by the restarted acceptor's stateless reset (a
        // restarted dialer simply dials anew, and the acceptor replaces the stale connection).
        logs.wait_line(&["path down", "reset by peer"]).await;
    }
    restarted.t.shutdown().await;
    survivor.t.shutdown().await;
}

#[tokio::test]
async fn a_crashed_acceptor_is_reconnected() {
    crash(9, 1).await;
}

#[tokio::test]
async fn a_crashed_dialer_reconnects() {
    crash(10, 0).await;
}

/// One identity, one node: a second process with alpha's name and certificate, on another
/// address (a cloned machine), dials beta while the real alpha is heard. Beta refuses it,
/// naming both incarnations and addresses, and keeps its link to the real alpha: no path
/// goes down, alpha's heartbeats still arrive.
#[tokio::test]
async fn a_second_process_claiming_a_live_node_from_another_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["alpha", "beta"];
    pki(dir.path(), &names);
    let alpha = start(config(11, "c", &names, 0, 1), dir.path()).await;
    let mut beta = start(config(11, "c", &names, 1, 1), dir.path()).await;
    wait_up(&mut beta, &[0]).await;
    let hb = Heartbeat {
        incarnation: 1,
        digest: 0xd1,
    };
    beat_until_seen(&alpha, &mut beta, 0, hb).await;
    beat_until_seen(&alpha, &mut beta, 1, hb).await;

    // The clone: alpha's name and certificate, a newer incarnation, its own address.
    let mut clone_cfg = config(11, "c", &names, 0, 2);
    for (p, path) in clone_cfg.paths.iter_mut().enumerate() {
        path.addrs[0] = SocketAddr::from(([127, 70 + p as u8, 11, 9], 7400));
    }
    let clone = start(clone_cfg, dir.path()).await;
    let deadline = Instant::now() + WAIT;
    let mut why = None;
    let mut went_down = false;
    while why.is_none() {
        assert!(Instant::now() < deadline, "the clone was never refused");
        for p in 0..PATHS {
            alpha.t.heartbeat(p, hb);
        }
        let _ = timeout(Duration::from_millis(50), async {
            while let Some(ev) = beta.rx.recv().await {
                match ev {
                    Inbound::Refused { why: w, .. } if w.contains("two processes claim") => {
                        why = Some(w);
                        return;
                    }
                    Inbound::PathDown { peer: 0, .. } => went_down = true,
                    _ => {}
                }
            }
        })
        .await;
    }
    let why = why.unwrap_or_default();
    // On whichever path it was refused first: 127.70.11.x or 127.71.11.x.
    let names_both = (0..PATHS).any(|p| {
        why.contains(&format!("incarnation 2 at 127.{}.11.9:7400", 70 + p))
            && why.contains(&format!("incarnation 1 at 127.{}.11.1:7400", 70 + p))
    });
    assert!(names_both, "names both: {why}");
    assert!(!went_down, "the real alpha's link was not replaced");
    // Alpha is still heard on both paths.
    beat_until_seen(&alpha, &mut beta, 0, hb).await;
    beat_until_seen(&alpha, &mut beta, 1, hb).await;
    clone.t.shutdown().await;
    alpha.t.shutdown().await;
    beta.t.shutdown().await;
}
