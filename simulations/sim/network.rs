//! The simulated network: delays with jitter that reorders, loss and duplication (background
//! and per path), and one-way cuts per (path, from, to).

use super::*;

/// The network's state: the options in force and the faults on it.
pub(super) struct Network {
    /// Delays, loss and duplication (faults stop: loss and duplication go to zero).
    pub(super) opts: NetworkOptions,
    /// cut[path][from * n + to]: messages from → to on this path are dropped.
    pub(super) cut: Vec<Vec<bool>>,
    /// Per path: loss a fault added, per million.
    pub(super) path_loss_ppm: Vec<u32>,
}

impl Network {
    /// No fault on any of `paths` paths between `n` nodes.
    pub(super) fn new(opts: NetworkOptions, paths: usize, n: usize) -> Network {
        Network {
            opts,
            cut: vec![vec![false; n * n]; paths],
            path_loss_ppm: vec![0; paths],
        }
    }
}

impl Sim {
    pub(super) fn delay(&mut self, kind: PathKind) -> u64 {
        match kind {
            PathKind::Network => {
                let (base, jitter) = self.net.opts.delay_us;
                base + self.rng.range(0, jitter)
            }
            PathKind::Disk => {
                let (base, spread) = self.net.opts.disk_delay_us;
                base + self.rng.range(0, spread)
            }
        }
    }

    pub(super) fn link_up(&self, path: usize, from: NodeId, to: NodeId) -> bool {
        let n = self.nodes.len();
        !self.net.cut[path][usize::from(from) * n + usize::from(to)]
    }

    pub(super) fn loss_on(&self, p: usize) -> u32 {
        if self.spec.paths[p].kind == PathKind::Disk {
            return 0;
        }
        self.net.opts.loss_ppm.max(self.net.path_loss_ppm[p])
    }

    pub(super) fn set_cut(&mut self, path: usize, from: NodeId, to: NodeId, on: bool, until: u64) {
        self.write_cut(path, from, to, on);
        if on {
            self.schedule(
                until,
                Ev::Heal(HealKind::Cut {
                    path: path as u8,
                    from,
                    to,
                }),
            );
        }
    }

    /// Cut (`on`) or mend the link from `from` to `to` on `path`, and tell `from`'s node core,
    /// as a QUIC connection going down or coming up would.
    pub(super) fn write_cut(&mut self, path: usize, from: NodeId, to: NodeId, on: bool) {
        let n = self.nodes.len();
        self.net.cut[path][usize::from(from) * n + usize::from(to)] = on;
        self.tell_link(from, to, path);
    }

    /// Tell `from`'s node core whether its link to `to` on `path` is up.
    /// Tell `node`'s core the state of every link it has (a new core, or one that did not
    /// step for a while, learns them all).
    pub(super) fn tell_links(&mut self, node: NodeId) {
        let n = self.nodes.len() as NodeId;
        for p in 0..self.spec.paths.len() {
            for peer in (0..n).filter(|&peer| peer != node) {
                self.tell_link(node, peer, p);
            }
        }
    }

    pub(super) fn tell_link(&mut self, from: NodeId, to: NodeId, path: usize) {
        let up = self.link_up(path, from, to);
        let local = self.nodes[usize::from(from)].clock.local(self.now_us);
        if let Some(core) = self.nodes[usize::from(from)].core.as_mut() {
            let input = Input::Connection {
                peer: to,
                path: path as PathId,
                up,
            };
            core.handle(input, local);
        }
    }

    /// A heartbeat datagram from `node` on `path`: one event for every peer it reaches.
    pub(super) fn send_heartbeat(&mut self, node: NodeId, path: PathId, hb: Heartbeat) {
        let p = usize::from(path);
        let kind = self.spec.paths[p].kind;
        let loss = self.loss_on(p);
        let n = self.nodes.len();
        let row = usize::from(node) * n;
        // One event for every peer the datagram reaches: a bit set, no allocation.
        let mut to = 0u128;
        for peer in 0..n {
            if peer == usize::from(node)
                || self.net.cut[p][row + peer]
                || (loss > 0 && self.rng.chance(loss))
            {
                continue;
            }
            to |= 1 << peer;
        }
        if to != 0 {
            let at = self.now_us + self.delay(kind);
            let boots = self.boots;
            self.schedule(
                at,
                Ev::Hb {
                    from: node,
                    path,
                    hb,
                    to,
                    boots,
                },
            );
        }
    }

    /// A message from `node` to `to` on the paths its core chose.
    pub(super) fn send_message(&mut self, node: NodeId, to: NodeId, paths: PathSet, msg: Message) {
        if usize::from(to) >= self.nodes.len() {
            return;
        }
        self.check_durable(node, &msg);
        // The node core chose the paths (`policy::route`): leases on every path that
        // is up, everything else on one network path. Of a lease message's copies only
        // the first to arrive is delivered: the later ones change nothing at the
        // receiver (one grant per request, an equal grant extends nothing), and
        // dropping them saves a third of a large cluster's events. Duplication below
        // still sends some second copies, so the receivers' handling of copies stays
        // exercised.
        let inc = self.nodes[usize::from(to)].incarnation;
        let mut first: Option<u64> = None;
        for p in paths.iter() {
            let p = usize::from(p);
            if !self.link_up(p, node, to) {
                continue;
            }
            let kind = self.spec.paths[p].kind;
            if !self.rng.chance(self.loss_on(p)) {
                let at = self.now_us + self.delay(kind);
                first = Some(first.map_or(at, |f| f.min(at)));
            }
        }
        if let Some(at) = first {
            if self.rng.chance(self.net.opts.dup_ppm) {
                let again = at + self.delay(PathKind::Network);
                self.schedule(
                    again,
                    Ev::Msg {
                        from: node,
                        to,
                        msg: msg.clone(),
                        inc,
                    },
                );
            }
            self.schedule(
                at,
                Ev::Msg {
                    from: node,
                    to,
                    msg,
                    inc,
                },
            );
        }
    }
}
