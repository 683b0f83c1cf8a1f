//! The `disk_lock` agent: one owner of a shared disk at a time (design.md §5 rule 6, §7).
//! It comes before the `filesystem` of the group in the dependency tree, so the disk is taken
//! before it is mounted and released after it is unmounted.
//!
//! # Parameters
//!
//! | parameter | meaning |
//! |---|---|
//! | `method` | `"lease"` (default): an on-disk lease on any shared block device or file. `"scsi_pr"`: SCSI-3 persistent reservations on a real LUN. |
//! | `device` | Required. Absolute path of the shared block device (or, for `lease`, a file on shared storage). For `lease`, a small area that nothing else uses: a partition of its own, or the disk path's device is *not* suitable (its layout differs). |
//! | `node_slot` | This node's index among the nodes that may hold the lock, from 0 (the same index on every node for the same node). Default (set by `eterned`): the node's position in the cluster's `[[node]]` list, which is what one config file shared by every node can give. For `scsi_pr` it is part of the reservation key. |
//! | `nodes` | `lease` only, required: how many slots the lease area has (every node that may hold the lock, `node_slot < nodes`). The device needs `4096 × (nodes + 1)` bytes; a regular file is extended to that. |
//! | `lease_ms` | `lease` only: a lease whose renewal counter has not advanced for this long (measured by the node that watches it) is expired. Default 2000. |
//! | `renew_ms` | `lease` only: how often the holder renews; at most half of `lease_ms`. Default a quarter of `lease_ms`. |
//!
//! Why `node_slot` and `nodes` are parameters: [`AgentContext`] does not know the node or
//! the cluster size, and a lease area's layout must not change when a node is added to the
//! cluster, so the operator fixes it here.
//!
//! # The `lease` method
//!
//! The device holds an owner record `{owner node, epoch, renewed counter}` and a request slot
//! per node, each CRC'd in a 4096-byte block of its own (layout in [`layout`]), read and
//! written with `O_DIRECT | O_DSYNC` from aligned buffers (buffered IO with `fdatasync` where
//! the kernel refuses direct IO, as on tmpfs).
//!
//! - `start(epoch)` first writes `epoch` into this node's request slot, then reads the owner
//!   record and takes the lease only if it is free (never written, or released), already ours,
//!   or **expired**: its renewal counter did not advance for `lease_ms` while we watched it,
//!   measured on our own monotonic clock (clocks are never compared across nodes). A record
//!   with a **higher epoch** than ours is refused at once, released or not: an older
//!   activation never takes the disk back (fencing token). A corrupt record is never taken
//!   for a free one: it is watched like a live one and taken only once it has not changed for
//!   `lease_ms`. To take the lease, the record is written, then re-read after a short settle
//!   (half of `renew_ms`) to confirm that no other node wrote it meanwhile; if one did, the
//!   watch goes on. The wait is bounded by the resource's `start_timeout_ms`.
//! - While held, a task renews every `renew_ms`: it re-reads the record and the request slots,
//!   and bumps the counter only if the record still names this node and epoch and no node
//!   requested a higher epoch. Otherwise (another owner, a newer request, or no successful
//!   renewal for `lease_ms`) it stops renewing and reports [`AgentEvent::Failed`]: this node
//!   was fenced and the group must stop. A renewal never takes the record back.
//! - A newer activation preempts an older live owner this way: its request slot fences the
//!   owner at the owner's next renewal, the owner stops renewing (and its group stops, then
//!   releases), and the newer node takes the lease when it is released or has expired.
//! - `stop` stops renewing and releases the lease (owner = none, epoch kept) if the record
//!   still names this node, then clears this node's request slot.
//! - `monitor`: held, renewals succeeding (the last one less than `lease_ms` ago) and the
//!   record names us → `Ok`; fenced or lost → `Failed`; not held → `NotRunning`.
//! - `probe`: held by this agent with live renewals and the record names us → `Ok`, else
//!   `NotRunning`. A record that names this node but that no renewal of this daemon keeps
//!   alive (left by a daemon that crashed or a node that rebooted) is not adopted: it expires
//!   after `lease_ms`, and `start` takes it back at once as ours.
//!
//! How far this is safe: two contenders that both find the lease free both write it; the
//! re-read after the settle sees the one written last, and the other goes back to watching.
//! That holds while a write reaches the device within the settle time. A write stalled longer
//! than that can still land late; the renewal then finds another owner and reports the
//! fence within `renew_ms`. The cluster's own rules (epochs from the replicated log, the
//! takeover wait of design.md §5 rule 4) keep two nodes from being told to start the same group
//! at once; the lease is the disk's own second line, not the first. Where a hard guarantee is
//! needed, use `scsi_pr`, which the storage array enforces.
//!
//! # The `scsi_pr` method
//!
//! See [`scsi_pr`]: register a key derived from node and epoch, reserve type 5 (Write
//! Exclusive – Registrants Only), preempt-and-abort the previous holder, release and
//! unregister at stop. Needs `sg_persist` (Debian `sg3-utils`).

pub mod layout;
pub mod scsi_pr;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::mpsc;

use self::layout::{Device, Owner, OwnerBlock, Slot};
use self::scsi_pr::{Cmd, Step};
use super::process::AbortOnDrop;
use super::{known_params, lookup, param_err};
use super::{Agent, AgentContext, AgentError, AgentEvent, Depth, Report};
use crate::policy::spec::{GroupId, ResourceId, ResourceSpec};

/// Every parameter the agent knows; anything else is a typo and refused.
pub const PARAMS: &[&str] = &[
    "method",
    "device",
    "node_slot",
    "nodes",
    "lease_ms",
    "renew_ms",
];
/// Default `lease_ms`.
pub const LEASE_MS_DEFAULT: u64 = 2000;
/// The most slots a lease area may have.
pub const NODES_MAX: u16 = 1024;
/// The program of the `scsi_pr` method.
pub const SG_PERSIST: &str = "sg_persist";
/// At most this many looks at the owner record during one `start`.
const WATCH_POLLS_MAX: u32 = 100_000;

/// The `disk_lock` agent. See the module documentation for parameters and behaviour.
#[derive(Debug)]
pub struct DiskLock {
    /// What the renewal task needs too.
    cfg: Arc<Config>,
    /// The backend's state.
    backend: Backend,
}

/// The parsed parameters and where to report.
#[derive(Debug)]
struct Config {
    name: String,
    group: GroupId,
    resource: ResourceId,
    events: mpsc::Sender<AgentEvent>,
    device: PathBuf,
    node: u16,
    nodes: u16,
    lease: Duration,
    renew: Duration,
    /// How long `start` may wait for an expiry (the resource's `start_timeout_ms`).
    start_wait: Duration,
}

#[derive(Debug)]
enum Backend {
    Lease(LeaseState),
    ScsiPr {
        /// The key we registered and reserved with, while we hold the disk.
        held: Mutex<Option<u64>>,
    },
}

/// The lease backend's state.
#[derive(Debug, Default)]
struct LeaseState {
    /// The device, opened on first use, and the stop generation; one lock serializes every IO.
    io: Arc<Mutex<Io>>,
    /// The lease we hold.
    hold: Mutex<Option<Hold>>,
}

#[derive(Debug, Default)]
struct Io {
    dev: Option<Device>,
    /// Bumped by `stop` and by every new hold: a renewal of an older hold writes nothing.
    generation: u64,
}

/// A lease we hold and the task renewing it.
#[derive(Debug)]
struct Hold {
    epoch: u64,
    status: Arc<Mutex<Status>>,
    _renewer: AbortOnDrop,
}

/// How the renewals go.
#[derive(Debug)]
struct Status {
    /// When the last renewal (or the acquisition) succeeded, on our monotonic clock.
    last_ok: Instant,
    /// Why we no longer hold it, once we know.
    lost: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What `start` makes of the owner record.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Free, released, ours or expired: write it.
    Take,
    /// Held by another node (or unreadable) and not expired yet.
    Wait(String),
    /// A newer epoch holds it.
    Refuse(String),
}

/// Watches a record for expiry on our monotonic clock.
#[derive(Debug, Default)]
struct Watch {
    /// What we saw last, and since when it has not changed.
    seen: Option<(Vec<u8>, Instant)>,
}

impl Watch {
    /// True once `fingerprint` has not changed for `lease`.
    fn expired(&mut self, fingerprint: Vec<u8>, now: Instant, lease: Duration) -> bool {
        match &self.seen {
            Some((f, since)) if *f == fingerprint => now.duration_since(*since) >= lease,
            _ => {
                self.seen = Some((fingerprint, now));
                false
            }
        }
    }
}

/// The decision of `start` for `node` at `epoch` given the record read at `now`.
fn judge(
    rec: &OwnerBlock,
    node: u16,
    epoch: u64,
    watch: &mut Watch,
    now: Instant,
    lease: Duration,
) -> Verdict {
    match rec {
        OwnerBlock::Blank => Verdict::Take,
        OwnerBlock::Valid(o) if o.epoch > epoch => Verdict::Refuse(format!(
            "the lease names {} at epoch {}, newer than ours ({epoch}): an older activation \
             never takes the disk back",
            describe_owner(o.node),
            o.epoch
        )),
        OwnerBlock::Valid(o) if o.node.is_none() || o.node == Some(node) => Verdict::Take,
        OwnerBlock::Valid(o) => {
            let fp = [o.epoch.to_le_bytes(), o.renewed.to_le_bytes()].concat();
            if watch.expired(fp, now, lease) {
                Verdict::Take
            } else {
                Verdict::Wait(format!(
                    "held by node slot {} at epoch {} (renewed {})",
                    o.node.unwrap_or_default(),
                    o.epoch,
                    o.renewed
                ))
            }
        }
        OwnerBlock::Corrupt { why, raw } => {
            if watch.expired(raw.to_vec(), now, lease) {
                Verdict::Take
            } else {
                Verdict::Wait(format!(
                    "the owner record is unreadable ({why}); waiting until it has not \
                     changed for lease_ms"
                ))
            }
        }
    }
}

fn describe_owner(node: Option<u16>) -> String {
    match node {
        Some(n) => format!("node slot {n}"),
        None => "no owner (released)".to_string(),
    }
}

/// What one renewal found.
#[derive(Debug)]
enum Renewal {
    /// Renewed.
    Ok,
    /// `stop` or a newer hold took over: end quietly.
    Superseded,
    /// We no longer hold it (why).
    Lost(String),
}

impl Config {
    /// Runs `f` on the open device, under the IO lock, on a blocking thread.
    async fn io<T: Send + 'static>(
        &self,
        io: &Arc<Mutex<Io>>,
        f: impl FnOnce(&mut Io, &Device) -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let io = io.clone();
        let (path, nodes) = (self.device.clone(), self.nodes);
        tokio::task::spawn_blocking(move || {
            let mut g = lock(&io);
            if g.dev.is_none() {
                let d = Device::open(&path, nodes)?;
                tracing::info!(device = %path.display(), io = ?d.mode(), "disk_lock: device opened");
                g.dev = Some(d);
            }
            let dev = g.dev.take().ok_or("device not open")?;
            let r = f(&mut g, &dev);
            g.dev = Some(dev);
            r
        })
        .await
        .map_err(|e| format!("disk IO task failed: {e}"))?
    }

    fn report(&self, reason: String) {
        tracing::error!(resource = %self.name, device = %self.device.display(), reason = %reason,
            "disk lock lost");
        let ev = AgentEvent::Failed {
            group: self.group,
            resource: self.resource,
            reason,
        };
        let events = self.events.clone();
        tokio::spawn(async move {
            let _ = events.send(ev).await;
        });
    }
}

/// One renewal: re-read, check, bump.
fn renew_once(
    io: &mut Io,
    dev: &Device,
    node: u16,
    epoch: u64,
    gen: u64,
) -> Result<Renewal, String> {
    if io.generation != gen {
        return Ok(Renewal::Superseded);
    }
    let rec = dev
        .read_owner()
        .map_err(|e| format!("reading the owner record: {e}"))?;
    let o = match rec {
        OwnerBlock::Valid(o) if o.node == Some(node) && o.epoch == epoch => o,
        OwnerBlock::Valid(o) => {
            return Ok(Renewal::Lost(format!(
                "fenced: the lease now names {} at epoch {} (ours: {epoch})",
                describe_owner(o.node),
                o.epoch
            )))
        }
        OwnerBlock::Blank => return Ok(Renewal::Lost("the lease area was wiped".into())),
        OwnerBlock::Corrupt { why, .. } => {
            return Ok(Renewal::Lost(format!(
                "the owner record became unreadable ({why})"
            )))
        }
    };
    let slots = dev
        .read_slots()
        .map_err(|e| format!("reading the request slots: {e}"))?;
    for (n, s) in slots.iter().enumerate() {
        if let Some(s) = s.filter(|s| n != usize::from(node) && s.epoch > epoch) {
            return Ok(Renewal::Lost(format!(
                "fenced: node slot {n} requested the lease at epoch {} (ours: {epoch})",
                s.epoch
            )));
        }
    }
    dev.write_owner(&Owner {
        renewed: o.renewed.wrapping_add(1),
        ..o
    })
    .map_err(|e| format!("writing the owner record: {e}"))?;
    Ok(Renewal::Ok)
}

impl DiskLock {
    /// Parses and checks the parameters of `spec` (syntax only; [`Agent::validate`] checks
    /// the node).
    pub fn new(spec: &ResourceSpec, ctx: &AgentContext) -> Result<Self, AgentError> {
        let p = parse(spec)?;
        let backend = match p.method {
            Method::Lease => Backend::Lease(LeaseState::default()),
            Method::ScsiPr => Backend::ScsiPr {
                held: Mutex::new(None),
            },
        };
        Ok(DiskLock {
            cfg: Arc::new(Config {
                name: spec.name.clone(),
                group: ctx.group,
                resource: ctx.resource,
                events: ctx.events.clone(),
                device: p.device,
                node: p.node_slot,
                nodes: p.nodes,
                lease: Duration::from_millis(p.lease_ms),
                renew: Duration::from_millis(p.renew_ms),
                start_wait: Duration::from_millis(u64::from(spec.start_timeout_ms.max(1))),
            }),
            backend,
        })
    }

    /// The epoch of the lease this agent holds (lease method), if it holds one.
    pub fn held_epoch(&self) -> Option<u64> {
        match &self.backend {
            Backend::Lease(st) => lock(&st.hold)
                .as_ref()
                .filter(|h| lock(&h.status).lost.is_none())
                .map(|h| h.epoch),
            Backend::ScsiPr { held } => {
                lock(held).and_then(|k| scsi_pr::decode_key(k).map(|(_, e)| e))
            }
        }
    }

    async fn lease_start(&self, st: &LeaseState, epoch: u64) -> Report {
        let cfg = &self.cfg;
        let (node, lease) = (cfg.node, cfg.lease);
        if let Some(h) = lock(&st.hold).as_ref() {
            let s = lock(&h.status);
            if h.epoch == epoch && s.lost.is_none() && s.last_ok.elapsed() < lease {
                return Report::ok(format!("lease already held at epoch {epoch}"));
            }
        }
        // A hold of another epoch (or a lost one) ends here; its renewals stop.
        *lock(&st.hold) = None;
        let request = cfg
            .io(&st.io, move |io, dev| {
                io.generation += 1;
                let slots = dev
                    .read_slots()
                    .map_err(|e| format!("reading the slots: {e}"))?;
                let writes = slots
                    .get(usize::from(node))
                    .copied()
                    .flatten()
                    .map_or(0, |s| s.writes);
                dev.write_slot(
                    node,
                    &Slot {
                        epoch,
                        writes: writes.wrapping_add(1),
                    },
                )
                .map_err(|e| format!("writing our request slot: {e}"))
            })
            .await;
        if let Err(e) = request {
            return Report::failed(e);
        }
        let started = Instant::now();
        let poll = (cfg.renew / 2).max(Duration::from_millis(5));
        let mut watch = Watch::default();
        let mut last = String::new();
        for _ in 0..WATCH_POLLS_MAX {
            let rec = match cfg
                .io(&st.io, |_, dev| dev.read_owner().map_err(|e| e.to_string()))
                .await
            {
                Ok(r) => r,
                Err(e) => return Report::failed(format!("reading the owner record: {e}")),
            };
            match judge(&rec, node, epoch, &mut watch, Instant::now(), lease) {
                Verdict::Refuse(why) => return Report::failed(why),
                Verdict::Wait(why) => last = why,
                Verdict::Take => match self.take(st, &rec, epoch, poll).await {
                    Ok(true) => {
                        let was = match &rec {
                            OwnerBlock::Valid(o) => describe_owner(o.node),
                            OwnerBlock::Blank => "never taken".into(),
                            OwnerBlock::Corrupt { .. } => "unreadable".into(),
                        };
                        tracing::info!(resource = %cfg.name, device = %cfg.device.display(),
                            epoch, previous = %was, "disk lease taken");
                        return Report::ok(format!("lease taken at epoch {epoch} (was: {was})"));
                    }
                    Ok(false) => {
                        last = "another node wrote the lease at the same time".into();
                        watch = Watch::default();
                    }
                    Err(e) => return Report::failed(e),
                },
            }
            if started.elapsed() >= cfg.start_wait {
                break;
            }
            tokio::time::sleep(poll).await;
        }
        Report::failed(format!(
            "not taken within start_timeout_ms ({} ms): {last}",
            cfg.start_wait.as_millis()
        ))
    }

    /// Writes the record for us, waits `settle`, re-reads it: `Ok(true)` if it names us.
    async fn take(
        &self,
        st: &LeaseState,
        prev: &OwnerBlock,
        epoch: u64,
        settle: Duration,
    ) -> Result<bool, String> {
        let cfg = &self.cfg;
        let node = cfg.node;
        let renewed = match prev {
            OwnerBlock::Valid(o) => o.renewed.wrapping_add(1),
            _ => 1,
        };
        let mine = Owner {
            node: Some(node),
            epoch,
            renewed,
        };
        cfg.io(&st.io, move |_, dev| {
            dev.write_owner(&mine)
                .map_err(|e| format!("writing the owner record: {e}"))
        })
        .await?;
        tokio::time::sleep(settle).await;
        let (rec, gen) = cfg
            .io(&st.io, |io, dev| {
                let r = dev.read_owner().map_err(|e| format!("re-reading: {e}"))?;
                Ok((r, io.generation))
            })
            .await?;
        let OwnerBlock::Valid(o) = rec else {
            return Ok(false);
        };
        if o.node != Some(node) || o.epoch != epoch {
            return Ok(false);
        }
        let status = Arc::new(Mutex::new(Status {
            last_ok: Instant::now(),
            lost: None,
        }));
        let task = tokio::spawn(renewer(
            cfg.clone(),
            st.io.clone(),
            status.clone(),
            epoch,
            gen,
        ));
        *lock(&st.hold) = Some(Hold {
            epoch,
            status,
            _renewer: AbortOnDrop(task),
        });
        Ok(true)
    }

    async fn lease_stop(&self, st: &LeaseState) -> Report {
        let cfg = &self.cfg;
        *lock(&st.hold) = None;
        let node = cfg.node;
        let r = cfg
            .io(&st.io, move |io, dev| {
                io.generation += 1;
                let rec = dev
                    .read_owner()
                    .map_err(|e| format!("reading the owner record: {e}"))?;
                let released = match rec {
                    OwnerBlock::Valid(o) if o.node == Some(node) => {
                        dev.write_owner(&Owner {
                            node: None,
                            epoch: o.epoch,
                            renewed: o.renewed.wrapping_add(1),
                        })
                        .map_err(|e| format!("releasing: {e}"))?;
                        Some(o.epoch)
                    }
                    _ => None,
                };
                let slots = dev
                    .read_slots()
                    .map_err(|e| format!("reading the slots: {e}"))?;
                if let Some(Some(s)) = slots.get(usize::from(node)) {
                    if s.epoch != 0 {
                        dev.write_slot(
                            node,
                            &Slot {
                                epoch: 0,
                                writes: s.writes.wrapping_add(1),
                            },
                        )
                        .map_err(|e| format!("clearing our request slot: {e}"))?;
                    }
                }
                Ok(released)
            })
            .await;
        match r {
            Ok(Some(epoch)) => {
                tracing::info!(resource = %cfg.name, device = %cfg.device.display(), epoch,
                    "disk lease released");
                Report::ok(format!("lease released (epoch {epoch})"))
            }
            Ok(None) => Report::ok("lease not ours; nothing to release"),
            Err(e) => Report::failed(e),
        }
    }

    /// Ok / NotRunning / Failed of the lease we hold, re-reading the record.
    async fn lease_check(&self, st: &LeaseState) -> Report {
        let cfg = &self.cfg;
        let (epoch, lost, age) = {
            let g = lock(&st.hold);
            let Some(h) = g.as_ref() else {
                return Report::not_running("lease not held by this daemon");
            };
            let s = lock(&h.status);
            (h.epoch, s.lost.clone(), s.last_ok.elapsed())
        };
        if let Some(why) = lost {
            return Report::failed(why);
        }
        if age >= cfg.lease {
            return Report::failed(format!(
                "no successful renewal for {} ms (lease_ms {})",
                age.as_millis(),
                cfg.lease.as_millis()
            ));
        }
        let node = cfg.node;
        match cfg
            .io(&st.io, |_, dev| dev.read_owner().map_err(|e| e.to_string()))
            .await
        {
            Ok(OwnerBlock::Valid(o)) if o.node == Some(node) && o.epoch == epoch => Report::ok(
                format!("lease held at epoch {epoch} (renewed {})", o.renewed),
            ),
            Ok(OwnerBlock::Valid(o)) => Report::failed(format!(
                "the lease now names {} at epoch {}",
                describe_owner(o.node),
                o.epoch
            )),
            Ok(_) => Report::failed("the owner record is blank or unreadable"),
            Err(e) => Report::failed(format!("reading the owner record: {e}")),
        }
    }

    async fn pr(&self, cmd: &Cmd) -> Result<String, String> {
        let dev = self.cfg.device.to_string_lossy();
        scsi_pr::run(SG_PERSIST, cmd, &dev).await
    }

    async fn pr_reservation(&self) -> Result<Option<scsi_pr::Reservation>, String> {
        scsi_pr::parse_reservation(&self.pr(&Cmd::ReadReservation).await?)
    }

    async fn pr_start(&self, held: &Mutex<Option<u64>>, epoch: u64) -> Result<String, String> {
        let key = scsi_pr::key_for(self.cfg.node, epoch);
        self.pr(&Cmd::RegisterIgnore(key)).await?;
        let r = self.pr_take(held, key, epoch).await;
        if r.is_err() {
            // With type 5 every registrant may write: a node that does not hold the
            // reservation must not stay registered. Best effort; the error said is the first.
            if let Err(e) = self.pr(&Cmd::Unregister).await {
                tracing::warn!(resource = %self.cfg.name, error = %e,
                    "cannot unregister after a failed start");
            }
        }
        r
    }

    /// After registering `key`: reserve, or preempt the holder, then confirm.
    async fn pr_take(
        &self,
        held: &Mutex<Option<u64>>,
        key: u64,
        epoch: u64,
    ) -> Result<String, String> {
        let current = self.pr_reservation().await?;
        match scsi_pr::plan(key, current.as_ref()) {
            Step::Refuse(why) => return Err(why),
            Step::Held => {}
            Step::Reserve => {
                self.pr(&Cmd::Reserve(key)).await?;
            }
            Step::Preempt(victim) => {
                tracing::warn!(resource = %self.cfg.name, key = %format!("0x{key:x}"),
                    victim = %format!("0x{victim:x}"), "preempting the previous holder");
                self.pr(&Cmd::PreemptAbort { key, victim }).await?;
            }
        }
        // With type 5 every registrant may write: only our key may stay registered.
        let keys = scsi_pr::parse_keys(&self.pr(&Cmd::ReadKeys).await?)?;
        for victim in keys.into_iter().filter(|&k| k != key) {
            self.pr(&Cmd::PreemptAbort { key, victim }).await?;
        }
        match self.pr_reservation().await? {
            Some(r) if r.key == key && r.is_type5() => {
                *lock(held) = Some(key);
                Ok(format!("reserved with key 0x{key:x} (epoch {epoch})"))
            }
            Some(r) => Err(format!(
                "after reserving, the LUN is reserved by key 0x{:x} ({})",
                r.key, r.kind
            )),
            None => Err("after reserving, the LUN has no reservation".into()),
        }
    }

    async fn pr_stop(&self, held: &Mutex<Option<u64>>) -> Result<String, String> {
        let node = self.cfg.node;
        let current = self.pr_reservation().await?;
        let mut said = "not reserved by this node".to_string();
        if let Some(r) =
            current.filter(|r| scsi_pr::decode_key(r.key).map(|(n, _)| n) == Some(node))
        {
            self.pr(&Cmd::Release(r.key)).await?;
            said = format!("released key 0x{:x}", r.key);
        }
        self.pr(&Cmd::Unregister).await?;
        *lock(held) = None;
        Ok(said)
    }

    async fn pr_check(&self, held: &Mutex<Option<u64>>, adopt: bool) -> Report {
        let mine = *lock(held);
        let node = self.cfg.node;
        match self.pr_reservation().await {
            Err(e) => Report::failed(e),
            Ok(Some(r)) if Some(r.key) == mine && r.is_type5() => {
                Report::ok(format!("reserved with key 0x{:x}", r.key))
            }
            Ok(Some(r))
                if adopt
                    && r.is_type5()
                    && scsi_pr::decode_key(r.key).map(|(n, _)| n) == Some(node) =>
            {
                *lock(held) = Some(r.key);
                Report::ok(format!("reserved with key 0x{:x} (adopted)", r.key))
            }
            Ok(other) if mine.is_some() => Report::failed(format!(
                "reservation lost: {}",
                match other {
                    Some(r) => format!("now key 0x{:x} ({})", r.key, r.kind),
                    None => "none held".into(),
                }
            )),
            Ok(_) => Report::not_running("not reserved by this node"),
        }
    }
}

/// Renews every `renew` until the lease is lost or the task is aborted.
async fn renewer(
    cfg: Arc<Config>,
    io: Arc<Mutex<Io>>,
    status: Arc<Mutex<Status>>,
    epoch: u64,
    gen: u64,
) {
    let node = cfg.node;
    loop {
        tokio::time::sleep(cfg.renew).await;
        let r = cfg
            .io(&io, move |io, dev| renew_once(io, dev, node, epoch, gen))
            .await;
        let lost = match r {
            Ok(Renewal::Ok) => {
                lock(&status).last_ok = Instant::now();
                continue;
            }
            Ok(Renewal::Superseded) => return,
            Ok(Renewal::Lost(why)) => why,
            Err(e) => {
                let age = lock(&status).last_ok.elapsed();
                tracing::warn!(resource = %cfg.name, error = %e, "disk lease renewal failed");
                if age < cfg.lease {
                    continue;
                }
                format!(
                    "no successful renewal for lease_ms ({} ms): {e}",
                    cfg.lease.as_millis()
                )
            }
        };
        lock(&status).lost = Some(lost.clone());
        cfg.report(lost);
        return;
    }
}

#[async_trait]
impl Agent for DiskLock {
    async fn validate(&self) -> Result<(), AgentError> {
        let cfg = &self.cfg;
        let meta = std::fs::metadata(&cfg.device).map_err(|e| {
            param_err(
                &cfg.name,
                "device",
                format!("{}: {e}; it must exist on this node", cfg.device.display()),
            )
        })?;
        use std::os::unix::fs::FileTypeExt;
        let ft = meta.file_type();
        match &self.backend {
            Backend::Lease(_) if ft.is_block_device() || ft.is_file() => Ok(()),
            Backend::Lease(_) => Err(param_err(
                &cfg.name,
                "device",
                format!(
                    "{} is neither a block device nor a file",
                    cfg.device.display()
                ),
            )),
            Backend::ScsiPr { .. } => {
                if !ft.is_block_device() && !ft.is_char_device() {
                    return Err(param_err(
                        &cfg.name,
                        "device",
                        format!(
                            "{} is not a device; scsi_pr needs a SCSI LUN such as /dev/sdb",
                            cfg.device.display()
                        ),
                    ));
                }
                let found = std::env::var("PATH")
                    .unwrap_or_default()
                    .split(':')
                    .any(|d| !d.is_empty() && std::path::Path::new(d).join(SG_PERSIST).is_file());
                if !found {
                    return Err(param_err(
                        &cfg.name,
                        "method",
                        "scsi_pr needs sg_persist, which is not in PATH; install sg3-utils",
                    ));
                }
                Ok(())
            }
        }
    }

    async fn start(&self, epoch: u64) -> Report {
        match &self.backend {
            Backend::Lease(st) => self.lease_start(st, epoch).await,
            Backend::ScsiPr { held } => match self.pr_start(held, epoch).await {
                Ok(r) => Report::ok(r),
                Err(e) => Report::failed(e),
            },
        }
    }

    async fn stop(&self) -> Report {
        match &self.backend {
            Backend::Lease(st) => self.lease_stop(st).await,
            Backend::ScsiPr { held } => match self.pr_stop(held).await {
                Ok(r) => Report::ok(r),
                Err(e) => Report::failed(e),
            },
        }
    }

    async fn monitor(&self, _depth: Depth) -> Report {
        match &self.backend {
            Backend::Lease(st) => self.lease_check(st).await,
            Backend::ScsiPr { held } => self.pr_check(held, false).await,
        }
    }

    async fn probe(&self) -> Report {
        match &self.backend {
            Backend::Lease(st) => {
                let r = self.lease_check(st).await;
                match r.outcome {
                    crate::policy::group::Outcome::Ok => r,
                    _ => Report::not_running(r.reason),
                }
            }
            Backend::ScsiPr { held } => self.pr_check(held, true).await,
        }
    }
}

/// The two methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Lease,
    ScsiPr,
}

/// Parameters, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Params {
    method: Method,
    device: PathBuf,
    node_slot: u16,
    nodes: u16,
    lease_ms: u64,
    renew_ms: u64,
}

fn parse(spec: &ResourceSpec) -> Result<Params, AgentError> {
    let name = spec.name.as_str();
    let err = |param: &str, problem: String| param_err(name, param, problem);
    known_params(spec, "a disk_lock", PARAMS)?;
    let method = match lookup(spec, "method").map(str::trim) {
        None | Some("lease") => Method::Lease,
        Some("scsi_pr") => Method::ScsiPr,
        Some(m) => {
            return Err(err(
                "method",
                format!("{m:?} is not a method; use \"lease\" or \"scsi_pr\""),
            ))
        }
    };
    let device = match lookup(spec, "device").map(str::trim) {
        Some(d) if d.starts_with('/') && !d.contains('\0') => PathBuf::from(d),
        Some(d) => {
            return Err(err(
                "device",
                format!("{d:?} is not an absolute path; give one like \"/dev/sdb1\""),
            ))
        }
        None => {
            return Err(err(
                "device",
                "is missing; give the shared block device, e.g. device = \"/dev/sdb1\"".into(),
            ))
        }
    };
    let number = |param: &str, min: u64, max: u64| -> Result<Option<u64>, AgentError> {
        match lookup(spec, param) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .map(Some)
                .ok_or_else(|| err(param, format!("{v:?} is not a number from {min} to {max}"))),
        }
    };
    let max_slot = u64::from(NODES_MAX) - 1;
    let node_slot = number("node_slot", 0, max_slot)?.ok_or_else(|| {
        err(
            "node_slot",
            "is missing; give this node's index among the nodes that may hold the lock, \
             from 0"
                .into(),
        )
    })? as u16;
    let (nodes, lease_ms, renew_ms) = match method {
        Method::ScsiPr => {
            for p in ["nodes", "lease_ms", "renew_ms"] {
                if lookup(spec, p).is_some() {
                    return Err(err(
                        p,
                        "applies to method = \"lease\" only; remove it".into(),
                    ));
                }
            }
            (0, 0, 0)
        }
        Method::Lease => {
            let nodes = number("nodes", 1, u64::from(NODES_MAX))?.ok_or_else(|| {
                err(
                    "nodes",
                    "is missing; give how many nodes may hold the lock (the lease area has a \
                     slot for each)"
                        .into(),
                )
            })? as u16;
            if node_slot >= nodes {
                return Err(err(
                    "node_slot",
                    format!("{node_slot} is not below nodes ({nodes}); slots count from 0"),
                ));
            }
            let lease_ms = number("lease_ms", 100, 600_000)?.unwrap_or(LEASE_MS_DEFAULT);
            let renew_ms = number("renew_ms", 10, 300_000)?.unwrap_or(lease_ms / 4);
            if renew_ms * 2 > lease_ms {
                return Err(err(
                    "renew_ms",
                    format!(
                        "{renew_ms} ms is more than half of lease_ms ({lease_ms} ms): one late \
                         renewal would let the lease expire; give at most {}",
                        lease_ms / 2
                    ),
                ));
            }
            (nodes, lease_ms, renew_ms)
        }
    };
    Ok(Params {
        method,
        device,
        node_slot,
        nodes,
        lease_ms,
        renew_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(params: &[(&str, &str)]) -> ResourceSpec {
        crate::policy::testutil::agent_resource("lock", "disk_lock", params)
    }

    fn param_of(r: Result<Params, AgentError>) -> String {
        match r {
            Err(AgentError::Param {
                resource, param, ..
            }) => {
                assert_eq!(resource, "lock");
                param
            }
            other => panic!("not a parameter error: {other:?}"),
        }
    }

    #[test]
    fn parameters_parse_with_defaults() {
        let p = parse(&spec(&[
            ("device", "/dev/sdb1"),
            ("node_slot", "1"),
            ("nodes", "2"),
        ]))
        .unwrap();
        assert_eq!(p.method, Method::Lease);
        assert_eq!((p.node_slot, p.nodes), (1, 2));
        assert_eq!((p.lease_ms, p.renew_ms), (2000, 500));
        let p = parse(&spec(&[
            ("method", "scsi_pr"),
            ("device", "/dev/sdb"),
            ("node_slot", "3"),
        ]))
        .unwrap();
        assert_eq!(p.method, Method::ScsiPr);
    }

    #[test]
    fn bad_parameters_name_the_parameter() {
        let d = ("device", "/dev/sdb1");
        let s = ("node_slot", "0");
        let n = ("nodes", "2");
        for (params, want) in [
            (vec![s, n], "device"),
            (vec![("device", "sdb1"), s, n], "device"),
            (vec![d, n], "node_slot"),
            (vec![d, s], "nodes"),
            (vec![d, ("node_slot", "2"), n], "node_slot"),
            (vec![d, s, ("nodes", "0")], "nodes"),
            (vec![d, s, n, ("method", "nfs")], "method"),
            (vec![d, s, n, ("lease_ms", "10")], "lease_ms"),
            (
                vec![d, s, n, ("lease_ms", "1000"), ("renew_ms", "600")],
                "renew_ms",
            ),
            (vec![("method", "scsi_pr"), d, s, n], "nodes"),
            (vec![d, s, n, ("slot", "1")], "slot"),
        ] {
            assert_eq!(param_of(parse(&spec(&params))), want, "{params:?}");
        }
    }

    #[test]
    fn judging_the_owner_record() {
        let lease = Duration::from_millis(100);
        let t0 = Instant::now();
        let rec = |node, epoch, renewed| {
            OwnerBlock::Valid(Owner {
                node,
                epoch,
                renewed,
            })
        };
        let mut w = Watch::default();
        assert_eq!(
            judge(&OwnerBlock::Blank, 0, 5, &mut w, t0, lease),
            Verdict::Take
        );
        assert_eq!(
            judge(&rec(None, 5, 3), 0, 5, &mut w, t0, lease),
            Verdict::Take
        );
        assert_eq!(
            judge(&rec(Some(0), 4, 3), 0, 5, &mut w, t0, lease),
            Verdict::Take
        );
        // A newer epoch is refused, held or released, even by its own node.
        for r in [rec(Some(1), 6, 3), rec(None, 6, 3), rec(Some(0), 6, 3)] {
            assert!(matches!(
                judge(&r, 0, 5, &mut w, t0, lease),
                Verdict::Refuse(_)
            ));
        }
        // Another live owner: taken only once its counter stood still for the lease.
        let mut w = Watch::default();
        let later = |ms| t0 + Duration::from_millis(ms);
        assert!(matches!(
            judge(&rec(Some(1), 4, 1), 0, 5, &mut w, t0, lease),
            Verdict::Wait(_)
        ));
        assert!(matches!(
            judge(&rec(Some(1), 4, 2), 0, 5, &mut w, later(90), lease),
            Verdict::Wait(_)
        ));
        assert!(matches!(
            judge(&rec(Some(1), 4, 2), 0, 5, &mut w, later(150), lease),
            Verdict::Wait(_)
        ));
        assert_eq!(
            judge(&rec(Some(1), 4, 2), 0, 5, &mut w, later(190), lease),
            Verdict::Take
        );
        // A corrupt record likewise, never at once.
        let mut w = Watch::default();
        let bad = OwnerBlock::Corrupt {
            why: "CRC mismatch",
            raw: [7; 36],
        };
        assert!(matches!(
            judge(&bad, 0, 5, &mut w, t0, lease),
            Verdict::Wait(_)
        ));
        assert_eq!(judge(&bad, 0, 5, &mut w, later(100), lease), Verdict::Take);
    }
}
