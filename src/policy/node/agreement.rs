//! Agreement by content, the node core's part (docs/architecture.md §3 rule 8): whether this
//! node's `cluster.toml` is the committed one and its peers' are too, the committed entries it
//! could not read, and a coordinator's proposal of its own config before anything else.

use super::*;

impl NodeCore {
    /// Whether `peer`'s last heartbeat carried our config digest (this node, and a peer not
    /// heard yet: yes).
    pub fn config_agrees(&self, peer: NodeId) -> bool {
        self.peer_digest
            .get(usize::from(peer))
            .is_none_or(|d| d.is_none_or(|d| d == self.spec.digest))
    }

    /// Why this node must not act on the cluster's state, if it must not: the config
    /// committed in the log ([`Command::Config`]) is not this node's file, or a committed
    /// entry names what this file does not have (`policy/entry.rs`). Such a node runs no
    /// group, asks for no lease and, as coordinator, proposes only its own config; its votes
    /// go only to candidates with its own file (docs/architecture.md, "Agreement by content").
    /// Across restarts too: the log it replays says so again.
    pub fn config_differs(&self) -> Option<String> {
        if self.config_ok() {
            return None;
        }
        if let Some((index, why)) = &self.unreadable {
            return Some(format!(
                "committed entry {index} cannot be applied here: {why}; the files differ"
            ));
        }
        Some(format!(
            "the committed config is {:#018x}, this node's file is {:#018x}",
            self.state.config, self.spec.digest
        ))
    }

    /// [`NodeCore::config_differs`] is `None` (cheap: asked on every pass).
    pub(super) fn config_ok(&self) -> bool {
        self.unreadable.is_none()
            && (self.state.config == 0 || self.state.config == self.spec.digest)
    }

    /// Keeps the first committed entry this node could not read, until the cluster commits
    /// this node's own config after it: an entry naming a group or node the agreed file no
    /// longer has is history then (a group removed from every file). An entry of another
    /// format is never forgiven. Tells when this node starts or stops acting on the state.
    pub(super) fn note_unreadable(&mut self) {
        for (index, why) in self.consensus.take_unreadable() {
            if self.unreadable.is_none() && index > self.own_config_at {
                self.unreadable = Some((index, why));
            }
        }
        if let Some((index, EntryError::Unknown { .. })) = self.unreadable {
            if index < self.own_config_at {
                self.unreadable = None;
            }
        }
        let ok = self.config_ok();
        if ok != self.config_was_ok {
            self.config_was_ok = ok;
            self.effects.push(Effect::Event(Event::ConfigDiffers {
                why: self.config_differs(),
            }));
            self.locals.mark_all();
            if let Some(c) = &mut self.coordinator {
                c.dirty = true;
            }
        }
    }

    /// A coordinator whose config is not the committed one proposes it, and nothing else
    /// until it is applied: every later entry is then read under the config it was proposed
    /// under. Its voters had its file, so a majority agrees on it. Asked again every
    /// [`CONFIG_RETRY_US`] while it does not commit. A coordinator that cannot read its own
    /// log (an entry of another format) proposes nothing at all.
    pub(super) fn agree_config(&mut self, now_us: u64) {
        let term = self.consensus.term();
        let Some(c) = self.coordinator.as_mut() else {
            return;
        };
        c.dirty = false;
        if matches!(self.unreadable, Some((_, EntryError::Malformed(_)))) {
            c.wake_us = None;
            return;
        }
        let due = match self.config_asked {
            Some((t, at)) if t == term => now_us >= at + CONFIG_RETRY_US,
            _ => true,
        };
        if due {
            self.config_asked = Some((term, now_us));
            self.consensus.propose(&Command::Config {
                digest: self.spec.digest,
            });
        }
        let at = self.config_asked.map_or(now_us, |(_, at)| at);
        c.wake_us = Some(at + CONFIG_RETRY_US);
    }
}
