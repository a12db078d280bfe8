// Reads a whole topic, as reader.py, with a KafkaJS consumer. KafkaJS has
// no group-less consumer (no assign()), so it joins a group of its own
// (a fresh name, nothing committed: autoCommit off), subscribed from the
// beginning, and reads until every partition's position reaches the end
// offset (the high-water mark, admin.fetchTopicOffsets) it had at the
// start. Prints one line per record and one at the end:
//
//   {"partition": p, "offset": o, "key": k, "value": v, "timestamp": ms}
//   {"done": true, "end_offsets": {"0": n0, "1": n1, ...}}

import * as common from './common.mjs'

const args = common.start()
const kafka = common.kafka(args, 'yak-test-reader')

const admin = kafka.admin()
await admin.connect()
const end = new Map(
  (await admin.fetchTopicOffsets(args.topic)).map(({ partition, high }) => [partition, Number(high)])
)
await admin.disconnect()
const position = new Map([...end.keys()].map(p => [p, 0]))
const atEnd = () => [...end].every(([p, offset]) => position.get(p) >= offset)

const consumer = kafka.consumer({
  groupId: `yak-test-reader-${process.pid}-${Date.now()}`,
  metadataMaxAge: common.METADATA_MAX_AGE_MS,
  maxWaitTimeInMs: 500,
})
let finished
const done = new Promise(resolve => (finished = resolve))
await consumer.connect()
await consumer.subscribe({ topics: [args.topic], fromBeginning: true })
await consumer.run({
  autoCommit: false,
  eachBatch: async ({ batch }) => {
    for (const m of batch.messages) {
      const offset = Number(m.offset)
      common.emit({
        partition: batch.partition,
        offset,
        key: m.key === null ? null : m.key.toString(),
        value: m.value === null ? null : m.value.toString(),
        timestamp: Number(m.timestamp),
      })
      position.set(batch.partition, offset + 1)
    }
    if (atEnd()) finished()
  },
})
if (atEnd()) finished()
await done
await consumer.disconnect()
common.emit({ done: true, end_offsets: Object.fromEntries([...end].map(([p, o]) => [String(p), o])) })
