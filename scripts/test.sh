#!/usr/bin/env bash
# Runs every test of the workspace: unit, property, crash-recovery,
# integration (real redis-server, real node processes) and browser tests.
# Installs the system packages the tests need when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-deps.sh redis-server chromium chromium-driver kcat
# kafka-python and confluent-kafka, for broker/tests/kafka_clients.rs.
scripts/kafka-clients.sh
# KafkaJS (with node and npm), for the same tests.
scripts/kafka-clients-node.sh
# A test run builds once; incremental artifacts would only take disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cargo test --workspace --all-targets --locked "$@"
# Doc examples are tests too (all-targets leaves them out).
cargo test --workspace --doc --locked
