#!/usr/bin/env bash
# Installs the gateway into ./.venv (and socat, used by --simulate's virtual
# serial links). Safe to run again. Usage: ./install.sh [--test]
set -euo pipefail
cd "$(dirname "$0")"

want_pkgs=(socat)
[ "${1:-}" = "--test" ] && want_pkgs+=(mosquitto)
missing=()
for pkg in "${want_pkgs[@]}"; do
  command -v "$pkg" >/dev/null 2>&1 || [ -x "/usr/sbin/$pkg" ] || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ required" >&2; exit 1; }
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v -i warning || true
extra=""; [ "${1:-}" = "--test" ] && extra="[test]"
.venv/bin/python -m pip install -q -e ".${extra}" 2>&1 | grep -v -i warning || true
.venv/bin/accessgw --version
