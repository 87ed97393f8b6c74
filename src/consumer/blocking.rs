//! The consumer for threads that do not run async code: it owns a small
//! runtime of its own.

use std::time::Duration;

use super::{BalancedConsumer, ConsumerBuilder, ConsumerError, ConsumerMetrics, Message};

/// A [`BalancedConsumer`] behind blocking calls; iterate it for messages.
///
/// ```no_run
/// # fn f() -> Result<(), zkbalance::consumer::ConsumerError> {
/// use zkbalance::consumer::{BalancedConsumer, BlockingConsumer};
///
/// let builder = BalancedConsumer::builder().zookeeper("127.0.0.1:2181").group("g").topic("t");
/// let mut consumer = BlockingConsumer::start(builder)?;
/// for message in consumer.by_ref().take(10) {
///     message.ack();
/// }
/// consumer.stop()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct BlockingConsumer {
    // Dropped before the runtime, so its tasks wind down on a live runtime.
    inner: Option<BalancedConsumer>,
    runtime: tokio::runtime::Runtime,
}

impl BlockingConsumer {
    /// Starts a consumer on a runtime of its own (two worker threads).
    /// Must not be called from async code.
    pub fn start(builder: ConsumerBuilder) -> Result<Self, ConsumerError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("zkbalance")
            .enable_all()
            .build()
            .map_err(ConsumerError::Runtime)?;
        let inner = runtime.block_on(builder.start())?;
        Ok(BlockingConsumer { inner: Some(inner), runtime })
    }

    /// The next message, waiting at most `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<Message> {
        let inner = self.inner.as_mut()?;
        self.runtime.block_on(async { tokio::time::timeout(timeout, inner.recv()).await.ok().flatten() })
    }

    /// Commits every owned partition's acknowledged low watermark.
    pub fn commit(&self) -> Result<(), ConsumerError> {
        match &self.inner {
            Some(c) => self.runtime.block_on(c.commit()),
            None => Ok(()),
        }
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> ConsumerMetrics {
        self.inner.as_ref().map(BalancedConsumer::metrics).unwrap_or_default()
    }

    /// Commits, releases and leaves; see [`BalancedConsumer::stop`].
    pub fn stop(mut self) -> Result<(), ConsumerError> {
        match self.inner.take() {
            Some(c) => self.runtime.block_on(c.stop()),
            None => Ok(()),
        }
    }
}

impl Iterator for BlockingConsumer {
    type Item = Message;

    /// Blocks until the next message; `None` once stopped.
    fn next(&mut self) -> Option<Message> {
        let inner = self.inner.as_mut()?;
        self.runtime.block_on(inner.recv())
    }
}

impl Drop for BlockingConsumer {
    fn drop(&mut self) {
        if let Some(c) = self.inner.take() {
            let _guard = self.runtime.enter();
            drop(c);
        }
    }
}
