//! The consumer's side of the fetch channel: runs of fetched messages,
//! handed over one at a time, each checked against its partition's lease
//! at the moment it is handed over.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::partition::PartitionCell;
use super::{BalancedConsumer, Message};
use crate::balance::Verdict;
use crate::fetch::Run;

impl BalancedConsumer {
    /// The next buffered message that may be handed over now, checked at
    /// this instant against its partition's lease; or why there is none.
    pub(super) fn next_ready(&mut self) -> Ready {
        loop {
            let now = crate::coord::clock::now();
            let verdict = match self.front() {
                Some(cell) => cell.gate.check(now),
                None => return Ready::Empty,
            };
            match verdict {
                Verdict::Deliver => {}
                Verdict::Ended => {
                    // A run is one partition's: all of it goes.
                    if let Some((_, rest, _)) = self.pending.pop_front() {
                        self.taken += rest.len();
                        self.shared.counters.dropped_revoked.fetch_add(rest.len() as u64, Ordering::Relaxed);
                    }
                    continue;
                }
                Verdict::Lapsed => return Ready::Lapsed,
            }
            let (cell, messages, _) = self.pending.front_mut().expect("front() found a message");
            let (cell, f) = (Arc::clone(cell), messages.next().expect("front() found a message"));
            self.taken += 1;
            if self.taken >= 64 {
                self.release_taken();
            }
            let Ok(offset) = u64::try_from(f.offset) else { continue };
            if !cell.deliver(offset, now, self.ack_on_receipt) {
                self.shared.counters.dropped_revoked.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let bytes = f.payload.as_ref().map_or(0, |b| b.len()) + f.key.as_ref().map_or(0, |b| b.len());
            self.delivered.0 += 1;
            self.delivered.1 += bytes as u64;
            // Two uncontended relaxed stores: the exporter reads them once a
            // second, and an application that stops calling `recv` must not
            // leave its last messages uncounted.
            self.probe.publish(self.delivered);
            return Ready::Message(Message {
                offset,
                key: f.key,
                payload: f.payload,
                timestamp: f.timestamp,
                broker: f.broker,
                headers: f.headers,
                checked_at: now,
                cell,
            });
        }
    }

    /// The partition of the next fetched message, dropping spent runs.
    fn front(&mut self) -> Option<&Arc<PartitionCell>> {
        while self.pending.front().is_some_and(|(_, rest, _)| rest.len() == 0) {
            // Everything before the partition's end was handed over.
            if let Some((cell, _, Some(end))) = self.pending.pop_front() {
                cell.reached_end(end);
            }
        }
        self.pending.front().map(|(cell, _, _)| cell)
    }

    pub(super) fn release_taken(&mut self) {
        if self.taken > 0 {
            self.probe.buffered.fetch_sub(self.taken, Ordering::AcqRel);
            self.taken = 0;
            if self.probe.fetch_stats.paused.load(Ordering::Relaxed) {
                self.shared.fetcher.wake();
            }
        }
    }

    /// Queues fetched runs behind what is pending.
    pub(super) fn queue(&mut self, runs: Vec<Run<Arc<PartitionCell>>>) {
        self.pending.extend(runs.into_iter().map(|r| (r.tag, r.messages.into_iter(), r.end)));
    }
}

/// What `recv` waits for when nothing can be handed over now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    Batch,
    Pulse,
}

/// What the buffer holds for the application at this instant.
pub(super) enum Ready {
    Message(Message),
    /// Nothing buffered: wait for the fetcher.
    Empty,
    /// The front partition's lease has lapsed: wait for a renewal or loss.
    Lapsed,
}
