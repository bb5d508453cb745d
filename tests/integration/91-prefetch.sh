#!/bin/bash
# Prefetch before a rollout: "regmirror prefetch --mirror A --mirror B
# --platform linux/amd64 --pin 1h --wait IMAGE" resolves the tag once,
# has both mirrors (two regions) fetch that digest, pins it, prints
# IMAGE@sha256:... equal to the upstream's digest, and exits 0; then, with
# the upstream stopped, a real client (skopeo) pulls the image through each
# mirror by digest and gets every byte; a missing image makes it exit 1.
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
# Region B was asked for the digest, not the tag.
grep -q "\"GET /v2/app/roll/manifests/$UPD?ns=docker.io\"" "$T_DIR/mirror-b.log" ||
	fail "mirror b did not fetch the resolved digest"
for n in a b; do
	du=$("$REGMIRROR" cache du --json -c "$T_DIR/$n.conf")
	[ "$(jq -r .pinned_blobs <<<"$du")" -ge 3 ] ||
		fail "mirror $n: prefetched blobs not pinned: $du"
done

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

# A missing image: non-zero exit and an error naming it.
rc=0
"$REGMIRROR" prefetch --mirror "$a_ADMIN" --wait app/none:v9 \
	>/dev/null 2>"$T_DIR/err" || rc=$?
assert_eq 1 "$rc" "exit status for a missing image"
grep -q "app/none:v9" "$T_DIR/err" || fail "the error does not name the image"
pass
