//! The group protocol, written once: the ZooKeeper side of being a member
//! of a legacy consumer group, as data and small state machines, with no
//! I/O. The production driver ([`coord`](crate::coord)) executes it
//! against a real server, the simulator ([`sim`](crate::sim)) against its
//! model — one round trip at a time, interleaved with everything else, as
//! a real server would — and [`inspect`](crate::inspect) reads groups with
//! it. The rule: a protocol step changes here, or nowhere.
//!
//! - [`layout`]: which znodes a member writes and reads, per flavour.
//! - [`ops`]: requests and replies as data; the [`Procedure`] shape.
//! - [`read`], [`snapshot`]: reading a group, and the one builder from raw
//!   znodes to a [`GroupSnapshot`](crate::balance::GroupSnapshot) plus what
//!   it skipped and why.
//! - [`claim`], [`member`]: claiming (with the look-again that settles two
//!   pykafka claims under different names), waiting for owners to go,
//!   registering (taking over an earlier incarnation's member znode),
//!   leaving, releasing.
//! - [`operation`]: which procedure carries out which state-machine action,
//!   the revoke → release hand-over, and which answers a driver admits.
//!
//! ```
//! use zkbalance::ids::{GroupId, MemberId};
//! use zkbalance::protocol::ops::{Procedure, Request, Step};
//! use zkbalance::protocol::read::ReadGroup;
//! use zkbalance::znode::Flavour;
//!
//! let mut read = ReadGroup::new(GroupId::new("billing")?, Flavour::Scala);
//! let Step::Send(first) = read.resume(Vec::new()) else { unreachable!() };
//! assert_eq!(
//!     first,
//!     [
//!         Request::Children { path: "/brokers/topics".into(), watch: true },
//!         Request::Children { path: "/consumers/billing/ids".into(), watch: true },
//!     ]
//! );
//! # let _ = MemberId::new("m")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod claim;
pub mod filter;
pub mod layout;
pub mod member;
pub mod operation;
pub mod ops;
pub mod read;
pub mod snapshot;

pub use filter::TopicFilter;
pub use layout::GroupLayout;
pub use operation::{admit, Answer, Context, Handover, Operation};
pub use ops::{Procedure, Reply, Request, Stat, Step, Write};
pub use read::{GroupRead, ReadGroup};
pub use snapshot::{Listing, Skipped};

use crate::znode::{Codec, Flavour, MemberRegistration, ScalaRegistration, Subscription};

/// What a member of `flavour` subscribed as `subscription` writes into its
/// member znode (the Scala consumer stamps it with the time).
pub fn member_payload(flavour: Flavour, subscription: &Subscription, timestamp_ms: Option<u64>) -> Vec<u8> {
    let registration = match (flavour, subscription) {
        (Flavour::Pykafka, Subscription::Static(topics)) if topics.len() == 1 => {
            MemberRegistration::Pykafka { topic: topics[0].0.clone() }
        }
        _ => MemberRegistration::Scala(ScalaRegistration { subscription: subscription.clone(), timestamp_ms }),
    };
    registration.encode()
}

#[cfg(all(test, feature = "testkit"))]
mod adapters;
