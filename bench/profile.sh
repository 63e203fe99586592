#!/usr/bin/env bash
# `just profile`: where one request's time goes, layer by layer. The server
# (BIN, default the `release` build) runs alone on core 0 and wrk on core 1
# (the pinned layout of `just bench`), for DURATION on PATH_TO; `perf`
# samples the server's stacks (the cpu-clock event: no hardware counters
# needed, and callgrind cannot run a host whose pooling allocator reserves
# terabytes of address space). Prints requests per second, the server's
# CPU time per request, and for each layer of the pipeline the time spent
# in it and below it (its share of the samples, inclusive): a layer's own
# cost is its figure less the next one's.
#
# Knobs: BIN, APP (build/app.wasm), PATH_TO (/cached), DURATION (10s),
# HEADER (a request header wrk sends, such as "Accept-Encoding: gzip").
set -euo pipefail
cd "$(dirname "$0")/.."
unset RUST_BACKTRACE

BIN=${BIN:-./target/release/switchyard}
APP=${APP:-build/app.wasm}
PATH_TO=${PATH_TO:-/cached}
DURATION=${DURATION:-10s}
HEADER=${HEADER:-}

work=$(mktemp -d)
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

: >"$work/switchyard.toml"
taskset -c 0 "$BIN" serve "$APP" --config "$work/switchyard.toml" --listen 127.0.0.1:0 >"$work/log" 2>&1 &
server=$!
address=""
for _ in $(seq 1 600); do
    address=$(grep -oE 'Ready on http://[0-9.]+:[0-9]+' "$work/log" | sed -E 's#.*http://##') || true
    [ -n "$address" ] && break
    sleep 0.1
done
[ -n "$address" ] || { cat "$work/log"; echo "the server did not get ready" >&2; exit 1; }
headers=()
[ -n "$HEADER" ] && headers=(-H "$HEADER")
url="http://$address$PATH_TO"
# Warm up (the cache fills, the instances are made), then measure.
taskset -c 1 wrk -t1 -c16 -d2s "${headers[@]}" "$url" >/dev/null
perf record -q -e cpu-clock -F 1999 --call-graph dwarf,16384 -p "$server" -o "$work/perf.data" \
    -- taskset -c 1 wrk -t1 -c16 -d"$DURATION" "${headers[@]}" "$url" >"$work/wrk" 2>/dev/null
rps=$(awk '/Requests\/sec/ { print $2 }' "$work/wrk")
echo "$PATH_TO${HEADER:+ ($HEADER)}: $rps requests/s on one core: $(awk -v r="$rps" 'BEGIN { printf "%.2f", 1e6 / r }') us per request"
perf report -i "$work/perf.data" --children --stdio --no-demangle=false --sort symbol 2>/dev/null \
    | grep -E '^ +[0-9.]+%' >"$work/report" || true
echo "time in each layer and below it (inclusive share of the server's samples, and us per request):"
for layer in \
    'RequestHandler as hyper::service::Service' \
    'pipeline::access_log::AccessLog' \
    'pipeline::compression::Compression' \
    'dev::browser::ReloadScript' \
    'pipeline::cache::Cache' \
    'response_cache::ResponseCache>::serve' \
    'pipeline::route::Route' \
    'pipeline::guest::' \
    'encoding::' \
    'hyper::proto::h1' ; do
    share=$(grep -F "$layer" "$work/report" | awk '{ gsub("%", "", $1); if ($1 > max) max = $1 } END { print max + 0 }')
    printf '  %-48s %6.1f%%  %6.2f us\n' "$layer" "$share" "$(awk -v s="$share" -v r="$rps" 'BEGIN { print s / 100 * 1e6 / r }')"
done
