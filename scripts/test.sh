#!/usr/bin/env bash
# FrameDB's whole test suite, from a fresh clone on a machine with only the Rust toolchain:
# formatting, lints, every test of every crate (unit, integration, end-to-end, doc) and the
# embedding example. Whatever a later test needs installed or started, this script does.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# The MongoDB-compatible server the tests run against when MONGODB_URI is not set.
SECANTUSDB_VERSION=0.7.0b3
mkdir -p .framedb

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "doc tests"
cargo test --workspace --doc --locked

step "the embedding example"
cargo run --quiet --locked -p framedb-examples --example embed

# The tests need a MongoDB wire-protocol server. MONGODB_URI names one to use; without
# it, this script installs SecantusDB (DESIGN.md §6) into .framedb/venv, inside the
# project, starts it on a free loopback port, and stops it when the script ends.
if [ -z "${MONGODB_URI:-}" ]; then
    step "starting a MongoDB-compatible test server (SecantusDB)"
    venv=.framedb/venv
    if ! "$venv/bin/secantusd-py" --help >/dev/null 2>&1; then
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "secantusdb==$SECANTUSDB_VERSION"
    fi
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$venv/bin/secantusd-py" --host 127.0.0.1 --port "$port" --storage-path :memory: \
        --log-level WARNING >.framedb/secantusd.log 2>&1 &
    mongo_pid=$!
    trap 'kill "$mongo_pid" 2>/dev/null || true; wait "$mongo_pid" 2>/dev/null || true' EXIT
    for _ in $(seq 1 120); do
        if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null; then
            break
        fi
        if ! kill -0 "$mongo_pid" 2>/dev/null; then
            cat .framedb/secantusd.log >&2
            echo "SecantusDB exited before accepting connections" >&2
            exit 1
        fi
        sleep 0.5
    done
    export MONGODB_URI="mongodb://127.0.0.1:$port"
    echo "MONGODB_URI=$MONGODB_URI (log: .framedb/secantusd.log)"
fi

# Last, so that its summary line closes the output. nextest ships with this machine's
# toolchain image; where it is missing, cargo's own runner does the same job.
step "unit, integration and end-to-end tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --all-targets --locked --no-fail-fast
else
    cargo test --workspace --all-targets --locked --no-fail-fast
fi
