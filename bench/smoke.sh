#!/usr/bin/env bash
# CI smoke run of eventcast-bench: starts the fake OpenAI-compatible provider and the eventcast
# binary of this build tree on 127.0.0.1 port 0, runs every scenario at tiny sizes for about
# two seconds, and passes only if each one completes with nothing lost and no connection failed.
# No timing is asserted. Usage: smoke.sh EVENTCAST_BINARY EVENTCAST_BENCH_BINARY
set -euo pipefail

server_bin=$1
bench_bin=$2
key=bench-smoke-key
dir=$(mktemp -d /tmp/eventcast-bench-smoke-XXXXXX)
provider_pid=
server_pid=

cleanup() {
    for pid in $server_pid $provider_pid; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

wait_for_file() {  # FILE SECONDS
    local deadline=$((SECONDS + $2))
    while [ ! -s "$1" ]; do
        if [ $SECONDS -ge $deadline ]; then
            echo "smoke: $1 did not appear within $2 s" >&2
            return 1
        fi
        sleep 0.05
    done
}

"$bench_bin" fake-openai --port 0 --port-file "$dir/provider.port" --chunks 10 --interval-ms 20 \
    --max-seconds 240 >/dev/null &
provider_pid=$!
wait_for_file "$dir/provider.port" 20
provider_port=$(cat "$dir/provider.port")

"$server_bin" serve --host 127.0.0.1 --port 0 --port-file "$dir/server.port" --api-key "$key" \
    --log-level warn --threads 2 --openai-base-url "http://127.0.0.1:$provider_port" \
    --openai-model fake --chat-coalesce-ms 0 &
server_pid=$!
wait_for_file "$dir/server.port" 60
url="ws://127.0.0.1:$(cat "$dir/server.port")"

failed=0
run() {  # NAME ARGS...
    local name=$1
    shift
    echo "smoke: $name: eventcast-bench $*"
    if "$bench_bin" "$@" --url "$url" --api-key "$key" --label eventcast --connect-timeout 60 \
        --drain-timeout 20; then
        echo "smoke: $name passed"
    else
        echo "smoke: $name FAILED" >&2
        failed=$((failed + 1))
    fi
}

run fanout fanout --subscribers 20 --duration 2 --warmup 0.5
run streams streams --channels 50 --rate 20 --duration 2 --warmup 0.5
run idle idle --connections 100 --server-pid "$server_pid" --duration 1 --settle 0.5
run chat chat --streams 10 --duration 2 --ramp-ms 200 --warmup 0.5

if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "smoke: eventcast exited during the run" >&2
    failed=$((failed + 1))
fi
if [ "$failed" -ne 0 ]; then
    echo "smoke: $failed check(s) failed" >&2
    exit 1
fi
echo "smoke: every scenario completed with nothing lost"
