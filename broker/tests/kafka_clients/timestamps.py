"""ListOffsets by timestamp: produces --count records (ids from 0) with
timestamps --base-ms + 1000 * id to partition 0, idempotently with
acks=all, then asks offsets_for_times for each of --lookup (milliseconds)
and prints:

  {"acked": id, "offset": o, "timestamp": ms}          per record
  {"lookup": ms, "offset": o, "timestamp": ms}         per lookup; offset
                                                       null when no record
                                                       is at or after it
"""

import common

p = common.parser(__doc__)
p.add_argument("--count", type=int, default=10)
p.add_argument("--base-ms", type=int, required=True)
p.add_argument("--lookup", type=int, nargs="+", required=True)
args = p.parse_args()
common.start(args)
timestamps = [args.base_ms + 1000 * i for i in range(args.count)]

if args.client == "kafka-python":
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    producer = KafkaProducer(bootstrap_servers=args.bootstrap, enable_idempotence=True, acks="all")
    for i, ts in enumerate(timestamps):
        md = producer.send(
            args.topic,
            key=common.key_of(i).encode(),
            value=common.value_of(i).encode(),
            partition=0,
            timestamp_ms=ts,
        ).get(timeout=args.timeout)
        common.emit(acked=i, offset=md.offset, timestamp=ts)
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=args.bootstrap)
    tp = TopicPartition(args.topic, 0)
    for lookup in args.lookup:
        found = consumer.offsets_for_times({tp: lookup})[tp]
        if found is None:
            common.emit(lookup=lookup, offset=None, timestamp=None)
        else:
            common.emit(lookup=lookup, offset=found.offset, timestamp=found.timestamp)
    consumer.close()

else:
    from confluent_kafka import Consumer, Producer, TopicPartition

    producer = Producer(
        common.librdkafka_logging(
            {"bootstrap.servers": args.bootstrap, "enable.idempotence": True, "acks": "all"}
        )
    )
    offsets = {}

    def on_delivery(err, msg):
        if err is not None:
            common.fail(f"delivery: {err}")
        offsets[int(msg.key().decode().removeprefix("key-"))] = msg.offset()

    for i, ts in enumerate(timestamps):
        producer.produce(
            args.topic,
            key=common.key_of(i).encode(),
            value=common.value_of(i).encode(),
            partition=0,
            timestamp=ts,
            on_delivery=on_delivery,
        )
    if producer.flush(args.timeout):
        common.fail("records unacknowledged")
    if len(offsets) != args.count:
        common.fail(f"{len(offsets)} of {args.count} records acknowledged")
    for i, ts in enumerate(timestamps):
        common.emit(acked=i, offset=offsets[i], timestamp=ts)

    consumer = Consumer(
        common.librdkafka_logging({"bootstrap.servers": args.bootstrap, "group.id": "yak-test-times"})
    )
    for lookup in args.lookup:
        [found] = consumer.offsets_for_times([TopicPartition(args.topic, 0, lookup)], timeout=args.timeout)
        if found.error is not None:
            common.fail(f"offsets_for_times({lookup}): {found.error}")
        # librdkafka answers -1 (OFFSET_END) when no record is at or after it.
        common.emit(lookup=lookup, offset=None if found.offset < 0 else found.offset, timestamp=None)
    consumer.close()
