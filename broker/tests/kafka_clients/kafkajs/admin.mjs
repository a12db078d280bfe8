// KafkaJS's admin client: creates --topic with --partitions partitions
// (createTopics, waiting for leaders), then prints what it sees:
//
//   {"created": bool}                                createTopics' answer
//   {"created_again": bool}                          the same topic again
//   {"cluster": {"clusterId": ..., "controller": id, "brokers": [{"nodeId", "host", "port"}]}}
//   {"topic": name, "partitions": [{"partitionId", "leader", "replicas", "isr"}]}
//   {"offsets": [{"partition", "offset", "high", "low"}]}   fetchTopicOffsets
//
// describeCluster and fetchTopicMetadata are answered from Metadata;
// createTopics goes to the controller (CreateTopics).

import * as common from './common.mjs'

const args = common.start({ partitions: { type: 'string', default: '3' } })
const admin = common.kafka(args, 'yak-test-admin').admin()
await admin.connect()
const topic = { topic: args.topic, numPartitions: Number(args.partitions) }
common.emit({ created: await admin.createTopics({ topics: [topic], waitForLeaders: true }) })
// A topic that already exists: KafkaJS answers false (TOPIC_ALREADY_EXISTS
// is not an error to it).
common.emit({ created_again: await admin.createTopics({ topics: [topic], waitForLeaders: true }) })
common.emit({ cluster: await admin.describeCluster() })
const { topics } = await admin.fetchTopicMetadata({ topics: [args.topic] })
for (const t of topics) {
  common.emit({
    topic: t.name,
    partitions: t.partitions
      .map(({ partitionId, leader, replicas, isr }) => ({ partitionId, leader, replicas, isr }))
      .sort((a, b) => a.partitionId - b.partitionId),
  })
}
const offsets = await admin.fetchTopicOffsets(args.topic)
common.emit({
  offsets: offsets
    .map(({ partition, offset, high, low }) => ({ partition, offset: Number(offset), high: Number(high), low: Number(low) }))
    .sort((a, b) => a.partition - b.partition),
})
await admin.disconnect()
