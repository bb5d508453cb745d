#!/bin/bash
# Prefetch before a rollout: "regmirror prefetch --mirror A --mirror B
# --platform linux/amd64 --pin 1h --wait IMAGE" resolves the tag once,
# has both mirrors (two regions) fetch that digest, pins it, prints
# IMAGE@sha256:... equal to the upstream's digest, and exits 0 (JSON
# progress lines on a pipe, a bar per mirror on a terminal; asked by
# digest, IMAGE as given); then, with
# the upstream stopped, a real client (skopeo) pulls the image through each
# mirror by digest and gets every byte; a mirror whose only listener is
# HTTPS prefetches through it too (all platforms: its pull copies --all);
# a mirror whose listener is one IPv6 address prefetches through it; a
# missing image makes it exit 1.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo jq
need_regmirror

mkimage "$T_DIR/multi" multi --seed t91 --ref v1 --layers 3000,200000
start_registry up
seed_image "$T_DIR/multi" v1 "$UP_HOST" app/roll:v1
UPD=$(layout_top "$T_DIR/multi")

mk() {	# mk NAME: a mirror with an admin listener; sets NAME_ADMIN
	local n=$1 port aport
	port=$(free_port) aport=$(free_port)
	write_mirror_conf "$T_DIR/$n.conf" "$port" "$T_DIR/cache-$n" "$UP_URL"
	sed -i "s/^workers = 2$/workers = 2\nadmin_listen = 127.0.0.1:$aport/" \
		"$T_DIR/$n.conf"
	start_mirror "$T_DIR/$n.conf" "mirror-$n"
	printf -v "${n}_ADMIN" %s "http://127.0.0.1:$aport"
	printf -v "${n}_URL" %s "$MIRROR_URL"
	printf -v "${n}_PID" %s "$MIRROR_PID"
}
mk a
mk b

out=$("$REGMIRROR" prefetch --mirror "$a_ADMIN" --mirror "$b_ADMIN" \
	--platform linux/amd64 --pin 1h --wait app/roll:v1 2>"$T_DIR/progress") ||
	fail "prefetch failed: $(cat "$T_DIR/progress")"
assert_eq "app/roll:v1@$UPD" "$out" "prefetch output"
grep -q '"state":"done"' "$T_DIR/progress" || fail "no JSON progress lines"
# Asked by digest, the line is the reference as given (it used to say
# the digest twice: app/roll@sha256:…@sha256:…).
out=$("$REGMIRROR" prefetch --mirror "$a_ADMIN" --wait "app/roll@$UPD" \
	2>"$T_DIR/progress-d") ||
	fail "prefetch by digest failed: $(cat "$T_DIR/progress-d")"
assert_eq "app/roll@$UPD" "$out" "prefetch output, by digest"
# Region B was asked for the digest, not the tag.
grep -q "\"GET /v2/app/roll/manifests/$UPD?ns=docker.io\"" "$T_DIR/mirror-b.log" ||
	fail "mirror b did not fetch the resolved digest"
for n in a b; do
	du=$("$REGMIRROR" cache du --json -c "$T_DIR/$n.conf")
	[ "$(jq -r .pinned_blobs <<<"$du")" -ge 3 ] ||
		fail "mirror $n: prefetched blobs not pinned: $du"
done

# On a terminal (script(1) gives it one) progress is a bar per mirror.
need script
script -qec "'$REGMIRROR' prefetch --mirror '$a_ADMIN' --mirror '$b_ADMIN' \
	--wait app/roll:v1" /dev/null >"$T_DIR/tty.out" 2>&1 ||
	fail "prefetch on a terminal: $(cat "$T_DIR/tty.out")"
tr -d '\r' <"$T_DIR/tty.out" >"$T_DIR/tty.txt"
for m in "$a_ADMIN" "$b_ADMIN"; do
	grep -qF "[##############################] 100%" "$T_DIR/tty.txt" &&
	grep -qF "$m  done" "$T_DIR/tty.txt" ||
		fail "no finished progress bar for $m: $(cat -v "$T_DIR/tty.txt")"
done
grep -qx "app/roll:v1@$UPD" "$T_DIR/tty.txt" ||
	fail "no IMAGE@DIGEST line on the terminal: $(cat -v "$T_DIR/tty.txt")"
! grep -q '"state"' "$T_DIR/tty.txt" || fail "JSON progress lines on a terminal"

# A mirror whose only listener is HTTPS prefetches through it as well.
make_test_ca "$T_DIR/ca"
make_server_cert "$T_DIR/ca" "$T_DIR/server" 1001
mkdir -p "$T_DIR/certs" && cp "$T_DIR/ca/ca.crt" "$T_DIR/certs/"
TP=$(free_port) TA=$(free_port)
write_mirror_conf "$T_DIR/c.conf" "$TP" "$T_DIR/cache-c" "$UP_URL"
sed -i "s|^workers = 2$|workers = 2\nadmin_listen = 127.0.0.1:$TA\ntls_cert = $T_DIR/server.crt\ntls_key = $T_DIR/server.key|" \
	"$T_DIR/c.conf"
"$REGMIRROR" serve -c "$T_DIR/c.conf" >>"$T_DIR/mirror-c.log" 2>&1 &
C_PID=$!
register_pid "$C_PID" "regmirror c" "$T_DIR/mirror-c.log"
c_ready() {
	is_alive "$C_PID" || fail "the HTTPS-only mirror exited"
	curl -sf --max-time 5 --cacert "$T_DIR/ca/ca.crt" -o /dev/null \
		"https://127.0.0.1:$TP/v2/"
}
wait_for 20 c_ready || fail "the HTTPS-only mirror does not answer"
socks() { find "/proc/$C_PID/fd" -lname 'socket:*' 2>/dev/null | wc -l; }
s0=$(socks)
out=$("$REGMIRROR" prefetch --mirror "http://127.0.0.1:$TA" --pin 1h --wait \
	app/roll:v1 2>"$T_DIR/progress-c") ||
	fail "prefetch on the HTTPS-only mirror: $(cat "$T_DIR/progress-c")"
assert_eq "app/roll:v1@$UPD" "$out" "prefetch output (HTTPS-only mirror)"
# Its connections to itself are closed after each request (two sockets
# each, both ends in the process): what stays open is a few upstream
# keep-alive connections, not one pair per request.
few_socks() { [ "$(socks)" -le $((s0 + 8)) ]; }
wait_for 10 few_socks ||
	fail "sockets of the HTTPS-only mirror: $s0 before the job, $(socks) after"
log "HTTPS-only mirror: $s0 sockets before the job, $(socks) after"

# A mirror listening on one IPv6 address (not [::] or [::1]) prefetches
# through that address: the jobs used to connect to ::1 for every IPv6
# listener.  An IPv4-mapped address is an IPv6 listener that loopback
# clients reach.
VP=$(free_port) VA=$(free_port)
write_mirror_conf "$T_DIR/v.conf" "$VP" "$T_DIR/cache-v" "$UP_URL"
sed -i "s|^listen = 127.0.0.1:$VP$|listen = [::ffff:127.0.0.1]:$VP|; s|^workers = 2$|workers = 2\nadmin_listen = 127.0.0.1:$VA|" \
	"$T_DIR/v.conf"
grep -q "^listen = \[::ffff:127.0.0.1\]:$VP$" "$T_DIR/v.conf" ||
	hard_error "v.conf has no IPv6 listen line"
"$REGMIRROR" serve -c "$T_DIR/v.conf" >>"$T_DIR/mirror-v.log" 2>&1 &
V_PID=$!
register_pid "$V_PID" "regmirror v" "$T_DIR/mirror-v.log"
v_ready() {
	is_alive "$V_PID" || fail "the IPv6-listener mirror exited"
	[ "$(http_code "http://127.0.0.1:$VP/v2/")" = 200 ]
}
wait_for 20 v_ready || fail "the IPv6-listener mirror does not answer"
out=$("$REGMIRROR" prefetch --mirror "http://127.0.0.1:$VA" --wait \
	app/roll:v1 2>"$T_DIR/progress-v") ||
	fail "prefetch on an [::ffff:127.0.0.1] listener: $(cat "$T_DIR/progress-v")"
assert_eq "app/roll:v1@$UPD" "$out" "prefetch output (IPv6 listener)"
grep -q 'access r[0-9]* ::ffff:127.0.0.1 "GET /v2/app/roll/manifests/' \
	"$T_DIR/mirror-v.log" ||
	fail "the IPv6-listener mirror's job did not pull through its listener"

# The upstream goes away; both regions still serve the rollout.
stop_pid "$UP_PID"
! is_alive "$UP_PID" || fail "the upstream registry is still running"
[ "$(http_code "$UP_URL/v2/")" = 000 ] || fail "the upstream still answers"
for n in a b; do
	u=${n}_URL
	rm -rf "$T_DIR/out-$n"
	skopeo_ copy -q --src-tls-verify=false --override-os linux \
		--override-arch amd64 "docker://${!u#http://}/app/roll@$UPD" \
		"oci:$T_DIR/out-$n:x" >>"$T_DIR/skopeo.log" 2>&1 ||
		fail "pull through mirror $n with the upstream down: $(tail -5 "$T_DIR/skopeo.log")"
	layout_check "$T_DIR/out-$n"
done

rm -rf "$T_DIR/out-c"
skopeo_ copy -q --src-cert-dir "$T_DIR/certs" --all \
	"docker://127.0.0.1:$TP/app/roll@$UPD" "oci:$T_DIR/out-c:x" \
	>>"$T_DIR/skopeo.log" 2>&1 ||
	fail "pull through the HTTPS-only mirror with the upstream down: $(tail -5 "$T_DIR/skopeo.log")"
layout_same "$T_DIR/multi" "$T_DIR/out-c"

# A missing image: non-zero exit and an error naming it.
rc=0
"$REGMIRROR" prefetch --mirror "$a_ADMIN" --wait app/none:v9 \
	>/dev/null 2>"$T_DIR/err" || rc=$?
assert_eq 1 "$rc" "exit status for a missing image"
grep -q "app/none:v9" "$T_DIR/err" || fail "the error does not name the image"
pass
