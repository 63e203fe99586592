#!/usr/bin/env bash
# `just cluster`: REPLICAS (3) `switchyard serve` replicas of build/app.wasm
# with the repository's switchyard.toml, each with an admin listener, behind
# nginx (deploy/cluster/nginx.conf), all on loopback. Prints nginx's address
# and serves until Ctrl-C.
#
# `just cluster demo`: the same, then a rolling restart under load: for each
# replica in turn, SIGTERM, /readyz 503, exit 0 once drained, a new one on its
# port, /readyz 200. The load is wrk's when it is installed (else curl in a
# loop); it reports the requests made and those that failed (must be 0), and
# exits 1 if any did.
#
# Knobs: REPLICAS (3), PORT (nginx's; default a free one), DURATION (the
# demo's load, seconds; 20), SWITCHYARD (target/release/switchyard),
# APP (build/app.wasm), CONFIG (switchyard.toml), NGINX (nginx).
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=${1:-serve}
REPLICAS=${REPLICAS:-3}
DURATION=${DURATION:-20}
SWITCHYARD=${SWITCHYARD:-target/release/switchyard}
APP=${APP:-build/app.wasm}
CONFIG=${CONFIG:-switchyard.toml}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
unset RUST_BACKTRACE

case "$MODE" in
serve | demo) ;;
*) echo "usage: $0 [serve|demo]" >&2 && exit 2 ;;
esac
for file in "$SWITCHYARD" "$APP" "$CONFIG"; do
    [ -e "$file" ] || { echo "error: \`$file\` not found: run \`just cluster\`, which builds it" >&2 && exit 1; }
done
[ -x "$NGINX" ] || { echo "error: nginx not found: install it with \`just install-nginx\`" >&2 && exit 1; }
command -v curl >/dev/null || { echo "error: curl is needed (apt-get install curl)" >&2 && exit 1; }

work=$(mktemp -d)
# nginx's workers (`nobody` when started by root) make their temporary files in here.
chmod 755 "$work"
pids=()   # replica pids, by index
ports=()  # their public ports
admins=() # their admin addresses
nginx_pid=""
load_pid=""
cleanup() {
    local all=("${pids[@]}" $nginx_pid $load_pid)
    for pid in "${all[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 1 50); do
        local left=0
        for pid in "${all[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
        [ "$left" = 0 ] && break
        sleep 0.1
    done
    for pid in "${all[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port of 127.0.0.1 that nothing listens on (below the ephemeral range).
free_port() {
    local port
    for _ in $(seq 1 100); do
        port=$((20000 + RANDOM % 12000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    echo "error: no free port found" >&2
    return 1
}

# The status of `GET URL` (000: no answer).
status() {
    curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true
}

# Start replica INDEX on PORT (0: a free one) and wait (60 s at most) for its
# ready line and its /readyz 200.
start_replica() {
    local i=$1 port=$2 log="$work/replica-$1.log" ready=""
    # Emptied here, not by the redirection below: that one happens in the
    # background, maybe after the first read of the log.
    : >"$log"
    "$SWITCHYARD" serve "$APP" --config "$CONFIG" --listen "127.0.0.1:$port" \
        --admin-listen 127.0.0.1:0 >"$log" 2>&1 &
    pids[i]=$!
    for _ in $(seq 1 600); do
        ready=$(sed -n 's#.*> Ready on http://\([0-9.:]*\).*#\1#p' "$log" | head -1)
        [ -n "$ready" ] && break
        kill -0 "${pids[i]}" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$ready" ] || { echo "error: replica $i did not get ready:" >&2 && cat "$log" >&2 && return 1; }
    ports[i]=${ready##*:}
    admins[i]=$(sed -n 's#.*> Admin on http://\([0-9.:]*\).*#\1#p' "$log" | head -1)
    [ -n "${admins[i]}" ] || { echo "error: replica $i printed no admin line:" >&2 && cat "$log" >&2 && return 1; }
    for _ in $(seq 1 100); do
        [ "$(status "http://${admins[i]}/readyz")" = 200 ] && return
        sleep 0.1
    done
    echo "error: replica $i: /readyz is not 200" >&2
    return 1
}

# Restart replica INDEX: SIGTERM, /readyz 503 (or gone), exit 0 once drained
# (within the config's shutdown_timeout and a little more), a new one on its port.
restart_replica() {
    local i=$1 pid=${pids[$1]} code=0 started=$SECONDS
    kill -TERM "$pid"
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        [ "$(status "http://${admins[i]}/readyz")" = 503 ] && break
        sleep 0.1
    done
    for _ in $(seq 1 400); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    wait "$pid" || code=$?
    [ "$code" = 0 ] || { echo "error: replica $i exited with $code after SIGTERM:" >&2 && cat "$work/replica-$i.log" >&2 && return 1; }
    start_replica "$i" "${ports[i]}"
    echo "replica $i (127.0.0.1:${ports[i]}) restarted in $((SECONDS - started)) s"
}

for i in $(seq 0 $((REPLICAS - 1))); do
    start_replica "$i" 0
done

PORT=${PORT:-$(free_port)}
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    echo "error: 127.0.0.1:$PORT is in use: pick another PORT" >&2
    exit 1
fi
cp deploy/cluster/nginx.conf "$work/nginx.conf"
for port in "${ports[@]}"; do
    echo "server 127.0.0.1:$port max_fails=1 fail_timeout=1s;"
done >"$work/upstream.conf"
echo "listen 127.0.0.1:$PORT;" >"$work/listen.conf"
"$NGINX" -p "$work" -c "$work/nginx.conf" -e "$work/error.log" -g 'daemon off;' >"$work/nginx.out" 2>&1 &
nginx_pid=$!
address="127.0.0.1:$PORT"
for _ in $(seq 1 100); do
    [ "$(status "http://$address/")" = 200 ] && break
    kill -0 "$nginx_pid" 2>/dev/null || break
    sleep 0.1
done
[ "$(status "http://$address/")" = 200 ] || { echo "error: nginx does not answer on $address:" >&2 && cat "$work/nginx.out" "$work/error.log" >&2 && exit 1; }

for i in "${!ports[@]}"; do
    echo "replica $i: http://127.0.0.1:${ports[i]} (admin http://${admins[i]}: /healthz /readyz /metrics)"
done
echo "> nginx on http://$address (logs in $work, removed on exit)"

if [ "$MODE" = serve ]; then
    echo "Ctrl-C stops them all"
    while kill -0 "$nginx_pid" 2>/dev/null; do sleep 1; done
    echo "error: nginx exited:" >&2
    cat "$work/nginx.out" "$work/error.log" >&2
    exit 1
fi

# The demo: load on nginx for DURATION seconds, a rolling restart under it.
if command -v wrk >/dev/null; then
    wrk -t2 -c16 -d"${DURATION}s" "http://$address/" >"$work/load.txt" 2>&1 &
    load_pid=$!
else
    echo "(wrk is not installed: curl in a loop drives the load)"
    (
        end=$((SECONDS + DURATION))
        while [ $SECONDS -lt $end ]; do
            curl -s -o /dev/null -w '%{http_code}\n' --max-time 10 "http://$address/" || true
        done
    ) >"$work/load.txt" &
    load_pid=$!
fi
sleep 2
for i in "${!ports[@]}"; do
    restart_replica "$i"
    sleep 1
done
kill -0 "$load_pid" 2>/dev/null || echo "warning: the load ended before the last restart: raise DURATION" >&2
wait "$load_pid" || true
load_pid=""

if command -v wrk >/dev/null; then
    cat "$work/load.txt"
    requests=$(awk '/requests in/ {print $1}' "$work/load.txt")
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$work/load.txt")
    errors=$(sed -n 's/.*Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/\1 \2 \3 \4/p' "$work/load.txt")
    failed=$((${non2xx:-0} + $(echo "${errors:-0}" | tr ' ' '+')))
else
    requests=$(wc -l <"$work/load.txt")
    failed=$(grep -vcx 200 "$work/load.txt" || true)
fi
echo "rolling restart of $REPLICAS replicas under load: $requests requests, $failed failed"
if [ "$failed" != 0 ]; then
    echo "---- nginx error log ----" >&2
    cat "$work/error.log" >&2
    exit 1
fi
