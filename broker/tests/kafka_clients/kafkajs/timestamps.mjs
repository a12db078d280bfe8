// ListOffsets by timestamp, as timestamps.py: produces --count records
// (ids from 0) with timestamps --base-ms + 1000 * id to partition 0,
// idempotently with acks=-1, then asks admin.fetchTopicOffsetsByTimestamp
// for each of --lookup (milliseconds, one or more) and prints:
//
//   {"acked": id, "offset": o, "timestamp": ms}      per record
//   {"lookup": ms, "offset": o, "timestamp": null}   per lookup; offset
//                                                    null when no record
//                                                    is at or after it
//
// KafkaJS answers the high-water mark where the broker found no record
// (ListOffsets -1), so that is printed as null.

import * as common from './common.mjs'

const args = common.start({
  count: { type: 'string', default: '10' },
  'base-ms': { type: 'string' },
  lookup: { type: 'string' },
})
const count = Number(args.count)
const base = Number(args['base-ms'])
const lookups = [args.lookup, ...args.positionals].map(Number)
const kafka = common.kafka(args, 'yak-test-times')

const producer = kafka.producer({
  idempotent: true,
  maxInFlightRequests: 1,
  retry: { retries: Number.MAX_SAFE_INTEGER },
})
await producer.connect()
for (let i = 0; i < count; i++) {
  const [answer] = await producer.send({
    topic: args.topic,
    acks: -1,
    messages: [
      { key: common.keyOf(i), value: common.valueOf(i), partition: 0, timestamp: String(base + 1000 * i) },
    ],
  })
  common.emit({ acked: i, offset: Number(answer.baseOffset), timestamp: base + 1000 * i })
}
await producer.disconnect()

const admin = kafka.admin()
await admin.connect()
const high = Number(
  (await admin.fetchTopicOffsets(args.topic)).find(({ partition }) => partition === 0).high
)
for (const lookup of lookups) {
  const found = (await admin.fetchTopicOffsetsByTimestamp(args.topic, lookup)).find(
    ({ partition }) => partition === 0
  )
  const offset = Number(found.offset)
  common.emit({ lookup, offset: offset >= high ? null : offset, timestamp: null })
}
await admin.disconnect()
