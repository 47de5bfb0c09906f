#!/usr/bin/env bash
# Installs the Debian packages hotline needs, only those missing. Idempotent: a second run
# installs nothing and prints nothing but a one-line summary.
set -euo pipefail

PKGS=(
  build-essential python3-dev python3-venv swig uuid-dev pkg-config dpkg-dev
  redis-server kamailio sip-tester baresip sox libsox-fmt-all tcpdump espeak-ng postgresql
)
# Extra packages asked for by the caller (e.g. the browser for UI tests).
PKGS+=("$@")

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-debian: all ${#PKGS[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
echo "install-debian: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian packages start daemons of their own on install; hotline runs its own instances.
for svc in kamailio; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
  fi
done
echo "install-debian: done"
