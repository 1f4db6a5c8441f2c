#!/usr/bin/env bash
# The MongoDB-wire server the MongoDB journal tests run against: SecantusDB.
#
#   tests/support/mongodb_test_server.sh start PORT DIR   # prints mongodb://127.0.0.1:PORT
#   tests/support/mongodb_test_server.sh stop DIR
#
# SecantusDB is GPL-2.0: a test-time server only, installed into its own venv
# (.venv-mongo, or $POSBUS_MONGO_VENV), never imported by or shipped with posbus.
# `start` installs it if needed (exact pin), starts it in the background on
# 127.0.0.1 with its data, log and pid file in DIR, and waits (bounded) until it
# answers a ping. `stop` ends the process whose pid is in DIR and waits for it.
# .ci/run uses this script; so do developers:
#
#   tests/support/mongodb_test_server.sh start 27117 /tmp/posbus-mongo
#   export POSBUS_TEST_MONGODB_URI=mongodb://127.0.0.1:27117
#   .venv/bin/python -m pytest -q tests/integration/test_journal_backends.py
#   tests/support/mongodb_test_server.sh stop /tmp/posbus-mongo
set -euo pipefail
cd "$(dirname "$0")/../.."

PIN='SecantusDB==0.7.0b3'
VENV="${POSBUS_MONGO_VENV:-.venv-mongo}"
START_TIMEOUT_S="${POSBUS_MONGO_START_TIMEOUT_S:-60}"

usage() {
    echo "usage: $0 start PORT DIR | stop DIR" >&2
    exit 2
}

start() {
    local port="$1" dir="$2"
    mkdir -p "$dir/data"
    if [ ! -x "$VENV/bin/secantusd-py" ]; then
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q "$PIN" >&2
    fi
    if [ -f "$dir/secantusd.pid" ] && kill -0 "$(cat "$dir/secantusd.pid")" 2>/dev/null; then
        echo "a test server already runs from $dir (pid $(cat "$dir/secantusd.pid"))" >&2
        exit 1
    fi
    nohup "$VENV/bin/secantusd-py" --host 127.0.0.1 --port "$port" \
        --storage-path "$dir/data" --log-level WARNING >"$dir/secantusd.log" 2>&1 &
    echo $! >"$dir/secantusd.pid"
    # SecantusDB depends on pymongo, so its own venv can ping it.
    if ! "$VENV/bin/python" - "$port" "$START_TIMEOUT_S" <<'EOF'; then
import sys
import time

from pymongo import MongoClient
from pymongo.errors import PyMongoError

port, limit = int(sys.argv[1]), float(sys.argv[2])
deadline = time.monotonic() + limit
while True:
    try:
        with MongoClient(f"mongodb://127.0.0.1:{port}", serverSelectionTimeoutMS=500) as client:
            client.admin.command("ping")
        sys.exit(0)
    except PyMongoError:
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.2)
EOF
        echo "the MongoDB test server did not answer a ping within ${START_TIMEOUT_S} s; log:" >&2
        tail -n 20 "$dir/secantusd.log" >&2 || true
        stop "$dir"
        exit 1
    fi
    echo "mongodb://127.0.0.1:$port"
}

stop() {
    local dir="$1" pid
    [ -f "$dir/secantusd.pid" ] || return 0
    pid="$(cat "$dir/secantusd.pid")"
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/secantusd.pid"
}

case "${1:-}" in
    start) [ $# -eq 3 ] || usage; start "$2" "$3" ;;
    stop) [ $# -eq 2 ] || usage; stop "$2" ;;
    *) usage ;;
esac
