"""Reads a whole topic without a group: assign every partition, seek to the
beginning, read until every partition's position reaches the end offset
(the high-water mark) it had at the start. Prints one line per record and
one at the end:

  {"partition": p, "offset": o, "key": k, "value": v, "timestamp": ms}
  {"done": true, "end_offsets": {"0": n0, "1": n1, ...}}
"""

import time

import common

args = common.parser(__doc__).parse_args()
common.start(args)
deadline = time.monotonic() + args.timeout


def record(partition, offset, key, value, timestamp):
    common.emit(
        partition=partition,
        offset=offset,
        key=key.decode() if key is not None else None,
        value=value.decode() if value is not None else None,
        timestamp=timestamp,
    )


if args.client == "kafka-python":
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=args.bootstrap, enable_auto_commit=False)
    partitions = None
    while not partitions:  # metadata for the topic may take a round trip
        partitions = consumer.partitions_for_topic(args.topic)
        if time.monotonic() > deadline:
            common.fail(f"no metadata for topic {args.topic}")
    tps = [TopicPartition(args.topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning()
    end = {tp.partition: offset for tp, offset in consumer.end_offsets(tps).items()}

    def position(partition):
        return consumer.position(TopicPartition(args.topic, partition))

    def poll():
        for batch in consumer.poll(timeout_ms=500, max_records=500).values():
            for r in batch:
                record(r.partition, r.offset, r.key, r.value, r.timestamp)

else:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        common.librdkafka_logging(
            {
                "bootstrap.servers": args.bootstrap,
                # librdkafka wants a group id even to only assign; nothing
                # is committed (no auto commit, no offset store).
                "group.id": "yak-test-reader",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
            }
        )
    )
    metadata = consumer.list_topics(args.topic, timeout=args.timeout)
    topic = metadata.topics[args.topic]
    if topic.error is not None:
        common.fail(f"metadata for {args.topic}: {topic.error}")
    numbers = sorted(topic.partitions)
    end = {}
    for n in numbers:
        _, high = consumer.get_watermark_offsets(TopicPartition(args.topic, n), timeout=args.timeout)
        end[n] = high
    consumer.assign([TopicPartition(args.topic, n, OFFSET_BEGINNING) for n in numbers])
    positions = {n: 0 for n in numbers}

    def position(partition):
        return positions[partition]

    def poll():
        for m in consumer.consume(num_messages=500, timeout=0.5):
            if m.error() is not None:
                common.fail(f"consume: {m.error()}")
            record(m.partition(), m.offset(), m.key(), m.value(), m.timestamp()[1])
            positions[m.partition()] = m.offset() + 1


while any(position(p) < offset for p, offset in end.items()):
    if time.monotonic() > deadline:
        common.fail(f"not at the end offsets {end} in time")
    poll()
consumer.close()
common.emit(done=True, end_offsets={str(p): o for p, o in end.items()})
