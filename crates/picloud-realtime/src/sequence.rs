//! A topic's delivery order on this node: which durable message goes to its local
//! subscribers next, whoever published it (this node, or another through the relay).
//!
//! `last` is the seq up to which everything has gone to the topic's channel. A message at
//! `last + 1` goes out (with any held ones that now follow); one at or below `last` is a
//! duplicate (the node's own echo, a repair that raced the relay) and is dropped; one past
//! a gap is held while the missing ones arrive or are read from history (the hub's
//! repairs). Streams keep their own order check behind this one, so a message let through
//! past a gap that history cannot fill still reaches each stream as a gap it repairs (or
//! resyncs) on its own.
//!
//! The topic row lock makes a visible seq N + 1 imply that N is committed, so a gap is
//! always something in flight or lost on the relay, never something that may not exist.

use std::collections::BTreeMap;
use std::sync::Arc;

use picloud_core::message::Message;
use smallvec::SmallVec;

/// Most messages held past one topic's gap.
pub(crate) const MAX_HELD: usize = 1024;

/// Messages to send, in order; most of the time one.
pub(crate) type Sends = SmallVec<[Arc<Message>; 1]>;

#[derive(Default)]
pub(crate) struct Sequence {
    /// `None` until the first message or the first stream's starting position.
    last: Option<i64>,
    /// Messages past a gap, by seq.
    held: BTreeMap<i64, Arc<Message>>,
    /// The topic's end as last seen committed (a position check, a pointer frame), which
    /// `last` must reach.
    end: i64,
}

/// What offering a durable message did.
#[derive(Debug, PartialEq)]
pub(crate) enum Offered {
    /// In order: these go out now, in this order.
    Send(Sends),
    /// Sent already.
    Skip,
    /// Past a gap: held. `opened`: nothing was held before (a repair is to be scheduled).
    Held { opened: bool },
}

impl Sequence {
    /// `m` must be durable (have a seq).
    pub(crate) fn offer(&mut self, m: Arc<Message>) -> Offered {
        let seq = m.seq.expect("a durable message");
        let Some(last) = self.last else {
            self.last = Some(seq);
            return Offered::Send(self.release(m));
        };
        if seq <= last {
            return Offered::Skip;
        }
        if seq == last + 1 {
            self.last = Some(seq);
            return Offered::Send(self.release(m));
        }
        let opened = self.held.is_empty();
        self.held.insert(seq, m);
        if self.held.len() > MAX_HELD {
            // A gap that stays open (history unreadable) must not hold memory without end:
            // go on past it; each stream repairs it on its own.
            return Offered::Send(self.give_up_gap());
        }
        Offered::Held { opened }
    }

    /// `first`, then every held message that follows it without a gap.
    fn release(&mut self, first: Arc<Message>) -> Sends {
        let mut out = Sends::new();
        out.push(first);
        while let Some(entry) = self.held.first_entry() {
            let seq = *entry.key();
            let last = self.last.expect("set before releasing");
            if seq <= last {
                entry.remove();
            } else if seq == last + 1 {
                self.last = Some(seq);
                out.push(entry.remove());
            } else {
                break;
            }
        }
        out
    }

    /// The oldest message held past the gap, if any.
    pub(crate) fn first_held(&self) -> Option<&Arc<Message>> {
        self.held.first_key_value().map(|(_, m)| m)
    }

    /// A stream of this node starts on the topic, whose last committed seq it read after
    /// subscribing: where an unknown order begins.
    pub(crate) fn started(&mut self, committed: i64) {
        if self.last.is_none() {
            self.last = Some(committed);
        }
    }

    /// The topic's committed end is at least `end`. Answers whether that leaves a gap.
    pub(crate) fn notice(&mut self, end: i64) -> bool {
        self.end = self.end.max(end);
        self.gap().is_some()
    }

    /// The seqs missing now: `(after, up_to)`, read from history by a repair.
    pub(crate) fn gap(&self) -> Option<(i64, i64)> {
        let last = self.last?;
        let up_to = match self.held.first_key_value() {
            Some((first, _)) => first - 1,
            None => self.end,
        };
        (up_to > last).then_some((last, up_to))
    }

    /// After a repair: whatever history did not have is given up on (streams resync past
    /// it themselves); the held messages go out.
    pub(crate) fn give_up_gap(&mut self) -> Sends {
        match self.held.pop_first() {
            Some((seq, m)) => {
                self.last = Some(seq);
                self.release(m)
            }
            None => {
                if let Some(last) = self.last {
                    self.last = Some(last.max(self.end));
                }
                Sends::new()
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn last(&self) -> Option<i64> {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use picloud_core::ids::AppId;
    use picloud_core::topic::TopicName;

    fn m(seq: i64) -> Arc<Message> {
        Arc::new(Message {
            app_id: AppId("a".into()),
            topic: TopicName::parse("t").unwrap(),
            seq: Some(seq),
            payload: Arc::from("{}"),
            published_at: 0,
            kind: Default::default(),
        })
    }

    fn seqs(o: Offered) -> Vec<i64> {
        match o {
            Offered::Send(ms) => ms.iter().map(|m| m.seq.unwrap()).collect(),
            other => panic!("not sent: {other:?}"),
        }
    }

    #[test]
    fn in_order_goes_out_duplicates_drop_and_a_gap_holds_until_filled() {
        let mut s = Sequence::default();
        assert_eq!(
            seqs(s.offer(m(5))),
            [5],
            "the first message starts the order"
        );
        assert_eq!(s.offer(m(5)), Offered::Skip);
        assert_eq!(s.offer(m(8)), Offered::Held { opened: true });
        assert_eq!(s.offer(m(7)), Offered::Held { opened: false });
        assert_eq!(s.gap(), Some((5, 6)), "6 is missing");
        assert_eq!(seqs(s.offer(m(6))), [6, 7, 8]);
        assert_eq!(s.gap(), None);
        assert_eq!(s.offer(m(3)), Offered::Skip);
    }

    #[test]
    fn a_stream_start_fixes_an_unknown_order_only() {
        let mut s = Sequence::default();
        s.started(10);
        assert_eq!(s.offer(m(10)), Offered::Skip);
        s.started(4);
        assert_eq!(s.last(), Some(10));
        assert_eq!(s.offer(m(12)), Offered::Held { opened: true });
    }

    #[test]
    fn a_noticed_end_is_a_gap_until_reached() {
        let mut s = Sequence::default();
        assert!(!s.notice(4), "nothing known yet: nothing to repair");
        s.started(3);
        assert!(s.notice(5));
        assert_eq!(s.gap(), Some((3, 5)));
        assert_eq!(seqs(s.offer(m(4))), [4]);
        assert_eq!(seqs(s.offer(m(5))), [5]);
        assert_eq!(s.gap(), None);
        assert!(!s.notice(5));
    }

    #[test]
    fn a_gap_never_holds_more_than_max_held() {
        let mut s = Sequence::default();
        s.started(0);
        for seq in 2..=MAX_HELD as i64 + 1 {
            assert!(matches!(s.offer(m(seq)), Offered::Held { .. }));
        }
        let out = seqs(s.offer(m(MAX_HELD as i64 + 2)));
        assert_eq!(
            out.len(),
            MAX_HELD + 1,
            "everything held goes out, in order"
        );
        assert_eq!(out[0], 2);
        assert_eq!(s.gap(), None);
    }

    #[test]
    fn giving_up_a_gap_releases_what_was_held() {
        let mut s = Sequence::default();
        s.started(1);
        s.offer(m(4));
        s.offer(m(5));
        s.offer(m(7));
        let out: Vec<_> = s.give_up_gap().iter().map(|m| m.seq.unwrap()).collect();
        assert_eq!(out, [4, 5]);
        assert_eq!(s.gap(), Some((5, 6)));
        let out: Vec<_> = s.give_up_gap().iter().map(|m| m.seq.unwrap()).collect();
        assert_eq!(out, [7]);
        s.notice(9);
        assert!(s.give_up_gap().is_empty());
        assert_eq!(s.last(), Some(9));
    }
}
