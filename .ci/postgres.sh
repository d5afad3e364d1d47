#!/usr/bin/env bash
# Make PostgreSQL server binaries available (Debian): /usr/lib/postgresql/<version>/bin/initdb.
# Idempotent: does nothing when they are already installed. Test fixtures start their own
# throwaway cluster from these binaries; no system cluster needs to run.
set -euo pipefail

have_initdb() {
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

if have_initdb; then
    echo "postgres.sh: PostgreSQL binaries present: $(compgen -G '/usr/lib/postgresql/*/bin/initdb' | tr '\n' ' ')"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "postgres.sh: no PostgreSQL binaries and no apt-get; install PostgreSQL server binaries" >&2
    exit 1
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    SUDO=(sudo --preserve-env=DEBIAN_FRONTEND)
fi
export DEBIAN_FRONTEND=noninteractive

"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends postgresql >/dev/null

# The package may start (or create) a system cluster; the fixtures do not use it.
if ! have_initdb; then
    echo "postgres.sh: apt-get installed postgresql but no initdb was found" >&2
    exit 1
fi
echo "postgres.sh: installed $(compgen -G '/usr/lib/postgresql/*/bin/initdb' | tr '\n' ' ')"
