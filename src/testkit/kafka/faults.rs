//! Faults the tests inject into the mock cluster, with the registration
//! kept current the way the Kafka controller keeps it.

use super::*;

impl KafkaCluster {
    /// Takes a broker down as a clean shutdown does: the mock stops serving
    /// it, its registration vanishes, and the controller moves leadership of
    /// its partitions to another in-sync replica and shrinks ISRs.
    pub async fn broker_down(&mut self, id: BrokerId) -> Result<(), TestkitError> {
        let slot = self.brokers.get_mut(&id).ok_or_else(|| TestkitError::InvalidArgument(format!("no broker {id}")))?;
        let Some(session) = slot.session.take() else { return Ok(()) };
        let path = layout::broker(id);
        match session.delete(&path, None).await {
            Ok(()) | Err(zookeeper_client::Error::NoNode) => {}
            Err(e) => return Err(TestkitError::zk("delete", &path)(e)),
        }
        drop(session);
        self.call(&Request::BrokerDown { broker: id.0 }, CONTROL_TIMEOUT).await?;
        let live: Vec<BrokerId> = self.brokers.iter().filter(|(_, s)| s.session.is_some()).map(|(b, _)| *b).collect();
        let mut changed = Vec::new();
        for (topic, parts) in &mut self.topics {
            for (p, m) in parts.iter_mut() {
                let was_leader = m.leader == Some(id);
                let in_isr = m.isr.contains(&id);
                if !was_leader && !in_isr {
                    continue;
                }
                m.isr.retain(|b| *b != id);
                if was_leader {
                    m.leader = m.isr.iter().copied().find(|b| live.contains(b));
                    m.leader_epoch += 1;
                }
                changed.push((topic.clone(), *p, was_leader.then_some(m.leader).flatten()));
            }
        }
        for (topic, p, new_leader) in changed {
            if let Some(leader) = new_leader {
                self.call(
                    &Request::SetLeader { topic: topic.to_string(), partition: p.0, broker: leader.0 },
                    CONTROL_TIMEOUT,
                )
                .await?;
            }
            self.write_state(&topic, p).await?;
        }
        Ok(())
    }

    /// Brings a broker back: it serves and registers again, rejoins the ISR
    /// of its partitions, and leads those that had no leader.
    pub async fn broker_up(&mut self, id: BrokerId) -> Result<(), TestkitError> {
        if self
            .brokers
            .get(&id)
            .ok_or_else(|| TestkitError::InvalidArgument(format!("no broker {id}")))?
            .session
            .is_some()
        {
            return Ok(());
        }
        self.call(&Request::BrokerUp { broker: id.0 }, CONTROL_TIMEOUT).await?;
        self.register_broker(id).await?;
        let mut changed = Vec::new();
        for (topic, parts) in &mut self.topics {
            for (p, m) in parts.iter_mut() {
                if !m.replicas.contains(&id) || m.isr.contains(&id) {
                    continue;
                }
                m.isr.push(id);
                let leads = m.leader.is_none();
                if leads {
                    m.leader = Some(id);
                    m.leader_epoch += 1;
                }
                changed.push((topic.clone(), *p, leads));
            }
        }
        for (topic, p, leads) in changed {
            if leads {
                self.call(
                    &Request::SetLeader { topic: topic.to_string(), partition: p.0, broker: id.0 },
                    CONTROL_TIMEOUT,
                )
                .await?;
            }
            self.write_state(&topic, p).await?;
        }
        Ok(())
    }

    /// Moves a partition's leadership to `to`, a live in-sync replica, as a
    /// preferred-leader election or reassignment would.
    pub async fn move_leader(&mut self, topic: &str, partition: PartitionId, to: BrokerId) -> Result<(), TestkitError> {
        let name = self.known_topic(topic)?;
        let live = self.brokers.get(&to).is_some_and(|s| s.session.is_some());
        let m = self
            .topics
            .get_mut(&name)
            .and_then(|t| t.get_mut(&partition))
            .ok_or_else(|| TestkitError::InvalidArgument(format!("no partition {topic}-{partition}")))?;
        if !live || !m.isr.contains(&to) {
            return Err(TestkitError::InvalidArgument(format!(
                "broker {to} is not a live in-sync replica of {topic}-{partition}"
            )));
        }
        m.leader = Some(to);
        m.leader_epoch += 1;
        self.call(
            &Request::SetLeader { topic: topic.to_owned(), partition: partition.0, broker: to.0 },
            CONTROL_TIMEOUT,
        )
        .await?;
        self.write_state(&name, partition).await
    }
}
