#!/bin/bash
# make install DESTDIR=...: the binary, regmirror(8), mirror.conf(5), the
# example config and the systemd unit land where they belong, and the
# unit as installed (its Exec paths pointed at the installed binary,
# MANPATH at the installed pages) passes `systemd-analyze verify` without
# a single line of output.  The unit is Type=notify with a watchdog, a
# reload by SIGHUP, a stop timeout longer than the daemon's own drain +
# shutdown_timeout, and the hardening the issue asks for.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$top_srcdir/tests/integration/lib.sh" || exit 99
need_regmirror
need systemd-analyze man make

D=$T_DIR/root
make -s -C "$top_builddir" install DESTDIR="$D" >"$T_DIR/install.log" 2>&1 ||
	fail "make install DESTDIR: $(tail -n 20 "$T_DIR/install.log")"

one() {	# one NAME: the single installed file called NAME
	local f
	f=$(find "$D" -name "$1" -type f)
	[ -n "$f" ] && [ "$(wc -l <<<"$f")" = 1 ] ||
		fail "make install: '$1' installed ${f:-nowhere}"
	printf '%s\n' "$f"
}
bin=$(one regmirror)
unit=$(one regmirror.service)
m8=$(one regmirror.8)
m5=$(one mirror.conf.5)
ex=$(one mirror.conf.example)
[ -x "$bin" ] || fail "$bin is not executable"
case $bin in */bin/regmirror) ;; *) fail "binary at $bin" ;; esac
case $unit in */lib/systemd/system/regmirror.service) ;;
	*) fail "unit at $unit" ;; esac
case $m8 in */man8/regmirror.8) ;; *) fail "regmirror.8 at $m8" ;; esac
case $m5 in */man5/mirror.conf.5) ;; *) fail "mirror.conf.5 at $m5" ;; esac
case $ex in */doc/regmirror/mirror.conf.example) ;;
	*) fail "example at $ex" ;; esac
"$bin" --version >/dev/null || fail "installed binary: --version: exit $?"
cmp -s "$ex" "$top_srcdir/mirror.conf.example" || fail "example differs"

# The Exec paths are absolute, the installed binary's (minus DESTDIR),
# and the config is $(sysconfdir)/regmirror/mirror.conf.
exe=$(sed -n 's/^ExecStart=\([^ ]*\) serve -c .*/\1/p' "$unit")
[ "$D$exe" = "$bin" ] || fail "ExecStart=$exe, installed at ${bin#"$D"}"
grep -qx "ExecStartPre=$exe check-config -c [^ ]*/regmirror/mirror.conf" \
	"$unit" || fail "no ExecStartPre check-config"

# Type=notify and the watchdog only where the build can tell systemd.
if [ "${REGMIRROR_SYSTEMD:-yes}" = yes ]; then
	notify="Type=notify WatchdogSec=30s"
else
	notify="Type=simple"
	grep -q '^WatchdogSec=' "$unit" &&
		fail "a build without libsystemd has WatchdogSec= (systemd would kill it)"
fi
# shellcheck disable=SC2086
for d in $notify NotifyAccess=main 'ExecReload=/bin/kill -HUP $MAINPID' \
    User=regmirror StateDirectory=regmirror \
    ProtectSystem=strict ProtectHome=yes PrivateTmp=yes PrivateDevices=yes \
    ProtectKernelTunables=yes ProtectKernelModules=yes ProtectKernelLogs=yes \
    ProtectControlGroups=yes NoNewPrivileges=yes \
    CapabilityBoundingSet=CAP_NET_BIND_SERVICE \
    AmbientCapabilities=CAP_NET_BIND_SERVICE \
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' LockPersonality=yes \
    MemoryDenyWriteExecute=yes RestrictNamespaces=yes \
    SystemCallFilter=@system-service '#MemoryMax=[0-9].*' \
    WantedBy=multi-user.target; do
	grep -qx -- "$d" "$unit" || fail "the unit lacks '$d'"
done

# seconds DURATION (30s, 5m, 1h, 90): the daemon's duration syntax
seconds() {
	awk -v d="$1" 'BEGIN { n = d + 0; u = d; sub(/^[0-9]+/, "", u)
		m = u == "m" ? 60 : u == "h" ? 3600 : u == "d" ? 86400 : 1
		print n * m }'
}
"$REGMIRROR" check-config --print-defaults >"$T_DIR/defaults"
dflt() {	# dflt KEY FALLBACK: [server] KEY's default, else FALLBACK
	local v
	v=$(awk -v k="$1" '/^\[/ { s = $0 } s == "[server]" && $1 == k &&
		$2 == "=" { print $3 }' "$T_DIR/defaults")
	printf '%s\n' "${v:-$2}"
}
drain=$(seconds "$(dflt drain 5s)")
shut=$(seconds "$(dflt shutdown_timeout 60s)")
stop=$(seconds "$(sed -n 's/^TimeoutStopSec=//p' "$unit")")
[ "$stop" -gt $((drain + shut)) ] ||
	fail "TimeoutStopSec=${stop}s is not past drain ${drain}s +" \
	    "shutdown_timeout ${shut}s"

# systemd-analyze verify needs every Exec path to exist and runs man for
# each Documentation= page: point both at what was installed.
mkdir "$T_DIR/v"
sed "s|=$exe |=$bin |" "$unit" >"$T_DIR/v/regmirror.service"
mandir=$(dirname "$(dirname "$m8")")
(cd "$T_DIR/v" && MANPATH=$mandir systemd-analyze verify \
	"$T_DIR/v/regmirror.service") >"$T_DIR/verify.out" 2>&1 ||
	fail "systemd-analyze verify: exit $?: $(cat "$T_DIR/verify.out")"
[ ! -s "$T_DIR/verify.out" ] ||
	fail "systemd-analyze verify warns: $(cat "$T_DIR/verify.out")"
# ... and would say so: an unknown directive is reported.
sed 's/^LockPersonality=/LockPersonalty=/' "$T_DIR/v/regmirror.service" \
	>"$T_DIR/v/bad.service"
(cd "$T_DIR/v" && MANPATH=$mandir systemd-analyze verify \
	"$T_DIR/v/bad.service") >"$T_DIR/bad.out" 2>&1 || true
grep -q LockPersonalty "$T_DIR/bad.out" ||
	fail "systemd-analyze verify missed a typo: $(cat "$T_DIR/bad.out")"
log "installed: ${bin#"$D"} ${unit#"$D"} ${m8#"$D"} ${m5#"$D"} ${ex#"$D"};" \
	"verify clean; TimeoutStopSec ${stop}s > ${drain}s + ${shut}s"
pass
