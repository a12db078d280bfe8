// What every KafkaJS test client shares, as common.py does for the Python
// ones: JSON lines on stdout (what the Rust test parses), a hard timeout,
// stopping when stdin closes, KafkaJS's logs on stderr, and the Kafka
// settings the clients use.
//
// Run by broker/tests/kafka_clients.rs with the node that
// scripts/kafka-clients-node.sh links into target/kafka-clients-node/bin,
// and NODE_PATH pointing at its node_modules (where `npm ci` put the
// kafkajs version that package-lock.json pins). By hand:
//   NODE_PATH=target/kafka-clients-node/node_modules \
//     target/kafka-clients-node/bin/node broker/tests/kafka_clients/kafkajs/producer.mjs \
//     --client kafkajs --bootstrap 127.0.0.1:9092 --topic orders --count 10

import { createRequire } from 'node:module'
import { basename } from 'node:path'
import { parseArgs } from 'node:util'

// KafkaJS is CommonJS; require() also searches NODE_PATH (import does not).
const require = createRequire(import.meta.url)
export const kafkajs = require('kafkajs')
export const { Kafka, logLevel } = kafkajs

const name = basename(process.argv[1])

/** One JSON line on stdout, keys sorted (as common.py writes them). */
export function emit(fields) {
  const sorted = Object.fromEntries(Object.entries(fields).sort(([a], [b]) => (a < b ? -1 : 1)))
  process.stdout.write(JSON.stringify(sorted) + '\n')
}

/** Exits non-zero with `message` on stderr, once stdout is written out. */
export function fail(message) {
  process.stderr.write(`${name}: FAILED: ${message}\n`)
  process.exitCode = 1
  process.stdout.write('', () => process.exit(1))
}

/** Ends the process (exit 2) after `seconds`, whatever it is doing. */
function watchdog(seconds) {
  setTimeout(() => {
    process.stderr.write(`${name}: FAILED: timed out after ${seconds} s\n`)
    process.exit(2)
  }, seconds * 1000).unref()
}

/** A promise resolved when stdin closes: how the test says "stop now". */
export function stopOnEof() {
  const state = { stopped: false }
  state.promise = new Promise(resolve => {
    process.stdin.on('data', () => {})
    process.stdin.on('end', () => {
      state.stopped = true
      resolve()
    })
    process.stdin.on('error', () => {
      state.stopped = true
      resolve()
    })
  })
  return state
}

/**
 * Parses the arguments every client takes (--client kafkajs, --bootstrap,
 * --topic, --timeout) and `options` (node:util parseArgs options; values are
 * strings; `positionals` holds the rest), starts the watchdog, and returns
 * the values.
 */
export function start(options = {}) {
  const { values, positionals } = parseArgs({
    allowPositionals: true, // what follows a list option (argparse's nargs="+")
    options: {
      client: { type: 'string' },
      bootstrap: { type: 'string' },
      topic: { type: 'string' },
      timeout: { type: 'string', default: '120' },
      ...options,
    },
  })
  for (const required of ['client', 'bootstrap', 'topic']) {
    if (values[required] === undefined) {
      fail(`--${required} is required`)
    }
  }
  if (values.client !== 'kafkajs') {
    fail(`--client must be kafkajs, not ${values.client}`)
  }
  values.timeout = Number(values.timeout)
  values.positionals = positionals
  watchdog(values.timeout)
  // A client error nobody awaited is a failure of the script, not a hang.
  process.on('unhandledRejection', e => fail(`unhandled: ${e && e.stack ? e.stack : e}`))
  return values
}

// Failover tuning, the same as common.py's for the Python clients:
//  - metadata refreshed every second, so a client that lost the leader
//    finds the new one within about a lease TTL rather than minutes;
//  - short retry backoffs (KafkaJS's retrier starts at 300 ms and grows
//    to 30 s by default), so retries follow the new leader quickly.
export const METADATA_MAX_AGE_MS = 1000
export const RETRY = { initialRetryTime: 100, maxRetryTime: 1000, retries: 30 }

const levelName = level =>
  Object.keys(logLevel).find(name => logLevel[name] === level) ?? String(level)

/**
 * A KafkaJS client for the cluster. Its logs go to stderr as JSON lines
 * (DEBUG with YAK_KAFKA_DEBUG=1, which includes every request and
 * response), marked with the script and `clientId`.
 */
export function kafka(args, clientId) {
  const debug = process.env.YAK_KAFKA_DEBUG === '1'
  return new Kafka({
    clientId,
    brokers: args.bootstrap.split(','),
    logLevel: debug ? logLevel.DEBUG : logLevel.INFO,
    logCreator: () => ({ namespace, level, log }) => {
      const { message, ...extra } = log
      process.stderr.write(
        `${new Date().toISOString()} ${name}[${clientId}] ${namespace} ${levelName(level)} ${message} ${JSON.stringify(extra)}\n`
      )
    },
    retry: RETRY,
    // A request to a node that died unanswered fails after 10 s, not 30 s,
    // and is retried on the new leader (as the Python clients are set).
    requestTimeout: 10000,
  })
}

export const keyOf = id => `key-${id}`

/** common.value_of: some length and non-ASCII text. */
export const valueOf = id => `value ${id} ` + 'grüße vom yak, ünïcödé ✓ '.repeat(4)
