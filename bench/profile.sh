#!/usr/bin/env bash
# `just profile`: what each layer of the request pipeline costs, by taking
# it away. Each server runs alone on core 0 and wrk on core 1 (the pinned
# layout of `just bench`), ROUNDS alternating rounds of DURATION; the table
# gives the median requests/s and the server's time per request (one core,
# saturated: 1/throughput). Rows differ by one setting, so the difference
# of two rows is what that layer costs per request:
#
# - native hyper hello (the same page's bytes, no pipeline at all);
# - a cache hit of the example's `/cached` with compression and the access
#   log off (the pipeline's floor: the way in, the layers passing through,
#   the cache's lookup and the hit's response);
# - the same with compression on, for a client that accepts no coding (the
#   layer's rule) and for one that accepts gzip (the negotiation and the
#   kept encoded body);
# - the same with the access log on;
# - the render path with instance reuse, cache off (what a page costs when
#   the cache is not there to answer).
#
# Then `perf` samples the cache-hit server (the cpu-clock event: no hardware
# counters needed) and prints the kernel's share of its time.
#
# Knobs: BIN (./target/dist), ROUNDS (3), DURATION (5s).
set -euo pipefail
cd "$(dirname "$0")/.."
unset RUST_BACKTRACE

BIN=${BIN:-./target/dist}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
APP=$(pwd)/build/app.wasm

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

config() { # NAME TOML
    printf 'app = "%s"\n%s\n' "$APP" "$2" >"$work/$1.toml"
}
config floor $'[server]\ncompression = false'
config compression ''
config access-log $'[server]\naccess_log = true'
config render-reuse $'[cache]\nenabled = false\n[performance]\ninstance_reuse = 1000\n[[routes]]\npath = "/render"\npage = "/a"'

declare -A address_of path_of header_of pid_of
names=()
start() { # NAME PATH HEADER PROGRAM ARGS...
    local name=$1 path=$2 header=$3; shift 3
    taskset -c 0 "$@" >"$work/$name.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    local address=""
    for _ in $(seq 1 600); do
        address=$(grep -oE '(Ready on|Serving HTTP on) http://[0-9.]+:[0-9]+' "$work/$name.log" | head -1 | sed -E 's#.*http://##') || true
        [ -n "$address" ] && break
        sleep 0.1
    done
    [ -n "$address" ] || { cat "$work/$name.log"; echo "$name did not get ready" >&2; exit 1; }
    address_of[$name]=$address; path_of[$name]=$path; header_of[$name]=$header; pid_of[$name]=$pid
    names+=("$name")
}
serve() { echo "$BIN/switchyard" serve --config "$work/$1.toml" --listen 127.0.0.1:0; }
start native-hello /a "" "$BIN/examples/native_hello"
start hit-floor /cached "" $(serve floor)
start hit-compression-rule /cached "" $(serve compression)
start hit-compression-gzip /cached "Accept-Encoding: gzip" $(serve compression)
start hit-access-log /cached "" $(serve access-log)
start render-reuse "/render?name=bench" "" $(serve render-reuse)

run() { # NAME -> requests/s
    local name=$1 headers=()
    [ -n "${header_of[$name]}" ] && headers=(-H "${header_of[$name]}")
    taskset -c 1 wrk -t1 -c16 -d"$DURATION" "${headers[@]}" "http://${address_of[$name]}${path_of[$name]}" \
        | awk '/Requests\/sec/ { print $2 }'
}
for name in "${names[@]}"; do run "$name" >/dev/null; done # warm up
declare -A rounds
for _ in $(seq 1 "$ROUNDS"); do
    for name in "${names[@]}"; do rounds[$name]+="$(run "$name") "; done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

printf '| pinned, %s rounds of %s | req/s (median) | us per request |\n| --- | ---: | ---: |\n' "$ROUNDS" "$DURATION"
for name in "${names[@]}"; do
    rps=$(echo "${rounds[$name]}" | median)
    printf '| %s | %.0f | %.2f |\n' "$name" "$rps" "$(awk -v r="$rps" 'BEGIN { print 1e6 / r }')"
done

if command -v perf >/dev/null; then
    perf record -q -e cpu-clock -F 1999 -g -p "${pid_of[hit-compression-rule]}" -o "$work/perf.data" \
        -- taskset -c 1 wrk -t1 -c16 -d"$DURATION" "http://${address_of[hit-compression-rule]}/cached" >/dev/null 2>&1
    echo
    echo "where a cache hit's time goes (perf, share of the server's samples, by their own code):"
    perf report -i "$work/perf.data" --no-children --sort dso,symbol -g none --stdio 2>/dev/null \
        | grep -E '^ +[0-9]' | awk '{
            share = $1; gsub("%", "", share); $1 = ""; line = $0
            if (line ~ /kernel/) what = "the kernel (loopback TCP, syscalls)"
            else if (line ~ /libc/) what = "libc (allocator, memcpy)"
            else if (line ~ /switchyard::/) what = "the pipeline (switchyard::)"
            else if (line ~ /moka/) what = "moka (the cache tables)"
            else if (line ~ /hyper/) what = "hyper"
            else if (line ~ /tokio|mio/) what = "tokio"
            else what = "the rest"
            total[what] += share
        } END { for (what in total) printf "  %-40s %5.1f%%\n", what, total[what] }' | sort -t'%' -k1,1
fi
