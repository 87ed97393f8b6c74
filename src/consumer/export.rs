//! The consumer's metrics through the `metrics` facade (feature
//! `metrics`): a task publishes a snapshot every second, and the commit and
//! rebalance durations are recorded as they happen. Without a recorder
//! installed (e.g. `metrics-exporter-prometheus`) every call is a no-op.
//!
//! Names, all labelled with `group` (and `topic`, `partition` per
//! partition): counters `zkbalance_messages_total`, `zkbalance_bytes_total`,
//! `zkbalance_commits_total`, `zkbalance_commit_failures_total`,
//! `zkbalance_fenced_commits_total`, `zkbalance_fetch_errors_total`,
//! `zkbalance_acks_overdue_total`, `zkbalance_rebalances_total`,
//! `zkbalance_partitions_lost_total`; gauges `zkbalance_owned_partitions`,
//! `zkbalance_buffered_messages`, `zkbalance_lag`,
//! `zkbalance_committed_offset`, `zkbalance_outstanding_acks`,
//! `zkbalance_oldest_unacked_seconds`; histograms
//! `zkbalance_commit_seconds` and `zkbalance_rebalance_seconds`.
//!
//! A partition's gauges are published only while this member owns it. The
//! facade cannot remove a series, so a recorder keeps a revoked
//! partition's last lag until told to drop idle gauges: give it
//! [`GAUGE_IDLE_TIMEOUT`] (for `metrics-exporter-prometheus`,
//! `idle_timeout(MetricKindMask::GAUGE, Some(GAUGE_IDLE_TIMEOUT))`, as
//! `zkbc consume --metrics-addr` and `examples/prometheus.rs` do).

use std::sync::Weak;
use std::time::Duration;

use metrics::{counter, gauge};

use super::metrics::ConsumerMetrics;
use super::probe::Probe;

/// How often the snapshot is published.
const EVERY: Duration = Duration::from_secs(1);

/// How long a recorder should keep a gauge nobody sets: long enough to
/// outlast missed publications (every second), short enough that a revoked
/// partition's series goes soon after the rebalance.
pub const GAUGE_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Publishes until the consumer is gone.
pub(crate) fn spawn(probe: Weak<Probe>, group: String) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tick.tick().await;
            let Some(probe) = probe.upgrade() else { return };
            publish(&group, &probe.snapshot(probe.published()));
        }
    });
}

fn publish(group: &str, m: &ConsumerMetrics) {
    let g = || ("group", group.to_owned());
    let counters = [
        ("zkbalance_messages_total", m.messages),
        ("zkbalance_bytes_total", m.bytes),
        ("zkbalance_commits_total", m.commits),
        ("zkbalance_commit_failures_total", m.commit_failures),
        ("zkbalance_fenced_commits_total", m.fenced_commits),
        ("zkbalance_fetch_errors_total", m.fetch_errors),
        ("zkbalance_acks_overdue_total", m.acks_overdue),
        ("zkbalance_rebalances_total", m.group.rebalances.count()),
        ("zkbalance_partitions_lost_total", m.group.partitions_lost),
    ];
    for (name, value) in counters {
        counter!(name, &[g()]).absolute(value);
    }
    gauge!("zkbalance_owned_partitions", &[g()]).set(m.partitions.len() as f64);
    gauge!("zkbalance_buffered_messages", &[g()]).set(m.buffered as f64);
    for p in &m.partitions {
        let labels = [
            g(),
            ("topic", p.topic_partition.topic.to_string()),
            ("partition", p.topic_partition.partition.0.to_string()),
        ];
        if let Some(lag) = p.lag {
            gauge!("zkbalance_lag", &labels).set(lag as f64);
        }
        if let Some(c) = p.committed {
            gauge!("zkbalance_committed_offset", &labels).set(c as f64);
        }
        gauge!("zkbalance_outstanding_acks", &labels).set(p.outstanding as f64);
        let age = p.oldest_unacked_for.map_or(0.0, |d| d.as_secs_f64());
        gauge!("zkbalance_oldest_unacked_seconds", &labels).set(age);
    }
}
