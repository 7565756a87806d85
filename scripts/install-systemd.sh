#!/usr/bin/env bash
# Installs rustfs-kmsd's systemd units, sysusers.d/tmpfiles.d snippets and example config.
#   sudo scripts/install-systemd.sh                      on this host (then runs systemd-sysusers,
#                                                        systemd-tmpfiles and systemctl daemon-reload)
#   DESTDIR=/tmp/pkgroot scripts/install-systemd.sh      staged under DESTDIR, nothing run (packaging)
# Extra arguments go to "rustfs-kms install-systemd" (--lib-dir DIR, --daemon PATH, --no-reload).
# The same as "rustfs-kms install-systemd [--prefix DIR]" from an npm install; this wrapper is for a
# checkout (after "npm run build") and for packaging scripts that speak DESTDIR.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cli="$root/dist/src/cli/main.js"
if [ ! -f "$cli" ]; then
  echo "install-systemd.sh: $cli is missing; build first (npm run build)" >&2
  exit 1
fi
args=(--prefix "${DESTDIR:-/}")
if [ -n "${DESTDIR:-}" ]; then
  args+=(--no-reload)
fi
exec "${NODE:-node}" "$cli" install-systemd "${args[@]}" "$@"
