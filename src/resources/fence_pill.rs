//! The fencer's half of the poison pill (`[fencing] method = "poison_pill"`; the on-disk part
//! and the target's half are in `transport/disk/pill.rs` and `monitor/`): write a pill into
//! the target's pill block, then wait for its monitor's acknowledgement or for the bound.
//!
//! | outcome | when |
//! |---|---|
//! | done, acknowledged | the target's ack repeats our nonce and says everything stopped |
//! | done, by the bound | `pill_timeout_ms` passed without such an ack: a node that never read the pill has lost its lease by then (validation keeps the bound above lease and margin), and its monitor stopped everything at the lease's end |
//! | failed | the device cannot be opened, is not this cluster's disk path, or the pill cannot be written: with no pill on the disk nothing was asked, as with a power switch that cannot be reached |
//!
//! Blocking: [`super::fence::FenceDevice`] runs it on `spawn_blocking`.

use std::time::{Duration, Instant};

use crate::policy::spec::NodeId;
use crate::transport::disk::pill::{unix_us, Ack, Block, Pill, PillDisk, PillPlace};

/// How a node fences with pills.
#[derive(Clone, Debug)]
pub struct PillFence {
    /// Where the pills are.
    pub place: PillPlace,
    /// This node (the fencer), and every node's name by id.
    pub me: NodeId,
    /// The node names, by id (the witness included, as in the disk path).
    pub names: Vec<String>,
    /// `pill_timeout_ms`.
    pub bound: Duration,
    /// How often to read the target's acknowledgement (the disk path's `interval_ms`).
    pub poll: Duration,
}

/// How a pill fence ended: `Ok(words)` done, `Err(why)` failed.
pub type PillResult = Result<String, String>;

impl PillFence {
    fn id(&self, node: &str) -> Option<NodeId> {
        self.names
            .iter()
            .position(|n| n == node)
            .and_then(|i| NodeId::try_from(i).ok())
    }

    /// Whether the device carries this cluster's disk path.
    pub fn check(&self) -> PillResult {
        let disk = PillDisk::open(&self.place).map_err(|e| e.to_string())?;
        match disk.read_pill(self.me).map_err(|e| e.to_string())? {
            Block::Damaged(why) => Ok(format!(
                "{} answers; this node's pill block is damaged ({why}) and is ignored",
                disk.device().display()
            )),
            _ => Ok(format!("{} answers", disk.device().display())),
        }
    }

    /// Fence `node`: the pill, then the acknowledgement or the bound. Blocking.
    pub fn fence(&self, node: &str) -> PillResult {
        let Some(target) = self.id(node) else {
            return Err(format!("no node {node:?} in the disk path"));
        };
        let disk = PillDisk::open(&self.place).map_err(|e| e.to_string())?;
        // A nonce no earlier ack can hold: the clock, made odd so it is never 0.
        let mut nonce = unix_us() | 1;
        if let Ok(Block::Valid(Ack { nonce: old, .. })) = disk.read_ack(target) {
            if old == nonce {
                nonce += 2;
            }
        }
        let bound_ms = u32::try_from(self.bound.as_millis()).unwrap_or(u32::MAX);
        let pill = Pill {
            target,
            from: self.me,
            bound_ms,
            nonce,
            written_unix_us: unix_us(),
        };
        disk.write_pill(&pill).map_err(|e| e.to_string())?;
        let started = Instant::now();
        tracing::warn!(target = node, nonce, bound_ms, device = %disk.device().display(),
            "poison pill written");
        let mut partial = None;
        while started.elapsed() < self.bound {
            std::thread::sleep(self.poll.min(self.bound.saturating_sub(started.elapsed())));
            match disk.read_ack(target) {
                Ok(Block::Valid(a)) if a.nonce == nonce && a.stopped => {
                    return Ok(format!(
                        "{node} acknowledged the poison pill after {} ms: everything stopped",
                        started.elapsed().as_millis()
                    ));
                }
                Ok(Block::Valid(a)) if a.nonce == nonce => {
                    partial = Some("acknowledged, but a hard stop failed there");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "reading the acknowledgement failed"),
            }
        }
        Ok(format!(
            "{node} {} within pill_timeout_ms ({bound_ms} ms): its lease has ended, and with it \
             everything exclusive there",
            partial.unwrap_or("did not acknowledge the poison pill")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::disk::DiskPath;

    fn fence_on(dir: &std::path::Path, bound_ms: u64) -> PillFence {
        let device = dir.join("disk");
        std::fs::File::create(&device).expect("the device file");
        PillFence {
            place: PillPlace {
                device,
                cluster: "c".into(),
                nodes: 2,
                slot_bytes: 4096,
            },
            me: 0,
            names: vec!["n1".into(), "n2".into()],
            bound: Duration::from_millis(bound_ms),
            poll: Duration::from_millis(10),
        }
    }

    #[test]
    fn a_pill_fence_is_done_on_the_targets_ack_or_at_the_bound_and_fails_without_a_disk() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let f = fence_on(dir.path(), 300);
        let blank = f.fence("n2").expect_err("a blank device carries no pill");
        assert!(blank.contains("not formatted"), "{blank}");
        assert!(f.check().is_err(), "the device check says so too");
        DiskPath::format(&f.place.device, "c", 2, 4096).expect("format");
        assert!(f.check().is_ok());
        assert!(f.fence("n9").is_err(), "an unknown node");

        // Nobody reads it: done once the bound passed.
        let t0 = Instant::now();
        let words = f.fence("n2").expect("done by the bound");
        assert!(words.contains("did not acknowledge"), "{words}");
        assert!(t0.elapsed() >= Duration::from_millis(300));

        // The target's monitor, played by a thread: acknowledges the pill it finds.
        let place = f.place.clone();
        let target = std::thread::spawn(move || {
            let disk = PillDisk::open(&place).expect("open");
            let start = Instant::now();
            let mut last = None;
            while start.elapsed() < Duration::from_secs(5) {
                if let Ok(Block::Valid(p)) = disk.read_pill(1) {
                    if last.is_some_and(|n| n != p.nonce) {
                        disk.write_ack(&Ack {
                            node: 1,
                            stopped: true,
                            nonce: p.nonce,
                            written_unix_us: unix_us(),
                        })
                        .expect("ack");
                        return p;
                    }
                    last = Some(p.nonce);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            panic!("no new pill");
        });
        std::thread::sleep(Duration::from_millis(20));
        let f = PillFence {
            bound: Duration::from_secs(5),
            ..f
        };
        let words = f.fence("n2").expect("acknowledged");
        assert!(words.contains("acknowledged the poison pill"), "{words}");
        let pill = target.join().expect("the target thread");
        assert_eq!((pill.target, pill.from, pill.bound_ms), (1, 0, 5000));
    }
}
