# Sourced by tools/demo.sh and tools/smoke.sh: serve a publisher repository
# over HTTP on 127.0.0.1 with lighttpd, as a user's server would.
#
# serve_repo REPO WORKDIR: starts lighttpd on a free port (three tries, each
# waiting up to 10 s for the port to answer); sets URL (http://127.0.0.1:PORT,
# no trailing slash) and SERVER_PID, or returns 1 with the server's log in
# WORKDIR/lighttpd-error.log.  The caller stops SERVER_PID.
serve_repo() {
    local repo=$1 work=$2 port attempt lighttpd
    lighttpd=$(command -v lighttpd || echo /usr/sbin/lighttpd)
    URL= SERVER_PID=
    for attempt in 1 2 3; do
        port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        printf '%s\n' "server.document-root = \"$repo\"" 'server.bind = "127.0.0.1"' \
            "server.port = $port" "server.errorlog = \"$work/lighttpd-error.log\"" \
            'mimetype.assign = ("" => "application/octet-stream")' \
            'server.stat-cache-engine = "disable"' >"$work/lighttpd.conf"
        "$lighttpd" -D -f "$work/lighttpd.conf" </dev/null >>"$work/lighttpd-error.log" 2>&1 &
        SERVER_PID=$!
        for _ in $(seq 1 100); do
            if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null; then
                URL="http://127.0.0.1:$port"
                return 0
            fi
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    done
    return 1
}
