#!/bin/bash
# debian/ builds a .deb with `dpkg-buildpackage -us -uc -b` from what
# `make dist` ships (a make distdir copy: the tarball's tree), and the
# package holds what an operator expects: /usr/bin/regmirror that runs,
# regmirror(8) and mirror.conf(5), the unit in /lib/systemd/system
# pointing at /usr/bin and /etc/regmirror/mirror.conf, that file as a
# conffile (a production config on /var/lib/regmirror that passes
# check-config), the example uncompressed in /usr/share/doc/regmirror.
# Its maintainer scripts are run for real (adduser included) over copies
# of /etc, /var/lib and /run in a mount namespace: configure creates the
# system user regmirror (home /var/lib/regmirror, which it owns, 0750)
# once, enables the unit and starts nothing (an upgrade try-restarts it);
# remove keeps the cache, purge removes it and keeps the user.
# The build runs with DEB_BUILD_OPTIONS=nocheck: this make check runs the
# same unit tests already.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$top_srcdir/tests/integration/lib.sh" || exit 99
need_regmirror
need dpkg-buildpackage dpkg-deb dh fakeroot make unshare mount adduser stat
[ "$(id -u)" = 0 ] || hard_error "needs root (mount namespace)"

ver=$(sed -n '1s/^regmirror (\([^)]*\)).*/\1/p' \
	"$top_srcdir/debian/changelog")
[ -n "$ver" ] || fail "debian/changelog: no version"
src=$T_DIR/src/regmirror-${ver%-*}
mkdir -p "$T_DIR/src"
make -s -C "$top_builddir" distdir distdir="$src" >"$T_DIR/distdir.log" \
	2>&1 || fail "make distdir: $(tail -n 20 "$T_DIR/distdir.log")"
t0=${EPOCHREALTIME/./}
(cd "$src" && DEB_BUILD_OPTIONS='nocheck parallel=2' \
	DEB_BUILD_PROFILES=nocheck dpkg-buildpackage -us -uc -b) \
	>"$T_DIR/build.log" 2>&1 ||
	fail "dpkg-buildpackage: $(tail -n 30 "$T_DIR/build.log")"
secs=$(((${EPOCHREALTIME/./} - t0) / 1000000))
deb=$(ls "$T_DIR"/src/regmirror_"$ver"_*.deb)
log "built $(basename "$deb") in ${secs}s"

R=$T_DIR/root C=$T_DIR/control
dpkg-deb -x "$deb" "$R" && dpkg-deb -e "$deb" "$C" || fail "dpkg-deb"
"$R/usr/bin/regmirror" --version >"$T_DIR/version" ||
	fail "/usr/bin/regmirror --version: exit $?"
grep -q "^regmirror ${ver%-*} " "$T_DIR/version" ||
	fail "--version: $(cat "$T_DIR/version")"
for f in usr/share/man/man8/regmirror.8.gz usr/share/man/man5/mirror.conf.5.gz \
    lib/systemd/system/regmirror.service etc/regmirror/mirror.conf \
    usr/share/doc/regmirror/mirror.conf.example; do
	[ -f "$R/$f" ] || fail "the package lacks /$f"
done
unit=$R/lib/systemd/system/regmirror.service
grep -qx 'ExecStart=/usr/bin/regmirror serve -c /etc/regmirror/mirror.conf' \
	"$unit" || fail "unit: $(grep ^Exec "$unit")"
cmp -s "$R/usr/share/doc/regmirror/mirror.conf.example" \
	"$top_srcdir/mirror.conf.example" || fail "the example differs"
cmp -s "$R/etc/regmirror/mirror.conf" "$top_srcdir/debian/mirror.conf" ||
	fail "/etc/regmirror/mirror.conf is not debian/mirror.conf"
grep -qx 'dir = /var/lib/regmirror' "$R/etc/regmirror/mirror.conf" ||
	fail "the conffile's cache is not /var/lib/regmirror"
"$R/usr/bin/regmirror" check-config -c "$R/etc/regmirror/mirror.conf" \
	>"$T_DIR/cc" 2>&1 || fail "check-config of the conffile: $(cat "$T_DIR/cc")"
! grep -q warning: "$T_DIR/cc" || fail "check-config warns: $(cat "$T_DIR/cc")"
grep -qx /etc/regmirror/mirror.conf "$C/conffiles" ||
	fail "conffiles: $(cat "$C/conffiles" 2>/dev/null)"
grep -q '^Depends:.*adduser' "$C/control" || fail "no Depends: adduser"
zcat "$R/usr/share/man/man5/mirror.conf.5.gz" | cmp -s - \
	"$top_srcdir/docs/mirror.conf.5" || fail "mirror.conf.5 differs"

# The maintainer scripts, run for real with the real adduser and install
# over copies: a copy of /etc (taken once, kept between the runs like a
# host's), a tmpfs on /var/lib (holding regmirror/x when $PRESEED is set)
# and a tmpfs on /run with /run/systemd/system (a host running systemd),
# in a mount namespace of their own.  deb-systemd-helper,
# deb-systemd-invoke, systemctl and deluser are stubs that log "NAME
# ARGS" to $T_DIR/calls.  After each run $T_DIR/state holds the passwd
# and group lines of regmirror and /var/lib/regmirror's owner and mode.
S=$T_DIR/stubs
mkdir "$S"
for c in deluser deb-systemd-helper deb-systemd-invoke systemctl; do
	printf '#!/bin/sh\necho "%s $*" >>"%s"\n' "$c" "$T_DIR/calls" >"$S/$c"
	chmod 755 "$S/$c"
done
cp -a /etc "$T_DIR/etc"
sed -i '/^regmirror:/d' "$T_DIR/etc/passwd" "$T_DIR/etc/group" \
	"$T_DIR/etc/shadow" "$T_DIR/etc/gshadow"
mscript() {	# mscript SCRIPT ARGS...
	: >"$T_DIR/calls"
	unshare --mount --propagation private /bin/sh -c '
		mount --bind "$ETC" /etc &&
		mount -t tmpfs regmirror-test /var/lib &&
		mount -t tmpfs regmirror-test /run &&
		mkdir -p /run/systemd/system || exit 99
		[ -z "$PRESEED" ] || { install -d -o regmirror -g regmirror \
			-m 0750 /var/lib/regmirror && : >/var/lib/regmirror/x; }
		PATH=$STUBS:$PATH /bin/sh "$@" || exit
		{ grep "^regmirror:" /etc/passwd /etc/group
		  stat -c "%U:%G %a" /var/lib/regmirror; } >"$STATE" 2>&1
		true' sh "$@" || fail "$* : exit $?"
}
export STUBS=$S STATE=$T_DIR/state ETC=$T_DIR/etc PRESEED=
mscript "$C/postinst" configure
calls=$(cat "$T_DIR/calls") state=$(cat "$T_DIR/state")
log "postinst configure: $(tr '\n' ';' <<<"$calls$state")"
grep -qE '^/etc/passwd:regmirror:x:[0-9]+:[0-9]+:[^:]*:/var/lib/regmirror:/usr/sbin/nologin$' \
	<<<"$state" || fail "postinst did not create the system user: $state"
uid=$(grep '^/etc/passwd:' <<<"$state" | cut -d: -f4)
[ "$uid" -lt 1000 ] || fail "regmirror's uid $uid is not a system uid"
grep -q '^/etc/group:regmirror:' <<<"$state" || fail "no group: $state"
grep -qx 'regmirror:regmirror 750' <<<"$state" ||
	fail "/var/lib/regmirror: $state"
grep -qx 'deb-systemd-helper enable regmirror.service' <<<"$calls" ||
	fail "postinst did not enable the unit: $calls"
! grep -qE '^(deb-systemd-invoke|systemctl).*(start|restart)' \
	<<<"$calls" || fail "postinst starts the service: $calls"
# An upgrade: the user and the cache are kept as they are; a running
# daemon is restarted (try-restart: a stopped one stays so).
PRESEED=1 mscript "$C/postinst" configure 0.0.9-1
calls=$(cat "$T_DIR/calls")
[ "$(cat "$T_DIR/state")" = "$state" ] ||
	fail "an upgrade changed the user: $(cat "$T_DIR/state")"
grep -qx 'deb-systemd-invoke try-restart regmirror.service' <<<"$calls" ||
	fail "an upgrade does not try-restart the unit: $calls"
! grep -qE '^(deb-systemd-invoke|systemctl).* (start|restart)' \
	<<<"$calls" || fail "an upgrade starts the service: $calls"
# remove keeps the cache; purge takes it, and keeps the user.
PRESEED=1 mscript "$C/postrm" remove
grep -q 'regmirror:regmirror 750' "$T_DIR/state" ||
	fail "remove took /var/lib/regmirror: $(cat "$T_DIR/state")"
PRESEED=1 mscript "$C/postrm" purge
grep -q 'No such file' "$T_DIR/state" ||
	fail "purge left /var/lib/regmirror: $(cat "$T_DIR/state")"
grep -q '^/etc/passwd:regmirror:' "$T_DIR/state" && ! grep -q deluser \
	"$T_DIR/calls" || fail "purge removed the user"
log "package: $(wc -l <"$C/md5sums") files; conffiles: $(cat "$C/conffiles")"
pass
