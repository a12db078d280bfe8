// Idempotent KafkaJS producer (acks=-1, one request in flight), as
// producer.py: produces records numbered from --first-id, key "key-<id>"
// and value valueOf(id), and prints one line per acknowledged record:
//
//   {"acked": id, "partition": p, "offset": o, "key": k, "value": v}
//   {"failed": id, "error": "..."}          a send KafkaJS gave up on
//   {"done": true, "acknowledged": n, "failures": m}
//
// --count N produces N records and exits non-zero if any failed. --count 0
// produces a numbered stream until stdin closes (how the test stops it), in
// rounds of --batch records, each round one send() awaited before the next:
// acknowledged ids are what the failover test checks against what the
// group read.
//
// A send() answers each partition's base offset; KafkaJS keeps the order of
// the messages within a partition, so the n-th record the partitioner put
// in a partition is at base offset + n. The partitioner is KafkaJS's
// default (Java-compatible murmur2), wrapped to note where each record went.

import * as common from './common.mjs'

const args = common.start({
  count: { type: 'string', default: '100' },
  'first-id': { type: 'string', default: '0' },
  compression: { type: 'string', default: 'none' },
  batch: { type: 'string', default: '20' },
})
const count = Number(args.count)
const firstId = Number(args['first-id'])
const batch = count === 0 ? Number(args.batch) : 100
const stop = count === 0 ? common.stopOnEof() : null
const { CompressionTypes, Partitioners } = common.kafkajs
const compression = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP }[args.compression]
if (compression === undefined) {
  // KafkaJS itself has only gzip; the other codecs are plug-ins.
  common.fail(`--compression ${args.compression}: KafkaJS has none and gzip`)
}

const partitionOf = new Map()
const producer = common.kafka(args, 'yak-test-producer').producer({
  idempotent: true,
  // KafkaJS's idempotence keeps sequence numbers right only with one
  // request in flight.
  maxInFlightRequests: 1,
  // KafkaJS's own default for an idempotent producer (retry until the
  // script's timeout), with common.mjs's short backoffs.
  retry: { retries: Number.MAX_SAFE_INTEGER },
  // Failover: find the new leader within a second or so (common.mjs).
  metadataMaxAge: common.METADATA_MAX_AGE_MS,
  createPartitioner: () => {
    const partitioner = Partitioners.DefaultPartitioner()
    return input => {
      const partition = partitioner(input)
      partitionOf.set(input.message, partition)
      return partition
    }
  },
})
const state = { acked: 0, failed: 0 }

async function sendRound(ids) {
  const messages = ids.map(id => ({ key: common.keyOf(id), value: common.valueOf(id) }))
  let answer
  try {
    answer = await producer.send({ topic: args.topic, acks: -1, compression, messages })
  } catch (e) {
    for (const id of ids) {
      state.failed += 1
      common.emit({ failed: id, error: `${e.name}: ${e.message}` })
    }
    return
  }
  const base = new Map(answer.map(r => [r.partition, BigInt(r.baseOffset)]))
  const next = new Map()
  messages.forEach((message, i) => {
    const partition = partitionOf.get(message)
    partitionOf.delete(message)
    const n = next.get(partition) ?? 0n
    next.set(partition, n + 1n)
    if (!base.has(partition)) {
      common.fail(`no answer for partition ${partition}: ${JSON.stringify(answer)}`)
    }
    state.acked += 1
    common.emit({
      acked: ids[i],
      partition,
      offset: Number(base.get(partition) + n),
      key: message.key,
      value: message.value,
    })
  })
}

await producer.connect()
if (count > 0) {
  for (let id = firstId; id < firstId + count; id += batch) {
    const ids = []
    for (let i = id; i < Math.min(id + batch, firstId + count); i++) ids.push(i)
    await sendRound(ids)
  }
} else {
  let nextId = firstId
  while (!stop.stopped) {
    const ids = []
    for (let i = 0; i < batch; i++) ids.push(nextId++)
    await sendRound(ids)
  }
}
await producer.disconnect()
common.emit({ done: true, acknowledged: state.acked, failures: state.failed })
if (count > 0 && (state.failed || state.acked !== count)) {
  common.fail(`${state.acked} of ${count} records acknowledged, ${state.failed} failed`)
}
