#!/usr/bin/env bash
# The `keyward serve` benchmark: builds keyward (release), checks what the run needs, then runs
# bench/run.py with the given options (bench/run.sh --help lists them). See bench/README.md.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"

missing=()
for tool in wrk nginx apache2 node npm openssl python3; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
done
[ -f /usr/lib/apache2/modules/mod_auth_openidc.so ] || missing+=("mod_auth_openidc")
if [ "${#missing[@]}" -gt 0 ]; then
  echo "bench/run.sh: missing: ${missing[*]}" >&2
  echo "  apt-get install -y --no-install-recommends wrk nginx apache2 libapache2-mod-auth-openidc openssl python3 nodejs npm" >&2
  exit 2
fi

if [ -z "${KEYWARD_BIN:-}" ]; then
  (cd "$repo" && cargo build --release -p keyward-cli)
  KEYWARD_BIN="$repo/target/release/keyward"
fi
# The decision micro-benchmark runs first in the same run; build it now so the run only measures.
(cd "$repo" && cargo bench -p keyward-serve --bench decision --no-run)
(cd "$repo" && cargo build --release -p keyward-serve --example openloop)
if [ ! -d "$here/node/node_modules/jose" ]; then
  (cd "$here/node" && npm ci --no-audit --no-fund)
fi
exec python3 "$here/run.py" --keyward "$KEYWARD_BIN" "$@"
