# A throwaway PostgreSQL server for the review app's tests (sourced by .ci/run; usable by hand):
#
#   source .ci/postgres.sh && start_postgres   # exports BRANDSTUDIO_TEST_POSTGRES_URL
#   python -m pytest -q tests/app
#   stop_postgres
#
# initdb into a temporary folder, listen on 127.0.0.1 on a free port (and a socket in that
# folder), trust authentication (nothing but this machine can reach it), one scratch database.
# PostgreSQL refuses to run as root: as root the server runs as the user `postgres` (created if
# missing). Looks for pg_ctl in /usr/lib/postgresql/<newest>/bin, then on PATH.

_pg_bin() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r) /usr/local/bin /usr/bin; do
        if [ -x "$dir/pg_ctl" ] && [ -x "$dir/initdb" ]; then echo "$dir"; return 0; fi
    done
    return 1
}

_pg_as() {  # run a command as the server's owner
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_postgres() {
    local bin port
    bin=$(_pg_bin) || { echo "no PostgreSQL (pg_ctl, initdb) found" >&2; return 1; }
    if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    fi
    BRANDSTUDIO_PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/brandstudio-pg.XXXXXX")
    export BRANDSTUDIO_PG_DIR
    if [ "$(id -u)" = 0 ]; then chown postgres "$BRANDSTUDIO_PG_DIR"; fi
    port=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    _pg_as "$bin/initdb" -D "$BRANDSTUDIO_PG_DIR/data" -U brandstudio --auth=trust -E UTF8 --locale=C.UTF-8 \
        >"$BRANDSTUDIO_PG_DIR/initdb.log" 2>&1 || { cat "$BRANDSTUDIO_PG_DIR/initdb.log" >&2; return 1; }
    _pg_as "$bin/pg_ctl" -D "$BRANDSTUDIO_PG_DIR/data" -l "$BRANDSTUDIO_PG_DIR/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$BRANDSTUDIO_PG_DIR -c fsync=off" \
        start >/dev/null || { cat "$BRANDSTUDIO_PG_DIR/server.log" >&2; return 1; }
    _pg_as "$bin/createdb" -h 127.0.0.1 -p "$port" -U brandstudio brandstudio_test
    export BRANDSTUDIO_TEST_POSTGRES_URL="postgresql+psycopg://brandstudio@127.0.0.1:$port/brandstudio_test"
    echo "PostgreSQL $("$bin/pg_ctl" --version | awk '{print $3}') for the tests: $BRANDSTUDIO_TEST_POSTGRES_URL"
}

stop_postgres() {
    [ -n "${BRANDSTUDIO_PG_DIR:-}" ] && [ -d "$BRANDSTUDIO_PG_DIR" ] || return 0
    _pg_as "$(_pg_bin)/pg_ctl" -D "$BRANDSTUDIO_PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$BRANDSTUDIO_PG_DIR"
    unset BRANDSTUDIO_PG_DIR BRANDSTUDIO_TEST_POSTGRES_URL
}
