#!/bin/sh
# Installs a built streetbox checkout at /opt/streetbox as a systemd service.
#
#   sudo git clone <repo> /opt/streetbox && cd /opt/streetbox
#   sudo npm ci && sudo npm prune --omit=dev     # npm ci builds dist/ (needs the dev dependencies), prune drops them
#   sudo sh deploy/install.sh
#
# The first /etc/streetbox/devices.yaml is written by `streetbox init` (no bus scanned yet), with
# secrets made for this gateway alone: never the demo's passwords, tokens or keys. It is mode
# 0600, owned by the service user; the technician's plain token and passwords go once into
# /etc/streetbox/credentials (root only, 0600) and are never printed.
# Idempotent: it never overwrites /etc/streetbox/devices.yaml, credentials or env.
#
# For tests: STREETBOX_INSTALL_UNPRIVILEGED=1 creates no user and leaves systemd alone (files are
# given to their owners only when run as root), with the paths in STREETBOX_PREFIX, STREETBOX_ETC,
# STREETBOX_DATA, STREETBOX_UNIT_DIR, STREETBOX_BIN_DIR, the service user in STREETBOX_USER and STREETBOX_GROUP, and
# the CLI in STREETBOX_CLI.
set -eu
umask 077

PREFIX=${STREETBOX_PREFIX:-/opt/streetbox}
ETC=${STREETBOX_ETC:-/etc/streetbox}
DATA=${STREETBOX_DATA:-/var/lib/streetbox}
UNIT_DIR=${STREETBOX_UNIT_DIR:-/etc/systemd/system}
BIN_DIR=${STREETBOX_BIN_DIR:-/usr/local/bin}
SB_USER=${STREETBOX_USER:-streetbox}
SB_GROUP=${STREETBOX_GROUP:-$SB_USER}
UNPRIVILEGED=${STREETBOX_INSTALL_UNPRIVILEGED:-}
HERE=$(cd "$(dirname "$0")/.." && pwd)

if [ -z "$UNPRIVILEGED" ]; then
  [ "$(id -u)" = 0 ] || { echo "run as root (sudo sh deploy/install.sh)" >&2; exit 1; }
fi
[ "$HERE" = "$PREFIX" ] || { echo "expected the checkout at $PREFIX (it is at $HERE)" >&2; exit 1; }
if [ -z "${STREETBOX_CLI:-}" ]; then
  [ -f "$PREFIX/dist/streetbox.mjs" ] || { echo "not built: run npm ci (or npm run build) first" >&2; exit 1; }
  command -v node >/dev/null && [ "$(command -v node)" = /usr/bin/node ] || echo "warning: the unit runs /usr/bin/node; adjust ExecStart with 'systemctl edit streetbox' if Node lives elsewhere" >&2
fi
CLI=${STREETBOX_CLI:-node $PREFIX/bin/streetbox.js}

# owner:group of a path (root only: an unprivileged test run cannot give files away)
own() {
  [ "$(id -u)" != 0 ] || chown "$1" "$2"
}

if [ -z "$UNPRIVILEGED" ]; then
  # a system user of its own, in dialout for the RS-485 adapters
  id "$SB_USER" >/dev/null 2>&1 || useradd --system --user-group --home-dir "$DATA" --no-create-home --shell /usr/sbin/nologin "$SB_USER"
  usermod -aG dialout "$SB_USER"
fi

mkdir -p "$ETC" "$DATA"
# the gateway replaces devices.yaml itself when a configuration change is applied or rolled back
# (a temp file beside it, renamed over it): the directory is the service group's to write
chmod 0770 "$ETC"
own "root:$SB_GROUP" "$ETC"
chmod 0750 "$DATA"
own "$SB_USER:$SB_GROUP" "$DATA"

if [ ! -f "$ETC/devices.yaml" ]; then
  # fresh secrets (API token, broker and Node-RED password hashes, Node-RED's credentialSecret);
  # no bus scanned: `streetbox init --force` with the hardware attached, or edit the file
  $CLI init --skip-serial --storage "$DATA/streetbox.db" \
    --out "$ETC/devices.yaml" --credentials "$ETC/credentials" >/dev/null
  chmod 0600 "$ETC/devices.yaml" "$ETC/credentials"
  own "$SB_USER:$SB_GROUP" "$ETC/devices.yaml"
  own root:root "$ETC/credentials"
  echo "wrote $ETC/devices.yaml (mode 0600, owner $SB_USER): API and broker on with fresh secrets, no devices yet"
  echo "the technician's API token and passwords are in $ETC/credentials (root only): keep them, then delete it"
else
  # kept as it is, but owner-only: an older install copied the demo there, world-readable
  chmod 0600 "$ETC/devices.yaml"
  own "$SB_USER:$SB_GROUP" "$ETC/devices.yaml"
  echo "kept $ETC/devices.yaml (now mode 0600); streetbox doctor fails it if it still holds a demo secret"
fi
if [ ! -f "$ETC/env" ]; then
  cp "$PREFIX/deploy/env.example" "$ETC/env"
  chmod 0640 "$ETC/env"
  own "root:$SB_GROUP" "$ETC/env"
fi

# `streetbox` on the PATH for technicians (the command, not `npx`, which would ask the registry)
mkdir -p -m 0755 "$BIN_DIR"
ln -sfn "$PREFIX/bin/streetbox.js" "$BIN_DIR/streetbox"

mkdir -p -m 0755 "$UNIT_DIR"
cp "$PREFIX/deploy/streetbox.service" "$UNIT_DIR/streetbox.service"
chmod 0644 "$UNIT_DIR/streetbox.service"
[ -n "$UNPRIVILEGED" ] || systemctl daemon-reload
echo "next: sudo -u $SB_USER streetbox doctor --config $ETC/devices.yaml"
echo "then: sudo systemctl enable --now streetbox && journalctl -u streetbox -f -o cat | streetbox logs"
