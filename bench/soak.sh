#!/usr/bin/env bash
# `just soak`: mixed good and misbehaving load on one `switchyard serve`, for
# a bounded time, then a report: good requests that failed (must be 0), and
# the server's RSS before, at its peak and after.
#
# Good load: wrk on the fixtures' `/` page. Bad load, at the same time:
# guests that trap, loop past the timeout and eat memory; clients that send
# nothing, trickle headers, stop reading a large response, or hang up
# mid-request; HTTP/2 clients that answer pings and send nothing, and ones
# that leave their streams' window at zero on a large response.
#
# Knobs: DURATION (seconds, 30), SWITCHYARD (target/release/switchyard).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-30}
SWITCHYARD=${SWITCHYARD:-target/release/switchyard}
FIXTURES=target/wasm/wasm32-wasip2/release/fixtures.wasm
unset RUST_BACKTRACE

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/switchyard.toml" <<TOML
[server]
header_read_timeout = "2s"
write_timeout = "2s"
body_read_timeout = "2s"
[limits]
request_timeout = "1s"
max_memory = "32MiB"
TOML
(cd "$work" && "$OLDPWD/$SWITCHYARD" serve "$OLDPWD/$FIXTURES" --listen 127.0.0.1:0 --quiet >"$work/server.log" 2>&1) &
pids+=($!)
address=""
for _ in $(seq 1 300); do
    address=$(grep -oE 'Ready on http://[0-9.]+:[0-9]+' "$work/server.log" | sed 's#.*http://##') || true
    [ -n "$address" ] && break
    sleep 0.1
done
[ -n "$address" ] || { cat "$work/server.log"; exit 1; }
server=$(pgrep -f "switchyard serve .*fixtures.wasm" | head -1)
rss() { awk '/VmRSS/ {print $2}' "/proc/$server/status"; }
before=$(rss)
host=${address%:*}
port=${address#*:}

end=$((SECONDS + DURATION))
bad() {
    while [ $SECONDS -lt $end ]; do
        for path in /trap /loop /hog /b; do
            curl -s -o /dev/null --max-time 5 "http://$address$path" || true
        done
    done
}
slow_clients() {
    while [ $SECONDS -lt $end ]; do
        # silent; trickling headers; a reader that stops; one that hangs up
        (exec 3<>"/dev/tcp/$host/$port"; sleep 3) &
        (exec 3<>"/dev/tcp/$host/$port"; printf 'GET / HTTP/1.1\r\n' >&3; sleep 3) &
        (exec 3<>"/dev/tcp/$host/$port"; printf 'GET /huge?mb=48 HTTP/1.1\r\nhost: x\r\n\r\n' >&3; sleep 3) &
        (exec 3<>"/dev/tcp/$host/$port"; printf 'GET /slow?ms=900 HTTP/1.1\r\nhost: x\r\n\r\n' >&3; sleep 0.1) &
        sleep 1
    done
    wait
}
# HTTP/2 clients by hand (prior knowledge, no TLS): COUNT at a time, each
# answering SETTINGS and PING and nothing else; with `zero`, the window of
# its streams is 0 and it asks for a large response it never takes.
h2_clients() { # MODE COUNT
    python3 - "$host" "$port" "$end" "$1" "$2" <<'PY2'
import socket, struct, sys, threading, time
host, port, end, mode, count = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], int(sys.argv[5])
deadline = time.monotonic() + max(0.0, end - time.time())

def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload

def client():
    while time.monotonic() < deadline:
        try:
            s = socket.create_connection((host, port), timeout=2)
            settings = struct.pack(">HI", 4, 0) if mode == "zero" else b""
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, settings))
            if mode == "zero":
                path = b"/huge?mb=8"
                block = b"\x82\x86" + b"\x44" + bytes([len(path)]) + path + b"\x41\x01x"
                s.sendall(frame(1, 0x5, 1, block))
            s.settimeout(1)
            while time.monotonic() < deadline:
                try:
                    head = s.recv(9, socket.MSG_WAITALL)
                except socket.timeout:
                    continue
                if len(head) < 9:
                    break
                length = int.from_bytes(head[:3], "big")
                kind, flags = head[3], head[4]
                payload = s.recv(length, socket.MSG_WAITALL) if length else b""
                if kind == 4 and not flags & 1:
                    s.sendall(frame(4, 1, 0))
                elif kind == 6 and not flags & 1:
                    s.sendall(frame(6, 1, 0, payload))
                elif kind == 7:
                    break
            s.close()
        except OSError:
            time.sleep(0.2)

threads = [threading.Thread(target=client) for _ in range(count)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
PY2
}
peak=$before
watch_rss() {
    while [ $SECONDS -lt $end ]; do
        now=$(rss); [ "$now" -gt "$peak" ] && peak=$now
        echo "$peak" >"$work/peak"
        sleep 0.5
    done
}
bad & pids+=($!)
slow_clients & pids+=($!)
h2_clients idle 16 & pids+=($!)
h2_clients zero 8 & pids+=($!)
watch_rss & pids+=($!)
wrk -t1 -c8 -d"${DURATION}s" --latency "http://$address/" >"$work/wrk.txt"
wait "${pids[@]:1}" 2>/dev/null || true
sleep 3
after=$(rss)
peak=$(cat "$work/peak")

requests=$(awk '/requests in/ {print $1}' "$work/wrk.txt")
failed=$(awk '/Non-2xx or 3xx responses/ {print $5}' "$work/wrk.txt")
errors=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$work/wrk.txt")
echo "soak: ${DURATION}s of mixed load on $(nproc) cores"
echo "good requests: ${requests:-0}, failed: ${failed:-0}, socket errors: ${errors:-0}"
echo "RSS: before $((before / 1024)) MiB, peak $((peak / 1024)) MiB, after $((after / 1024)) MiB"
[ "${failed:-0}" = 0 ] && [ "${errors:-0}" = 0 ] || { echo "soak: good requests failed" >&2; exit 1; }
