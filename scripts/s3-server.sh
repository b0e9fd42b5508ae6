#!/usr/bin/env bash
# Local S3 endpoint for dnnbench integration tests: OpenStack Swift (Debian
# packages, 2.30 on bookworm) with the s3api middleware, bound to 127.0.0.1.
#
# Usage: scripts/s3-server.sh start|stop|status|env
#
# All state (configs, rings, data, pid files, logs) lives in one folder,
# default <project root>/.s3server, override with DNNBENCH_S3_DIR.
#
# Environment overrides:
#   DNNBENCH_S3_DIR              state folder            (default: <repo>/.s3server)
#   DNNBENCH_S3_PORT             proxy (S3) port         (default: 18080)
#   DNNBENCH_S3_OBJECT_PORT      object server port      (default: 16210)
#   DNNBENCH_S3_CONTAINER_PORT   container server port   (default: 16211)
#   DNNBENCH_S3_ACCOUNT_PORT     account server port     (default: 16212)
#   DNNBENCH_S3_MEMCACHED_PORT   memcached port          (default: 11711)
#   DNNBENCH_S3_START_TIMEOUT    readiness timeout, s    (default: 60)
#   DNNBENCH_S3_LOG_LEVEL        Swift log level         (default: WARNING; INFO logs each request)
#
# Exit codes: 0 ok; 1 status: not running / start failed; 2 usage error;
#             3 Swift is missing and cannot be installed here (not root or no apt-get).
#
# S3 clients: endpoint http://127.0.0.1:$DNNBENCH_S3_PORT, access key test:tester,
# secret testing, region us-east-1, path-style addressing, SigV4.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROJECT_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"

S3_DIR="${DNNBENCH_S3_DIR:-$PROJECT_ROOT/.s3server}"
PROXY_PORT="${DNNBENCH_S3_PORT:-18080}"
OBJECT_PORT="${DNNBENCH_S3_OBJECT_PORT:-16210}"
CONTAINER_PORT="${DNNBENCH_S3_CONTAINER_PORT:-16211}"
ACCOUNT_PORT="${DNNBENCH_S3_ACCOUNT_PORT:-16212}"
MEMCACHED_PORT="${DNNBENCH_S3_MEMCACHED_PORT:-11711}"
START_TIMEOUT="${DNNBENCH_S3_START_TIMEOUT:-60}"
# WARNING keeps per-request access logs out (they cost server CPU in benchmarks);
# INFO logs every request.
LOG_LEVEL="${DNNBENCH_S3_LOG_LEVEL:-WARNING}"

HOST=127.0.0.1
ACCESS_KEY="test:tester"
SECRET_KEY="testing"
REGION="us-east-1"
ENDPOINT="http://$HOST:$PROXY_PORT"

CONF_DIR="$S3_DIR/etc"
NODE_DIR="$S3_DIR/srv/node"
RUN_DIR="$S3_DIR/run"
LOG_DIR="$S3_DIR/logs"

# Start order; stop goes in reverse.
SERVICES=(memcached account container object proxy)
REQUIRED_PACKAGES=(swift swift-proxy swift-object swift-container swift-account python3-swift memcached)
REQUIRED_COMMANDS=(swift-ring-builder swift-proxy-server swift-object-server swift-container-server swift-account-server memcached)

CREATED_POLICY=0

log() { printf 's3-server: %s\n' "$*" >&2; }
die() { local code="$1"; shift; log "$*"; exit "$code"; }

pidfile() { echo "$RUN_DIR/$1.pid"; }

pid_of() {
    local f; f="$(pidfile "$1")"
    [[ -s "$f" ]] || return 1
    local pid; pid="$(<"$f")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    echo "$pid"
}

alive() {
    local pid
    pid="$(pid_of "$1")" || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # Guard against pid reuse: the process must still be ours.
    local cmd; cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    case "$1" in
        memcached) [[ "$cmd" == *memcached* ]] ;;
        *)         [[ "$cmd" == *"swift-$1-server"* ]] ;;
    esac
}

http_code() {
    curl -s -o /dev/null -m 3 -w '%{http_code}' "$@" 2>/dev/null || true
}

healthy() {
    [[ "$(http_code "$ENDPOINT/healthcheck")" == 200 ]]
}

all_alive() {
    local s
    for s in "${SERVICES[@]}"; do alive "$s" || return 1; done
}

is_up() { all_alive && healthy; }

port_busy() {
    # true if something listens on 127.0.0.1:$1 (or the wildcard address)
    ss -Htln "sport = :$1" 2>/dev/null | grep -q .
}

print_info() {
    cat <<EOF
S3 server (Swift + s3api) is running
  endpoint:   $ENDPOINT
  access key: $ACCESS_KEY
  secret key: $SECRET_KEY
  region:     $REGION
  addressing: path-style, SigV4
  state dir:  $S3_DIR
  logs:       $LOG_DIR/*.log
EOF
}

print_env() {
    cat <<EOF
export DNNBENCH_S3_ENDPOINT=$ENDPOINT
export DNNBENCH_S3_ACCESS_KEY=$ACCESS_KEY
export DNNBENCH_S3_SECRET_KEY=$SECRET_KEY
export DNNBENCH_S3_REGION=$REGION
EOF
}

# ---------------------------------------------------------------- install
missing_commands() {
    local c out=()
    for c in "${REQUIRED_COMMANDS[@]}"; do
        command -v "$c" >/dev/null 2>&1 || out+=("$c")
    done
    # The swift executables run under the system python.
    if [[ -x /usr/bin/python3 ]] && ! /usr/bin/python3 -c 'import swift.common.middleware.s3api' >/dev/null 2>&1; then
        out+=("python3-swift(s3api)")
    fi
    echo "${out[*]:-}"
}

ensure_installed() {
    local missing; missing="$(missing_commands)"
    [[ -z "$missing" ]] && return 0
    if [[ "$(id -u)" != 0 ]]; then
        die 3 "Swift is not installed (missing: $missing) and installing needs root; run as root or: sudo apt-get install ${REQUIRED_PACKAGES[*]}"
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        die 3 "Swift is not installed (missing: $missing) and apt-get is not available to install it"
    fi
    log "installing ${REQUIRED_PACKAGES[*]} (apt-get; ~1 min)"
    mkdir -p "$LOG_DIR"
    # Keep package scripts from starting system services (memcached on 11211):
    # a policy-rc.d that denies every start, only if the system has none.
    local policy=/usr/sbin/policy-rc.d
    if [[ ! -e "$policy" ]]; then
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && CREATED_POLICY=1
    fi
    local rc=0
    {
        DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            "${REQUIRED_PACKAGES[@]}"
    } >>"$LOG_DIR/install.log" 2>&1 || rc=$?
    if [[ $CREATED_POLICY == 1 ]]; then rm -f "$policy"; trap - EXIT; fi
    if [[ $rc != 0 ]]; then
        tail -n 20 "$LOG_DIR/install.log" >&2 || true
        die 3 "apt-get install failed (rc=$rc); see $LOG_DIR/install.log"
    fi
    missing="$(missing_commands)"
    [[ -z "$missing" ]] || die 3 "still missing after install: $missing"
    log "installed"
}

# ---------------------------------------------------------------- configs
write_configs() {
    local user; user="$(id -un)"
    mkdir -p "$CONF_DIR" "$NODE_DIR/sdb1" "$RUN_DIR" "$LOG_DIR"

    if [[ ! -s "$CONF_DIR/swift.conf" ]]; then
        local prefix suffix
        prefix="$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
        suffix="$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
        cat >"$CONF_DIR/swift.conf" <<EOF
[swift-hash]
swift_hash_path_prefix = $prefix
swift_hash_path_suffix = $suffix

[storage-policy:0]
name = Policy-0
default = yes
EOF
    fi

    # Swift logs to syslog (UDP localhost:514 when /dev/log is missing) and, with
    # -v, to stderr, which we redirect to logs/<service>.log. Point log_address
    # at a path that is not a socket so nothing lands in the system's syslog.
    local common="swift_dir = $CONF_DIR
devices = $NODE_DIR
mount_check = false
bind_ip = $HOST
workers = 0
user = $user
log_address = $RUN_DIR/no-syslog
log_level = $LOG_LEVEL"

    local kind port
    for kind in account container object; do
        case "$kind" in
            account) port=$ACCOUNT_PORT ;; container) port=$CONTAINER_PORT ;; object) port=$OBJECT_PORT ;;
        esac
        cat >"$CONF_DIR/$kind-server.conf" <<EOF
[DEFAULT]
$common
bind_port = $port

[pipeline:main]
pipeline = $kind-server

[app:$kind-server]
use = egg:swift#$kind
EOF
    done

    cat >"$CONF_DIR/proxy-server.conf" <<EOF
[DEFAULT]
swift_dir = $CONF_DIR
bind_ip = $HOST
bind_port = $PROXY_PORT
workers = 0
user = $user
log_address = $RUN_DIR/no-syslog
log_level = $LOG_LEVEL

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo versioned_writes proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:s3api]
use = egg:swift#s3api
location = $REGION

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin
# A second account without rights on test's buckets (for AccessDenied tests).
user_other_reader = reading

[filter:cache]
use = egg:swift#memcache
memcache_servers = $HOST:$MEMCACHED_PORT

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:copy]
use = egg:swift#copy

[filter:slo]
use = egg:swift#slo

[filter:dlo]
use = egg:swift#dlo

[filter:versioned_writes]
use = egg:swift#versioned_writes
EOF

    # Rings: rebuilt only when missing or when the backend ports changed. With a
    # single device and one replica every partition lives on sdb1, so data
    # written before a rebuild stays reachable.
    local want="object=$OBJECT_PORT container=$CONTAINER_PORT account=$ACCOUNT_PORT"
    if [[ "$(cat "$CONF_DIR/ring-ports" 2>/dev/null)" != "$want" ||
          ! -s "$CONF_DIR/object.ring.gz" || ! -s "$CONF_DIR/container.ring.gz" ||
          ! -s "$CONF_DIR/account.ring.gz" ]]; then
        log "building rings"
        (
            cd "$CONF_DIR"
            rm -f ./*.builder ./*.ring.gz
            rm -rf ./backups
            for kind in object container account; do
                case "$kind" in
                    account) port=$ACCOUNT_PORT ;; container) port=$CONTAINER_PORT ;; object) port=$OBJECT_PORT ;;
                esac
                swift-ring-builder "$kind.builder" create 10 1 1
                swift-ring-builder "$kind.builder" add "r1z1-$HOST:$port/sdb1" 100
                swift-ring-builder "$kind.builder" rebalance
            done
        ) >>"$LOG_DIR/rings.log" 2>&1 || {
            tail -n 20 "$LOG_DIR/rings.log" >&2
            die 1 "swift-ring-builder failed; see $LOG_DIR/rings.log"
        }
        echo "$want" >"$CONF_DIR/ring-ports"
    fi
}

# ---------------------------------------------------------------- processes
launch() {
    local name="$1"; shift
    local logf="$LOG_DIR/$name.log"
    # Keep the previous run's log as <name>.log.1.
    [[ -s "$logf" ]] && mv -f "$logf" "$logf.1"
    printf '\n==== %s starting %s\n' "$(date '+%F %T')" "$name" >>"$logf"
    # setsid: own session, so a Ctrl-C in the calling terminal does not reach it.
    # 9>&-: the servers must not inherit (and hold) the start/stop lock.
    setsid "$@" </dev/null >>"$logf" 2>&1 9>&- &
    echo $! >"$(pidfile "$name")"
}

# TERM all our processes at once (each Swift server takes ~2 s to exit), wait up
# to 10 s, then KILL what is left. Only pids from our pid files, and only while
# their command line still matches (no stray kills after pid reuse).
stop_all() {
    local s pid pids=() i
    for s in "${SERVICES[@]}"; do
        if alive "$s"; then
            pid="$(pid_of "$s")"
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$s:$pid")
        fi
    done
    for ((i = 0; i < 100 && ${#pids[@]} > 0; i++)); do
        local still=()
        for s in "${pids[@]}"; do kill -0 "${s#*:}" 2>/dev/null && still+=("$s"); done
        pids=("${still[@]}")
        ((${#pids[@]} > 0)) && sleep 0.1
    done
    for s in "${pids[@]}"; do
        log "${s%%:*} (pid ${s#*:}) did not stop on TERM; sending KILL"
        kill -KILL "${s#*:}" 2>/dev/null || true
    done
    ((${#pids[@]} > 0)) && sleep 0.2
    for s in "${SERVICES[@]}"; do rm -f "$(pidfile "$s")"; done
}

show_logs() {
    local s
    for s in "${SERVICES[@]}"; do
        [[ -s "$LOG_DIR/$s.log" ]] || continue
        printf -- '---- %s (last 15 lines)\n' "$LOG_DIR/$s.log" >&2
        tail -n 15 "$LOG_DIR/$s.log" >&2
    done
}

cmd_start() {
    if is_up; then
        print_info
        return 0
    fi
    ensure_installed
    # Partially running (a crashed service, or an old run): start clean.
    stop_all

    local p
    for p in "$MEMCACHED_PORT" "$ACCOUNT_PORT" "$CONTAINER_PORT" "$OBJECT_PORT" "$PROXY_PORT"; do
        if port_busy "$p"; then
            die 1 "port $p is already in use by another process; pick other ports with DNNBENCH_S3_PORT / DNNBENCH_S3_{OBJECT,CONTAINER,ACCOUNT,MEMCACHED}_PORT"
        fi
    done

    local t0=$SECONDS
    write_configs

    launch memcached memcached -l "$HOST" -p "$MEMCACHED_PORT" -U 0 -m 64 -u "$(id -un)"
    launch account swift-account-server "$CONF_DIR/account-server.conf" -v
    launch container swift-container-server "$CONF_DIR/container-server.conf" -v
    launch object swift-object-server "$CONF_DIR/object-server.conf" -v
    launch proxy swift-proxy-server "$CONF_DIR/proxy-server.conf" -v

    local deadline=$((SECONDS + START_TIMEOUT)) s
    while :; do
        for s in "${SERVICES[@]}"; do
            if ! alive "$s"; then
                log "$s exited during startup"
                show_logs
                stop_all
                die 1 "failed to start; logs in $LOG_DIR"
            fi
        done
        if healthy && backends_listening && auth_ok; then break; fi
        if ((SECONDS >= deadline)); then
            log "not ready after ${START_TIMEOUT}s (GET $ENDPOINT/healthcheck did not answer 200 with all backends up)"
            show_logs
            stop_all
            die 1 "failed to start; logs in $LOG_DIR"
        fi
        sleep 0.2
    done
    log "ready in $((SECONDS - t0))s"
    print_info
}

backends_listening() {
    local p
    for p in "$MEMCACHED_PORT" "$ACCOUNT_PORT" "$CONTAINER_PORT" "$OBJECT_PORT"; do
        port_busy "$p" || return 1
    done
}

auth_ok() {
    # tempauth needs memcached; a token means proxy + auth + cache work.
    [[ "$(http_code -H "X-Storage-User: $ACCESS_KEY" -H "X-Storage-Pass: $SECRET_KEY" "$ENDPOINT/auth/v1.0")" == 200 ]]
}

cmd_stop() {
    stop_all
    log "stopped"
}

cmd_status() {
    if is_up; then
        print_info
        return 0
    fi
    local s states=()
    for s in "${SERVICES[@]}"; do
        if alive "$s"; then states+=("$s=up"); else states+=("$s=down"); fi
    done
    echo "S3 server is not running (${states[*]}; healthcheck $(healthy && echo 200 || echo failed))"
    return 1
}

# start/stop from several processes at once (e.g. pytest-xdist workers) take turns.
take_lock() {
    mkdir -p "$S3_DIR"
    command -v flock >/dev/null 2>&1 || return 0
    exec 9>"$S3_DIR/lock"
    flock -w 300 9 || die 1 "timed out waiting for the lock $S3_DIR/lock"
}

case "${1:-}" in
    start) take_lock; cmd_start ;;
    stop) take_lock; cmd_stop ;;
    status) cmd_status ;;
    env) print_env ;;
    *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
