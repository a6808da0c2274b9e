#!/bin/sh
# Installs a built streetbox checkout at /opt/streetbox as a systemd service.
#
#   sudo git clone <repo> /opt/streetbox && cd /opt/streetbox
#   sudo npm ci && sudo npm prune --omit=dev     # npm ci builds dist/ (needs the dev dependencies), prune drops them
#   sudo sh deploy/install.sh
#
# Idempotent: it never overwrites /etc/streetbox/devices.yaml or /etc/streetbox/env.
set -eu

PREFIX=/opt/streetbox
ETC=/etc/streetbox
DATA=/var/lib/streetbox
HERE=$(cd "$(dirname "$0")/.." && pwd)

[ "$(id -u)" = 0 ] || { echo "run as root (sudo sh deploy/install.sh)" >&2; exit 1; }
[ "$HERE" = "$PREFIX" ] || { echo "expected the checkout at $PREFIX (it is at $HERE)" >&2; exit 1; }
[ -f "$PREFIX/dist/streetbox.mjs" ] || { echo "not built: run npm ci (or npm run build) first" >&2; exit 1; }
command -v node >/dev/null && [ "$(command -v node)" = /usr/bin/node ] || echo "warning: the unit runs /usr/bin/node; adjust ExecStart with 'systemctl edit streetbox' if Node lives elsewhere" >&2

# a system user of its own, in dialout for the RS-485 adapters
id streetbox >/dev/null 2>&1 || useradd --system --user-group --home-dir "$DATA" --no-create-home --shell /usr/sbin/nologin streetbox
usermod -aG dialout streetbox

install -d -m 0755 -o root -g root "$ETC"
install -d -m 0750 -o streetbox -g streetbox "$DATA"
if [ ! -f "$ETC/devices.yaml" ]; then
  # the shipped demo, with its data under /var/lib/streetbox; edit before enabling real buses
  sed -e "s#^\(\s*path:\s*\)data/#\1$DATA/#" "$PREFIX/devices.yaml" > "$ETC/devices.yaml"
  chmod 0644 "$ETC/devices.yaml"
  echo "wrote $ETC/devices.yaml (the demo, storage.path under $DATA): edit it for the real buses and devices"
fi
if [ ! -f "$ETC/env" ]; then
  install -m 0640 -o root -g streetbox "$PREFIX/deploy/env.example" "$ETC/env"
fi

install -m 0644 "$PREFIX/deploy/streetbox.service" /etc/systemd/system/streetbox.service
systemctl daemon-reload
echo "next: sudo -u streetbox node $PREFIX/bin/streetbox.js doctor --config $ETC/devices.yaml"
echo "then: sudo systemctl enable --now streetbox && journalctl -u streetbox -f -o cat"
