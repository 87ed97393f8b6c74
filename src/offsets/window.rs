//! Per-partition acknowledgement tracking with the low-watermark rule.

use std::collections::VecDeque;

/// Tracks which delivered offsets of one partition were acknowledged.
///
/// The committable offset is the low watermark: the first offset delivered
/// and not yet acknowledged, or the offset after the last delivered one when
/// everything is acknowledged. Committing it never skips unacknowledged work,
/// and one message never acknowledged holds back only itself and what came
/// after it, not its whole batch.
///
/// Offsets are delivered in increasing order but may have gaps (compaction,
/// transaction markers); a gap counts as acknowledged, because nothing will
/// ever be delivered there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckWindow {
    /// The low watermark: every offset below it is done.
    base: u64,
    /// `acked[i]` is the state of offset `base + i`, for every offset
    /// delivered so far at or above `base`.
    acked: VecDeque<bool>,
}

/// Why an offset was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// Delivered out of order: at or below what was delivered already.
    #[error("offset {offset} delivered after offset {next} was expected (no going back)")]
    Backwards {
        /// The offset offered.
        offset: u64,
        /// The lowest offset that could be delivered next.
        next: u64,
    },
    /// Acknowledged but never delivered (or acknowledged twice long ago).
    #[error("offset {0} was not delivered in this window")]
    NotDelivered(u64),
}

impl AckWindow {
    /// A window starting at `start`, the committed offset (next to consume).
    pub fn new(start: u64) -> Self {
        AckWindow { base: start, acked: VecDeque::new() }
    }

    /// The lowest offset that may be delivered next.
    pub fn next(&self) -> u64 {
        self.base + self.acked.len() as u64
    }

    /// The offset to commit: everything below it is acknowledged.
    pub fn low_watermark(&self) -> u64 {
        self.base
    }

    /// Delivered and not yet acknowledged.
    pub fn outstanding(&self) -> usize {
        self.acked.iter().filter(|a| !**a).count()
    }

    /// Whether nothing delivered waits for an acknowledgement.
    pub fn is_idle(&self) -> bool {
        self.acked.is_empty()
    }

    /// Records the delivery of `offset`.
    pub fn deliver(&mut self, offset: u64) -> Result<(), WindowError> {
        let next = self.next();
        if offset < next {
            return Err(WindowError::Backwards { offset, next });
        }
        if self.acked.is_empty() {
            // Nothing pending: a gap needs no slots.
            self.base = offset;
        } else {
            self.acked.extend(std::iter::repeat_n(true, (offset - next) as usize));
        }
        self.acked.push_back(false);
        Ok(())
    }

    /// Records the acknowledgement of `offset`; returns whether the low
    /// watermark moved. Acknowledging twice is harmless.
    pub fn ack(&mut self, offset: u64) -> Result<bool, WindowError> {
        if offset < self.base {
            return Ok(false);
        }
        let slot = self.acked.get_mut((offset - self.base) as usize).ok_or(WindowError::NotDelivered(offset))?;
        *slot = true;
        let before = self.base;
        while self.acked.front() == Some(&true) {
            self.acked.pop_front();
            self.base += 1;
        }
        Ok(self.base != before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn one_unacknowledged_message_holds_back_only_itself_and_later_ones() {
        let mut w = AckWindow::new(1000);
        for o in 1000..1500 {
            w.deliver(o).unwrap();
        }
        for o in (1000..1500).filter(|&o| o != 1234) {
            w.ack(o).unwrap();
        }
        assert_eq!(w.low_watermark(), 1234);
        assert_eq!(w.outstanding(), 1);
        w.ack(1234).unwrap();
        assert_eq!(w.low_watermark(), 1500);
        assert!(w.is_idle());
    }

    #[test]
    fn gaps_count_as_done_and_backwards_is_refused() {
        let mut w = AckWindow::new(10);
        w.deliver(12).unwrap();
        w.deliver(15).unwrap();
        assert_eq!(w.deliver(15), Err(WindowError::Backwards { offset: 15, next: 16 }));
        assert_eq!(w.ack(20), Err(WindowError::NotDelivered(20)));
        w.ack(15).unwrap();
        assert_eq!(w.low_watermark(), 12);
        w.ack(12).unwrap();
        assert_eq!(w.low_watermark(), 16);
    }

    proptest! {
        /// The watermark is exactly the first unacknowledged delivered
        /// offset (or past the last delivered), whatever the order of acks.
        #[test]
        fn watermark_is_first_unacked(
            start in 0u64..1000,
            steps in prop::collection::vec((1u64..4, any::<bool>()), 1..200),
            order in prop::collection::vec(any::<prop::sample::Index>(), 0..200),
        ) {
            let mut w = AckWindow::new(start);
            let mut delivered = Vec::new();
            let mut o = start;
            for (gap, _) in &steps {
                o += gap - 1;
                w.deliver(o).unwrap();
                delivered.push(o);
                o += 1;
            }
            let mut acked = std::collections::BTreeSet::new();
            for idx in &order {
                let off = delivered[idx.index(delivered.len())];
                let before = w.low_watermark();
                w.ack(off).unwrap();
                acked.insert(off);
                prop_assert!(w.low_watermark() >= before, "never backwards");
                let expect = delivered.iter().find(|d| !acked.contains(d)).copied().unwrap_or(o);
                prop_assert_eq!(w.low_watermark(), expect);
                prop_assert!(delivered.iter().filter(|d| **d < w.low_watermark()).all(|d| acked.contains(d)));
                prop_assert_eq!(w.outstanding(), delivered.len() - acked.len());
            }
        }
    }
}
