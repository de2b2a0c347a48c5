# Sourced by scripts/test.sh, scripts/contract.sh and scripts/bench.sh. `ensure_venv`
# installs the pinned Python tools of scripts/requirements-test.txt (SecantusDB, a MongoDB
# wire-protocol server; schemathesis and the OpenAPI and Prometheus checkers) into
# .framedb/venv inside the project, again whenever that file changes. `ensure_mongodb`
# makes sure MONGODB_URI names a MongoDB wire-protocol server: it exports FRAMEDB_SECANTUSD
# (tests that crash a server of their own start it) and, without MONGODB_URI set, starts
# SecantusDB on a free loopback port with in-memory storage, and stops it when the calling
# script exits. Usage: ensure_mongodb LOGFILE

# The venv, with every pinned tool installed.
ensure_venv() {
    mkdir -p .framedb
    local venv=.framedb/venv
    if ! cmp -s scripts/requirements-test.txt "$venv/requirements.installed" \
        || ! "$venv/bin/secantusd-py" --help >/dev/null 2>&1; then
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
        cp scripts/requirements-test.txt "$venv/requirements.installed"
    fi
}

# A free loopback port.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

ensure_mongodb() {
    local log=$1
    local venv=.framedb/venv
    ensure_venv
    export FRAMEDB_SECANTUSD="$PWD/$venv/bin/secantusd-py"
    [ -n "${MONGODB_URI:-}" ] && return 0
    local port
    port=$(free_port)
    "$venv/bin/secantusd-py" --host 127.0.0.1 --port "$port" --storage-path :memory: \
        --log-level WARNING >"$log" 2>&1 &
    mongo_pid=$!
    trap 'kill "$mongo_pid" 2>/dev/null || true; wait "$mongo_pid" 2>/dev/null || true' EXIT
    for _ in $(seq 1 120); do
        if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null; then
            export MONGODB_URI="mongodb://127.0.0.1:$port"
            echo "MONGODB_URI=$MONGODB_URI (SecantusDB; log: $log)"
            return 0
        fi
        if ! kill -0 "$mongo_pid" 2>/dev/null; then
            cat "$log" >&2
            echo "SecantusDB exited before accepting connections" >&2
            exit 1
        fi
        sleep 0.5
    done
    echo "SecantusDB did not accept connections within 60 s" >&2
    exit 1
}
