#!/bin/sh
# Installs preforkd's Debian build and test dependencies (Debian 12).
# Called by the Makefile when pkg-config or a header is missing, and by
# .ci/run. Uses sudo when not root. Extra package names may be given.
set -eu

# systemd: systemd-socket-activate and systemd-analyze, used by the tests
# (installing it in a container starts nothing).
# python3-dev: libpython3.11 and its headers for the wsgi module (src/apps/wsgi/);
# python3-flask, -django, -falcon, -requests: its integration tests.
pkgs="gcc make pkg-config libev-dev libhttp-parser-dev libinih-dev check curl systemd valgrind
      python3-dev python3-flask python3-django python3-falcon python3-requests $*"

missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
        || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "preforkd: installing missing Debian packages:$missing" >&2
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing
