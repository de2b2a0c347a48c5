#!/usr/bin/env bash
# FrameDB's whole test suite, from a fresh clone on a machine with only the Rust toolchain:
# formatting, lints, every test of every crate (unit, integration, end-to-end, doc) and the
# embedding example. Whatever a later test needs installed or started, this script does.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# shellcheck source=scripts/mongo.sh
. scripts/mongo.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo clippy without the simulator (the server for real clusters only)"
cargo clippy -p framedb-http --no-default-features --locked -- -D warnings

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

step "doc tests"
cargo test --workspace --doc --locked

step "the embedding example"
cargo run --quiet --locked -p framedb-examples --example embed

# The tests need a MongoDB wire-protocol server: MONGODB_URI, or SecantusDB started here.
step "MongoDB for the tests"
ensure_mongodb .framedb/secantusd.log

step "the API's contract: OpenAPI 3.1, schemathesis against the embedded default"
bash scripts/contract.sh

# Last, so that its summary line closes the output. nextest ships with this machine's
# toolchain image; where it is missing, cargo's own runner does the same job.
step "unit, integration and end-to-end tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --all-targets --locked --no-fail-fast
else
    cargo test --workspace --all-targets --locked --no-fail-fast
fi
