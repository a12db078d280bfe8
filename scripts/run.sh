#!/usr/bin/env bash
# Starts the whole local YAK cluster for the demo: Redis, a broker, a
# follower, the producer UI and the consumer UI (`yak up`). Installs
# redis-server when it is missing. Extra arguments go to `yak up`
# (e.g. --followers 2, --data-dir DIR, --client-token T; or set
# YAK_CLIENT_TOKEN: see docs/security.md). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-deps.sh redis-server
echo "yak: building (release)…" >&2
cargo build --release --locked --bins
exec target/release/yak up "$@"
