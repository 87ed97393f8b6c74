//! The consumer for threads that do not run async code: it owns a small
//! runtime of its own.

use std::time::Duration;

use super::{BalancedConsumer, ConsumeError, ConsumerBuilder, ConsumerError, ConsumerMetrics, Message};

/// A [`BalancedConsumer`] behind blocking calls; iterate it for messages
/// (and errors, as [`BalancedConsumer::recv`] hands them over).
///
/// ```no_run
/// # fn f() -> Result<(), zkbalance::consumer::ConsumerError> {
/// use zkbalance::consumer::{BalancedConsumer, BlockingConsumer};
///
/// let builder = BalancedConsumer::builder().zookeeper("127.0.0.1:2181").group("g").topic("t");
/// let mut consumer = BlockingConsumer::start(builder)?;
/// for item in consumer.by_ref().take(10) {
///     match item {
///         Ok(message) => message.ack(),
///         Err(e) => eprintln!("{e}"),
///     }
/// }
/// consumer.stop()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct BlockingConsumer {
    // Dropped before the runtime, so its tasks wind down on a live runtime.
    inner: Option<BalancedConsumer>,
    /// Taken on drop: inside async code it is shut down in the background
    /// (dropping a runtime there panics).
    runtime: Option<tokio::runtime::Runtime>,
}

impl BlockingConsumer {
    /// Starts a consumer on a runtime of its own (two worker threads).
    ///
    /// # Errors
    /// [`ConsumerError::InsideRuntime`] when called from async code (use
    /// [`BalancedConsumer`] there), and every error of
    /// [`ConsumerBuilder::start`].
    pub fn start(builder: ConsumerBuilder) -> Result<Self, ConsumerError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(ConsumerError::InsideRuntime);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("zkbalance")
            .enable_all()
            .build()
            .map_err(ConsumerError::Runtime)?;
        let inner = runtime.block_on(builder.start())?;
        Ok(BlockingConsumer { inner: Some(inner), runtime: Some(runtime) })
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("taken only on drop")
    }

    /// The next message or error, waiting at most `timeout`; `None` when
    /// nothing came in time or the consumer stopped.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<Result<Message, ConsumeError>> {
        let runtime = self.runtime.as_ref()?;
        let inner = self.inner.as_mut()?;
        runtime.block_on(async { tokio::time::timeout(timeout, inner.recv()).await.ok().flatten() })
    }

    /// Commits every owned partition's acknowledged low watermark.
    pub fn commit(&self) -> Result<(), ConsumerError> {
        match &self.inner {
            Some(c) => self.runtime().block_on(c.commit()),
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
            Some(c) => self.runtime().block_on(c.stop()),
            None => Ok(()),
        }
    }
}

impl Iterator for BlockingConsumer {
    type Item = Result<Message, ConsumeError>;

    /// Blocks until the next message or error; `None` once stopped.
    fn next(&mut self) -> Option<Self::Item> {
        let runtime = self.runtime.as_ref()?;
        let inner = self.inner.as_mut()?;
        runtime.block_on(inner.recv())
    }
}

impl Drop for BlockingConsumer {
    fn drop(&mut self) {
        let Some(runtime) = self.runtime.take() else { return };
        if let Some(c) = self.inner.take() {
            let _guard = runtime.enter();
            drop(c);
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            runtime.shutdown_background();
        }
    }
}
