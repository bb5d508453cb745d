#!/bin/bash
# The README's quick start works as written, as root (with no sudo
# anywhere in it: Debian 12 has none by default) and as an unprivileged
# user (nobody): its run command, taken from README.md so that the two
# cannot drift, started in a copy of the tree's top (the binary and
# mirror.conf.example) answers GET /v2/ on port 5000 with 200 {}, keeps
# its cache in a directory the user owns, and `regmirror cache du` reads
# it as that user.  Each run has a network namespace of its own (unshare
# --net), so port 5000, which the command names, is free whatever else
# runs here.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$top_srcdir/tests/integration/lib.sh" || exit 99
need_regmirror
need unshare nsenter setpriv ip
[ "$(id -u)" = 0 ] || hard_error "needs root (a user switch, a netns)"

README=$top_srcdir/README.md
qs=$(awk '/^## Quick start/ { on = 1; next } /^## / { on = 0 }
	on && /^    / { sub(/^    /, ""); print }' "$README")
[ -n "$qs" ] || fail "README.md has no quick start command"
! grep -qw sudo <<<"$qs" || fail "the quick start calls sudo: $qs"
run=$(grep -o '\./regmirror serve .*' <<<"$qs" | head -n 1)
[ -n "$run" ] || fail "no './regmirror serve' in the quick start: $qs"
log "run command: $run"
port=$(grep -oE '^listen = [^ ]*:[0-9]+' "$top_srcdir/mirror.conf.example" |
	sed 's/.*://')
[ -n "$port" ] && [ "$port" -gt 1024 ] ||
	fail "mirror.conf.example listens on port '${port}', not above 1024"

chmod 755 "$T_DIR"
# try USER: the run command in a fresh copy of the tree's top, as USER.
try() {
	local user=$1 dir=$T_DIR/$1 pid out as=()
	mkdir "$dir"
	cp "$REGMIRROR" "$dir/regmirror"
	cp "$top_srcdir/mirror.conf.example" "$dir/"
	if [ "$user" != root ]; then
		chown -R "$user" "$dir"
		as=(setpriv --reuid "$user" --regid "$(id -g "$user")" \
			--clear-groups --reset-env)
	fi
	unshare --net -- /bin/sh -c 'ip link set lo up && cd "$1" && shift &&
		exec "$@"' sh "$dir" "${as[@]}" /bin/sh -c "exec $run" \
		>"$dir/serve.log" 2>&1 &
	pid=$!
	register_pid "$pid" "quick start ($user)" "$dir/serve.log"
	v2() {
		out=$(nsenter -t "$pid" -n curl -s -m 5 -w ' %{http_code}' \
			"http://127.0.0.1:$port/v2/") && [ "$out" = '{} 200' ]
	}
	wait_for 30 v2 || fail "$user: GET /v2/: '${out:-}'"
	[ -d "$dir/cache/blobs" ] || fail "$user: no cache in $dir/cache"
	[ "$(stat -c %U "$dir/cache/blobs")" = "$user" ] ||
		fail "$user: $dir/cache is $(stat -c %U "$dir/cache/blobs")'s"
	(cd "$dir" && "${as[@]}" ./regmirror cache du -c mirror.conf.example \
		--cache-dir cache) >"$dir/du" 2>&1 ||
		fail "$user: cache du --cache-dir: $(cat "$dir/du")"
	stop_pid "$pid" || fail "$user: the mirror did not stop on TERM"
	log "$user: /v2/ answered $out"
}
try root
try nobody
pass
