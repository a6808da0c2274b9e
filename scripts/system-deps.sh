#!/usr/bin/env bash
# Installs the Debian packages the tests use (real parts, not mocks), each named explicitly:
#   mosquitto, mosquitto-clients   the upstream broker, mosquitto_pub/_sub/_passwd
#   socat                          serial lines as PTY pairs (and the demo's RS-485 line)
#   python3-pymodbus               an independent Modbus peer, run with /usr/bin/python3 ...
#   python3-serial                 ... whose serial client needs pyserial ...
#   python3-serial-asyncio         ... and whose serial server needs serial_asyncio
#                                  (recommends of python3-pymodbus: never rely on recommends)
#   python3-jinja2                 renders Home Assistant's discovery templates as HA does (sandboxed Jinja2)
#   chromium                       status page and editor tests (playwright-core drives it)
#   tzdata                         the zone files schedules read; tests compare them with ICU
#   openssl                        test certificates (TLS broker, mqtts upstream)
#   util-linux                     setpriv: simulator children (socat) die with the gateway
#   curl                           a real HTTPS client for the API's TLS tests
#   dpkg                           dpkg-deb and dpkg --root for the Debian package test
# Each check asks for what the tests actually use: the Python check runs the test helpers
# themselves with --check-imports, so it imports exactly what they import.
# Idempotent: does nothing when everything is there. `--check` only reports (exit 1 if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=/usr/bin/python3
need=()
has() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }
py_ok() { [ -x "$PY" ] && "$PY" -c "$1" >/dev/null 2>&1; }

has mosquitto || need+=(mosquitto)
has mosquitto_pub && has mosquitto_sub && has mosquitto_passwd || need+=(mosquitto-clients)
has socat || need+=(socat)
py_ok 'import pymodbus.client, pymodbus.server.async_io' || need+=(python3-pymodbus)
py_ok 'import serial' || need+=(python3-serial)
py_ok 'import serial_asyncio' || need+=(python3-serial-asyncio)
py_ok 'import jinja2' || need+=(python3-jinja2)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -f /usr/share/zoneinfo/Europe/Amsterdam ] || need+=(tzdata)
has openssl || need+=(openssl)
has curl || need+=(curl)
has dpkg-deb || need+=(dpkg)
[ -x /usr/bin/setpriv ] || need+=(util-linux)

check_helpers() {
  local f ok=0
  for f in tests/helpers/pymodbus_server.py tests/helpers/pymodbus_client.py; do
    if ! out=$("$PY" "$f" --check-imports 2>&1); then
      echo "streetbox: $PY $f cannot import what it needs:" >&2
      echo "$out" | tail -n 1 | sed 's/^/           /' >&2
      ok=1
    fi
  done
  return $ok
}

if [ "${1:-}" = "--check" ]; then
  if [ ${#need[@]} -gt 0 ]; then echo "streetbox: missing Debian packages: ${need[*]}" >&2; exit 1; fi
  check_helpers
  exit $?
fi

if [ ${#need[@]} -gt 0 ]; then
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
fi

# The proof: the test helpers import everything they need.
check_helpers
