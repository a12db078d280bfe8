#!/usr/bin/env bash
# Installs the Python Kafka clients that broker/tests/kafka_clients.rs runs
# against YAK's Kafka listener, into a virtualenv inside the repo:
#   target/kafka-clients-venv   (under target/, so git ignores it)
# Pinned versions (docs/kafka.md, "Tested clients"):
#   kafka-python     pure Python; enable_idempotence needs 2.1 or later
#   confluent-kafka  the manylinux wheel bundles librdkafka (no C build)
# Idempotent: when the venv already holds exactly these versions it only
# checks that and exits. Exits non-zero with a message when it cannot.
# Usage: scripts/kafka-clients.sh
set -euo pipefail
cd "$(dirname "$0")/.."

KAFKA_PYTHON_VERSION=2.2.21
CONFLUENT_KAFKA_VERSION=2.16.1
venv="target/kafka-clients-venv"
python="$venv/bin/python"
wanted="kafka-python==$KAFKA_PYTHON_VERSION confluent-kafka==$CONFLUENT_KAFKA_VERSION"
stamp="$venv/yak-kafka-clients"

fail() {
  echo "yak: kafka-clients: $*" >&2
  exit 1
}

# Fast path: the venv exists, was made for these versions, and imports them.
if [ -x "$python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ] &&
  "$python" - "$KAFKA_PYTHON_VERSION" "$CONFLUENT_KAFKA_VERSION" <<'EOF' 2>/dev/null; then
import sys, kafka, confluent_kafka
assert kafka.__version__ == sys.argv[1], kafka.__version__
assert confluent_kafka.__version__ == sys.argv[2], confluent_kafka.__version__
EOF
  exit 0
fi

# A Python 3 with the venv module (and ensurepip, which venv needs to put
# pip into the new environment). Debian splits them into python3-venv.
base="${YAK_PYTHON:-python3}"
command -v "$base" >/dev/null 2>&1 ||
  fail "no $base on PATH. Install Python 3 (Debian: apt-get install python3 python3-venv) and retry."
if ! "$base" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  scripts/system-deps.sh python3-venv ||
    fail "$base has no venv module and python3-venv could not be installed."
  # The Debian package completes Debian's interpreter; use that one.
  if ! "$base" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    base=/usr/bin/python3
    "$base" -c 'import venv, ensurepip' >/dev/null 2>&1 ||
      fail "neither python3 on PATH nor /usr/bin/python3 has a working venv module."
  fi
fi

echo "yak: installing $wanted into $venv" >&2
rm -rf "$venv"
mkdir -p target
"$base" -m venv "$venv" || fail "$base -m venv $venv failed."
# Wheels only: confluent-kafka must come as the manylinux wheel that
# bundles librdkafka, never as a source build against a system librdkafka.
if ! "$python" -m pip install --quiet --disable-pip-version-check --no-input \
  --only-binary=:all: "kafka-python==$KAFKA_PYTHON_VERSION" \
  "confluent-kafka==$CONFLUENT_KAFKA_VERSION"; then
  rm -rf "$venv"
  fail "pip could not install $wanted (is PyPI reachable?)."
fi
"$python" -c 'import kafka, confluent_kafka' ||
  fail "the clients installed but do not import."
echo "$wanted" >"$stamp"
echo "yak: Kafka clients ready: $python" >&2
