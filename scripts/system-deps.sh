#!/usr/bin/env bash
# Installs the Debian packages the integration tests use (real parts, not mocks):
# mosquitto (the upstream broker), socat (serial lines as PTY pairs), python3-pymodbus
# (an independent Modbus peer, run with /usr/bin/python3), chromium (status page tests) and
# tzdata (the zone files schedules read; tests compare them with ICU).
# Idempotent: does nothing when everything is there.
set -euo pipefail

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v socat >/dev/null 2>&1 || need+=(socat)
/usr/bin/python3 -c 'import pymodbus' >/dev/null 2>&1 || need+=(python3-pymodbus)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -f /usr/share/zoneinfo/Europe/Amsterdam ] || need+=(tzdata)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "streetbox: the tests need these Debian packages: ${need[*]}" >&2
    echo "           install them as root: apt-get install -y ${need[*]}" >&2
    exit 1
  fi
else
  SUDO=
fi

echo "streetbox: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
