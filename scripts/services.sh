#!/usr/bin/env bash
# Throwaway PostgreSQL 15 and Redis 7 on 127.0.0.1, for the test suite and the benchmarks.
#
#   scripts/services.sh start    start both (keeping any already running) and wait until they answer
#   scripts/services.sh env      print `export DATABASE_URL=...` and `export REDIS_URL=...` lines to eval
#   scripts/services.sh status   exit 0 when every server this script manages is running
#   scripts/services.sh stop     stop both; a no-op when they are not running
#
# When DATABASE_URL (or REDIS_URL) is already set, that server is someone else's: start, env and status
# leave it alone. stop only ever stops the servers this script started (found by their pid files).
#
# Knobs: PG_PORT (54329) and REDIS_PORT (63799), the next free port is used when busy; PG_FSYNC=on for
# benchmarks (tests run with fsync off: faster, and the data is thrown away); PG_DIR (var/pg-test) and
# REDIS_DIR (var/redis-test) hold data, logs, pid files and the chosen ports.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_DIR=$(realpath -m "${PG_DIR:-var/pg-test}")
REDIS_DIR=$(realpath -m "${REDIS_DIR:-var/redis-test}")
PG_FSYNC=${PG_FSYNC:-off}
[[ $PG_FSYNC == on || $PG_FSYNC == off ]] || { echo "services: PG_FSYNC must be on or off" >&2; exit 2; }
pg_data=$PG_DIR/data

log() { echo "services: $*" >&2; }
die() { log "$*"; exit 1; }

# wait_for SECONDS WHAT COMMAND...: retry COMMAND until it succeeds, or fail after SECONDS.
wait_for() {
    local deadline=$((SECONDS + $1)) limit=$1 what=$2
    shift 2
    until "$@" &>/dev/null; do
        ((SECONDS < deadline)) || die "$what did not answer within ${limit}s"
        sleep 0.2
    done
}

# The first port from $1 on which nothing on 127.0.0.1 accepts connections.
free_port() {
    local port=$1
    while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        port=$((port + 1))
        ((port < $1 + 100)) || die "no free port in $1..$port"
    done
    echo "$port"
}

# The pid in pid file $1 if it is a live process named $2. A stale pid file may name an unrelated
# process that reused the pid (never to be trusted or signalled), or a killed server not yet reaped.
live_pid() {
    local pid
    pid=$(head -n 1 "$1" 2>/dev/null) && [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]] || return 1
    grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" && return 1
    echo "$pid"
}

# --- PostgreSQL --------------------------------------------------------------------------------------

# PostgreSQL refuses to run as root: run it as `postgres`, or as a system user of our own.
pg_user() {
    if [[ $(id -u) != 0 ]]; then
        id -un
    elif id postgres &>/dev/null; then
        echo postgres
    else
        id cpbuild &>/dev/null || useradd --system --no-create-home --shell /usr/sbin/nologin cpbuild
        echo cpbuild
    fi
}
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u "$(pg_user)" -- "$@"; else "$@"; fi; }
pg_pid() { live_pid "$pg_data/postmaster.pid" postgres; }
pg_port() { cat "$PG_DIR/port"; }
# Superuser access for provisioning goes through the Unix socket in PG_DIR (trust auth; the
# directory is private to the server's user). Applications use TCP with a password.
pg_sql() { as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_DIR" -p "$(pg_port)" -U postgres -d postgres "$@"; }
pg_ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$(pg_port)" -d controlplane -t 1; }

pg_init() {
    log "creating a PostgreSQL cluster in $pg_data"
    rm -rf "$pg_data" "$PG_DIR/password"
    mkdir -p "$PG_DIR"
    chown -R "$(pg_user):" "$PG_DIR"
    chmod 700 "$PG_DIR"
    as_pg "$PG_BIN/initdb" --pgdata="$pg_data" --username=postgres --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 --locale=C --no-sync >/dev/null
    # 32 hex characters: nothing to escape in a URL.
    head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$PG_DIR/password"
    chmod 600 "$PG_DIR/password"
}

pg_launch() {
    [[ $(cat "$pg_data/PG_VERSION" 2>/dev/null) == 15 && -f $PG_DIR/password ]] || pg_init
    # Stale lock files (pg_pid found no live server behind them); a killed but not yet reaped
    # postmaster would otherwise still count as their owner.
    rm -f "$pg_data/postmaster.pid" "$PG_DIR"/.s.PGSQL.*.lock
    free_port "${PG_PORT:-54329}" >"$PG_DIR/port"
    # fsync, synchronous_commit and full_page_writes all follow PG_FSYNC: off is safe only for data
    # we are happy to lose; the benchmarks measure the durable configuration.
    as_pg "$PG_BIN/pg_ctl" --pgdata="$pg_data" --log="$PG_DIR/postgres.log" --wait --timeout=60 \
        -o "-c listen_addresses=127.0.0.1 -c port=$(pg_port) -c unix_socket_directories='$PG_DIR'" \
        -o "-c fsync=$PG_FSYNC -c synchronous_commit=$PG_FSYNC -c full_page_writes=$PG_FSYNC" \
        start >/dev/null 9>&- # the server must not inherit (and so hold) our lock
}

pg_start() {
    [[ -x $PG_BIN/postgres ]] || scripts/apt-install.sh postgresql-15 || scripts/apt-install.sh postgresql
    if pg_pid >/dev/null; then
        if [[ $(pg_sql -tAc 'show fsync' 2>/dev/null) == "$PG_FSYNC" ]]; then
            log "postgres already running on port $(pg_port)"
            return
        fi
        log "restarting postgres with fsync=$PG_FSYNC"
        pg_stop
    fi
    # A leftover cluster that will not start (crashed with fsync off, owned by another user, ...)
    # is thrown away and made afresh.
    if ! pg_launch; then
        tail -n 5 "$PG_DIR/postgres.log" >&2 || true
        log "could not start the existing cluster; recreating it"
        pg_init
        pg_launch || { tail -n 20 "$PG_DIR/postgres.log" >&2; die "postgres failed to start"; }
    fi
    pg_sql <<SQL
\set pw '$(cat "$PG_DIR/password")'
SELECT 'CREATE ROLE controlplane LOGIN CREATEDB' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'controlplane')
\gexec
ALTER ROLE controlplane PASSWORD :'pw';
SELECT 'CREATE DATABASE controlplane OWNER controlplane' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'controlplane')
\gexec
SQL
    wait_for 30 postgres pg_ready
    log "postgres running on 127.0.0.1:$(pg_port) (fsync=$PG_FSYNC)"
}

pg_stop() {
    pg_pid >/dev/null || return 0
    as_pg "$PG_BIN/pg_ctl" --pgdata="$pg_data" --mode=fast --wait --timeout=60 stop >/dev/null
    log "postgres stopped"
}

# --- Redis -------------------------------------------------------------------------------------------

redis_pid() { live_pid "$REDIS_DIR/redis.pid" redis-server; }
redis_port() { cat "$REDIS_DIR/port"; }
redis_ready() { [[ $(redis-cli -h 127.0.0.1 -p "$(redis_port)" ping) == PONG ]]; }

redis_start() {
    if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
        scripts/apt-install.sh redis-server # redis-cli comes with it, from redis-tools
    fi
    if redis_pid >/dev/null; then
        log "redis already running on port $(redis_port)"
        return
    fi
    mkdir -p "$REDIS_DIR"
    rm -f "$REDIS_DIR/redis.pid"
    free_port "${REDIS_PORT:-63799}" >"$REDIS_DIR/port"
    # A broker for tests: no snapshots, no append-only file.
    redis-server --bind 127.0.0.1 --port "$(redis_port)" --save '' --appendonly no --daemonize yes \
        --dir "$REDIS_DIR" --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" 9>&-
    wait_for 30 redis redis_ready
    log "redis running on 127.0.0.1:$(redis_port)"
}

redis_stop() {
    local pid
    pid=$(redis_pid) || { rm -f "$REDIS_DIR/redis.pid"; return 0; }
    kill "$pid"
    wait_for 30 "redis shutdown" bash -c "! kill -0 $pid"
    rm -f "$REDIS_DIR/redis.pid"
    log "redis stopped"
}

# --- Commands ----------------------------------------------------------------------------------------

# Serialise concurrent start/stop runs (two terminals, parallel make targets).
lock() {
    mkdir -p var
    exec 9>var/.services.lock
    flock -w 300 9 || die "another services.sh is still running"
}

case ${1:-} in
start)
    lock
    [[ -n ${DATABASE_URL:-} ]] || pg_start
    [[ -n ${REDIS_URL:-} ]] || redis_start
    ;;
stop)
    lock
    pg_stop
    redis_stop
    ;;
env)
    if [[ -z ${DATABASE_URL:-} ]]; then
        pg_pid >/dev/null || die "postgres is not running: run '$0 start' first"
        echo "export DATABASE_URL=postgres://controlplane:$(cat "$PG_DIR/password")@127.0.0.1:$(pg_port)/controlplane"
    fi
    if [[ -z ${REDIS_URL:-} ]]; then
        redis_pid >/dev/null || die "redis is not running: run '$0 start' first"
        echo "export REDIS_URL=redis://127.0.0.1:$(redis_port)/0"
    fi
    ;;
status)
    ok=0
    if [[ -n ${DATABASE_URL:-} ]]; then echo "postgres: external (DATABASE_URL is set)"
    elif pg_pid >/dev/null; then echo "postgres: running on 127.0.0.1:$(pg_port)"
    else echo "postgres: stopped"; ok=1; fi
    if [[ -n ${REDIS_URL:-} ]]; then echo "redis: external (REDIS_URL is set)"
    elif redis_pid >/dev/null; then echo "redis: running on 127.0.0.1:$(redis_port)"
    else echo "redis: stopped"; ok=1; fi
    exit "$ok"
    ;;
*)
    echo "usage: $0 start|stop|env|status" >&2
    exit 2
    ;;
esac
