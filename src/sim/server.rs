//! What the model's server does with a member's requests, and the network
//! between them: delays, lost replies, lost notifications, stale reads.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::assign::GroupShape;
use crate::balance::{Action, ClaimOutcome, GroupSnapshot, Input, SessionEvent};
use crate::ids::{BrokerId, MemberId, TopicPartition};
use crate::znode::{layout, Codec, Flavour, OwnerName, PartitionState, PykafkaOwner, TopicRegistration, TopicSpelling};

use super::model::{SessionId, WatchOn, ZkErr};
use super::world::{decode_member, owner_record, Ev, World};

impl World<'_> {
    /// Sends a request: it reaches the server after a network delay, or
    /// fails at once when the member is disconnected.
    pub(super) fn send(&mut self, m: usize, action: Action) {
        if !self.members[m].connected {
            match action {
                // The real driver retries these until they succeed.
                Action::DeleteOwner { .. } | Action::Deregister | Action::NewSession => {
                    self.members[m].deferred.push(action)
                }
                Action::Register => self.reply(m, Input::RegisterFailed("connection loss".into())),
                Action::ReadGroup => self.reply(m, Input::ReadFailed("connection loss".into())),
                Action::Claim { tp, .. } => {
                    self.reply(m, Input::ClaimResult { tp, outcome: ClaimOutcome::Failed("connection loss".into()) })
                }
                _ => {}
            }
            return;
        }
        let session = self.members[m].session;
        let d = self.net_delay();
        self.schedule(d, Ev::Op { m, session, action });
    }

    fn net_delay(&mut self) -> Duration {
        Duration::from_millis(1 + self.rng.below(15))
    }

    /// A reply reaches the member after a delay; if it is disconnected
    /// by then the reply is lost and it hears a failure instead.
    pub(super) fn reply(&mut self, m: usize, input: Input) {
        let d = self.net_delay();
        let session = self.members[m].session;
        self.schedule(d, Ev::Reply { m, session, input });
    }

    /// An answer arrives: dropped, as the driver drops it, if the member
    /// has moved on to a new session since the request.
    pub(super) fn answer(&mut self, m: usize, session: SessionId, input: Input) {
        if self.members[m].stalled_until > self.now {
            let wait = self.members[m].stalled_until - self.now;
            self.schedule(wait, Ev::Reply { m, session, input });
        } else if session == self.members[m].session {
            self.feed(m, input);
        } else {
            self.log(|| format!("m{m} drops an answer from its earlier session {session}"));
        }
    }

    fn tell_expired(&mut self, m: usize) {
        if !self.members[m].expiry_told {
            self.members[m].expiry_told = true;
            self.reply(m, Input::Session(SessionEvent::Expired));
        }
    }

    /// A request reaches the server.
    pub(super) fn op(&mut self, m: usize, session: SessionId, action: Action) {
        if session != self.members[m].session || !self.members[m].alive {
            return;
        }
        if action == Action::NewSession {
            let s = self.model.open_session(self.cfg.session_timeout, self.now);
            let member = &mut self.members[m];
            member.session = s;
            member.expiry_told = false;
            member.owner_watch.clear();
            member.app.lease = super::app::session_lease(member.machine.config());
            self.log(|| format!("m{m} opens session {s}"));
            self.reply(m, Input::Session(SessionEvent::Established));
            self.schedule(Duration::ZERO, Ev::Heartbeat { m, session: s });
            return;
        }
        if self.model.touch(session, self.now).is_err() {
            self.tell_expired(m);
            return;
        }
        let id = self.members[m].id.clone();
        let input = match action {
            Action::Register => {
                let fired = self.model.mkdir(&layout::members(&self.group));
                self.notify(fired);
                for s in self.spellings() {
                    let fired = self.model.mkdir(&layout::owner_dir(&self.group, &self.topic, s));
                    self.notify(fired);
                }
                let path = layout::member(&self.group, &id);
                let payload = MemberPayload::encode(&self.topic);
                match self.model.create(Some(session), &[(path, payload)], true) {
                    Ok((_, fired)) => {
                        self.notify(fired);
                        Input::Registered
                    }
                    Err(ZkErr::NodeExists) => Input::Registered,
                    Err(e) => Input::RegisterFailed(format!("{e:?}")),
                }
            }
            Action::ReadGroup => Input::Snapshot(self.read(m, session)),
            Action::Claim { tp, slot, name } => {
                let outcome = self.claim(session, &tp, &slot.member, name);
                Input::ClaimResult { tp, outcome }
            }
            Action::DeleteOwner { tp, name } => {
                if self.members[m].app.holds.contains_key(&tp) {
                    self.violate(
                        "release before reassign",
                        format!("m{m} deleted its owner znode of {tp} while its application still held it"),
                    );
                }
                for path in self.owner_paths(&tp, name) {
                    if self.model.latest().get(&path).is_some_and(|n| n.owner == Some(session)) {
                        if let Ok(fired) = self.model.delete(&path, None) {
                            self.notify(fired);
                        }
                    }
                }
                Input::OwnerDeleted(tp)
            }
            Action::Deregister => {
                let path = layout::member(&self.group, &id);
                if self.model.latest().get(&path).is_some_and(|n| n.owner == Some(session)) {
                    if let Ok(fired) = self.model.delete(&path, None) {
                        self.notify(fired);
                    }
                }
                Input::Deregistered
            }
            _ => return,
        };
        self.members[m].last_zxid = self.members[m].last_zxid.max(self.model.zxid());
        self.reply(m, input);
    }

    fn spellings(&self) -> Vec<TopicSpelling> {
        match self.cfg.flavour {
            Flavour::Pykafka => TopicSpelling::ALL.to_vec(),
            Flavour::Scala => vec![TopicSpelling::Plain],
        }
    }

    fn owner_paths(&self, tp: &TopicPartition, name: OwnerName) -> Vec<String> {
        self.spellings().into_iter().map(|s| layout::owner(&self.group, &tp.topic, s, name)).collect()
    }

    /// Every owner znode of a partition, any name, any spelling, now.
    fn existing_owners(&self, tp: &TopicPartition) -> Vec<String> {
        let view = self.model.latest();
        let mut out = Vec::new();
        for s in self.spellings() {
            let dir = layout::owner_dir(&self.group, &tp.topic, s);
            for child in view.children(&dir) {
                if OwnerName::parse(self.cfg.flavour, &dir, &child).is_ok_and(|n| n.partition() == tp.partition) {
                    out.push(format!("{dir}/{child}"));
                }
            }
        }
        out
    }

    fn claim(&mut self, session: SessionId, tp: &TopicPartition, me: &MemberId, name: OwnerName) -> ClaimOutcome {
        let paths = self.owner_paths(tp, name);
        if self.existing_owners(tp).iter().any(|p| !paths.contains(p)) {
            return ClaimOutcome::Taken;
        }
        let payload = PykafkaOwner(me.clone()).encode();
        let nodes: Vec<(String, Vec<u8>)> = paths.iter().map(|p| (p.clone(), payload.clone())).collect();
        match self.model.create(Some(session), &nodes, true) {
            Ok((czxid, fired)) => {
                self.notify(fired);
                ClaimOutcome::Claimed { czxid }
            }
            Err(ZkErr::NodeExists) => {
                // Ours from a create whose reply was lost?
                let view = self.model.latest();
                let ours: Vec<i64> = paths
                    .iter()
                    .filter_map(|p| view.get(p))
                    .filter(|n| n.owner == Some(session))
                    .map(|n| n.czxid)
                    .collect();
                if ours.len() == paths.len() {
                    ClaimOutcome::Claimed { czxid: ours[0] }
                } else {
                    ClaimOutcome::Taken
                }
            }
            Err(e) => ClaimOutcome::Failed(format!("{e:?}")),
        }
    }

    /// Reads the group from a possibly lagging state, setting watches.
    fn read(&mut self, m: usize, session: SessionId) -> GroupSnapshot {
        let lag = self.rng.below(self.cfg.max_read_lag as u64 + 1) as usize;
        let view = self.model.view(self.members[m].last_zxid, lag);
        let ids = layout::members(&self.group);
        // A watch set by a read fires for any change after the state the read
        // returned: on a lagging server the changes still to be applied
        // fire it as they arrive.
        let latest = self.model.latest();
        for on in [
            WatchOn::Children(ids.clone()),
            WatchOn::Node(layout::topic(&self.topic)),
            WatchOn::Children(layout::BROKER_IDS.to_owned()),
        ] {
            let changed = match &on {
                WatchOn::Children(p) => view.children(p) != latest.children(p),
                WatchOn::Node(p) => view.get(p) != latest.get(p),
            };
            if changed {
                let d = self.net_delay();
                self.schedule(d, Ev::Notify { m, on });
            } else {
                self.model.watch(session, on);
            }
        }
        let mut shape = GroupShape::default();
        for child in view.children(&ids) {
            let (Some(node), Ok(member)) = (view.get(&format!("{ids}/{child}")), MemberId::new(child.as_str())) else {
                continue;
            };
            if let Some(topic) = decode_member(&node.data) {
                shape.add_member(member, [(topic, 1)]);
            }
        }
        let topic_path = layout::topic(&self.topic);
        if let Some(reg) = view.get(&topic_path).and_then(|n| TopicRegistration::decode(&topic_path, &n.data).ok()) {
            let mut leaders = Vec::new();
            for p in reg.partition_ids() {
                let path = layout::partition_state(&self.topic, p);
                let leader =
                    view.get(&path).and_then(|n| PartitionState::decode(&path, &n.data).ok()).and_then(|s| s.leader);
                if view.get(&path).is_none() {
                    // Written after the topic: watch for it (the driver does).
                    if latest.get(&path).is_some() {
                        let d = self.net_delay();
                        self.schedule(d, Ev::Notify { m, on: WatchOn::Node(path) });
                    } else {
                        self.model.watch(session, WatchOn::Node(path));
                    }
                }
                leaders.push((p, leader));
            }
            shape.add_topic(self.topic.clone(), leaders);
        }
        let mut owners: BTreeMap<TopicPartition, Vec<crate::balance::OwnerRecord>> = BTreeMap::new();
        for s in self.spellings() {
            let dir = layout::owner_dir(&self.group, &self.topic, s);
            for child in view.children(&dir) {
                let Ok(name) = OwnerName::parse(self.cfg.flavour, &dir, &child) else { continue };
                let Some(node) = view.get(&format!("{dir}/{child}")) else { continue };
                let Ok(owner) = PykafkaOwner::decode_payload(&node.data) else { continue };
                owners
                    .entry(TopicPartition::new(self.topic.clone(), name.partition()))
                    .or_default()
                    .push(owner_record(owner.0, name, node.czxid));
            }
        }
        for records in owners.values_mut() {
            records.sort_by_key(|r| r.czxid);
            records.dedup_by(|a, b| a.member == b.member && a.name == b.name);
        }
        self.members[m].last_zxid = self.members[m].last_zxid.max(view.zxid);
        GroupSnapshot { shape, owners }
    }

    /// Whether a watched partition's owners are all gone; if not, watch them.
    pub(super) fn owner_check(&mut self, m: usize, session: SessionId, tp: TopicPartition) {
        if session != self.members[m].session
            || !self.members[m].owner_watch.contains(&tp)
            || !self.members[m].connected
        {
            return;
        }
        let existing = self.existing_owners(&tp);
        if existing.is_empty() {
            self.members[m].owner_watch.remove(&tp);
            self.reply(m, Input::OwnerGone(tp));
        } else {
            for p in existing {
                self.model.watch(session, WatchOn::Node(p));
            }
        }
    }

    /// A watch fired for a member.
    pub(super) fn notified(&mut self, m: usize, on: WatchOn) {
        if !self.members[m].alive || self.members[m].stopped {
            return;
        }
        if !self.members[m].connected {
            // Around a disconnect a notification may be lost for good.
            if self.rng.chance(self.cfg.lose_notifications) {
                self.log(|| format!("m{m} loses a notification for {on:?}"));
                return;
            }
            let wait = self.members[m].disconnected_until.saturating_sub(self.now);
            self.schedule(wait + Duration::from_millis(1), Ev::Notify { m, on });
            return;
        }
        if let WatchOn::Node(path) = &on {
            let tp = self.members[m]
                .owner_watch
                .iter()
                .find(|tp| self.owner_paths_any(tp).iter().any(|p| p == path))
                .cloned();
            if let Some(tp) = tp {
                let session = self.members[m].session;
                self.schedule(Duration::ZERO, Ev::OwnerCheck { m, session, tp });
                return;
            }
        }
        self.feed(m, Input::Changed);
    }

    fn owner_paths_any(&self, tp: &TopicPartition) -> Vec<String> {
        let mut v = Vec::new();
        for b in -1..=i32::from(self.cfg.brokers) {
            let name = match self.cfg.flavour {
                Flavour::Pykafka => OwnerName::Pykafka { leader: BrokerId(b), partition: tp.partition },
                Flavour::Scala => OwnerName::Scala { partition: tp.partition },
            };
            v.extend(self.owner_paths(tp, name));
        }
        v
    }

    /// The client pings: the server hears it, the machine's lease renews.
    pub(super) fn heartbeat(&mut self, m: usize, session: SessionId) {
        let member = &self.members[m];
        if session != member.session || !member.alive || member.stopped {
            return;
        }
        let interval = member.machine.config().heartbeat_interval();
        if member.connected && member.stalled_until <= self.now {
            let sent_at = self.now;
            match self.model.touch(session, self.now) {
                Ok(()) => self.reply(m, Input::Heartbeat { sent_at }),
                Err(_) => self.tell_expired(m),
            }
        }
        let next =
            if self.members[m].stalled_until > self.now { self.members[m].stalled_until - self.now } else { interval };
        self.schedule(next, Ev::Heartbeat { m, session });
    }

    /// A disconnected member's network comes back.
    pub(super) fn reconnect(&mut self, m: usize) {
        if !self.members[m].alive || self.members[m].connected || self.now < self.members[m].disconnected_until {
            return;
        }
        self.members[m].connected = true;
        let session = self.members[m].session;
        if self.model.touch(session, self.now).is_ok() {
            self.log(|| format!("m{m} reconnects with session {session}"));
            self.reply(m, Input::Session(SessionEvent::Reconnected));
        } else {
            self.log(|| format!("m{m} reconnects to find session {session} expired"));
            self.tell_expired(m);
        }
        for action in std::mem::take(&mut self.members[m].deferred) {
            self.send(m, action);
        }
    }
}

struct MemberPayload;

impl MemberPayload {
    fn encode(topic: &crate::ids::TopicName) -> Vec<u8> {
        crate::znode::MemberRegistration::Pykafka { topic: topic.clone() }.encode()
    }
}
