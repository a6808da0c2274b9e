# deploy/setup.sh: the steps that make a gateway of an installed streetbox, shared by
# deploy/install.sh (a checkout) and the Debian package's postinst (deploy/debian/postinst, which
# runs the copy the package ships in /usr/lib/streetbox/deploy/). Sourced, not run; every step is
# idempotent and never overwrites devices.yaml, credentials or env.
#
# Set before sourcing:
#   SB_ROOT           the root to install into: "" for /, the package's $DPKG_ROOT (dpkg --root with
#                     --force-script-chrootless). Files, users and groups are made under it; the
#                     paths written into devices.yaml are the ones the gateway sees.
#   ETC, DATA         the configuration and data directories as the gateway sees them
#   SB_USER, SB_GROUP the service user and group
#   CLI               the command that runs streetbox (for `streetbox init`)
# sb_config sets SB_NEW_CONFIG=1 when it wrote a devices.yaml.

# sb_id passwd|group NAME: the numeric id of NAME in SB_ROOT's passwd or group file
sb_id() {
  awk -F: -v name="$2" '$1 == name { print $3; found = 1 } END { exit !found }' "$SB_ROOT/etc/$1"
}

# sb_own OWNER:GROUP PATH, as root only (an unprivileged test run cannot give files away); under
# another root, the names are that root's
sb_own() {
  [ "$(id -u)" = 0 ] || return 0
  if [ -n "$SB_ROOT" ]; then
    chown "$(sb_id passwd "${1%%:*}"):$(sb_id group "${1#*:}")" "$2"
  else
    chown "$1" "$2"
  fi
}

# the service's system user, in dialout for the RS-485 adapters
sb_user() {
  if [ -n "$SB_ROOT" ]; then
    set -- --prefix "$SB_ROOT"
    sb_id passwd "$SB_USER" >/dev/null || useradd "$@" --system --user-group --home-dir "$DATA" --no-create-home --shell /usr/sbin/nologin "$SB_USER"
  else
    set --
    id "$SB_USER" >/dev/null 2>&1 || useradd --system --user-group --home-dir "$DATA" --no-create-home --shell /usr/sbin/nologin "$SB_USER"
  fi
  usermod "$@" -aG dialout "$SB_USER"
}

# the configuration's and the data's directories. The gateway replaces devices.yaml itself when a
# configuration change is applied or rolled back (a temp file beside it, renamed over it): the
# configuration directory is the service group's to write.
sb_dirs() {
  mkdir -p "$SB_ROOT$ETC" "$SB_ROOT$DATA"
  chmod 0770 "$SB_ROOT$ETC"
  sb_own "root:$SB_GROUP" "$SB_ROOT$ETC"
  chmod 0750 "$SB_ROOT$DATA"
  sb_own "$SB_USER:$SB_GROUP" "$SB_ROOT$DATA"
}

# the first devices.yaml, by `streetbox init`: fresh secrets (API token, broker and Node-RED password
# hashes, Node-RED's credentialSecret), no bus scanned (`streetbox init --force` with the hardware
# attached, or edit the file); the plain ones in credentials, root only. One there is kept.
sb_config() {
  SB_NEW_CONFIG=
  if [ ! -f "$SB_ROOT$ETC/devices.yaml" ]; then
    $CLI init --skip-serial --storage "$DATA/streetbox.db" \
      --out "$SB_ROOT$ETC/devices.yaml" --credentials "$SB_ROOT$ETC/credentials" >/dev/null
    chmod 0600 "$SB_ROOT$ETC/devices.yaml" "$SB_ROOT$ETC/credentials"
    sb_own "$SB_USER:$SB_GROUP" "$SB_ROOT$ETC/devices.yaml"
    sb_own root:root "$SB_ROOT$ETC/credentials"
    SB_NEW_CONFIG=1
    echo "wrote $ETC/devices.yaml (mode 0600, owner $SB_USER): API and broker on with fresh secrets, no devices yet"
    echo "the technician's API token and passwords are in $ETC/credentials (root only): keep them, then delete it"
  else
    # kept as it is, but owner-only: an older install copied the demo there, world-readable
    chmod 0600 "$SB_ROOT$ETC/devices.yaml"
    sb_own "$SB_USER:$SB_GROUP" "$SB_ROOT$ETC/devices.yaml"
    echo "kept $ETC/devices.yaml (now mode 0600); streetbox doctor fails it if it still holds a demo secret"
  fi
}

# sb_env [EXAMPLE]: env (secrets for devices.yaml, read by systemd) from EXAMPLE when there is none
# (the package ships env itself, as a conffile); mode 0640, root and the service group
sb_env() {
  if [ ! -f "$SB_ROOT$ETC/env" ] && [ -n "${1:-}" ]; then
    cp "$1" "$SB_ROOT$ETC/env"
  fi
  if [ -f "$SB_ROOT$ETC/env" ]; then
    chmod 0640 "$SB_ROOT$ETC/env"
    sb_own "root:$SB_GROUP" "$SB_ROOT$ETC/env"
  fi
}
