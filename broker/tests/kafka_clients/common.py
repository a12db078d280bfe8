"""What every test client shares: JSON lines on stdout (what the Rust test
parses), a hard timeout, stopping when stdin closes, client logs on stderr,
and the Kafka settings both client kinds use.

Run by broker/tests/kafka_clients.rs with the interpreter of the venv that
scripts/kafka-clients.sh installs.
"""

import argparse
import json
import logging
import os
import sys
import threading

CLIENTS = ("kafka-python", "confluent")
_emit_lock = threading.Lock()
_name = os.path.basename(sys.argv[0])


def emit(**fields):
    """One JSON line on stdout (delivery callbacks run on client threads)."""
    line = json.dumps(fields, sort_keys=True)
    with _emit_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def fail(message):
    """Exits non-zero with `message` on stderr (main thread only)."""
    print(f"{_name}: FAILED: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def watchdog(seconds):
    """Ends the process (exit 2) after `seconds`, whatever it is doing."""

    def expire():
        print(f"{_name}: FAILED: timed out after {seconds} s", file=sys.stderr, flush=True)
        os._exit(2)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


def stop_on_eof():
    """An event set when stdin closes: how the test says "stop now"."""
    stop = threading.Event()

    def read():
        # os.read, not sys.stdin: a daemon thread blocked in a buffered
        # read would hold its lock at interpreter shutdown.
        while os.read(0, 4096):
            pass
        stop.set()

    threading.Thread(target=read, daemon=True).start()
    return stop


def parser(description):
    """The arguments every client takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--client", choices=CLIENTS, required=True)
    p.add_argument("--bootstrap", required=True, help="host:port of any node's Kafka listener")
    p.add_argument("--topic", required=True)
    p.add_argument("--timeout", type=float, default=120.0, help="seconds before giving up")
    return p


def start(args):
    """Logging to stderr (DEBUG with YAK_KAFKA_DEBUG=1) and the watchdog."""
    debug = os.environ.get("YAK_KAFKA_DEBUG") == "1"
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if debug else logging.INFO,
        format=f"%(asctime)s {_name}[{args.client}] %(name)s %(levelname)s %(message)s",
    )
    watchdog(args.timeout)


def librdkafka_logging(config):
    """librdkafka's log lines through Python logging (and its protocol,
    consumer-group and idempotence debug contexts with YAK_KAFKA_DEBUG=1)."""
    config["logger"] = logging.getLogger("librdkafka")
    if os.environ.get("YAK_KAFKA_DEBUG") == "1":
        config["debug"] = "broker,protocol,cgrp,eos,topic,metadata"
    return config


# Failover tuning, the same for every client of a test (documented where
# each script uses them):
#  - metadata refreshed every second, so a client that lost the leader
#    finds the new one within about a lease TTL rather than minutes;
#  - short retry backoffs, so retries follow the new leader quickly.
METADATA_MAX_AGE_MS = 1000
RETRY_BACKOFF_MS = 100


def key_of(record_id):
    return f"key-{record_id}"


def value_of(record_id):
    """A value with some length and non-ASCII text, so compression has
    something to do and a mangled byte shows."""
    return f"value {record_id} " + "grüße vom yak, ünïcödé ✓ " * 4
