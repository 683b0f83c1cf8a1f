//! What counts as news in the slots: the pure half of the IO thread's read. Given the slot
//! area as read this round and what was seen of each peer before, [`SlotReader`] decides what
//! to deliver (a heartbeat, a lease request, a lease grant) and which slots became unreadable
//! or readable again (for the IO thread to log). No IO, no clock, no threads, no logging: the
//! time it needs, the stamp of this run's first lease request, is passed in, so every decision
//! is tested here without a device.
//!
//! Per peer, against the last valid record seen (the rules of "What is delivered" in the
//! [module doc](super)):
//! - an unreadable slot (blank, torn, another node's) delivers nothing and changes nothing;
//! - a slot not written since (same incarnation and sequence) delivers nothing;
//! - a new incarnation, or a sequence that went back, is a restart: all of the record is news;
//! - a heartbeat when beats advanced (after a restart: when the peer has beaten at all and its
//!   beats differ from those seen);
//! - a `LeaseRequest` when a new request stamp (or a new target) is addressed to this node;
//! - a `LeaseGrant` when the grant to this node changed and answers a request of this run.

use crate::policy::lease::Grant;
use crate::policy::message::{Heartbeat, Message};
use crate::policy::spec::{NodeId, PathId};
use crate::transport::Inbound;

use super::layout::{slot_in, Record, SlotFault};

/// A change in whether a slot can be read, for the IO thread to log (once per change, not
/// per read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SlotNote {
    /// The slot cannot be used, for a reason other than the last one noted.
    Unreadable {
        /// Whose slot.
        slot: NodeId,
        /// Why.
        fault: SlotFault,
    },
    /// The slot holds a valid record again after a fault.
    Readable {
        /// Whose slot.
        slot: NodeId,
    },
}

/// What one read of the slots yields.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Round {
    /// What to deliver, peer by peer in node order.
    pub(super) news: Vec<Inbound>,
    /// Slots whose readability changed.
    pub(super) notes: Vec<SlotNote>,
}

/// What this node knows of every other slot between two reads.
#[derive(Debug)]
pub(super) struct SlotReader {
    /// This node: its slot is never read, and grants addressed to it are the ones delivered.
    me: NodeId,
    /// The disk path's id, which the news is delivered with.
    path: PathId,
    /// The node count (the slot count, and the grant entries of every record).
    nodes: usize,
    /// Bytes per slot.
    slot_bytes: usize,
    /// Per node, in NodeId order (this node's entry stays empty).
    peers: Vec<PeerView>,
}

/// What this node last saw of a peer's slot.
#[derive(Clone, Debug, Default)]
struct PeerView {
    /// The last valid record's fields that decide what is news; `None` until one was read.
    seen: Option<Seen>,
    /// The last fault noted for the slot, so a broken slot is noted once, not per read.
    fault: Option<SlotFault>,
}

/// The fields of a record that decide what is news.
#[derive(Clone, Debug)]
struct Seen {
    incarnation: u64,
    seq: u64,
    beats: u64,
    request_to: NodeId,
    request_stamp_us: u64,
    grant_to_me: Option<Grant>,
}

impl SlotReader {
    /// A reader whose baseline is `slots`, the slot area as read when the path starts: the
    /// records found there deliver nothing (they may be years old, or hold a grant meant for
    /// a previous incarnation of this node); only the notes on unreadable slots come back.
    pub(super) fn baseline(
        me: NodeId,
        path: PathId,
        nodes: usize,
        slot_bytes: usize,
        slots: &[u8],
    ) -> (SlotReader, Vec<SlotNote>) {
        let mut reader = SlotReader {
            me,
            path,
            nodes,
            slot_bytes,
            peers: vec![PeerView::default(); nodes],
        };
        let round = reader.round(slots, None, true);
        debug_assert!(round.news.is_empty());
        (reader, round.notes)
    }

    /// One read: `slots` is the slot area as read this round, `first_request_us` the stamp of
    /// this run's first lease request (`None` before it made one; grants echoing an older
    /// stamp are not for this run).
    pub(super) fn read(&mut self, slots: &[u8], first_request_us: Option<u64>) -> Round {
        self.round(slots, first_request_us, false)
    }

    fn round(&mut self, slots: &[u8], first_request_us: Option<u64>, baseline: bool) -> Round {
        let mut round = Round::default();
        for peer in 0..self.nodes as NodeId {
            if peer != self.me {
                self.read_peer(peer, slots, first_request_us, baseline, &mut round);
            }
        }
        round
    }

    /// Decodes `peer`'s slot and adds what is news, and any change of readability, to `round`.
    fn read_peer(
        &mut self,
        peer: NodeId,
        slots: &[u8],
        first_request_us: Option<u64>,
        baseline: bool,
        round: &mut Round,
    ) {
        let decoded = match slot_in(slots, peer, self.slot_bytes) {
            Some(bytes) => Record::decode(bytes, peer, self.nodes),
            None => Err(SlotFault::BadMagic),
        };
        let Some(view) = self.peers.get_mut(usize::from(peer)) else {
            return;
        };
        let rec = match decoded {
            Ok(rec) => rec,
            Err(fault) => {
                if view.fault != Some(fault) {
                    view.fault = Some(fault);
                    round.notes.push(SlotNote::Unreadable { slot: peer, fault });
                }
                return;
            }
        };
        if view.fault.take().is_some() {
            round.notes.push(SlotNote::Readable { slot: peer });
        }
        let me = usize::from(self.me);
        let grant_to_me = rec.grants.get(me).copied().flatten();
        let now = Seen {
            incarnation: rec.incarnation,
            seq: rec.seq,
            beats: rec.beats,
            request_to: rec.request_to,
            request_stamp_us: rec.request_stamp_us,
            grant_to_me,
        };
        let before = match view.seen.replace(now) {
            Some(before) => before,
            // Read before this node started: a baseline, not news (it may be years old).
            None if baseline => return,
            // First written after this node started: everything in it is news.
            None => Seen {
                incarnation: rec.incarnation,
                seq: 0,
                beats: 0,
                request_to: 0,
                request_stamp_us: 0,
                grant_to_me: None,
            },
        };
        // A new incarnation, or a sequence that went back (a writer that restarted without a
        // new incarnation over a lost slot): a fresh start whose contents are all news.
        let restarted = rec.incarnation != before.incarnation || rec.seq < before.seq;
        if !restarted && rec.seq == before.seq {
            return; // not written since: silence
        }
        let path = self.path;
        let beat = if restarted {
            rec.beats > 0 && rec.beats != before.beats
        } else {
            rec.beats > before.beats
        };
        if beat {
            round.news.push(Inbound::Heartbeat {
                from: peer,
                path,
                hb: Heartbeat {
                    incarnation: rec.incarnation,
                    digest: rec.digest,
                },
            });
        }
        let new_request = rec.request_stamp_us != 0
            && (restarted
                || rec.request_stamp_us != before.request_stamp_us
                || rec.request_to != before.request_to);
        if new_request && usize::from(rec.request_to) == me {
            round.news.push(Inbound::Message {
                from: peer,
                path,
                msg: Message::LeaseRequest {
                    stamp_us: rec.request_stamp_us,
                },
            });
        }
        if let Some(g) = grant_to_me {
            let changed = restarted || Some(g) != before.grant_to_me;
            let for_this_run = first_request_us.is_some_and(|first| g.echo_us >= first);
            if changed && for_this_run {
                round.news.push(Inbound::Message {
                    from: peer,
                    path,
                    msg: Message::LeaseGrant(g),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three nodes; this node is the middle one, so its own slot sits between two peers.
    const NODES: usize = 3;
    const ME: NodeId = 1;
    const PATH: PathId = 2;
    const SLOT: usize = 512;
    const DIGEST: u64 = 0xd16e57;

    /// A record of `node` at `incarnation`, with its sequence and beats and an empty mailbox.
    fn rec(node: NodeId, incarnation: u64, seq: u64, beats: u64) -> Record {
        Record {
            node,
            incarnation,
            digest: DIGEST,
            seq,
            beats,
            written_us: 1,
            request_to: 0,
            request_stamp_us: 0,
            grants: vec![None; NODES],
        }
    }

    /// `r` with a lease request stamped `stamp_us` for `to`.
    fn requesting(mut r: Record, to: NodeId, stamp_us: u64) -> Record {
        r.request_to = to;
        r.request_stamp_us = stamp_us;
        r
    }

    /// `r` with `grant` for node `to`.
    fn granting(mut r: Record, to: NodeId, grant: Grant) -> Record {
        r.grants[usize::from(to)] = Some(grant);
        r
    }

    fn grant(term: u64, echo_us: u64) -> Grant {
        Grant {
            term,
            echo_us,
            valid_us: 150_000,
            commit: 7,
        }
    }

    /// The slot area holding `records`, each in its node's slot; the other slots are blank.
    fn area(records: &[Record]) -> Vec<u8> {
        let mut bytes = vec![0u8; NODES * SLOT];
        for r in records {
            let at = usize::from(r.node) * SLOT;
            r.encode(&mut bytes[at..at + SLOT]);
        }
        bytes
    }

    /// A reader whose baseline holds `records`, checked to deliver nothing.
    fn reader(records: &[Record]) -> SlotReader {
        SlotReader::baseline(ME, PATH, NODES, SLOT, &area(records)).0
    }

    fn heartbeat(from: NodeId, incarnation: u64) -> Inbound {
        Inbound::Heartbeat {
            from,
            path: PATH,
            hb: Heartbeat {
                incarnation,
                digest: DIGEST,
            },
        }
    }

    fn request(from: NodeId, stamp_us: u64) -> Inbound {
        Inbound::Message {
            from,
            path: PATH,
            msg: Message::LeaseRequest { stamp_us },
        }
    }

    fn granted(from: NodeId, g: Grant) -> Inbound {
        Inbound::Message {
            from,
            path: PATH,
            msg: Message::LeaseGrant(g),
        }
    }

    /// The news of one read of `records`, with this run's first request stamped `first`.
    fn news(r: &mut SlotReader, records: &[Record], first: Option<u64>) -> Vec<Inbound> {
        let round = r.read(&area(records), first);
        assert!(round.notes.is_empty(), "unexpected notes {:?}", round.notes);
        round.news
    }

    #[test]
    fn the_baseline_delivers_nothing_however_new_its_records_look() {
        let old = granting(requesting(rec(0, 5, 40, 30), ME, 9), ME, grant(2, 100));
        let bytes = area(&[old]);
        let (mut r, notes) = SlotReader::baseline(ME, PATH, NODES, SLOT, &bytes);
        // Node 2 never wrote: noted as such, nothing else.
        assert_eq!(
            notes,
            vec![SlotNote::Unreadable {
                slot: 2,
                fault: SlotFault::Blank
            }]
        );
        let round = r.read(&bytes, Some(0));
        assert_eq!(round, Round::default());
    }

    #[test]
    fn an_advanced_beat_is_a_heartbeat_with_the_records_incarnation_and_digest() {
        let mut r = reader(&[rec(0, 5, 3, 3), rec(2, 8, 1, 1)]);
        let got = news(&mut r, &[rec(0, 5, 4, 4), rec(2, 8, 2, 2)], None);
        assert_eq!(got, vec![heartbeat(0, 5), heartbeat(2, 8)]);
    }

    #[test]
    fn a_slot_not_written_since_is_silence() {
        let mut r = reader(&[rec(0, 5, 3, 3)]);
        assert!(news(&mut r, &[rec(0, 5, 3, 3)], None).is_empty());
        // The sequence alone says whether the slot was written: a record with the same
        // sequence is not read further, whatever else it holds.
        let odd = requesting(rec(0, 5, 3, 9), ME, 4);
        assert!(news(&mut r, &[odd], Some(0)).is_empty());
    }

    #[test]
    fn a_write_without_a_fresh_beat_is_no_heartbeat() {
        // A peer whose IO thread writes while its core is wedged: the sequence moves, the
        // beats do not.
        let mut r = reader(&[rec(0, 5, 3, 3)]);
        assert!(news(&mut r, &[rec(0, 5, 4, 3)], None).is_empty());
        assert!(news(&mut r, &[rec(0, 5, 5, 3)], None).is_empty());
        assert_eq!(
            news(&mut r, &[rec(0, 5, 6, 4)], None),
            vec![heartbeat(0, 5)]
        );
    }

    #[test]
    fn a_slot_first_written_after_the_start_is_all_news() {
        let mut r = reader(&[]);
        let g = grant(3, 200);
        let first = granting(requesting(rec(0, 5, 1, 1), ME, 9), ME, g);
        let round = r.read(&area(&[first]), Some(200));
        assert_eq!(
            round.news,
            vec![heartbeat(0, 5), request(0, 9), granted(0, g)]
        );
        assert_eq!(round.notes, vec![SlotNote::Readable { slot: 0 }]);
    }

    #[test]
    fn a_slot_first_written_without_a_beat_delivers_no_heartbeat() {
        let mut r = reader(&[]);
        let round = r.read(&area(&[requesting(rec(2, 5, 1, 0), ME, 9)]), None);
        assert_eq!(round.news, vec![request(2, 9)]);
        // A record with sequence 0 (never written by a running path) is not news either.
        let mut r = reader(&[]);
        let round = r.read(&area(&[requesting(rec(2, 5, 0, 1), ME, 9)]), None);
        assert!(round.news.is_empty());
    }

    #[test]
    fn a_torn_slot_is_ignored_noted_once_and_the_last_good_record_still_counts() {
        let mut r = reader(&[rec(0, 5, 3, 3)]);
        let mut torn = area(&[rec(0, 5, 4, 4)]);
        torn[40] ^= 0x5a; // inside the beats: the CRC no longer matches
        let bad = SlotNote::Unreadable {
            slot: 0,
            fault: SlotFault::BadCrc,
        };
        assert_eq!(
            r.read(&torn, None),
            Round {
                news: vec![],
                notes: vec![bad]
            }
        );
        assert_eq!(r.read(&torn, None), Round::default());
        // Readable again: compared with the record before the torn one, so the beat counts.
        let round = r.read(&area(&[rec(0, 5, 5, 4)]), None);
        assert_eq!(round.news, vec![heartbeat(0, 5)]);
        assert_eq!(round.notes, vec![SlotNote::Readable { slot: 0 }]);
    }

    #[test]
    fn a_slot_holding_the_wrong_record_or_garbage_is_ignored() {
        let mut r = reader(&[rec(0, 5, 3, 3), rec(2, 8, 1, 1)]);
        // Node 2's record in node 0's slot, and a record for another node count in node 2's.
        let mut bytes = area(&[rec(2, 8, 2, 2)]);
        bytes.copy_within(2 * SLOT..3 * SLOT, 0);
        let mut four = rec(2, 8, 2, 2);
        four.grants.push(None);
        four.encode(&mut bytes[2 * SLOT..3 * SLOT]);
        let round = r.read(&bytes, None);
        assert!(round.news.is_empty());
        assert_eq!(
            round.notes,
            vec![
                SlotNote::Unreadable {
                    slot: 0,
                    fault: SlotFault::WrongNode(2)
                },
                SlotNote::Unreadable {
                    slot: 2,
                    fault: SlotFault::WrongCount(4)
                },
            ]
        );
        // Garbage, and a slot area too short to hold node 2's slot.
        let mut short = vec![0xa5u8; 2 * SLOT];
        short[SLOT..].fill(0);
        let round = r.read(&short, None);
        assert!(round.news.is_empty());
        assert_eq!(
            round.notes,
            vec![
                SlotNote::Unreadable {
                    slot: 0,
                    fault: SlotFault::BadMagic
                },
                SlotNote::Unreadable {
                    slot: 2,
                    fault: SlotFault::BadMagic
                },
            ]
        );
    }

    #[test]
    fn our_own_slot_is_never_read() {
        let mut r = reader(&[rec(ME, 5, 3, 3)]);
        // Our slot beating, torn, or holding a request to us: neither news nor notes.
        let mine = requesting(rec(ME, 5, 4, 4), ME, 9);
        let mut bytes = area(&[mine, rec(0, 1, 1, 1), rec(2, 1, 1, 1)]);
        let at = usize::from(ME) * SLOT;
        let round = r.read(&bytes, Some(0));
        assert_eq!(round.news, vec![heartbeat(0, 1), heartbeat(2, 1)]);
        bytes[at + 33] ^= 1;
        assert!(r.read(&bytes, None).notes.is_empty());
    }

    #[test]
    fn a_new_incarnation_is_a_restart_and_beats_if_it_has_beaten() {
        let mut r = reader(&[rec(0, 5, 40, 30)]);
        // Restarted, not yet beaten: its counters start again from zero.
        assert!(news(&mut r, &[rec(0, 6, 1, 0)], None).is_empty());
        let mut r = reader(&[rec(0, 5, 40, 30)]);
        // Restarted and beaten, with a sequence beyond the old one, or below it.
        assert_eq!(
            news(&mut r, &[rec(0, 6, 41, 1)], None),
            vec![heartbeat(0, 6)]
        );
        assert_eq!(
            news(&mut r, &[rec(0, 7, 2, 2)], None),
            vec![heartbeat(0, 7)]
        );
    }

    #[test]
    fn a_sequence_that_went_back_is_a_restart() {
        let mut r = reader(&[rec(0, 5, 40, 30)]);
        assert_eq!(
            news(&mut r, &[rec(0, 5, 2, 2)], None),
            vec![heartbeat(0, 5)]
        );
        // After a restart the beats must differ from those seen to count.
        let mut r = reader(&[rec(0, 5, 40, 30)]);
        assert!(news(&mut r, &[rec(0, 5, 39, 30)], None).is_empty());
    }

    #[test]
    fn a_restart_delivers_a_standing_request_again() {
        let mut r = reader(&[rec(0, 5, 3, 3)]);
        assert_eq!(
            news(&mut r, &[requesting(rec(0, 5, 4, 3), ME, 9)], None),
            vec![request(0, 9)]
        );
        assert!(news(&mut r, &[requesting(rec(0, 5, 5, 3), ME, 9)], None).is_empty());
        assert_eq!(
            news(&mut r, &[requesting(rec(0, 6, 1, 0), ME, 9)], None),
            vec![request(0, 9)]
        );
    }

    #[test]
    fn a_lease_request_is_news_once_and_only_to_the_node_it_is_for() {
        let mut r = reader(&[rec(0, 5, 3, 3)]);
        let req = |seq, to, stamp| requesting(rec(0, 5, seq, 3), to, stamp);
        assert_eq!(news(&mut r, &[req(4, ME, 7)], None), vec![request(0, 7)]);
        assert!(news(&mut r, &[req(5, ME, 7)], None).is_empty());
        assert_eq!(news(&mut r, &[req(6, ME, 8)], None), vec![request(0, 8)]);
        // To another node: not for us. Then the same stamp to us: a new target is news.
        assert!(news(&mut r, &[req(7, 2, 9)], None).is_empty());
        assert_eq!(news(&mut r, &[req(8, ME, 9)], None), vec![request(0, 9)]);
        // Stamp 0 is no request.
        assert!(news(&mut r, &[req(9, ME, 0)], None).is_empty());
    }

    #[test]
    fn a_grant_is_news_when_it_changes_and_answers_a_request_of_this_run() {
        let mut r = reader(&[rec(0, 5, 3, 3)]);
        let gr = |seq, g| granting(rec(0, 5, seq, 3), ME, g);
        // This node has made no request yet: no grant is for this run.
        assert!(news(&mut r, &[gr(4, grant(1, 100))], None).is_empty());
        // Echoing a stamp older than this run's first request.
        assert!(news(&mut r, &[gr(5, grant(1, 99))], Some(100)).is_empty());
        assert_eq!(
            news(&mut r, &[gr(6, grant(1, 100))], Some(100)),
            vec![granted(0, grant(1, 100))]
        );
        // The same grant again is not news; a changed one is.
        assert!(news(&mut r, &[gr(7, grant(1, 100))], Some(100)).is_empty());
        assert_eq!(
            news(&mut r, &[gr(8, grant(2, 150))], Some(100)),
            vec![granted(0, grant(2, 150))]
        );
        // A grant to another node is never delivered here.
        let other = granting(gr(9, grant(2, 150)), 2, grant(4, 500));
        assert!(news(&mut r, &[other], Some(100)).is_empty());
        // After the granter restarts, its standing grant is news again.
        let restarted = granting(rec(0, 6, 1, 0), ME, grant(2, 150));
        assert_eq!(
            news(&mut r, &[restarted], Some(100)),
            vec![granted(0, grant(2, 150))]
        );
    }
}
