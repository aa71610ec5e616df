#!/usr/bin/env bash
# CI smoke run of eventcast-bench: starts the fake OpenAI-compatible provider and the eventcast
# binary of this build tree on 127.0.0.1 port 0, runs every scenario at tiny sizes for about
# two seconds, and passes only if each one completes with nothing lost and no connection failed.
# When nats-server is on PATH (scripts/bootstrap installs it), fanout, streams and idle also run
# with --protocol nats against a nats-server it starts on 127.0.0.1 with its websocket listener.
# No timing is asserted. Usage: smoke.sh EVENTCAST_BINARY EVENTCAST_BENCH_BINARY
set -euo pipefail

server_bin=$1
bench_bin=$2
key=bench-smoke-key
dir=$(mktemp -d /tmp/eventcast-bench-smoke-XXXXXX)
provider_pid=
server_pid=
nats_pid=

cleanup() {
    for pid in $server_pid $provider_pid $nats_pid; do
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
label=eventcast
run() {  # NAME ARGS...  (against $url, labelled $label)
    local name=$1
    shift
    echo "smoke: $name: eventcast-bench $*"
    if "$bench_bin" "$@" --url "$url" --api-key "$key" --label "$label" --connect-timeout 60 \
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

# The NATS broker reference of bench/compare: both ports chosen by nats-server (-1), the
# websocket one read from its log.
if command -v nats-server >/dev/null; then
    cat >"$dir/nats.conf" <<'EOF'
listen: "127.0.0.1:-1"
write_deadline: "10s"
max_pending: 67108864
websocket {
  listen: "127.0.0.1:-1"
  no_tls: true
  compression: false
}
EOF
    nats-server -c "$dir/nats.conf" -l "$dir/nats.log" &
    nats_pid=$!
    deadline=$((SECONDS + 20))
    nats_port=
    while [ -z "$nats_port" ]; do
        nats_port=$(sed -n 's|.*websocket clients on ws://127\.0\.0\.1:\([0-9]*\).*|\1|p' \
            "$dir/nats.log" 2>/dev/null || true)
        if [ -z "$nats_port" ]; then
            if [ $SECONDS -ge $deadline ] || ! kill -0 "$nats_pid" 2>/dev/null; then
                echo "smoke: nats-server did not open its websocket listener" >&2
                cat "$dir/nats.log" >&2 || true
                exit 1
            fi
            sleep 0.05
        fi
    done
    url="ws://127.0.0.1:$nats_port"
    label=nats
    run nats-fanout fanout --protocol nats --subscribers 20 --duration 1 --warmup 0.5
    run nats-streams streams --protocol nats --channels 50 --rate 20 --duration 1 --warmup 0.5
    run nats-idle idle --protocol nats --connections 100 --server-pid "$nats_pid" --duration 1 \
        --settle 0.5
    if ! kill -0 "$nats_pid" 2>/dev/null; then
        echo "smoke: nats-server exited during the run" >&2
        failed=$((failed + 1))
    fi
else
    echo "smoke: nats-server not on PATH; the --protocol nats runs are skipped"
fi
if [ "$failed" -ne 0 ]; then
    echo "smoke: $failed check(s) failed" >&2
    exit 1
fi
echo "smoke: every scenario completed with nothing lost"
