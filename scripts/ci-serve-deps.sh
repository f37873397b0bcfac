#!/usr/bin/env bash
# Installs what crates/keyward-cli/tests/serve_proxies.rs needs on a Debian 12 machine (run as
# root by .ci/run before the tests): Debian's nginx (auth_request), Caddy and prometheus (for
# promtool), node with npm, and the pinned oidc-provider of tests/interop (`npm ci`).
# Components already present are not installed again. No service is left running: the
# packages' own nginx/caddy/prometheus services are kept from starting (policy-rc.d) and
# stopped if they run anyway. The tests start their own instances on 127.0.0.1 ephemeral ports.
# Fails loudly (non-zero) when anything cannot be installed: the tests must never skip in CI.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v nginx >/dev/null 2>&1 || need+=(nginx)
command -v caddy >/dev/null 2>&1 || need+=(caddy)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
# crates/keyward-serve/tests/deploy.rs: `systemd-analyze verify` of deploy/systemd/keyward.service.
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)

if [ "${#need[@]}" -gt 0 ]; then
    echo "ci-serve-deps: installing ${need[*]}"
    # Keep the packages' services from starting while they are installed (exit 101 is
    # "action forbidden" for invoke-rc.d); an existing policy is restored afterwards.
    policy=/usr/sbin/policy-rc.d
    saved=""
    if [ -e "$policy" ]; then
        saved=$(mktemp)
        cp -p "$policy" "$saved"
    fi
    restore_policy() {
        if [ -n "$saved" ]; then mv -f "$saved" "$policy"; else rm -f "$policy"; fi
    }
    trap restore_policy EXIT
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${need[@]}"
    restore_policy
    trap - EXIT
else
    echo "ci-serve-deps: nginx, caddy, promtool, node and npm already installed"
fi

# Whatever happened before (an earlier install, a machine image), no packaged service may hold
# ports or compete with the tests. Only the packages' own services are stopped, by unit name.
for unit in nginx caddy prometheus; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$unit" 2>/dev/null; then
        systemctl stop "$unit" || true
        systemctl disable "$unit" >/dev/null 2>&1 || true
    elif [ -x "/etc/init.d/$unit" ] && "/etc/init.d/$unit" status >/dev/null 2>&1; then
        "/etc/init.d/$unit" stop || true
    fi
done

# What the test checks before running: say plainly here if it is not there.
if ! nginx -V 2>&1 | grep -q http_auth_request_module; then
    echo "ci-serve-deps: nginx lacks the auth_request module" >&2
    exit 1
fi
caddy version >/dev/null
promtool --version >/dev/null
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 18 ]; then
    echo "ci-serve-deps: node $(node --version) is too old for oidc-provider 8 (18 or later)" >&2
    exit 1
fi

(cd tests/interop && npm ci --no-audit --no-fund)
(cd tests/interop && node --input-type=module -e 'await import("oidc-provider")')
echo "ci-serve-deps: $(nginx -v 2>&1), caddy $(caddy version | cut -d' ' -f1)," \
    "$(promtool --version 2>&1 | head -1), node $(node --version)," \
    "oidc-provider $(node -p 'require("./tests/interop/node_modules/oidc-provider/package.json").version')"
