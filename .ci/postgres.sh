#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on loopback for the shared-study tuning tests.
#
# Usage: eval "$(bash .ci/postgres.sh)"      start (or reuse) it
#        bash .ci/postgres.sh stop            stop the server of AUTOGLM_PG_DIR
# Start prints to stdout `export AUTOGLM_TEST_POSTGRES_URL=postgresql://...`, and
# `export AUTOGLM_PG_STARTED=DIR` when it started the server itself (so its caller knows it
# has one to stop: .ci/with_services.sh does); everything else goes to stderr.
# Idempotent: a server already answering on the port is reused, an
# existing data dir is restarted, PostgreSQL is installed from Debian's packages only when no
# server binaries are found. Runs as root in CI (the server itself runs as `postgres`); as
# another user it runs the server as that user.
#
# Environment: AUTOGLM_PG_DIR (data dir, default /tmp/autoglm-pg), AUTOGLM_PG_PORT (54329),
# AUTOGLM_PG_DB (autoglm_test).
set -euo pipefail

PG_DIR="${AUTOGLM_PG_DIR:-/tmp/autoglm-pg}"
PG_PORT="${AUTOGLM_PG_PORT:-54329}"
PG_DB="${AUTOGLM_PG_DB:-autoglm_test}"

log() { echo "postgres.sh: $*" >&2; }

find_bindir() {
  local dir
  # Newest installed major version first.
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r); do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
      echo "$dir"
      return 0
    fi
  done
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v initdb)"
    return 0
  fi
  return 1
}

BINDIR="$(find_bindir || true)"
if [ -z "$BINDIR" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    log "PostgreSQL is not installed and installing it needs root (apt-get install postgresql)"
    exit 1
  fi
  log "installing PostgreSQL from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends postgresql >&2
  BINDIR="$(find_bindir)"
fi

# Run a server binary as the account that owns the data dir.
if [ "$(id -u)" -eq 0 ]; then
  RUN_USER=postgres
  as_owner() { runuser -u postgres -- "$@"; }
else
  RUN_USER="$(id -un)"
  as_owner() { "$@"; }
fi

url="postgresql://${RUN_USER}@127.0.0.1:${PG_PORT}/${PG_DB}"

if [ "${1:-start}" = "stop" ]; then
  if [ -f "$PG_DIR/postmaster.pid" ]; then
    log "stopping the server in $PG_DIR"
    as_owner "$BINDIR/pg_ctl" -D "$PG_DIR" -m fast -w -t 60 stop >&2
  else
    log "no server running in $PG_DIR"
  fi
  exit 0
fi

started=""
if "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; then
  log "a server already answers on 127.0.0.1:${PG_PORT}; reusing it"
else
  if [ ! -f "$PG_DIR/PG_VERSION" ]; then
    log "initdb in $PG_DIR"
    mkdir -p "$PG_DIR"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$PG_DIR"
    chmod 700 "$PG_DIR"
    # trust on loopback: a throwaway server that only listens on 127.0.0.1.
    as_owner "$BINDIR/initdb" -D "$PG_DIR" -U "$RUN_USER" --auth=trust -E UTF8 >&2
  fi
  log "starting the server on 127.0.0.1:${PG_PORT}"
  # fsync off and no sync commit: test data, speed over durability.
  as_owner "$BINDIR/pg_ctl" -D "$PG_DIR" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p ${PG_PORT} -k ${PG_DIR} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >&2
  started="$PG_DIR"
fi

psql_cmd() { as_owner "$BINDIR/psql" -h 127.0.0.1 -p "$PG_PORT" -U "$RUN_USER" -d postgres -tAq "$@"; }
if [ "$(psql_cmd -c "SELECT 1 FROM pg_database WHERE datname = '${PG_DB}'")" != "1" ]; then
  log "creating database ${PG_DB}"
  psql_cmd -c "CREATE DATABASE ${PG_DB}" >&2
fi

log "ready: ${url}"
echo "export AUTOGLM_TEST_POSTGRES_URL=${url}"
if [ -n "$started" ]; then
  echo "export AUTOGLM_PG_STARTED=${started}"
fi
