#!/bin/bash
# `regmirror check-config -c FILE`: exit 0 for a good config; exit 2 with
# "FILE:LINE: message" on stderr for an unknown key, a bad duration, a bad
# boolean, an unknown section; exit 2 naming the file for a config without
# an upstream. `regmirror version` works.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need_regmirror

out=$("$REGMIRROR" version 2>&1) || fail "regmirror version: exit $?"
[ -n "$out" ] || fail "regmirror version printed nothing"
log "version: $out"

# check FILE WANT_EXIT [STDERR_FIXED_STRING]
check() {
	local f=$1 want=$2 pat=${3:-} rc=0
	"$REGMIRROR" check-config -c "$f" >"$T_DIR/out" 2>"$T_DIR/err" || rc=$?
	[ "$rc" = "$want" ] ||
		fail "check-config $(basename "$f"): exit $rc, want $want; stderr: $(head -c 500 "$T_DIR/err")"
	[ -z "$pat" ] || grep -qF -- "$pat" "$T_DIR/err" ||
		fail "check-config $(basename "$f"): stderr lacks '$pat': $(head -c 500 "$T_DIR/err")"
	log "$(basename "$f"): exit $rc $(head -n 1 "$T_DIR/err")"
}

# The standard test config is valid.
write_mirror_conf "$T_DIR/good.conf" 5999 "$T_DIR/cache" http://127.0.0.1:5998
check "$T_DIR/good.conf" 0
# ... and so is one with credentials, comments of both kinds and blanks.
printf 'pw\n' >"$T_DIR/pw"
cat >"$T_DIR/good2.conf" <<EOC
# comment
; another comment
[server]
listen = 127.0.0.1:5999
workers = 2
log_level = info

[cache]
dir = $T_DIR/cache
tag_ttl = 30s

[timeouts]
connect = 2s
first_byte = 10s
idle = 1m

[upstream "docker.io"]
url = http://127.0.0.1:5998
default = yes
username = user
password_file = $T_DIR/pw
EOC
check "$T_DIR/good2.conf" 0

# An unknown key on line 4.
cat >"$T_DIR/unknown-key.conf" <<EOC
[server]
listen = 127.0.0.1:5999
workers = 2
no_such_key = 1
[cache]
dir = $T_DIR/cache
[upstream "docker.io"]
url = http://127.0.0.1:5998
default = yes
EOC
check "$T_DIR/unknown-key.conf" 2 "$T_DIR/unknown-key.conf:4:"

# A bad duration on line 7.
cat >"$T_DIR/bad-duration.conf" <<EOC
[server]
listen = 127.0.0.1:5999

[cache]
dir = $T_DIR/cache
; line 6
tag_ttl = 5 parsecs
[upstream "docker.io"]
url = http://127.0.0.1:5998
default = yes
EOC
check "$T_DIR/bad-duration.conf" 2 "$T_DIR/bad-duration.conf:7:"

# A bad duration unit in [timeouts], line 5.
cat >"$T_DIR/bad-timeout.conf" <<EOC
[server]
listen = 127.0.0.1:5999
[timeouts]
connect = 2s
idle = 30x
[cache]
dir = $T_DIR/cache
[upstream "docker.io"]
url = http://127.0.0.1:5998
default = yes
EOC
check "$T_DIR/bad-timeout.conf" 2 "$T_DIR/bad-timeout.conf:5:"

# A bad boolean on line 7.
cat >"$T_DIR/bad-bool.conf" <<EOC
[server]
listen = 127.0.0.1:5999
[cache]
dir = $T_DIR/cache
[upstream "docker.io"]
url = http://127.0.0.1:5998
default = perhaps
EOC
check "$T_DIR/bad-bool.conf" 2 "$T_DIR/bad-bool.conf:7:"

# An unknown section on line 5.
cat >"$T_DIR/bad-section.conf" <<EOC
[server]
listen = 127.0.0.1:5999
[cache]
dir = $T_DIR/cache
[nonsense]
[upstream "docker.io"]
url = http://127.0.0.1:5998
default = yes
EOC
check "$T_DIR/bad-section.conf" 2 "$T_DIR/bad-section.conf:5:"

# No upstream at all: exit 2, the message names the file and upstreams.
cat >"$T_DIR/no-upstream.conf" <<EOC
[server]
listen = 127.0.0.1:5999
[cache]
dir = $T_DIR/cache
EOC
check "$T_DIR/no-upstream.conf" 2 "$T_DIR/no-upstream.conf"
grep -qi upstream "$T_DIR/err" ||
	fail "the error for a config without upstream does not say 'upstream'"

# A file that does not exist: an error (not 0), naming the file.
rc=0
"$REGMIRROR" check-config -c "$T_DIR/missing.conf" 2>"$T_DIR/err" || rc=$?
[ "$rc" != 0 ] || fail "check-config of a missing file exited 0"
grep -qF "$T_DIR/missing.conf" "$T_DIR/err" ||
	fail "the error for a missing file does not name it: $(head -c 300 "$T_DIR/err")"
pass
