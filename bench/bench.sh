#!/usr/bin/env bash
# `just bench`: every server side by side, in one run, on the same machine.
#
# Servers: a native hyper hello (the limit); the stock `wasmtime serve -Scli`
# (with `-Skeyvalue -Sconfig`: the example and standard guests import them)
# (same wasmtime version as the host) on build/app.wasm with default flags and
# with its best pooling flags, and on the router composition; `switchyard
# serve` on the same app through the render path (a config route), the
# default-handler path, and the router composition; and the same with
# `[performance] instance_reuse`; a WASIp3 handler under both servers (fresh
# instances, and wasmtime serve's default reuse); and the response cache (a
# hit on the example's `/cached`, plain and gzip). Each is driven by wrk in
# alternating rounds;
# the table shows medians of the rounds, peak RSS, and ratios to the
# references measured in this run. Last, what one render call costs in
# process, with no HTTP around it (bench/render_call.rs).
#
# Then the pinned layout: each server alone on core 0 (taskset), wrk on
# core 1 (-t1 -c16), so the load generator does not compete with the
# server; there the references are native hyper hello and a native hyper +
# askama server rendering the same pages with the same templates
# (bench/native_site.rs). And outgoing HTTP: the p2 proxy's `/fetch` of a
# local backend (native hello, on wrk's core) against the native site's
# `/fetch` of the same backend through hyper-util's pooled client. And a
# middleware in front of the p3 handler, linked by the host and composed,
# against the p3 handler alone and the composition under wasmtime serve.
#
# Knobs: ROUNDS (3), DURATION (5s), CONNECTIONS (32), THREADS (2).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
# With RUST_BACKTRACE set, wasmtime captures a backtrace at every store drop.
unset RUST_BACKTRACE

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# start NAME URL_PATH PROGRAM ARGS...: start a server on 127.0.0.1:0 and wait
# for its ready line; records its pid and address.
declare -A pid_of address_of path_of header_of
names=()
BIN=./target/dist
# start NAME PATH PROGRAM ARGS...; HEADER=... for a request header wrk sends.
start() {
    local name=$1 path=$2; shift 2
    header_of[$name]=${HEADER:-}
    local log="$work/$name.log"
    "$@" >"$log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    local address=""
    for _ in $(seq 1 600); do
        address=$(grep -oE '(Ready on|Serving HTTP on) http://[0-9.]+:[0-9]+' "$log" | head -1 | sed -E 's#.*http://##') || true
        [ -n "$address" ] && break
        kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "$name exited" >&2; exit 1; }
        sleep 0.1
    done
    [ -n "$address" ] || { cat "$log"; echo "$name did not get ready" >&2; exit 1; }
    # Check it answers 200 before measuring it.
    local status
    status=$(curl -s -o /dev/null -w '%{http_code}' "http://$address$path")
    [ "$status" = 200 ] || { echo "$name answered $status for $path" >&2; cat "$log"; exit 1; }
    pid_of[$name]=$pid; address_of[$name]=$address; path_of[$name]=$path
    names+=("$name")
}

# to_ms VALUE: wrk's "123.45us" / "1.23ms" / "1.02s" in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
        else printf "%s", v }'
}

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

W=build
app=$W/app.wasm
cat >"$work/switchyard.toml" <<TOML
app = "$(pwd)/$app"
[[routes]]
path = "/render"
page = "/a"
TOML
cat >"$work/reuse.toml" <<TOML
app = "$(pwd)/$app"
[[routes]]
path = "/render"
page = "/a"
[performance]
instance_reuse = 1000
TOML
# The servers that take their app on the command line: no config, not even
# the repository's switchyard.toml (its public_dir and grants are the site's).
: >"$work/plain.toml"
plain=(--config "$work/plain.toml")
pooling="pooling-allocator=y,pooling-memory-keep-resident=2097152,pooling-table-keep-resident=65536,pooling-pagemap-scan=y"
p3=target/wasm/wasm32-wasip2/release/p3_handler.wasm
p2proxy=target/wasm/wasm32-wasip2/release/p2_proxy.wasm
p3mw=target/wasm/wasm32-wasip2/release/p3_middleware.wasm
start native /a $BIN/examples/native_hello
start native-site "/a?name=bench" $BIN/examples/native_site
# wasmtime serve has no `switchyard:server/revalidate`: it serves the app as
# `switchyard compose` makes it for any host (a no-op revalidation plugged in).
any_host=$W/app-any-host.wasm
start wasmtime-default /a wasmtime serve -Scli -Skeyvalue -Sconfig --addr 127.0.0.1:0 "$any_host"
start wasmtime-pooling /a wasmtime serve -Scli -Skeyvalue -Sconfig -O "$pooling" --addr 127.0.0.1:0 "$any_host"
start wasmtime-composed /a?name=bench wasmtime serve -Scli -Skeyvalue -Sconfig --addr 127.0.0.1:0 "$W/composed.wasm"
start switchyard-render "/render?name=bench" $BIN/switchyard serve --config "$work/switchyard.toml" --listen 127.0.0.1:0
start switchyard-handler "/a?name=bench" $BIN/switchyard serve --config "$work/switchyard.toml" --listen 127.0.0.1:0
start switchyard-composed "/a?name=bench" $BIN/switchyard serve "$app" --router "$W/router.wasm" "${plain[@]}" --listen 127.0.0.1:0
start switchyard-render-reuse "/render?name=bench" $BIN/switchyard serve --config "$work/reuse.toml" --listen 127.0.0.1:0
start switchyard-handler-reuse "/a?name=bench" $BIN/switchyard serve --config "$work/reuse.toml" --listen 127.0.0.1:0
start wasmtime-reuse /a wasmtime serve -Scli -Skeyvalue -Sconfig -O "$pooling" --max-instance-reuse-count 1000 --addr 127.0.0.1:0 "$any_host"
start switchyard-p3 / $BIN/switchyard serve "$p3" "${plain[@]}" --listen 127.0.0.1:0
start wasmtime-p3-fresh / wasmtime serve -Scli -Skeyvalue -Sconfig -O "$pooling" --max-instance-reuse-count 1 --addr 127.0.0.1:0 "$p3"
start wasmtime-p3-default / wasmtime serve -Scli -Skeyvalue -Sconfig --addr 127.0.0.1:0 "$p3"
start switchyard-cache-hit /cached $BIN/switchyard serve --config "$work/switchyard.toml" --listen 127.0.0.1:0
HEADER="Accept-Encoding: gzip" start switchyard-cache-hit-gzip /cached $BIN/switchyard serve --config "$work/switchyard.toml" --listen 127.0.0.1:0
shared=("${names[@]}")

# The pinned layout: servers on core 0, wrk on core 1.
pin="taskset -c 0"
names=()
# The backend the fetching pages fetch from, on wrk's core.
start backend /a taskset -c 1 $BIN/examples/native_hello
backend=${address_of[backend]}
cat >"$work/fetch.toml" <<TOML
[grants]
outgoing_http = ["$backend"]
TOML
names=()
start pinned-native /a $pin $BIN/examples/native_hello
start pinned-native-site "/a?name=bench" $pin $BIN/examples/native_site
start pinned-render "/render?name=bench" $pin $BIN/switchyard serve --config "$work/switchyard.toml" --listen 127.0.0.1:0
start pinned-render-reuse "/render?name=bench" $pin $BIN/switchyard serve --config "$work/reuse.toml" --listen 127.0.0.1:0
start pinned-handler "/a?name=bench" $pin $BIN/switchyard serve --config "$work/switchyard.toml" --listen 127.0.0.1:0
start pinned-handler-reuse "/a?name=bench" $pin $BIN/switchyard serve --config "$work/reuse.toml" --listen 127.0.0.1:0
start pinned-composed "/a?name=bench" $pin $BIN/switchyard serve "$app" --router "$W/router.wasm" "${plain[@]}" --listen 127.0.0.1:0
start pinned-p2-proxy / $pin $BIN/switchyard serve "$p2proxy" "${plain[@]}" --listen 127.0.0.1:0
start pinned-wasmtime-p2-proxy / $pin wasmtime serve -Scli -Skeyvalue -Sconfig -O "$pooling" --max-instance-reuse-count 1 --addr 127.0.0.1:0 "$p2proxy"
start pinned-p3 / $pin $BIN/switchyard serve "$p3" "${plain[@]}" --listen 127.0.0.1:0
start pinned-wasmtime-p3-fresh / $pin wasmtime serve -Scli -Skeyvalue -Sconfig -O "$pooling" --max-instance-reuse-count 1 --addr 127.0.0.1:0 "$p3"
start pinned-wasmtime-p3-default / $pin wasmtime serve -Scli -Skeyvalue -Sconfig --addr 127.0.0.1:0 "$p3"
# A middleware (the plain wasip3 one: it rebuilds the request and the response)
# in front of the p3 handler: linked by the host, and composed into one component.
start pinned-p3-middleware / $pin $BIN/switchyard serve "$p3" --router "$p3mw" "${plain[@]}" --listen 127.0.0.1:0
start pinned-middleware-composed / $pin $BIN/switchyard serve "$W/middleware-composed.wasm" "${plain[@]}" --listen 127.0.0.1:0
start pinned-wasmtime-middleware-composed-fresh / $pin wasmtime serve -Scli -Skeyvalue -Sconfig -O "$pooling" --max-instance-reuse-count 1 --addr 127.0.0.1:0 "$W/middleware-composed.wasm"
start pinned-wasmtime-middleware-composed-default / $pin wasmtime serve -Scli -Skeyvalue -Sconfig --addr 127.0.0.1:0 "$W/middleware-composed.wasm"
start pinned-cache-hit /cached $pin $BIN/switchyard serve --config "$work/switchyard.toml" --listen 127.0.0.1:0
start pinned-native-fetch "/fetch?url=http://$backend/a" $pin $BIN/examples/native_site
start pinned-fetch "/fetch?url=http://$backend/a" $pin $BIN/switchyard serve "$p2proxy" --config "$work/fetch.toml" --listen 127.0.0.1:0
pinned=("${names[@]}")

# measure WRK_PREFIX THREADS CONNECTIONS NAMES...: ROUNDS alternating rounds.
measure() {
local prefix=$1 threads=$2 connections=$3; shift 3
for round in $(seq 1 "$ROUNDS"); do
    for name in "$@"; do
        url="http://${address_of[$name]}${path_of[$name]}"
        header=(); [ -z "${header_of[$name]}" ] || header=(-H "${header_of[$name]}")
        $prefix wrk -t"$threads" -c"$connections" -d"$DURATION" --latency "${header[@]}" "$url" >"$work/wrk.out" &
        wrk_pid=$!
        # RSS under load: sampled halfway through the round.
        sleep "$(awk -v d="${DURATION%s}" 'BEGIN { print d / 2 }')"
        awk -v n="$name" '/^VmRSS:/ { print n, $2 }' "/proc/${pid_of[$name]}/status" >>"$work/rss"
        wait "$wrk_pid"
        out=$(cat "$work/wrk.out")
        rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
        p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
        p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
        errors=$(awk '/Non-2xx|Socket errors/ { print }' <<<"$out")
        [ -z "$errors" ] || echo "warning: $name round $round: $errors" >&2
        echo "$name $rps $p50 $p99" >>"$work/results"
        echo "round $round  $name: $rps req/s, p50 $p50 ms, p99 $p99 ms" >&2
    done
done
}
measure "" "$THREADS" "$CONNECTIONS" "${shared[@]}"
measure "taskset -c 1" 1 16 "${pinned[@]}"
names=("${shared[@]}")

# The largest RSS sampled under load, in MB.
rss_mb() { awk -v n="$1" '$1 == n && $2 > max { max = $2 } END { printf "%.0f", max / 1024 }' "$work/rss"; }
declare -A rps_of
printf '\n| server | req/s | p50 (ms) | p99 (ms) | RSS under load (MB) | vs native | vs wasmtime default | vs wasmtime pooling |\n'
printf '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n'
for name in "${names[@]}"; do
    rps_of[$name]=$(awk -v n="$name" '$1 == n { print $2 }' "$work/results" | median)
done
for name in "${names[@]}"; do
    rps=${rps_of[$name]}
    p50=$(awk -v n="$name" '$1 == n { print $3 }' "$work/results" | median)
    p99=$(awk -v n="$name" '$1 == n { print $4 }' "$work/results" | median)
    ratio() { awk -v a="$rps" -v b="$1" 'BEGIN { printf "%.2fx", a / b }'; }
    printf '| %s | %.0f | %s | %s | %s | %s | %s | %s |\n' "$name" "$rps" "$p50" "$p99" "$(rss_mb "$name")" \
        "$(ratio "${rps_of[native]}")" "$(ratio "${rps_of[wasmtime-default]}")" "$(ratio "${rps_of[wasmtime-pooling]}")"
done
composed=$(awk -v a="${rps_of[switchyard-composed]}" -v b="${rps_of[wasmtime-composed]}" 'BEGIN { printf "%.2fx", a / b }')
handler_reuse=$(awk -v a="${rps_of[switchyard-handler-reuse]}" -v b="${rps_of[wasmtime-reuse]}" 'BEGIN { printf "%.2fx", a / b }')
printf '\nswitchyard-composed vs wasmtime-composed: %s; switchyard-handler-reuse vs wasmtime-reuse: %s\n' "$composed" "$handler_reuse"
p3_fresh=$(awk -v a="${rps_of[switchyard-p3]}" -v b="${rps_of[wasmtime-p3-fresh]}" 'BEGIN { printf "%.2fx", a / b }')
p3_default=$(awk -v a="${rps_of[switchyard-p3]}" -v b="${rps_of[wasmtime-p3-default]}" 'BEGIN { printf "%.2fx", a / b }')
printf 'switchyard-p3 (fresh instances) vs wasmtime-p3-fresh: %s; vs wasmtime-p3-default (reuse 128): %s\n' "$p3_fresh" "$p3_default"

# The pinned table: one server core, wrk on the other.
for name in "${pinned[@]}"; do
    rps_of[$name]=$(awk -v n="$name" '$1 == n { print $2 }' "$work/results" | median)
done
printf '\nPinned: each server on core 0, wrk -t1 -c16 on core 1.\n\n'
printf '| server (one core) | req/s | p50 (ms) | p99 (ms) | RSS under load (MB) | vs native hello | vs native site |\n'
printf '| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n'
for name in "${pinned[@]}"; do
    rps=${rps_of[$name]}
    p50=$(awk -v n="$name" '$1 == n { print $3 }' "$work/results" | median)
    p99=$(awk -v n="$name" '$1 == n { print $4 }' "$work/results" | median)
    ratio() { awk -v a="$rps" -v b="$1" 'BEGIN { printf "%.2fx", a / b }'; }
    printf '| %s | %.0f | %s | %s | %s | %s | %s |\n' "${name#pinned-}" "$rps" "$p50" "$p99" "$(rss_mb "$name")" \
        "$(ratio "${rps_of[pinned-native]}")" "$(ratio "${rps_of[pinned-native-site]}")"
done
pinned_ratio() { awk -v a="${rps_of[$1]}" -v b="${rps_of[$2]}" 'BEGIN { printf "%.2fx", a / b }'; }
printf '\npinned p3 vs wasmtime serve, fresh instances: %s; at its default reuse (128): %s\n' \
    "$(pinned_ratio pinned-p3 pinned-wasmtime-p3-fresh)" "$(pinned_ratio pinned-p3 pinned-wasmtime-p3-default)"
printf 'pinned p2 proxy vs wasmtime serve, fresh instances: %s\n' "$(pinned_ratio pinned-p2-proxy pinned-wasmtime-p2-proxy)"
printf 'pinned p3 behind one middleware (linked) vs the p3 app alone: %s; composed: %s\n' \
    "$(pinned_ratio pinned-p3-middleware pinned-p3)" "$(pinned_ratio pinned-middleware-composed pinned-p3)"
printf 'pinned composed middleware + p3 vs wasmtime serve, fresh instances: %s; at its default reuse (128): %s\n' \
    "$(pinned_ratio pinned-middleware-composed pinned-wasmtime-middleware-composed-fresh)" \
    "$(pinned_ratio pinned-middleware-composed pinned-wasmtime-middleware-composed-default)"
printf 'pinned fetch of a local backend vs the native site doing the same: %s\n' "$(pinned_ratio pinned-fetch pinned-native-fetch)"

# Warm start: time from exec to the ready line, compiled component cached.
start_ms() {
    local log="$work/start.log" t0 t1
    t0=$(date +%s%N)
    $BIN/switchyard serve --config "$work/switchyard.toml" --listen 127.0.0.1:0 >"$log" 2>&1 &
    local pid=$!
    until grep -q 'Ready on' "$log"; do sleep 0.002; done
    t1=$(date +%s%N)
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo $(( (t1 - t0) / 1000000 ))
}
starts=$(for _ in 1 2 3 4 5; do start_ms; done | median)
printf 'warm start to "> Ready": %s ms (median of 5)\n' "$starts"
# The render call alone, with no HTTP around it.
$BIN/examples/render_call "$app"
printf 'machine: %s, %s cores, %s; wrk -t%s -c%s -d%s, %s rounds\n' "$(uname -m)" "$(nproc)" "$(date -u +%Y-%m-%d)" "$THREADS" "$CONNECTIONS" "$DURATION" "$ROUNDS"
