#!/bin/bash
# /healthz answers from the jobs' loop, so it must look at the workers:
# a worker loop that has not run for 10 s makes it 503 "stalled", and it
# is 200 again once the loop runs.  The stall is a real one: the mirror's
# stderr (where every access line goes) is a pipe the test stops reading,
# so once its 64 KiB are full every worker blocks in write(2); the jobs'
# loop logs nothing for /healthz and keeps answering.  Draining the pipe
# unblocks the workers.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need_regmirror

PORT=$(free_port)
APORT=$(free_port)
write_mirror_conf "$T_DIR/mirror.conf" "$PORT" "$T_DIR/cache" \
	"http://127.0.0.1:$(free_port)"
sed -i "s|^listen = 127.0.0.1:$PORT|&\nadmin_listen = 127.0.0.1:$APORT|" \
	"$T_DIR/mirror.conf"
ADMIN="http://127.0.0.1:$APORT"

mkfifo "$T_DIR/stderr"
exec 3<>"$T_DIR/stderr"		# held open, not read: the pipe fills
"$REGMIRROR" serve -c "$T_DIR/mirror.conf" 2>"$T_DIR/stderr" >/dev/null &
MIRROR_PID=$!
register_pid "$MIRROR_PID" regmirror
MIRROR_URL="http://127.0.0.1:$PORT"
drain() { cat <&3 >>"$T_DIR/mirror.log"; }

# While the pipe has room, the mirror serves and is healthy.
up() { [ "$(http_code "$MIRROR_URL/v2/")" = 200 ]; }
wait_for 20 up || fail "the mirror did not start"
assert_eq 200 "$(http_code "$ADMIN/healthz")" "/healthz of a running mirror"

# Fill the pipe with access lines; each worker then blocks on its own.
stall_workers "$MIRROR_URL" "$ADMIN"
assert_eq 503 "$(http_code "$ADMIN/healthz")" "/healthz status while stalled"
is_alive "$MIRROR_PID" || fail "the mirror died"

# Reading the pipe again lets the workers run: healthy, and serving.
drain &
register_pid $! drain
healthy() { [ "$(http_code "$ADMIN/healthz")" = 200 ]; }
wait_for 20 healthy || fail "/healthz did not recover once the workers ran"
wait_for 20 up || fail "the mirror did not serve again"
pass
