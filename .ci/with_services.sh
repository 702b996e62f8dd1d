#!/usr/bin/env bash
# Run a command with the services the tests use, and stop every one this script started
# when the command ends, however it ends (failed tests, Ctrl-C, a CI job's SIGTERM).
#
# Usage: bash .ci/with_services.sh COMMAND [ARG...]     exits with COMMAND's status
#
# Services: a throwaway PostgreSQL on loopback (`.ci/postgres.sh`; AUTOGLM_PG_DIR and
# AUTOGLM_PG_PORT choose where), exported to the tests as AUTOGLM_TEST_POSTGRES_URL. A
# server that was already running before is reused and left running.
set -euo pipefail
cd "$(dirname "$0")/.."

stop_services() {
  local status=$?
  trap - EXIT INT TERM
  if [ -n "${AUTOGLM_PG_STARTED:-}" ]; then
    bash .ci/postgres.sh stop || echo "with_services.sh: PostgreSQL in $AUTOGLM_PG_STARTED did not stop" >&2
  fi
  exit "$status"
}
trap stop_services EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if pg_env="$(bash .ci/postgres.sh)"; then
  eval "$pg_env"
else
  echo "PostgreSQL could not start; its tests will skip and say why" >&2
fi

# Not exec: this shell stays to stop the services after the command.
set +e
"$@"
status=$?
set -e
exit "$status"
