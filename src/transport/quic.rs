//! [`Transport`]: one quinn endpoint per network heartbeat path, one confirmed connection per
//! path and peer. See the module docs of [`super`] for the protocol.
//!
//! Tasks, all owned by the transport and ended by [`Transport::shutdown`] (or its drop):
//! - per path, an accept loop; per incoming connection, a short handshake task;
//! - per path and peer that this node dials, a dial loop (connect, Hello, wait for the
//!   connection to close, redial with backoff);
//! - per confirmed connection (a "link"), a reader (datagrams and incoming streams, one short
//!   task per stream) and a writer (one outgoing stream per message, from a bounded queue).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{ConnectionError, Endpoint, EndpointConfig, VarInt};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::envelope::{Body, DecodeError, Envelope, Expect, PROTOCOL_VERSION};
use super::tls::{self, Material};
use super::{Inbound, TlsFiles, TransportConfig, TransportError};
use crate::policy::message::{Heartbeat, Message};
use crate::policy::spec::{NodeId, PathId};

/// First redial delay after a failed attempt; doubles up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(20);
/// Longest redial delay: a peer that comes back is reconnected within about this.
const BACKOFF_MAX: Duration = Duration::from_millis(500);
/// A connection silent this long is closed (and redialled). Heartbeats flow every few tens of
/// ms and keep-alives every [`KEEP_ALIVE`], so only a dead peer or path stays silent this long.
/// Peer restarts are noticed sooner, by stateless reset.
const IDLE_TIMEOUT: Duration = Duration::from_millis(1000);
/// Keep-alive when no heartbeat is being sent (e.g. before the node core starts beating).
const KEEP_ALIVE: Duration = Duration::from_millis(200);
/// The RTT assumed before the first sample: cluster nodes share a LAN, and quinn's default
/// (333 ms) would make a lost handshake packet cost a second.
const INITIAL_RTT: Duration = Duration::from_millis(20);
/// Bound on the QUIC handshake plus Hello / HelloAck.
const HELLO_TIMEOUT: Duration = Duration::from_secs(3);
/// Bound on reading one message stream.
const STREAM_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// A Hello or HelloAck is tiny; anything bigger is refused unread.
const MAX_HELLO_BYTES: usize = 4096;
/// Messages queued per link before further sends to it are dropped.
const SEND_QUEUE: usize = 1024;
/// Incoming message streams a peer may have open at once (QUIC flow control).
const MAX_UNI_STREAMS: u32 = 256;
/// Handshakes in progress at once per path; more incoming connections are refused.
const MAX_HANDSHAKES: usize = 64;
/// The same refusal (path, address, reason) is reported at most once per this.
const REFUSAL_REPEAT: Duration = Duration::from_secs(10);
/// Bound on the refusal memory (cleared when full).
const REFUSAL_MEMORY: usize = 1024;
/// Drops on one link logged individually; after that one in [`DROP_LOG_EVERY`].
const DROP_LOG_FIRST: u64 = 10;
/// See [`DROP_LOG_FIRST`].
const DROP_LOG_EVERY: u64 = 1000;

/// Bound on each wait of [`Transport::shutdown`].
const SHUTDOWN_WAIT: Duration = Duration::from_secs(1);

/// Application close codes (the reason bytes carry the human-readable why).
const CLOSE_SHUTDOWN: u32 = 0;
const CLOSE_REFUSED: u32 = 1;
const CLOSE_REPLACED: u32 = 2;

/// The transport. See [`super`] for what it does; [`Transport::start`] to make one.
pub struct Transport {
    /// State shared with every task.
    shared: Arc<Shared>,
    /// One endpoint per network path, in `cfg.paths` order.
    endpoints: Vec<Endpoint>,
    /// Accept and dial loops (link tasks end with their connections).
    tasks: Vec<JoinHandle<()>>,
}

/// What every task needs.
struct Shared {
    cfg: TransportConfig,
    inbound: mpsc::UnboundedSender<Inbound>,
    /// Confirmed connections by (peer, path).
    links: Mutex<HashMap<(NodeId, PathId), Link>>,
    /// Makes link ids, so a closing connection only takes down its own entry.
    next_link: AtomicU64,
    /// When each refusal was last reported.
    refusals: Mutex<HashMap<(PathId, SocketAddr, String), Instant>>,
    /// Set to true at shutdown; loops watch it.
    closing: watch::Sender<bool>,
}

/// One confirmed connection.
struct Link {
    id: u64,
    conn: quinn::Connection,
    /// The writer's queue.
    out: mpsc::Sender<Arc<[u8]>>,
    /// The peer's incarnation, from its Hello.
    inc: u64,
    /// When a heartbeat last came on this link.
    heard: Arc<Mutex<Instant>>,
}

impl Transport {
    /// Binds one endpoint per network path on this node's address and starts connecting to
    /// every peer. Returns once the endpoints are bound; paths come up later (reported as
    /// [`Inbound::PathUp`]). Must be called inside a tokio runtime.
    pub async fn start(
        cfg: TransportConfig,
        tls_files: &TlsFiles,
        inbound: mpsc::UnboundedSender<Inbound>,
    ) -> Result<Transport, TransportError> {
        check_config(&cfg)?;
        let material = Material::load(tls_files)?;
        let server_tls = tls::server_config(&material, tls_files, &cfg.nodes)?;
        let client_tls = tls::client_config(&material, tls_files)?;
        let bad_tls = |e: &dyn std::fmt::Display| TransportError::Tls {
            file: tls_files.cert.clone(),
            reason: format!("unusable for QUIC: {e}"),
        };
        let quic_server = QuicServerConfig::try_from(server_tls).map_err(|e| bad_tls(&e))?;
        let quic_client = QuicClientConfig::try_from(client_tls).map_err(|e| bad_tls(&e))?;
        let transport = Arc::new(quic_transport_config());
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(quic_server));
        server.transport_config(transport.clone());
        server.migration(false);
        let mut client = quinn::ClientConfig::new(Arc::new(quic_client));
        client.transport_config(transport);

        let (closing, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            cfg,
            inbound,
            links: Mutex::new(HashMap::new()),
            next_link: AtomicU64::new(1),
            refusals: Mutex::new(HashMap::new()),
            closing,
        });
        let me = usize::from(shared.cfg.me);
        let mut endpoints = Vec::new();
        let mut tasks = Vec::new();
        for (pi, path) in shared.cfg.paths.iter().enumerate() {
            let addr = path.addrs[me];
            let bind_err = |source| TransportError::Bind {
                path: path.name.clone(),
                addr,
                source,
            };
            let socket = std::net::UdpSocket::bind(addr).map_err(bind_err)?;
            let mut endpoint_cfg = EndpointConfig::new(Arc::new(reset_key(
                material.key_bytes(),
                &shared.cfg.nodes[me],
                &path.name,
            )));
            endpoint_cfg.cid_generator(|| Box::new(RandomCids::default()));
            let mut endpoint = Endpoint::new(
                endpoint_cfg,
                Some(server.clone()),
                socket,
                Arc::new(quinn::TokioRuntime),
            )
            .map_err(bind_err)?;
            endpoint.set_default_client_config(client.clone());
            info!(path = %path.name, local = %addr, "endpoint bound");
            tasks.push(tokio::spawn(accept_loop(
                shared.clone(),
                endpoint.clone(),
                pi,
            )));
            for peer in 0..shared.cfg.nodes.len() {
                if peer != me && dials(&shared.cfg.nodes[me], &shared.cfg.nodes[peer]) {
                    tasks.push(tokio::spawn(dial_loop(
                        shared.clone(),
                        endpoint.clone(),
                        pi,
                        peer,
                    )));
                }
            }
            endpoints.push(endpoint);
        }
        Ok(Transport {
            shared,
            endpoints,
            tasks,
        })
    }

    /// Sends a heartbeat datagram on `path` to every peer connected on it. Never blocks; a
    /// datagram that cannot be sent is dropped (heartbeats are lossy by nature).
    pub fn heartbeat(&self, path: PathId, hb: Heartbeat) {
        let Some(bytes) = self.shared.encode(Body::Heartbeat(hb)) else {
            return;
        };
        let links = self.shared.links();
        for ((peer, p), link) in links.iter() {
            if *p != path {
                continue;
            }
            if let Err(e) = link.conn.send_datagram(bytes.clone().into()) {
                debug!(peer = %self.shared.name(*peer), path = %self.shared.path_name(path), reason = %e, "heartbeat not sent");
            }
        }
    }

    /// Sends a message to `to`: on every path that is up if [`Message::on_every_path`], else
    /// on the first network path that is up. Never blocks; dropped if no path to `to` is up
    /// or its queue is full (raft and leases retry).
    pub fn send(&self, to: NodeId, msg: Message) {
        let every = msg.on_every_path();
        let Some(bytes) = self.shared.encode(Body::Message(msg)) else {
            return;
        };
        let bytes: Arc<[u8]> = bytes.into();
        let links = self.shared.links();
        let mut up: Vec<(PathId, &Link)> = links
            .iter()
            .filter(|((peer, _), _)| *peer == to)
            .map(|((_, path), link)| (*path, link))
            .collect();
        up.sort_by_key(|(path, _)| *path);
        if !every {
            up.truncate(1);
        }
        if up.is_empty() {
            debug!(peer = %self.shared.name(to), "message dropped: no path up");
        }
        for (path, link) in up {
            match link.out.try_send(bytes.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    warn!(peer = %self.shared.name(to), path = %self.shared.path_name(path), "message dropped: send queue full")
                }
                // The connection is closing; PathDown follows.
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    debug!(peer = %self.shared.name(to), path = %self.shared.path_name(path), "message dropped: connection closing")
                }
            }
        }
    }

    /// Closes every connection and endpoint, waits (bounded) until the peers were told, and
    /// until this node's addresses can be bound again (so a restart in the same process, as in
    /// tests, finds them free).
    pub async fn shutdown(mut self) {
        self.close();
        for endpoint in &self.endpoints {
            let _ = tokio::time::timeout(SHUTDOWN_WAIT, endpoint.wait_idle()).await;
        }
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        self.shared.links().clear();
        let addrs: Vec<SocketAddr> = self
            .endpoints
            .iter()
            .filter_map(|e| e.local_addr().ok())
            .collect();
        // quinn closes a socket when its endpoint driver task ends, soon after the last handle
        // is dropped; wait for that, boundedly.
        self.endpoints.clear();
        let deadline = Instant::now() + SHUTDOWN_WAIT;
        for addr in addrs {
            while std::net::UdpSocket::bind(addr).is_err() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    /// The synchronous part of shutting down (also run on drop).
    fn close(&mut self) {
        self.shared.closing.send_replace(true);
        for task in &self.tasks {
            task.abort();
        }
        for endpoint in &self.endpoints {
            endpoint.close(VarInt::from_u32(CLOSE_SHUTDOWN), b"shutdown");
        }
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        self.close();
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("node", &self.shared.name(self.shared.cfg.me))
            .field("paths", &self.shared.cfg.paths.len())
            .finish()
    }
}

/// Whether `me` dials `peer` (the name that sorts first dials; see the module docs).
fn dials(me: &str, peer: &str) -> bool {
    me < peer
}

fn check_config(cfg: &TransportConfig) -> Result<(), TransportError> {
    let bad = |m: String| Err(TransportError::Config(m));
    if usize::from(cfg.me) >= cfg.nodes.len() {
        return bad(format!(
            "me = {} but only {} nodes",
            cfg.me,
            cfg.nodes.len()
        ));
    }
    if cfg.paths.is_empty() {
        return bad("no network path".to_string());
    }
    for (i, name) in cfg.nodes.iter().enumerate() {
        if cfg.nodes[..i].contains(name) {
            return bad(format!("node \"{name}\" is listed twice"));
        }
        if rustls::pki_types::ServerName::try_from(name.as_str()).is_err() {
            return bad(format!(
                "node name \"{name}\" is not a DNS name, so no certificate can name it"
            ));
        }
    }
    for path in &cfg.paths {
        if path.addrs.len() != cfg.nodes.len() {
            return bad(format!(
                "path \"{}\" has {} addresses for {} nodes",
                path.name,
                path.addrs.len(),
                cfg.nodes.len()
            ));
        }
    }
    Ok(())
}

fn quic_transport_config() -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    // IDLE_TIMEOUT is a small constant, far inside QUIC's bound; the fallback is unreachable.
    t.max_idle_timeout(quinn::IdleTimeout::try_from(IDLE_TIMEOUT).ok());
    t.keep_alive_interval(Some(KEEP_ALIVE));
    t.initial_rtt(INITIAL_RTT);
    t.max_concurrent_uni_streams(VarInt::from_u32(MAX_UNI_STREAMS));
    // Only the Hello stream is bidirectional.
    t.max_concurrent_bidi_streams(VarInt::from_u32(4));
    t.datagram_receive_buffer_size(Some(256 * 1024));
    t.datagram_send_buffer_size(256 * 1024);
    t
}

/// The stateless-reset key of an endpoint, derived from the node's private key: the same
/// after a restart, so the restarted node resets the connections its previous run had (a
/// peer then redials at once instead of waiting for the idle timeout), and secret like the
/// private key.
fn reset_key(private_key: &[u8], node: &str, path: &str) -> ring::hmac::Key {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"eterne stateless reset v1\0");
    ctx.update(private_key);
    ctx.update(node.as_bytes());
    ctx.update(b"\0");
    ctx.update(path.as_bytes());
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, ctx.finish().as_ref())
}

/// Random 8-byte connection ids that any later run of this node accepts as its own.
///
/// quinn's default generator tags its ids with a hash keyed per run, and drops packets whose
/// id lacks its tag without answering; a restarted node would then never send the stateless
/// reset that tells a peer its old connection is gone, and the peer would wait for the idle
/// timeout. Resets stay cheap for quinn to send: rate-limited and smaller than what incited
/// them.
#[derive(Default)]
struct RandomCids {
    /// Only used if the system's random source fails: ids stay unique, if predictable.
    fallback: u64,
}

impl RandomCids {
    const LEN: usize = 8;
}

impl quinn::ConnectionIdGenerator for RandomCids {
    fn generate_cid(&mut self) -> quinn::ConnectionId {
        let mut id = [0u8; Self::LEN];
        if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id).is_err() {
            self.fallback = self.fallback.wrapping_add(1);
            id = self.fallback.to_be_bytes();
        }
        quinn::ConnectionId::new(&id)
    }

    fn cid_len(&self) -> usize {
        Self::LEN
    }

    fn cid_lifetime(&self) -> Option<Duration> {
        None
    }
}

impl Shared {
    fn links(&self) -> MutexGuard<'_, HashMap<(NodeId, PathId), Link>> {
        // A panic while holding this lock cannot leave the map inconsistent (each operation
        // is one insert or remove), so a poisoned lock is used as is.
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn name(&self, node: NodeId) -> &str {
        self.cfg
            .nodes
            .get(usize::from(node))
            .map_or("?", |s| s.as_str())
    }

    fn path_name(&self, path: PathId) -> &str {
        self.cfg
            .paths
            .iter()
            .find(|p| p.id == path)
            .map_or("?", |p| p.name.as_str())
    }

    fn envelope(&self, body: Body) -> Envelope {
        Envelope {
            version: PROTOCOL_VERSION,
            cluster: self.cfg.cluster.clone(),
            digest: self.cfg.digest,
            sender: self.name(self.cfg.me).to_string(),
            incarnation: self.cfg.incarnation,
            body,
        }
    }

    fn encode(&self, body: Body) -> Option<Vec<u8>> {
        let kind = body.kind();
        match self.envelope(body).encode() {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                warn!(kind, reason = %e, "cannot encode an envelope; dropped");
                None
            }
        }
    }

    fn emit(&self, event: Inbound) {
        // The owner may be gone during shutdown; nothing else to do then.
        let _ = self.inbound.send(event);
    }

    /// Logs and reports a refusal, unless the same one was reported recently.
    fn refused(&self, path: &super::NetPath, remote: SocketAddr, why: String) {
        let now = Instant::now();
        {
            let mut seen = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
            if seen.len() >= REFUSAL_MEMORY {
                seen.clear();
            }
            let key = (path.id, remote, why.clone());
            if let Some(last) = seen.get(&key) {
                if now.duration_since(*last) < REFUSAL_REPEAT {
                    debug!(path = %path.name, remote = %remote, reason = %why, "peer refused (repeat)");
                    return;
                }
            }
            seen.insert(key, now);
        }
        warn!(path = %path.name, remote = %remote, reason = %why, "peer refused");
        self.emit(Inbound::Refused {
            path: path.id,
            remote,
            why,
        });
    }

    /// Makes `conn` the link to `peer` on `path`, replacing (and closing) any older one, and
    /// starts its reader and writer. Emits PathDown for a replaced link, then PathUp.
    fn install(self: &Arc<Self>, peer: NodeId, pi: usize, conn: quinn::Connection, inc: u64) {
        let path = &self.cfg.paths[pi];
        let id = self.next_link.fetch_add(1, Ordering::Relaxed);
        let (out, rx) = mpsc::channel(SEND_QUEUE);
        let heard = Arc::new(Mutex::new(Instant::now()));
        {
            let mut links = self.links();
            if let Some(why) = links
                .get(&(peer, path.id))
                .and_then(|old| self.duplicate(peer, path, old, &conn, inc))
            {
                drop(links);
                conn.close(
                    VarInt::from_u32(CLOSE_REFUSED),
                    b"another process is this node",
                );
                self.refused(path, conn.remote_address(), why);
                return;
            }
            if let Some(old) = links.remove(&(peer, path.id)) {
                old.conn.close(
                    VarInt::from_u32(CLOSE_REPLACED),
                    b"replaced by a new connection",
                );
                self.emit(Inbound::PathDown {
                    peer,
                    path: path.id,
                });
            }
            links.insert(
                (peer, path.id),
                Link {
                    id,
                    conn: conn.clone(),
                    out,
                    inc,
                    heard: heard.clone(),
                },
            );
            self.emit(Inbound::PathUp {
                peer,
                path: path.id,
            });
        }
        info!(peer = %self.name(peer), path = %path.name, remote = %conn.remote_address(), incarnation = inc, "path up");
        tokio::spawn(write_link(conn.clone(), rx));
        tokio::spawn(read_link(self.clone(), peer, pi, id, inc, conn, heard));
    }

    /// Why `conn`, a connection of `peer`'s incarnation `inc`, must not replace `old`: one
    /// node name, two live processes. A restart comes from the node's own address (its
    /// endpoint binds there) with a new incarnation, or after the old one fell silent; a
    /// second process that claims the name from another address while the first is still
    /// heard (a cloned machine with the same certificate) is refused, naming both, and
    /// changes nothing. So is an older incarnation once a newer one is installed: a restarted
    /// node is the newer one.
    fn duplicate(
        &self,
        peer: NodeId,
        path: &super::NetPath,
        old: &Link,
        conn: &quinn::Connection,
        inc: u64,
    ) -> Option<String> {
        if old.conn.close_reason().is_some() {
            return None;
        }
        let name = self.name(peer);
        let (was, now) = (old.conn.remote_address(), conn.remote_address());
        let alive = old
            .heard
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
            < path.detect;
        if !alive {
            return None;
        }
        if inc < old.inc {
            return Some(format!(
                "\"{name}\" incarnation {inc} at {now} is older than incarnation {} at {was}, which is connected: a stale process of that node",
                old.inc
            ));
        }
        (inc != old.inc && now != was).then(|| {
            format!(
                "\"{name}\" incarnation {inc} at {now} while incarnation {} at {was} is alive: two processes claim one node (a cloned machine or a copied certificate?); the newcomer is refused",
                old.inc
            )
        })
    }

    /// Removes link `id` if it is still the current one and emits PathDown.
    fn uninstall(&self, peer: NodeId, path: PathId, id: u64, why: &str) {
        let mut links = self.links();
        if links.get(&(peer, path)).is_some_and(|l| l.id == id) {
            links.remove(&(peer, path));
            self.emit(Inbound::PathDown { peer, path });
            drop(links);
            info!(peer = %self.name(peer), path = %self.path_name(path), reason = why, "path down");
        }
    }
}

/// Accepts incoming connections on one path until the endpoint closes.
async fn accept_loop(shared: Arc<Shared>, endpoint: Endpoint, pi: usize) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    while let Some(incoming) = endpoint.accept().await {
        let Ok(permit) = handshakes.clone().try_acquire_owned() else {
            debug!(path = %shared.cfg.paths[pi].name, remote = %incoming.remote_address(), "too many handshakes; refused");
            incoming.refuse();
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            accept_one(&shared, pi, incoming).await;
            drop(permit);
        });
    }
}

/// One incoming connection: TLS (the verifier checked CA and node name), then the Hello.
async fn accept_one(shared: &Arc<Shared>, pi: usize, incoming: quinn::Incoming) {
    let path = &shared.cfg.paths[pi];
    let remote = incoming.remote_address();
    let conn = match tokio::time::timeout(HELLO_TIMEOUT, incoming).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            match refusal(&e) {
                Some(why) => shared.refused(path, remote, why),
                None => {
                    debug!(path = %path.name, remote = %remote, reason = %e, "incoming handshake failed")
                }
            }
            return;
        }
        Err(_) => {
            debug!(path = %path.name, remote = %remote, "incoming handshake timed out");
            return;
        }
    };
    match accept_hello(shared, pi, &conn).await {
        Ok((peer, inc)) => shared.install(peer, pi, conn, inc),
        Err(HelloError::Refused(why)) => {
            conn.close(VarInt::from_u32(CLOSE_REFUSED), why.as_bytes());
            shared.refused(path, remote, why);
        }
        Err(HelloError::Failed(why)) => {
            conn.close(VarInt::from_u32(CLOSE_REFUSED), why.as_bytes());
            debug!(path = %path.name, remote = %remote, reason = %why, "incoming hello failed");
        }
    }
}

/// Why a Hello exchange did not confirm a connection.
enum HelloError {
    /// The peer is not acceptable (or refused us): reported.
    Refused(String),
    /// The connection failed (timeout, peer gone): retried quietly.
    Failed(String),
}

/// Reads the Hello, checks it against the certificate, answers HelloAck.
async fn accept_hello(
    shared: &Shared,
    pi: usize,
    conn: &quinn::Connection,
) -> Result<(NodeId, u64), HelloError> {
    let cfg = &shared.cfg;
    let cert_ids = conn
        .peer_identity()
        .and_then(|id| {
            id.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
                .ok()
        })
        .and_then(|chain| chain.first().map(|c| tls::valid_names(c, &cfg.nodes)))
        .unwrap_or_default();
    let exchange = async {
        let (mut send, mut recv) = conn.accept_bi().await.map_err(conn_failed)?;
        let bytes = recv
            .read_to_end(MAX_HELLO_BYTES)
            .await
            .map_err(|e| HelloError::Failed(format!("reading hello: {e}")))?;
        let env = Envelope::decode(
            &bytes,
            Expect {
                cluster: &cfg.cluster,
                sender: None,
            },
        )
        .map_err(|e| HelloError::Refused(e.to_string()))?;
        if env.body != Body::Hello {
            return Err(HelloError::Refused(format!(
                "expected hello, got {}",
                env.body.kind()
            )));
        }
        let peer = cfg
            .nodes
            .iter()
            .position(|n| *n == env.sender)
            .filter(|i| cert_ids.contains(i))
            .ok_or_else(|| {
                HelloError::Refused(format!(
                    "hello from \"{}\" on a certificate valid for {:?}",
                    env.sender,
                    cert_ids.iter().map(|&i| &cfg.nodes[i]).collect::<Vec<_>>()
                ))
            })?;
        let me = &cfg.nodes[usize::from(cfg.me)];
        if peer == usize::from(cfg.me) || !dials(&env.sender, me) {
            return Err(HelloError::Refused(format!(
                "\"{}\" dialed \"{me}\", but \"{me}\" dials it",
                env.sender
            )));
        }
        let ack = shared
            .envelope(Body::HelloAck)
            .encode()
            .map_err(|e| HelloError::Failed(e.to_string()))?;
        send.write_all(&ack)
            .await
            .map_err(|e| HelloError::Failed(format!("writing hello-ack: {e}")))?;
        send.finish()
            .map_err(|e| HelloError::Failed(format!("writing hello-ack: {e}")))?;
        let peer = NodeId::try_from(peer).map_err(|e| HelloError::Failed(e.to_string()))?;
        Ok((peer, env.incarnation))
    };
    match tokio::time::timeout(HELLO_TIMEOUT, exchange).await {
        Ok(result) => result.inspect_err(|_| debug!(path = %cfg.paths[pi].name, "hello rejected")),
        Err(_) => Err(HelloError::Failed("hello timed out".to_string())),
    }
}

/// Keeps one connection to `peer` on one path: dial, confirm, wait until it closes, redial.
async fn dial_loop(shared: Arc<Shared>, endpoint: Endpoint, pi: usize, peer: usize) {
    let path = &shared.cfg.paths[pi];
    let addr = path.addrs[peer];
    let name = shared.cfg.nodes[peer].clone();
    let Ok(peer_id) = NodeId::try_from(peer) else {
        return;
    };
    let mut closing = shared.closing.subscribe();
    let mut backoff = BACKOFF_MIN;
    loop {
        if *closing.borrow() {
            return;
        }
        match dial_once(&shared, &endpoint, addr, &name).await {
            Ok((conn, inc)) => {
                backoff = BACKOFF_MIN;
                shared.install(peer_id, pi, conn.clone(), inc);
                tokio::select! {
                    _ = conn.closed() => {}
                    _ = closing.changed() => return,
                }
                // Redial at once: a restarted peer should be back quickly.
                continue;
            }
            Err(HelloError::Refused(why)) => shared.refused(path, addr, why),
            Err(HelloError::Failed(why)) => {
                debug!(peer = %name, path = %path.name, remote = %addr, reason = %why, "dial failed")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = closing.changed() => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One attempt: QUIC + TLS handshake, then Hello / HelloAck.
async fn dial_once(
    shared: &Shared,
    endpoint: &Endpoint,
    addr: SocketAddr,
    name: &str,
) -> Result<(quinn::Connection, u64), HelloError> {
    let hello = shared
        .envelope(Body::Hello)
        .encode()
        .map_err(|e| HelloError::Failed(e.to_string()))?;
    let connecting = endpoint
        .connect(addr, name)
        .map_err(|e| HelloError::Failed(format!("connect: {e}")))?;
    let attempt = async {
        let conn = connecting.await.map_err(conn_failed)?;
        let exchange = async {
            let (mut send, mut recv) = conn.open_bi().await.map_err(conn_failed)?;
            send.write_all(&hello).await.map_err(write_failed)?;
            send.finish()
                .map_err(|e| HelloError::Failed(e.to_string()))?;
            let bytes = recv
                .read_to_end(MAX_HELLO_BYTES)
                .await
                .map_err(|e| match e {
                    quinn::ReadToEndError::Read(quinn::ReadError::ConnectionLost(c)) => {
                        conn_failed(c)
                    }
                    other => HelloError::Failed(format!("reading hello-ack: {other}")),
                })?;
            let env = Envelope::decode(
                &bytes,
                Expect {
                    cluster: &shared.cfg.cluster,
                    sender: Some(name),
                },
            )
            .map_err(|e| HelloError::Refused(e.to_string()))?;
            if env.body != Body::HelloAck {
                return Err(HelloError::Refused(format!(
                    "expected hello-ack, got {}",
                    env.body.kind()
                )));
            }
            Ok(env.incarnation)
        };
        match exchange.await {
            Ok(inc) => Ok((conn, inc)),
            Err(e) => {
                let why = match &e {
                    HelloError::Refused(w) | HelloError::Failed(w) => w.clone(),
                };
                conn.close(VarInt::from_u32(CLOSE_REFUSED), why.as_bytes());
                Err(e)
            }
        }
    };
    tokio::time::timeout(HELLO_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| Err(HelloError::Failed("handshake timed out".to_string())))
}

fn write_failed(e: quinn::WriteError) -> HelloError {
    match e {
        quinn::WriteError::ConnectionLost(c) => conn_failed(c),
        other => HelloError::Failed(format!("writing hello: {other}")),
    }
}

fn conn_failed(e: ConnectionError) -> HelloError {
    match refusal(&e) {
        Some(why) => HelloError::Refused(why),
        None => HelloError::Failed(e.to_string()),
    }
}

/// The reason, if a connection error means one side refused the other (TLS or Hello), as
/// opposed to a peer that is down or a path that is broken.
fn refusal(e: &ConnectionError) -> Option<String> {
    let is_crypto = |code: quinn::TransportErrorCode| (0x100..0x200).contains(&u64::from(code));
    // webpki finds a certificate's issuer by name; every cluster CA has the same name, so a
    // certificate of another CA fails on its signature (or, with another issuer name, as unknown).
    let ca_hint = |reason: &str, whose: &str| {
        if reason.contains("BadSignature") || reason.contains("UnknownIssuer") {
            format!(" ({whose})")
        } else {
            String::new()
        }
    };
    match e {
        ConnectionError::TransportError(t) if is_crypto(t.code) => Some(format!(
            "TLS: {}{}",
            t.reason,
            ca_hint(
                &t.reason,
                "the peer's certificate is not signed by this cluster's CA"
            )
        )),
        ConnectionError::ConnectionClosed(c) if is_crypto(c.error_code) => {
            let reason = String::from_utf8_lossy(&c.reason);
            Some(format!(
                "refused by the peer: TLS {}{}{}",
                c.error_code,
                reason_suffix(&c.reason),
                ca_hint(&reason, "our certificate is not signed by the peer's CA")
            ))
        }
        ConnectionError::ApplicationClosed(c)
            if c.error_code == VarInt::from_u32(CLOSE_REFUSED) =>
        {
            Some(format!("refused by the peer{}", reason_suffix(&c.reason)))
        }
        ConnectionError::VersionMismatch => Some("no common QUIC version".to_string()),
        _ => None,
    }
}

fn reason_suffix(reason: &[u8]) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(": {}", String::from_utf8_lossy(reason))
    }
}

/// Writes queued messages to one link, one uni stream each, until the queue or the connection
/// closes.
async fn write_link(conn: quinn::Connection, mut rx: mpsc::Receiver<Arc<[u8]>>) {
    while let Some(bytes) = rx.recv().await {
        let sent = async {
            let mut stream = conn.open_uni().await.map_err(|e| e.to_string())?;
            stream.write_all(&bytes).await.map_err(|e| e.to_string())?;
            stream.finish().map_err(|e| e.to_string())
        };
        if let Err(why) = sent.await {
            debug!(remote = %conn.remote_address(), reason = %why, "message not sent");
            if conn.close_reason().is_some() {
                return;
            }
        }
    }
}

/// Reads one link: datagrams (heartbeats) and uni streams (messages), until it closes.
async fn read_link(
    shared: Arc<Shared>,
    peer: NodeId,
    pi: usize,
    id: u64,
    inc: u64,
    conn: quinn::Connection,
    heard: Arc<Mutex<Instant>>,
) {
    let path = shared.cfg.paths[pi].id;
    let drops = Arc::new(AtomicU64::new(0));
    let why = loop {
        tokio::select! {
            dgram = conn.read_datagram() => match dgram {
                Ok(bytes) => {
                    match receive(&shared, peer, inc, &bytes) {
                        Ok(Body::Heartbeat(hb)) => {
                            *heard.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
                            shared.emit(Inbound::Heartbeat { from: peer, path, hb })
                        }
                        Ok(other) => dropped(&shared, peer, pi, &drops, &format!("{} in a datagram", other.kind())),
                        Err(why) => dropped(&shared, peer, pi, &drops, &why),
                    }
                }
                Err(e) => break e,
            },
            stream = conn.accept_uni() => match stream {
                Ok(recv) => {
                    tokio::spawn(read_stream(shared.clone(), peer, pi, inc, recv, drops.clone()));
                }
                Err(e) => break e,
            },
        }
    };
    shared.uninstall(peer, path, id, &why.to_string());
}

/// Reads one message stream.
async fn read_stream(
    shared: Arc<Shared>,
    peer: NodeId,
    pi: usize,
    inc: u64,
    mut recv: quinn::RecvStream,
    drops: Arc<AtomicU64>,
) {
    let read = tokio::time::timeout(
        STREAM_READ_TIMEOUT,
        recv.read_to_end(super::envelope::MAX_ENVELOPE_BYTES),
    )
    .await;
    let bytes = match read {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(quinn::ReadToEndError::Read(quinn::ReadError::ConnectionLost(_)))) => return,
        Ok(Err(e)) => return dropped(&shared, peer, pi, &drops, &format!("stream: {e}")),
        Err(_) => return dropped(&shared, peer, pi, &drops, "stream read timed out"),
    };
    let path = shared.cfg.paths[pi].id;
    match receive(&shared, peer, inc, &bytes) {
        Ok(Body::Message(msg)) => shared.emit(Inbound::Message {
            from: peer,
            path,
            msg,
        }),
        Ok(other) => dropped(
            &shared,
            peer,
            pi,
            &drops,
            &format!("{} on a stream", other.kind()),
        ),
        Err(why) => dropped(&shared, peer, pi, &drops, &why),
    }
}

/// Decodes an envelope from an authenticated peer.
fn receive(shared: &Shared, peer: NodeId, inc: u64, bytes: &[u8]) -> Result<Body, String> {
    let env = Envelope::decode(
        bytes,
        Expect {
            cluster: &shared.cfg.cluster,
            sender: Some(shared.name(peer)),
        },
    )
    .map_err(|e: DecodeError| e.to_string())?;
    if env.incarnation != inc {
        return Err(format!(
            "incarnation {} on a connection opened by incarnation {inc}",
            env.incarnation
        ));
    }
    Ok(env.body)
}

/// Logs a dropped envelope (the first few per link, then one in many).
fn dropped(shared: &Shared, peer: NodeId, pi: usize, drops: &AtomicU64, why: &str) {
    let n = drops.fetch_add(1, Ordering::Relaxed) + 1;
    if n <= DROP_LOG_FIRST || n % DROP_LOG_EVERY == 0 {
        warn!(peer = %shared.name(peer), path = %shared.cfg.paths[pi].name, reason = %why, dropped_total = n, "envelope dropped");
    }
}
