#!/bin/sh
# Installs a built streetbox checkout at /opt/streetbox as a systemd service. (The Debian package,
# `npm run package`, installs the same way from /usr/lib/streetbox: both take the steps in
# deploy/setup.sh.)
#
#   sudo git clone <repo> /opt/streetbox && cd /opt/streetbox
#   sudo npm ci && sudo npm prune --omit=dev     # npm ci builds dist/ (needs the dev dependencies), prune drops them
#   sudo sh deploy/install.sh
#
# The first /etc/streetbox/devices.yaml is written by `streetbox init --skip-serial` (no bus scanned yet), with
# secrets made for this gateway alone: never the demo's passwords, tokens or keys. It is mode
# 0600, owned by the service user; the technician's plain token and passwords go once into
# /etc/streetbox/credentials (root only, 0600) and are never printed.
# Idempotent: it never overwrites /etc/streetbox/devices.yaml, credentials or env.
#
# With --releases, the gateway can update itself (README "Updating the gateway itself"): the
# checkout (built, anywhere but /opt/streetbox) is copied to /opt/streetbox/releases/<version>,
# `current` points at it if nothing did, the launcher goes to /opt/streetbox/streetbox-launch and
# the unit gets the drop-in streetbox.service.d/10-releases.conf (systemd starts the launcher).
#
#   sudo sh deploy/install.sh --releases
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
RELEASES_MODE=
for arg in "$@"; do
  case $arg in
    --releases) RELEASES_MODE=1 ;;
    *) echo "usage: sh deploy/install.sh [--releases]" >&2; exit 2 ;;
  esac
done
RELEASES=$PREFIX/releases

if [ -z "$UNPRIVILEGED" ]; then
  [ "$(id -u)" = 0 ] || { echo "run as root (sudo sh deploy/install.sh)" >&2; exit 1; }
fi
if [ -n "$RELEASES_MODE" ]; then
  [ "$HERE" != "$PREFIX" ] || { echo "--releases: run it from a built checkout elsewhere (it is copied to $RELEASES/<version>)" >&2; exit 1; }
  VERSION=$(sed -n 's/^  "version": "\([^"]*\)",*$/\1/p' "$HERE/package.json" | head -n 1)
  [ -n "$VERSION" ] || { echo "no version in $HERE/package.json" >&2; exit 1; }
  HOME_DIR=$RELEASES/current
else
  [ "$HERE" = "$PREFIX" ] || { echo "expected the checkout at $PREFIX (it is at $HERE)" >&2; exit 1; }
  HOME_DIR=$PREFIX
fi
if [ -z "${STREETBOX_CLI:-}" ]; then
  [ -f "$HERE/dist/streetbox.mjs" ] || { echo "not built: run npm ci (or npm run build) first" >&2; exit 1; }
  command -v node >/dev/null && [ "$(command -v node)" = /usr/bin/node ] || echo "warning: the unit runs /usr/bin/node; adjust ExecStart with 'systemctl edit streetbox' if Node lives elsewhere" >&2
fi
CLI=${STREETBOX_CLI:-node $HOME_DIR/bin/streetbox.js}

# the steps the Debian package's postinst takes too (the user, the directories, devices.yaml, env)
SB_ROOT=
. "$HERE/deploy/setup.sh"

[ -n "$UNPRIVILEGED" ] || sb_user

if [ -n "$RELEASES_MODE" ]; then
  # the checkout as a release (without .git), renamed into place once complete
  mkdir -p -m 0755 "$PREFIX" && mkdir -p -m 0755 "$RELEASES"
  if [ ! -d "$RELEASES/$VERSION" ]; then
    rm -rf "$RELEASES/$VERSION.tmp" && mkdir "$RELEASES/$VERSION.tmp"
    (cd "$HERE" && tar cf - --exclude=./.git .) | (cd "$RELEASES/$VERSION.tmp" && tar xf -)
    mv "$RELEASES/$VERSION.tmp" "$RELEASES/$VERSION"
    echo "installed release $VERSION in $RELEASES/$VERSION"
  fi
  if [ ! -e "$RELEASES/current" ]; then
    ln -s "$VERSION" "$RELEASES/current"
  elif [ "$(cd -P "$RELEASES/current" && pwd -P)" != "$(cd -P "$RELEASES/$VERSION" && pwd -P)" ]; then
    echo "kept $RELEASES/current (release $(basename "$(cd -P "$RELEASES/current" && pwd -P)")); a deployment switches it, or by hand: ln -sfn $VERSION $RELEASES/current"
  fi
  # the launcher lives outside every release: no release's code can break it
  cp "$HERE/deploy/streetbox-launch" "$PREFIX/streetbox-launch"
  chmod 0755 "$PREFIX/streetbox-launch"
  # the gateway unpacks releases, switches current and removes old releases itself
  if [ "$(id -u)" = 0 ]; then chown -R "$SB_USER:$SB_GROUP" "$RELEASES"; fi
fi

sb_dirs
sb_config
if [ -n "$RELEASES_MODE" ] && [ -n "$SB_NEW_CONFIG" ] && ! grep -q '^firmware:' "$ETC/devices.yaml"; then
  printf '\n# the gateway updates itself from releases side by side (README "Updating the gateway itself")\nfirmware:\n  selfUpdate:\n    releases: %s\n' "$RELEASES" >>"$ETC/devices.yaml"
fi
sb_env "$HERE/deploy/env.example"

# `streetbox` on the PATH for technicians (the command, not `npx`, which would ask the registry)
mkdir -p -m 0755 "$BIN_DIR"
ln -sfn "$HOME_DIR/bin/streetbox.js" "$BIN_DIR/streetbox"

mkdir -p -m 0755 "$UNIT_DIR"
cp "$HERE/deploy/streetbox.service" "$UNIT_DIR/streetbox.service"
chmod 0644 "$UNIT_DIR/streetbox.service"
if [ -n "$RELEASES_MODE" ]; then
  mkdir -p -m 0755 "$UNIT_DIR/streetbox.service.d"
  sed "s#/opt/streetbox#$PREFIX#g" "$HERE/deploy/streetbox-releases.conf" >"$UNIT_DIR/streetbox.service.d/10-releases.conf"
  chmod 0644 "$UNIT_DIR/streetbox.service.d/10-releases.conf"
  grep -q '^ *releases:' "$ETC/devices.yaml" || echo "set firmware.selfUpdate.releases: $RELEASES in $ETC/devices.yaml for the gateway to update itself"
fi
[ -n "$UNPRIVILEGED" ] || systemctl daemon-reload
echo "next: sudo -u $SB_USER streetbox doctor --config $ETC/devices.yaml"
echo "then: sudo systemctl enable --now streetbox && journalctl -u streetbox -f -o cat | streetbox logs"
