//! Member and owner registrations, read once per session: such a znode is
//! written once and afterwards only deleted, so a read that leaves a data
//! watch stays exact until that watch fires. A group read then costs one
//! request per *new* registration instead of one per registration.
//!
//! Exactness rests on ordering: the client hands a watch event to its
//! watcher before the reply to any later request, so when a reply (a
//! listing, say) reflects a change, the cached entry's watcher has already
//! fired and the lookup, which checks it first, misses.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use futures_util::FutureExt;
use parking_lot::Mutex;
use zookeeper_client::{OneshotWatcher, WatchedEvent};

use crate::protocol::ops::Stat;

type Fired = Pin<Box<dyn Future<Output = WatchedEvent> + Send>>;

struct Entry {
    data: Vec<u8>,
    stat: Stat,
    fired: Fired,
}

impl Entry {
    fn is_current(&mut self) -> bool {
        // Polled under the lock: it never blocks (an already-sent event is
        // ready, an unsent one is pending).
        self.fired.as_mut().now_or_never().is_none()
    }
}

/// The cache of one session (cleared with its watches).
#[derive(Default)]
pub(crate) struct RegistrationCache {
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    map: HashMap<String, Entry>,
    /// Entries of deleted znodes stay until a sweep; one runs when the map
    /// doubles.
    sweep_at: usize,
}

const MIN_SWEEP: usize = 256;

impl RegistrationCache {
    /// The registration at `path`, if cached and unchanged since.
    pub fn get(&self, path: &str) -> Option<(Vec<u8>, Stat)> {
        let mut e = self.entries.lock();
        let entry = e.map.get_mut(path)?;
        if entry.is_current() {
            return Some((entry.data.clone(), entry.stat));
        }
        e.map.remove(path);
        None
    }

    /// Remembers what a read that left `watcher` on `path` returned.
    pub fn insert(&self, path: String, data: Vec<u8>, stat: Stat, watcher: OneshotWatcher) {
        let mut e = self.entries.lock();
        e.map.insert(path, Entry { data, stat, fired: Box::pin(watcher.changed()) });
        if e.map.len() >= e.sweep_at.max(MIN_SWEEP) {
            e.map.retain(|_, entry| entry.is_current());
            e.sweep_at = 2 * e.map.len();
        }
    }

    pub fn clear(&self) {
        self.entries.lock().map.clear();
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.lock().map.len()
    }
}
