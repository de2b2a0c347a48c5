#!/usr/bin/env bash
# FrameDB's benchmark: builds in release and runs framedb-bench, which measures
# read, query, create, port allocation and memory against their baselines in one run and
# writes bench/results/latest.md and latest.json. `--quick` takes under a minute.
#
# The MongoDB scenarios need a MongoDB wire-protocol server: MONGODB_URI names one;
# without it, this script installs SecantusDB into .framedb/venv (as scripts/test.sh does),
# starts it on a free loopback port with in-memory storage, and stops it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/mongo.sh
. scripts/mongo.sh

# framedb-server too: the fleet scenario runs its `simulate` and `global` roles.
cargo build --release --locked -p framedb-bench -p framedb-http --bins
ensure_mongodb .framedb/secantusd-bench.log

target/release/framedb-bench run "$@"
