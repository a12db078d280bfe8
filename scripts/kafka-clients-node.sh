#!/usr/bin/env bash
# Installs KafkaJS, the JavaScript Kafka client that
# broker/tests/kafka_clients.rs runs against YAK's Kafka listener, into
#   target/kafka-clients-node   (under target/, so git ignores it)
# with `npm ci` from broker/tests/kafka_clients/kafkajs/package-lock.json
# (the exact version is pinned there; docs/kafka.md, "Tested clients").
# Node.js and npm come from Debian's packages (scripts/system-deps.sh) when
# missing. target/kafka-clients-node/bin/node links the node it was
# installed with: that is the node the tests run (testkit::kafkajs).
# Idempotent: when the directory already holds exactly this lock file's
# install it only checks that and exits. Exits non-zero with a message
# when it cannot.
# Usage: scripts/kafka-clients-node.sh
set -euo pipefail
cd "$(dirname "$0")/.."

src="broker/tests/kafka_clients/kafkajs"
dir="target/kafka-clients-node"
stamp="$dir/yak-kafka-clients-node"

fail() {
  echo "yak: kafka-clients-node: $*" >&2
  exit 1
}

[ -f "$src/package-lock.json" ] || fail "no $src/package-lock.json."
wanted="$(sha256sum "$src/package.json" "$src/package-lock.json" | sha256sum | cut -d' ' -f1)"
version="$(sed -n 's/^ *"kafkajs": "\(.*\)".*/\1/p' "$src/package.json")"

# Fast path: installed from this very lock file, and node loads it.
if [ -x "$dir/bin/node" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ] &&
  (cd "$dir" && bin/node -e '
    const v = require("kafkajs/package.json").version;
    if (v !== process.argv[1]) throw new Error(v);
    require("kafkajs");' "$version") >/dev/null 2>&1; then
  exit 0
fi

# Node.js and npm (Debian: the nodejs and npm packages; a node that came
# with its own npm, as NodeSource's does, is taken as it is).
scripts/system-deps.sh nodejs npm ||
  fail "no node or npm on PATH and they could not be installed. Install Node.js 14 or later with npm (Debian: apt-get install nodejs npm) and retry."
node="$(command -v node)"
major="$("$node" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
[ "$major" -ge 14 ] ||
  fail "$node is Node.js $("$node" --version 2>/dev/null); KafkaJS needs 14 or later. Install a newer Node.js and retry."

echo "yak: installing kafkajs $version into $dir (npm ci)" >&2
rm -rf "$dir"
mkdir -p "$dir/bin"
cp "$src/package.json" "$src/package-lock.json" "$dir/"
if ! (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2); then
  rm -rf "$dir"
  fail "npm ci could not install kafkajs $version (is the npm registry reachable?)."
fi
ln -s "$node" "$dir/bin/node"
(cd "$dir" && bin/node -e 'require("kafkajs")') ||
  fail "kafkajs installed but does not load."
echo "$wanted" >"$stamp"
echo "yak: KafkaJS ready: $dir (node $("$node" --version))" >&2
