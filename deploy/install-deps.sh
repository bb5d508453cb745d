#!/bin/sh
# install-deps.sh [--test] — install what regmirror needs from Debian 12's
# packages: the build dependencies, and with --test also the real
# registries and clients the test suite runs (docker-registry, skopeo,
# podman, dockerd, containerd, nginx, ...) and what tests/pkg uses
# (debhelper, dpkg-dev and fakeroot build the .deb; systemd gives
# systemd-analyze verify; man-db and groff check the man pages).
#
# Package maintainer scripts of docker.io, containerd, nginx and
# docker-registry try to start system services; the tests start their own
# instances on their own ports, and machines without an init system fail
# the install.  While installing, a temporary /usr/sbin/policy-rc.d (if
# none exists) tells invoke-rc.d not to start anything.
set -eu

BUILD="build-essential autoconf automake pkg-config libevent-dev libssl-dev libcrypt-dev
liblmdb-dev libjansson-dev libpsl-dev publicsuffix libsystemd-dev"
TEST="clang clang-tools curl jq openssl lmdb-utils docker-registry skopeo podman
docker.io containerd nginx apache2-utils python3 python3-jwt
python3-cryptography uidmap iproute2 haproxy prometheus
debhelper dpkg-dev fakeroot adduser systemd man-db groff-base libsystemd-dev"

pkgs=$BUILD
[ "${1:-}" = "--test" ] && pkgs="$BUILD $TEST"

SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo

made_policy=
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
	$SUDO chmod 755 /usr/sbin/policy-rc.d
	made_policy=1
fi
trap '[ -n "$made_policy" ] && $SUDO rm -f /usr/sbin/policy-rc.d' EXIT

$SUDO apt-get update
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y $pkgs
