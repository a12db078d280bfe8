"""A consumer-group member: subscribes to --topic in --group, and after
each batch it read prints its records and commits their offsets
synchronously (no auto commit), until stdin closes; then it leaves the
group (close). Prints:

  {"member": name, "assigned": [p, ...]}     after each rebalance
  {"member": name, "revoked": [p, ...]}
  {"member": name, "partition": p, "offset": o, "key": k, "value": v}
  {"member": name, "committed": {"p": next offset, ...}}
  {"member": name, "commit_failed": {...}, "error": "..."}
  {"member": name, "closed": true}

A record printed and then not committed (commit_failed) may be read again
by whoever owns its partition next: that is a duplicate the test reports.
"""

import time

import common

p = common.parser(__doc__)
p.add_argument("--group", required=True)
p.add_argument("--name", required=True, help="member name in the output")
args = p.parse_args()
common.start(args)
stop = common.stop_on_eof()
name = args.name

# Why these settings (the same for both kinds):
#  - session timeout 10 s: well above a failover (a 1 s lease in the tests),
#    so a member that cannot reach the coordinator while a new leader is
#    elected is not expired for it; short enough that a member that really
#    died is noticed within the test's deadlines.
#  - heartbeats every second, metadata every second, short backoffs: after
#    the leader dies, members find the new coordinator (NOT_COORDINATOR,
#    refreshed metadata) within a second or two.
#  - auto_offset_reset earliest: a group with no committed offset reads
#    from the beginning.
SESSION_TIMEOUT_MS = 10000
HEARTBEAT_MS = 1000


def emit(**fields):
    common.emit(member=name, **fields)


if args.client == "kafka-python":
    from kafka import ConsumerRebalanceListener, KafkaConsumer, OffsetAndMetadata, TopicPartition
    from kafka.errors import CommitFailedError, KafkaError

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            emit(revoked=sorted(tp.partition for tp in revoked))

        def on_partitions_assigned(self, assigned):
            emit(assigned=sorted(tp.partition for tp in assigned))

    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        client_id=name,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=HEARTBEAT_MS,
        # kafka-python wants the request timeout above the session timeout.
        request_timeout_ms=SESSION_TIMEOUT_MS + 5000,
        metadata_max_age_ms=common.METADATA_MAX_AGE_MS,
        retry_backoff_ms=common.RETRY_BACKOFF_MS,
    )
    consumer.subscribe([args.topic], listener=Listener())

    def poll():
        records = []
        for batch in consumer.poll(timeout_ms=200, max_records=200).values():
            records += [(r.partition, r.offset, r.key, r.value) for r in batch]
        return records

    def commit(offsets):
        # Blocks; retries retriable errors (NOT_COORDINATOR, a coordinator
        # loading) itself; raises on a fenced commit (rebalance).
        try:
            consumer.commit(
                {TopicPartition(args.topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()}
            )
            return None
        except (CommitFailedError, KafkaError) as e:
            return repr(e)

else:
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    def on_assign(consumer, partitions):
        emit(assigned=sorted(tp.partition for tp in partitions))

    def on_revoke(consumer, partitions):
        emit(revoked=sorted(tp.partition for tp in partitions))

    consumer = Consumer(
        common.librdkafka_logging(
            {
                "bootstrap.servers": args.bootstrap,
                "group.id": args.group,
                "client.id": name,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": SESSION_TIMEOUT_MS,
                "heartbeat.interval.ms": HEARTBEAT_MS,
                "topic.metadata.refresh.interval.ms": common.METADATA_MAX_AGE_MS,
                "retry.backoff.ms": common.RETRY_BACKOFF_MS,
            }
        )
    )
    consumer.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke)

    def poll():
        records = []
        for m in consumer.consume(num_messages=200, timeout=0.2):
            if m.error() is not None:
                emit(consume_error=str(m.error()))
                continue
            records.append((m.partition(), m.offset(), m.key(), m.value()))
        return records

    # Errors worth retrying the same commit for: the coordinator moved or is
    # loading, or the request timed out. Anything else (a rebalance fenced
    # the commit) is reported.
    RETRIABLE = {"NOT_COORDINATOR", "COORDINATOR_NOT_AVAILABLE", "COORDINATOR_LOAD_IN_PROGRESS",
                 "REQUEST_TIMED_OUT", "_TIMED_OUT", "_TRANSPORT", "_WAIT_COORD"}

    def commit(offsets):
        tps = [TopicPartition(args.topic, p, o) for p, o in offsets.items()]
        deadline = time.monotonic() + SESSION_TIMEOUT_MS / 1000
        while True:
            try:
                answered = consumer.commit(offsets=tps, asynchronous=False)
                errors = [f"{tp.partition}: {tp.error}" for tp in answered or [] if tp.error is not None]
                return "; ".join(errors) or None
            except KafkaException as e:
                error = e.args[0]
                if error.name() in RETRIABLE and time.monotonic() < deadline:
                    emit(commit_retry=error.name())
                    continue
                return f"{error.name()}: {error.str()}"


while not stop.is_set():
    records = poll()
    if not records:
        continue
    offsets = {}
    for partition, offset, key, value in records:
        emit(partition=partition, offset=offset, key=key.decode(), value=value.decode())
        offsets[partition] = offset + 1
    error = commit(offsets)
    if error is None:
        emit(committed={str(p): o for p, o in offsets.items()})
    else:
        emit(commit_failed={str(p): o for p, o in offsets.items()}, error=error)
consumer.close()
emit(closed=True)
