# A real pykafka 2.8 BalancedConsumer joined to a group, for
# tests/pykafka.rs.
#
#   python pykafka_member.py ZK GROUP TOPIC
#
# Prints one JSON line per rebalance it completes: its consumer id and the
# partitions it owns now. Leaves the group (stop()) when stdin closes.
import json
import logging
import sys

from pykafka import KafkaClient

zk, group, topic = sys.argv[1:4]
logging.basicConfig(stream=sys.stderr, level=logging.INFO)


def rebalanced(consumer, old_offsets, new_offsets):
    # Keys are partition ids.
    owned = sorted(new_offsets)
    line = {"event": "rebalanced", "id": consumer._consumer_id.decode(), "owned": owned}
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()
    # Start where the group committed (pykafka's default for None).
    return None


client = KafkaClient(zookeeper_hosts=zk)
consumer = client.topics[topic].get_balanced_consumer(
    consumer_group=group.encode(),
    zookeeper_connect=zk,
    auto_commit_enable=False,
    use_rdkafka=False,
    post_rebalance_callback=rebalanced,
)
# pykafka fetches in its own threads; the mock cluster's record batches are
# beyond its decoder, so what is under test is coordination alone.
sys.stdin.read()
consumer.stop()
