"""Idempotent producer (acks=all): produces records numbered from
--first-id, key "key-<id>" and value common.value_of(id), and prints one
line per acknowledged record:

  {"acked": id, "partition": p, "offset": o, "key": k, "value": v}
  {"failed": id, "error": "..."}          a delivery the client gave up on
  {"done": true, "acknowledged": n, "failures": m}

--count N produces N records and exits non-zero if any failed. --count 0
produces a numbered stream until stdin closes (how the test stops it), in
rounds of --batch records each flushed before the next: acknowledged ids
are what the failover test checks against what the group read.
"""

import common

p = common.parser(__doc__)
p.add_argument("--count", type=int, default=100, help="records to produce; 0: until stdin closes")
p.add_argument("--first-id", type=int, default=0)
p.add_argument("--compression", default="none", help="none, gzip, lz4, snappy or zstd")
p.add_argument("--batch", type=int, default=20, help="records per flush in stream mode")
args = p.parse_args()
common.start(args)
stop = common.stop_on_eof() if args.count == 0 else None
state = {"acked": 0, "failed": 0}


def acked(record_id, partition, offset):
    state["acked"] += 1
    common.emit(
        acked=record_id,
        partition=partition,
        offset=offset,
        key=common.key_of(record_id),
        value=common.value_of(record_id),
    )


def failed(record_id, error):
    state["failed"] += 1
    common.emit(failed=record_id, error=str(error))


if args.client == "kafka-python":
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap,
        enable_idempotence=True,
        acks="all",
        compression_type=None if args.compression == "none" else args.compression,
        key_serializer=str.encode,
        value_serializer=str.encode,
        linger_ms=5,
        # Failover: find the new leader within a second or so (common.py).
        metadata_max_age_ms=common.METADATA_MAX_AGE_MS,
        retry_backoff_ms=common.RETRY_BACKOFF_MS,
        # A request to a node that died unanswered fails after 10 s, not
        # 30 s, and is retried (idempotently) on the new leader; delivery
        # still gets 120 s in all.
        request_timeout_ms=10000,
    )

    def send(record_id):
        future = producer.send(args.topic, key=common.key_of(record_id), value=common.value_of(record_id))
        future.add_callback(lambda md: acked(record_id, md.partition, md.offset))
        future.add_errback(lambda e: failed(record_id, e))

    def flush():
        producer.flush(timeout=args.timeout)

    def close():
        producer.close(timeout=10)

else:
    from confluent_kafka import Producer

    producer = Producer(
        common.librdkafka_logging(
            {
                "bootstrap.servers": args.bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "compression.type": args.compression,
                "linger.ms": 5,
                # Failover: find the new leader within a second or so
                # (common.py); delivery still gets the default 300 s.
                "topic.metadata.refresh.interval.ms": common.METADATA_MAX_AGE_MS,
                "retry.backoff.ms": common.RETRY_BACKOFF_MS,
                # A request to a node that died unanswered times out after
                # 10 s rather than 30 s and is retried on the new leader.
                "socket.timeout.ms": 10000,
            }
        )
    )

    def on_delivery(err, msg):
        record_id = int(msg.key().decode().removeprefix("key-"))
        if err is not None:
            failed(record_id, err)
        else:
            acked(record_id, msg.partition(), msg.offset())

    def send(record_id):
        while True:
            try:
                producer.produce(
                    args.topic,
                    key=common.key_of(record_id).encode(),
                    value=common.value_of(record_id).encode(),
                    on_delivery=on_delivery,
                )
                break
            except BufferError:  # the local queue is full: serve callbacks
                producer.poll(0.1)
        producer.poll(0)

    def flush():
        left = producer.flush(args.timeout)
        if left:
            common.fail(f"{left} records still unacknowledged after {args.timeout} s")

    def close():
        pass


next_id = args.first_id
if args.count > 0:
    for record_id in range(args.first_id, args.first_id + args.count):
        send(record_id)
    flush()
else:
    while not stop.is_set():
        for _ in range(args.batch):
            send(next_id)
            next_id += 1
        flush()
    flush()
close()
common.emit(done=True, acknowledged=state["acked"], failures=state["failed"])
if args.count > 0 and (state["failed"] or state["acked"] != args.count):
    common.fail(f"{state['acked']} of {args.count} records acknowledged, {state['failed']} failed")
