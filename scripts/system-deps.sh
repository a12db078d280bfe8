#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages YAK's tests and demo need, when missing.
# Usage: scripts/system-deps.sh PACKAGE...   (known: redis-server chromium chromium-driver kcat python3-venv nodejs npm)
# Sourced or run; exits non-zero with a clear message when it cannot install.
set -euo pipefail

have() {
  case "$1" in
    redis-server) command -v redis-server >/dev/null 2>&1 ;;
    chromium) command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 ;;
    chromium-driver) command -v chromedriver >/dev/null 2>&1 ;;
    kcat) command -v kcat >/dev/null 2>&1 ;;
    python3-venv) dpkg -s python3-venv >/dev/null 2>&1 ;;
    nodejs) command -v node >/dev/null 2>&1 ;;
    npm) command -v npm >/dev/null 2>&1 ;;
    *) dpkg -s "$1" >/dev/null 2>&1 ;;
  esac
}

missing=()
for pkg in "$@"; do
  have "$pkg" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "yak: installing missing system packages: ${missing[*]}" >&2
if ! command -v apt-get >/dev/null 2>&1; then
  echo "yak: no apt-get on this machine. Install these yourself and retry: ${missing[*]}" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
  else
    echo "yak: need root to install ${missing[*]}. Run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
if ! $sudo apt-get install -y -q "${missing[@]}" >/tmp/yak-apt.log 2>&1; then
  $sudo apt-get update -q >>/tmp/yak-apt.log 2>&1 || true
  if ! $sudo apt-get install -y -q "${missing[@]}" >>/tmp/yak-apt.log 2>&1; then
    echo "yak: apt-get could not install ${missing[*]} (log: /tmp/yak-apt.log)." >&2
    echo "yak: install them by hand (sudo apt-get install ${missing[*]}) and retry." >&2
    exit 1
  fi
fi
for pkg in "${missing[@]}"; do
  have "$pkg" || { echo "yak: $pkg still missing after apt-get install" >&2; exit 1; }
done
