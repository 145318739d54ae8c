#!/usr/bin/env bash
# Run the test suite: ./scripts/test.sh [pytest args...]
#
# Creates or reuses .venv (Python 3.11) with boltlink installed editable plus
# its test extras, makes sure PostgreSQL (127.0.0.1:5432) and Redis
# (127.0.0.1:6379) are up, starting them if they are installed but stopped,
# then runs pytest. Tests that need a server skip when it is missing, unless
# BOLTLINK_REQUIRE_SERVICES=1 (CI), where a missing server is fatal.
# BOLTLINK_PYTHON picks the interpreter for a new .venv (default: python3).
# shellcheck disable=SC2317  # the start_* functions are called indirectly
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${BOLTLINK_PYTHON:-python3}
VENV=.venv

say() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
is_py311() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; }

# --- venv --------------------------------------------------------------------
if ! is_py311 "$VENV/bin/python"; then  # missing, broken, or the wrong Python
    is_py311 "$PYTHON" || die "$PYTHON is not Python 3.11 (set BOLTLINK_PYTHON=/path/to/python3.11)"
    say "creating $VENV with $("$PYTHON" --version)"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV" || die "could not create $VENV (on Debian: apt-get install python3-venv)"
fi
# Reinstall only when pyproject.toml changed: the install is editable, so code
# changes need nothing, and pip takes seconds even when there is nothing to do.
stamp=$VENV/.boltlink-pyproject.sha256
if ! sha256sum --status -c "$stamp" 2>/dev/null; then
    say "installing boltlink[test] into $VENV"
    "$VENV/bin/python" -m pip install -q -e ".[test]"
    sha256sum pyproject.toml >"$stamp"
fi

# --- services ----------------------------------------------------------------
reachable() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_*: start the server in the background; on failure print why, last.
start_postgres() {
    if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
        echo "PostgreSQL is not installed (no pg_ctlcluster or /etc/postgresql)"
        return 1
    fi
    local version
    version=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
}

start_redis() {
    if ! command -v redis-server >/dev/null; then
        echo "Redis is not installed (no redis-server)"
        return 1
    fi
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
}

# ensure_service NAME PORT START_FUNCTION
ensure_service() {
    local name=$1 port=$2 start=$3 output problem
    if reachable "$port"; then
        say "$name: up on 127.0.0.1:$port"
        return 0
    fi
    say "$name: not reachable on 127.0.0.1:$port, starting it"
    if output=$("$start" 2>&1); then
        for _ in $(seq 60); do  # bounded: a server not up after 30 s is not coming
            if reachable "$port"; then
                say "$name: up on 127.0.0.1:$port"
                return 0
            fi
            sleep 0.5
        done
        problem="$name was started but is still not reachable on 127.0.0.1:$port after 30 s"
    else
        problem="could not start $name: ${output##*$'\n'}"
    fi
    if [ "${BOLTLINK_REQUIRE_SERVICES:-0}" = 1 ]; then
        die "$problem (BOLTLINK_REQUIRE_SERVICES=1)"
    fi
    say "$problem; the tests that need it will skip"
}

ensure_service PostgreSQL 5432 start_postgres
ensure_service Redis 6379 start_redis

# --- tests -------------------------------------------------------------------
say "python -m pytest $*"
status=0
"$VENV/bin/python" -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    die "pytest collected no tests (exit 5): check the arguments and tests/"
fi
exit "$status"
