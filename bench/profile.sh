#!/usr/bin/env bash
# `just profile`: what one request costs in each layer of the pipeline, in
# instructions (callgrind counts instructions, so the figures hold on a
# noisy machine). The server (BIN, default the `release` build) serves
# REQUESTS (2000) requests of PATH on one keep-alive connection after a
# warm-up; counting is on only for them. Prints instructions per request
# for the whole process and, inclusive, for each layer's future, so that a
# layer's own cost is its figure less the next one's.
#
# Knobs: BIN, APP (build/app.wasm), PATH_TO (/cached), REQUESTS, HEADER.
set -euo pipefail
cd "$(dirname "$0")/.."
unset RUST_BACKTRACE

BIN=${BIN:-./target/release/switchyard}
APP=${APP:-build/app.wasm}
PATH_TO=${PATH_TO:-/cached}
REQUESTS=${REQUESTS:-2000}
HEADER=${HEADER:-}

work=$(mktemp -d)
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

: >"$work/switchyard.toml"
# Warm the compile cache outside valgrind (compiling under it takes minutes).
"$BIN" check "$APP" --config "$work/switchyard.toml" >/dev/null
valgrind --tool=callgrind --collect-atstart=no --callgrind-out-file="$work/callgrind.out" \
    "$BIN" serve "$APP" --config "$work/switchyard.toml" --listen 127.0.0.1:0 >"$work/log" 2>&1 &
server=$!
address=""
for _ in $(seq 1 1200); do
    address=$(grep -oE 'Ready on http://[0-9.]+:[0-9]+' "$work/log" | sed -E 's#.*http://##') || true
    [ -n "$address" ] && break
    sleep 0.1
done
[ -n "$address" ] || { cat "$work/log"; echo "the server did not get ready" >&2; exit 1; }

# load N: N requests on one keep-alive connection.
load() {
    python3 - "$address" "$PATH_TO" "$1" "$HEADER" <<'PY'
import http.client, sys
address, path, count, header = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
host, port = address.rsplit(":", 1)
headers = dict([header.split(": ", 1)]) if header else {}
connection = http.client.HTTPConnection(host, int(port))
for _ in range(count):
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    response.read()
    assert response.status == 200, response.status
PY
}
load 200
callgrind_control -i on "$server" >/dev/null
load "$REQUESTS"
callgrind_control -i off "$server" >/dev/null
callgrind_control -d "$server" >/dev/null
sleep 1
out=$(ls "$work"/callgrind.out* | sort | tail -1)
total=$(callgrind_annotate "$out" 2>/dev/null | grep -m1 'PROGRAM TOTALS' | awk '{gsub(",", "", $1); print $1}')
echo "$PATH_TO${HEADER:+ ($HEADER)}: $((total / REQUESTS)) instructions per request (whole process)"
echo "inclusive, per request, of each layer (its own cost is its figure less the next one's):"
callgrind_annotate --inclusive=yes --threshold=100 "$out" 2>/dev/null >"$work/annotated"
for layer in \
    'switchyard::pipeline::RequestHandler::answer' \
    'switchyard::pipeline::access_log::AccessLog' \
    'switchyard::pipeline::compression::Compression' \
    'switchyard::dev::browser::ReloadScript' \
    'switchyard::pipeline::cache::Cache' \
    'switchyard::response_cache::ResponseCache>::serve' \
    'switchyard::pipeline::route::Route' \
    'switchyard::encoding::' \
    'hyper::proto::h1::dispatch' ; do
    figure=$(grep -F "$layer" "$work/annotated" | head -1 | awk '{gsub(",", "", $1); print $1}')
    printf '  %-55s %s\n' "$layer" "$(( ${figure:-0} / REQUESTS ))"
done
