#!/usr/bin/env bash
# Install the real servers used by the loopback integration world (tests/integration):
# Knot DNS (authoritative DNS), nginx (HTTPS over OpenSSL), Caddy (HTTPS over Go's
# crypto/tls) and redis-server (the shared cache store). The tests run their own
# foreground instances from temp dirs, so the distribution's service instances must not run.
# Also chromium (the docs site's browser test) and npm (fetches the site's mermaid).
# Idempotent; meant for a fresh Debian bookworm machine, run as root.
set -euo pipefail

PACKAGES=(knot nginx-light caddy redis-server chromium)
POLICY=/usr/sbin/policy-rc.d

if [[ "$(id -u)" -ne 0 ]]; then
    echo "install-servers.sh: must run as root" >&2
    exit 1
fi

have_all() {
    command -v knotd >/dev/null 2>&1 && command -v knotc >/dev/null 2>&1 \
        && command -v nginx >/dev/null 2>&1 && command -v caddy >/dev/null 2>&1 \
        && command -v redis-server >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1 \
        && command -v npm >/dev/null 2>&1
}

# Stop a system-service instance through the init system, then by the pid in its pidfile.
stop_service() {
    local name=$1 pidfile=$2 pid
    if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
        systemctl disable --now "$name" >/dev/null 2>&1 || true
    elif command -v service >/dev/null 2>&1; then
        service "$name" stop >/dev/null 2>&1 || true
    fi
    if [[ -f "$pidfile" ]]; then
        pid=$(cat "$pidfile" 2>/dev/null || true)
        if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
        fi
    fi
}

if ! have_all; then
    # Keep Debian's postinst scripts from starting nginx on :80 or knotd on :53. If the
    # machine already has a policy-rc.d (as Docker images do), leave it alone.
    added_policy=0
    if [[ ! -e "$POLICY" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$POLICY"
        chmod 0755 "$POLICY"
        added_policy=1
    fi
    cleanup() {
        if [[ "$added_policy" -eq 1 ]]; then
            rm -f "$POLICY"
        fi
    }
    trap cleanup EXIT

    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${PACKAGES[@]}"
    # npm may come with the machine's own Node.js; Debian's only when there is none.
    if ! command -v npm >/dev/null 2>&1; then
        apt-get install -y --no-install-recommends npm
    fi
fi

stop_service nginx /run/nginx.pid
stop_service knot /run/knot/knot.pid
stop_service caddy /run/caddy/caddy.pid
stop_service redis-server /run/redis/redis-server.pid

if ! have_all; then
    echo "install-servers.sh: knotd/knotc/nginx/caddy/redis-server/chromium/npm still missing after install" >&2
    exit 1
fi

echo "knotd: $(knotd --version 2>&1 | head -n1)"
echo "nginx: $(nginx -v 2>&1 | head -n1)"
echo "caddy: $(caddy version 2>&1 | head -n1)"
echo "redis-server: $(redis-server --version | head -n1)"
echo "chromium: $(chromium --version 2>/dev/null | head -n1)"
