// A real kafka-node 3.0.1 HighLevelConsumer (the last kafka-node release
// with ZooKeeper groups) joined to a group, for tests/kafka_node.rs.
//
//   node kafka_node_member.js ZK GROUP ID TOPIC[,TOPIC...]
//
// KAFKA_NODE_DIR names the directory holding node_modules/kafka-node.
// Prints one JSON line per rebalance it completes: the partitions it owns
// now. Exits when stdin closes, after leaving the group.
'use strict';

const dir = process.env.KAFKA_NODE_DIR;
const kafka = require(require.resolve('kafka-node', { paths: [dir] }));
const [zk, group, id, topics] = process.argv.slice(2);

const client = new kafka.Client(zk, id + '-client', { sessionTimeout: 30000 });
const consumer = new kafka.HighLevelConsumer(
  client,
  topics.split(',').map((topic) => ({ topic })),
  { groupId: group, id, autoCommit: false, fetchMaxWaitMs: 100 }
);
consumer.on('rebalanced', () => {
  const owned = consumer.getTopicPayloads().map((p) => [p.topic, Number(p.partition)]);
  process.stdout.write(JSON.stringify({ event: 'rebalanced', owned }) + '\n');
});
consumer.on('registered', () => process.stdout.write(JSON.stringify({ event: 'registered' }) + '\n'));
// Fetching the mock cluster's record batches is beyond kafka-node's
// decoder; coordination is what is under test. Errors go to stderr.
consumer.on('error', (e) => process.stderr.write('kafka-node error: ' + e + '\n'));
process.stdin.resume();
process.stdin.on('end', () => consumer.close(false, () => process.exit(0)));
