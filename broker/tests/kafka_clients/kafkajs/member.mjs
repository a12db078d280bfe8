// A KafkaJS consumer-group member, as member.py: subscribes to --topic in
// --group and, for each batch it fetches, commits the batch's offsets and
// prints its records (no auto commit), until stdin closes; then it leaves
// the group (disconnect). Prints:
//
//   {"member": name, "assigned": [p, ...], "protocol": assignor}   after each join
//   {"member": name, "revoked": [p, ...]}         the group is rebalancing
//   {"member": name, "partition": p, "offset": o, "key": k, "value": v}
//   {"member": name, "committed": {"p": next offset, ...}}
//   {"member": name, "commit_refused": {...}, "error": "..."}
//   {"member": name, "commit_stored": {...}, "error": "..."}   answered with an error, but stored
//   {"member": name, "crash": "...", "restart": bool}
//   {"member": name, "closed": true}
//
// Commit first, then print (unlike member.py, which prints, then commits):
// KafkaJS does not keep its membership when its coordinator dies. It
// retries, then restarts the consumer (the "crash" line), which joins the
// group again as a new member, and a commit that failed is not retried.
// So a batch is printed only once its commit succeeded; when the commit
// fails (commit_refused) the batch is given back to KafkaJS unprinted (the
// error is rethrown: KafkaJS fetches it again, or rejoins the group and
// whoever owns the partition then reads it from the committed offset).
// A commit whose answer was lost (the leader died after storing it, before
// answering) is in doubt: the member then asks the group's coordinator,
// found anew by an admin client (OffsetFetch), what is committed, and
// prints the batch if its commit is there (commit_stored), as an
// application that must process each record once would.
//
// --assignor: "RoundRobinAssigner" (KafkaJS's own, under its own protocol
// name, which no other client offers) or "roundrobin": the same assigner
// under the protocol name the Java client, kafka-python and librdkafka give
// theirs (KafkaJS takes custom assigners), so that KafkaJS members can share
// a group with other clients (the group picks the protocol every member
// offers; the assignment is the consumer protocol's, whoever computed it).

import * as common from './common.mjs'

const args = common.start({
  group: { type: 'string' },
  name: { type: 'string' },
  assignor: { type: 'string', default: 'RoundRobinAssigner' },
})
const stop = common.stopOnEof()
const name = args.name
const emit = fields => common.emit({ member: name, ...fields })
const { PartitionAssigners } = common.kafkajs
const assigner = {
  RoundRobinAssigner: PartitionAssigners.roundRobin,
  roundrobin: config => ({ ...PartitionAssigners.roundRobin(config), name: 'roundrobin' }),
}[args.assignor]
if (assigner === undefined) {
  common.fail(`--assignor must be RoundRobinAssigner or roundrobin, not ${args.assignor}`)
}

// Why these settings (the same as member.py's):
//  - session timeout 10 s: well above a failover (a 1 s lease in the
//    tests), short enough that a member that really died (or that KafkaJS
//    left behind when it restarted the consumer) is noticed within the
//    test's deadlines.
//  - heartbeats every second, metadata every second, short backoffs
//    (common.mjs).
//  - fromBeginning: a group with no committed offset reads from the
//    beginning (auto.offset.reset=earliest).
//  - maxWaitTimeInMs 500: a fetch returns at least twice a second, so a
//    member notices the end of the test (stdin closed) quickly.
const kafka = common.kafka(args, name)
const admin = kafka.admin()
await admin.connect()

/** The group's committed offset of `partition` now (-1: none), or null
 * when the coordinator cannot say within 15 s. */
async function committedOffset(partition) {
  const deadline = Date.now() + 15000
  for (;;) {
    try {
      const [topic] = await admin.fetchOffsets({ groupId: args.group, topics: [args.topic] })
      return Number(topic.partitions.find(p => p.partition === partition).offset)
    } catch (e) {
      if (Date.now() > deadline) return null
      await new Promise(resolve => setTimeout(resolve, 200))
    }
  }
}

const consumer = kafka.consumer({
  groupId: args.group,
  sessionTimeout: 10000,
  heartbeatInterval: 1000,
  metadataMaxAge: common.METADATA_MAX_AGE_MS,
  maxWaitTimeInMs: 500,
  partitionAssigners: [assigner],
})
let assigned = []
consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
  assigned = [...(payload.memberAssignment[args.topic] ?? [])].sort((a, b) => a - b)
  emit({ assigned, protocol: payload.groupProtocol })
})
consumer.on(consumer.events.REBALANCING, () => emit({ revoked: assigned }))
consumer.on(consumer.events.CRASH, ({ payload }) =>
  emit({ crash: `${payload.error.name}: ${payload.error.message}`, restart: payload.restart })
)

await consumer.connect()
await consumer.subscribe({ topics: [args.topic], fromBeginning: true })
await consumer.run({
  autoCommit: false,
  eachBatch: async ({ batch, commitOffsetsIfNecessary }) => {
    if (stop.stopped || batch.isEmpty()) return
    const partition = batch.partition
    const next = Number(batch.lastOffset()) + 1
    try {
      // The batch's own commit (its member id and generation), not
      // consumer.commitOffsets: that one returns without committing
      // anything while the consumer is restarting (KafkaJS 2.2.4,
      // Runner.commitOffsets), which would print records never committed.
      await commitOffsetsIfNecessary({
        topics: [{ topic: args.topic, partitions: [{ partition, offset: String(next) }] }],
      })
    } catch (e) {
      const error = `${e.name}: ${e.message}`
      const committed = await committedOffset(partition)
      if (committed === null || committed < next) {
        emit({ commit_refused: { [partition]: next }, error, committed })
        throw e
      }
      emit({ commit_stored: { [partition]: next }, error, committed })
    }
    for (const m of batch.messages) {
      emit({ partition, offset: Number(m.offset), key: m.key.toString(), value: m.value.toString() })
    }
    emit({ committed: { [partition]: next } })
  },
})
await stop.promise
await consumer.disconnect()
await admin.disconnect()
emit({ closed: true })
process.exit(0)
