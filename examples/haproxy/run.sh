#!/usr/bin/env bash
# Scale out behind HAProxy: two sc-server instances on loopback behind real
# HAProxy in TCP mode with PROXY protocol v2, then
#
#   1. sessions through HAProxy spread over both servers, and each server
#      logs the client's real address (peer=) — not HAProxy's (via=);
#   2. one server is stopped (SIGTERM: it drains) while sessions keep
#      starting and one long session is open on it: not one session fails,
#      the long one finishes on the stopping server, and the new ones go to
#      the other server.
#
# Usage:  examples/haproxy/run.sh [SESSIONS]      (default 12 per phase)
#
# Needs haproxy (Debian/Ubuntu: apt-get install haproxy) and the Rust
# toolchain; builds the release binaries first. SC_BIN_DIR=DIR uses the
# sc-server, sc-client and sc-ca already built in DIR instead.
#
# Everything it starts runs on 127.0.0.x with free ports, is stopped when it
# exits (also on failure or Ctrl-C), and every wait is bounded. Exit status 0
# when every check passed.
set -euo pipefail

SESSIONS=${1:-12}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sc-haproxy.XXXXXX")
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n "${SC_KEEP_WORK:-}" ]]; then
        echo "(logs kept in $WORK)"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n== %s\n' "$*"; }
fail() {
    printf 'FAILED: %s\n' "$*" >&2
    for f in "$WORK"/*.log; do
        [[ -f "$f" ]] || continue
        printf -- '--- %s (last 20 lines)\n' "$(basename "$f")" >&2
        tail -n 20 "$f" >&2
    done
    exit 1
}

# Waits up to $2 tenths of a second for command $1 (a function) to succeed.
wait_for() {
    local check=$1 tries=$2
    while ! "$check"; do
        tries=$((tries - 1))
        ((tries > 0)) || return 1
        sleep 0.1
    done
}

# --- tools and binaries ------------------------------------------------------

HAPROXY=$(command -v haproxy || true)
if [[ -z "$HAPROXY" && -x /usr/sbin/haproxy ]]; then
    HAPROXY=/usr/sbin/haproxy
fi
if [[ -z "$HAPROXY" ]]; then
    echo "error: haproxy is not installed (or not on PATH)" >&2
    echo "hint: install it: sudo apt-get install haproxy   (Debian/Ubuntu; any 2.x works)" >&2
    exit 2
fi

if [[ -n "${SC_BIN_DIR:-}" ]]; then
    BIN=$SC_BIN_DIR
else
    say "building the release binaries (cargo build --release)"
    (cd "$ROOT" && cargo build --release --quiet -p sovereign-chain --bin sc-server --bin sc-client --bin sc-ca)
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
fi
for b in sc-server sc-client sc-ca; do
    [[ -x "$BIN/$b" ]] || fail "no $b in $BIN"
done
echo "haproxy: $("$HAPROXY" -v | sed -n '1,1p')"
echo "binaries: $BIN"

# --- a throwaway CA ----------------------------------------------------------

say "a throwaway CA, a server certificate (backend.test) and a client certificate (app-1)"
"$BIN/sc-ca" init --dir "$WORK/ca" --name "HAProxy example CA" >/dev/null
"$BIN/sc-ca" issue server backend.test --dir "$WORK/ca" >/dev/null
"$BIN/sc-ca" issue client app-1 --dir "$WORK/ca" >/dev/null
ls "$WORK/ca"

# --- two sc-server instances -------------------------------------------------

# HAProxy connects to the servers from 127.0.0.3 (`source` below) and the
# clients come from 127.0.0.1, so "the real client address" is visible: the
# servers trust only 127.0.0.3 to send PROXY headers.
HAPROXY_SOURCE=127.0.0.3

start_server() { # NAME
    "$BIN/sc-server" --listen 127.0.0.1:0 --echo \
        --cert "$WORK/ca/backend.test.pem" --key "$WORK/ca/backend.test.key" \
        --ca "$WORK/ca/ca.pem" --allow-client app-1 \
        --accept-proxy-protocol "$HAPROXY_SOURCE/32" --shutdown-grace 10 -v \
        >"$WORK/$1.log" 2>&1 &
    PIDS+=($!)
}
listening_port() { # NAME -> the port from its "listening on" line
    sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$WORK/$1.log" | sed -n '1,1p'
}

say "two sc-server instances (echo), trusting PROXY v2 headers from $HAPROXY_SOURCE only"
start_server s1
S1_PID=${PIDS[-1]}
start_server s2
s1_up() { [[ -n "$(listening_port s1)" ]]; }
s2_up() { [[ -n "$(listening_port s2)" ]]; }
wait_for s1_up 100 || fail "sc-server s1 did not start"
wait_for s2_up 100 || fail "sc-server s2 did not start"
S1=127.0.0.1:$(listening_port s1)
S2=127.0.0.1:$(listening_port s2)
echo "s1 on $S1 (pid $S1_PID), s2 on $S2"

# --- HAProxy -------------------------------------------------------------------

# Ports from the kernel's socket table (no probe connection: HAProxy would
# pass it on to a server as a client that left without a word).
port_in_use() { # PORT [STATE]: any socket on PORT (in STATE, 0A = listening)
    local hex
    hex=$(printf '%04X' "$1")
    awk -v p=":$hex" -v st="${2:-}" \
        'substr($2, length($2) - 4) == p && (st == "" || $4 == st) { found = 1 } END { exit !found }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
port_is_free() { ! port_in_use "$1"; }
FRONT=
for _ in $(seq 50); do
    candidate=$((20000 + RANDOM % 40000))
    if port_is_free "$candidate"; then
        FRONT=$candidate
        break
    fi
done
[[ -n "$FRONT" ]] || fail "no free port for HAProxy"

cat >"$WORK/haproxy.cfg" <<EOF
global
    log stderr format short local0 info
    maxconn 256

defaults
    mode tcp
    log global
    option tcplog
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    # A connection a stopping server refuses is retried on another one.
    retries 3
    option redispatch 1

frontend sc_front
    bind 127.0.0.1:$FRONT
    default_backend sc_servers

backend sc_servers
    balance leastconn
    source $HAPROXY_SOURCE
    # send-proxy-v2: the client's address goes first on every connection;
    # check-send-proxy: health checks send one too (LOCAL), as the servers
    # require a header from this source.
    default-server send-proxy-v2 check check-send-proxy inter 500ms fall 2 rise 2
    server s1 $S1
    server s2 $S2
EOF
"$HAPROXY" -c -q -f "$WORK/haproxy.cfg" || fail "haproxy rejected its configuration"

say "HAProxy (mode tcp, balance leastconn, send-proxy-v2) on 127.0.0.1:$FRONT"
"$HAPROXY" -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
PIDS+=($!)
front_up() { port_in_use "$FRONT" 0A; }
wait_for front_up 100 || fail "HAProxy did not start"
sed 's/^/    /' "$WORK/haproxy.cfg" | sed -n '/^    backend/,$p'

# --- sessions --------------------------------------------------------------------

# One session through HAProxy: one message, its echo, a clean close.
session() { # ID
    local out
    out=$(printf 'hello %s\n' "$1" | timeout 20 "$BIN/sc-client" \
        --connect "127.0.0.1:$FRONT" --server-name backend.test \
        --ca "$WORK/ca/ca.pem" --cert "$WORK/ca/app-1.pem" --key "$WORK/ca/app-1.key" \
        2>>"$WORK/clients.log") || return 1
    [[ "$out" == *"server: echo: hello $1"* ]]
}
ends() { # NAME -> session-end lines so far
    grep -c 'session end' "$WORK/$1.log" || true
}
starts() { # NAME -> session-start lines so far (-v)
    grep -c 'session start' "$WORK/$1.log" || true
}

say "phase 1: $SESSIONS sessions through HAProxy, 3 at a time"
failed=0
for ((i = 1; i <= SESSIONS; i += 3)); do
    pids=()
    for ((j = i; j < i + 3 && j <= SESSIONS; j++)); do
        session "p1-$j" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do
        wait "$p" || failed=$((failed + 1))
    done
done
settled() { (($(ends s1) + $(ends s2) >= SESSIONS)); }
wait_for settled 50 || true
n1=$(ends s1)
n2=$(ends s2)
echo "sessions: s1 $n1, s2 $n2, failed $failed"
((failed == 0)) || fail "$failed sessions failed in phase 1"
((n1 > 0 && n2 > 0)) || fail "the sessions did not spread over both servers"

say "the servers log the client's address (peer=), HAProxy's outgoing one as via="
grep -h 'session end' "$WORK/s1.log" "$WORK/s2.log" | sed -n '1,4p' |
    sed -e 's/.*session end/session end/' -e 's/ cipher=.* bytes_in/ ... bytes_in/' -e 's/^/    /'
peers=$(grep -ho 'session end.* peer=[0-9.]*:[0-9]*' "$WORK/s1.log" "$WORK/s2.log" |
    sed 's/.* peer=//' | sort -u)
vias=$(grep -ho 'session end.* via=[0-9.]*' "$WORK/s1.log" "$WORK/s2.log" | sed 's/.* via=//' | sort -u)
[[ -n "$peers" ]] || fail "no peer= in the session-end lines"
[[ "$vias" == "$HAPROXY_SOURCE" ]] || fail "via= is not HAProxy's address: $vias"
if grep -q "session \(start\|end\).* peer=$HAPROXY_SOURCE:" "$WORK/s1.log" "$WORK/s2.log"; then
    fail "a server logged HAProxy's address as the peer"
fi
# Each client address a server logged is one HAProxy logged for a client.
matched=0
for p in $peers; do
    grep -q "$p \[" "$WORK/haproxy.log" || fail "client $p is not in HAProxy's log"
    matched=$((matched + 1))
done
echo "all $matched client addresses the servers logged are the ones HAProxy saw clients come from (HAProxy's log):"
grep -h '\] sc_front' "$WORK/haproxy.log" | sed -n '1,2p' | sed -e 's/^/    /'
refused=$( (grep -h 'connection refused\|handshake failed' "$WORK/s1.log" "$WORK/s2.log" || true) | wc -l)
((refused == 0)) || fail "a server refused a connection (health checks must pass quietly)"
checks() { # NAME -> health checks it took so far (-v)
    grep -c 'health check: PROXY v2 header without a client address (LOCAL)' "$WORK/$1.log" || true
}
both_checked() { (($(checks s1) > 0 && $(checks s2) > 0)); }
wait_for both_checked 50 || fail "the servers saw no health check with a PROXY LOCAL header"
checks1=$(checks s1)
checks2=$(checks s2)
echo "health checks: s1 $checks1, s2 $checks2 (PROXY LOCAL, then closed), accepted without a warning"

say "phase 2: a long session open on each server, sessions keep starting (2 at a time); s1 gets SIGTERM mid-run"
before2=$(($(ends s1) + $(ends s2)))
rm -f "$WORK"/result.* "$WORK/stop"
# A session that stays open until the run says stop (at most 30 s): one
# lands on each server (leastconn), so s1 has one open when it is told to
# stop, and must let it finish.
long_session() { # ID
    local out
    out=$( (printf 'hello %s\n' "$1"
        for _ in $(seq 300); do [[ -e "$WORK/stop" ]] && break; sleep 0.1; done
        printf 'bye %s\n' "$1") | timeout 40 "$BIN/sc-client" \
        --connect "127.0.0.1:$FRONT" --server-name backend.test \
        --ca "$WORK/ca/ca.pem" --cert "$WORK/ca/app-1.pem" --key "$WORK/ca/app-1.key" \
        2>>"$WORK/clients.log") || return 1
    [[ "$out" == *"server: echo: hello $1"* && "$out" == *"server: echo: bye $1"* ]]
}
long_worker() { # ID
    if long_session "$1"; then echo ok >"$WORK/result.$1"; else echo "FAIL $1" >"$WORK/result.$1"; fi
}
worker() { # WORKER: short sessions until told to stop
    local k=0
    while [[ ! -e "$WORK/stop" ]] && ((k < 200)); do
        k=$((k + 1))
        if session "p2-$1-$k"; then
            echo ok >>"$WORK/result.$1"
        else
            echo "FAIL p2-$1-$k" >>"$WORK/result.$1"
        fi
        sleep 0.05
    done
}
started_before=$(($(starts s1) + $(starts s2)))
long_worker long1 &
PIDS+=($!)
one_long() { (($(starts s1) + $(starts s2) >= started_before + 1)); }
wait_for one_long 100 || fail "the first long session did not start"
long_worker long2 &
PIDS+=($!)
two_long() { (($(starts s1) + $(starts s2) >= started_before + 2)); }
wait_for two_long 100 || fail "the second long session did not start"
open1=$(($(starts s1) - $(ends s1)))
open2=$(($(starts s2) - $(ends s2)))
echo "long sessions open: s1 $open1, s2 $open2"
((open1 >= 1)) || fail "no long session open on s1"
worker a &
wa=$!
worker b &
wb=$!
PIDS+=("$wa" "$wb")
done_so_far() { cat "$WORK"/result.* 2>/dev/null | wc -l; }
some_done() { (($(done_so_far) >= 4)); }
wait_for some_done 300 || fail "phase 2 made no progress"
at_term=$(done_so_far)
s2_before_term=$(ends s2)
kill -TERM "$S1_PID"
echo "SIGTERM to s1 after $at_term short sessions of phase 2"
# Go on until HAProxy has seen s1 go down and a dozen more sessions ran.
s1_down() { grep -q 'sc_servers/s1 is DOWN' "$WORK/haproxy.log"; }
wait_for s1_down 100 || fail "HAProxy did not mark s1 down within 10 s"
more_done() { (($(done_so_far) >= at_term + 12)); }
wait_for more_done 300 || fail "no sessions after s1 went down"
# s1 is still up: draining its long session.
kill -0 "$S1_PID" 2>/dev/null || fail "s1 exited before its open session ended"
echo "s1 still running (draining) after $(($(done_so_far) - at_term)) more sessions; stopping the long sessions"
touch "$WORK/stop"
wait "$wa" || true
wait "$wb" || true
s1_gone() { ! kill -0 "$S1_PID" 2>/dev/null; }
wait_for s1_gone 150 || fail "s1 did not exit within 15 s of the end of its last session"
s1_status=0
wait "$S1_PID" || s1_status=$?
long_done() { [[ -e "$WORK/result.long1" && -e "$WORK/result.long2" ]]; }
wait_for long_done 100 || fail "the long sessions did not end"
total2=$(done_so_far)
failed2=$( (grep -h FAIL "$WORK"/result.* || true) | wc -l)
after2=$(($(ends s1) + $(ends s2)))
retried=$(awk '$3 == "sc_front" { split($8, c, "/"); if (c[5] != "0") n++ } END { print n + 0 }' "$WORK/haproxy.log")
echo "phase 2: $total2 sessions (2 long; $((total2 - at_term)) ended after the SIGTERM), $failed2 failed"
echo "s1 exited with status $s1_status; the servers logged $((after2 - before2)) session ends in phase 2 ($(($(ends s2) - s2_before_term)) on s2 after the SIGTERM)"
echo "HAProxy retried $retried sessions on the other server (s1 refused their connections while it stopped)"
grep -h 'shutting down\|shut down' "$WORK/s1.log" | sed -e 's/.*Z  *//' -e 's/^/    s1: /'
grep -h 'sc_servers/s1 is DOWN' "$WORK/haproxy.log" | sed -n '1,1p' | sed -e 's/^/    haproxy: /'
((failed2 == 0)) || fail "$failed2 sessions failed while s1 stopped: $(grep -h FAIL "$WORK"/result.* | tr '\n' ' ')"
((s1_status == 0)) || fail "s1 exited with status $s1_status"
((total2 - at_term >= 12)) || fail "too few sessions after the SIGTERM"
grep -q 'shutting down: no longer accepting; [1-9]' "$WORK/s1.log" ||
    fail "s1 had no open session at the SIGTERM"
echo "s1 served $(ends s1) sessions in all, s2 $(ends s2)"

say "ok: sessions spread over both servers, client addresses preserved, no session failed while s1 stopped"
