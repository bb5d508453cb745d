#!/bin/bash
# Push mode: a replication policy whose destination is another registry.
# A primary docker-registry holds a multi-arch tag (app/a:v1), a single
# image with a 300 kB layer (app/b:v1) and the same image under another
# repository (app/c:v1); the mirror replicates app/* from the primary and
# pushes to a second docker-registry (chunk_size 64k, concurrency 1).
# Checks: every tag arrives with the primary's digest (skopeo inspect)
# and copies out whole and verified (skopeo copy --all); the big layer
# went up in PATCH chunks, small blobs monolithically; the blobs app/b
# and app/c share were mounted across repositories, not uploaded twice;
# an index's child manifests were PUT before the index; a second run
# over unchanged tags writes nothing to the destination (one HEAD per
# tag); a moved tag is pushed again; a destination behind a token
# service gets a pull,push token; and a destination that refuses us
# (wrong password) is reported as a failure with the registry's reason.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo jq
need_regmirror

mkimage "$T_DIR/m1" multi --seed t97-1 --ref v1 --layers 3000,50000
mkimage "$T_DIR/m2" multi --seed t97-2 --ref v1 --layers 3000,40000
mkimage "$T_DIR/s3" single --seed t97-3 --ref v1 --layers 2000,300000
start_registry up
start_registry dst
start_registry locked --htpasswd pusher right-password
start_tokenserver tok --user pusher --password tok-password
start_registry tokreg --token tok
echo tok-password >"$T_DIR/tok.pw"
echo wrong-password >"$T_DIR/locked.pw"
seed_image "$T_DIR/m1" v1 "$UP_HOST" app/a:v1
seed_image "$T_DIR/s3" v1 "$UP_HOST" app/b:v1
seed_image "$T_DIR/s3" v1 "$UP_HOST" app/c:v1
M1=$(layout_top "$T_DIR/m1") M2=$(layout_top "$T_DIR/m2")
S3=$(layout_top "$T_DIR/s3")
BIG=$(jq -r '.images[0].layers[-1].digest' "$T_DIR/s3.json")
BIG_SIZE=$(jq -r '.images[0].layers[-1].size' "$T_DIR/s3.json")
CHUNKS=$(( (BIG_SIZE + 65535) / 65536 ))

P=$(free_port) A=$(free_port)
write_mirror_base "$T_DIR/mirror.conf" "$P" "$T_DIR/cache" 1h \
	"admin_listen = 127.0.0.1:$A"
cat >>"$T_DIR/mirror.conf" <<EOC
[upstream "primary.test"]
url = $UP_URL
default = yes
[upstream "backup.test"]
url = $DST_URL
[replication "to-backup"]
source = primary.test
destination = backup.test
repositories = app/*
chunk_size = 64k
concurrency = 1
interval = 1h
[upstream "locked.test"]
url = $LOCKED_URL
username = pusher
password_file = $T_DIR/locked.pw
[upstream "token.test"]
url = $TOKREG_URL
username = pusher
password_file = $T_DIR/tok.pw
[replication "to-token"]
source = primary.test
destination = token.test
repositories = app/b, app/c
concurrency = 1
interval = 1h
[replication "to-locked"]
source = primary.test
destination = locked.test
repositories = app/b
interval = 1h
EOC
start_mirror "$T_DIR/mirror.conf"

digest_at() {	# digest_at HOST REPO:TAG: the manifest digest there
	skopeo_ inspect --raw --tls-verify=false "docker://$1/$2" |
		sha256sum | sed 's/^/sha256:/; s/ .*//'
}

"$REGMIRROR" sync to-backup --mirror "http://127.0.0.1:$A" --wait \
	>"$T_DIR/sync.out" || fail "sync: $(cat "$T_DIR/sync.out")"
grep -qx "to-backup: 3 tags pushed to backup.test, 0 failed" "$T_DIR/sync.out" ||
	fail "sync output: $(cat "$T_DIR/sync.out")"
registry_log_sync dst
assert_eq "$M1" "$(digest_at "$DST_HOST" app/a:v1)" "app/a:v1 at the destination"
assert_eq "$S3" "$(digest_at "$DST_HOST" app/b:v1)" "app/b:v1 at the destination"
assert_eq "$S3" "$(digest_at "$DST_HOST" app/c:v1)" "app/c:v1 at the destination"
# Everything reads back whole: skopeo verifies every blob's digest.
skopeo_ copy -q --all --src-tls-verify=false "docker://$DST_HOST/app/a:v1" \
	"oci:$T_DIR/back-a:v1" >>"$T_DIR/skopeo.log" 2>&1 ||
	fail "app/a:v1 does not copy out of the destination"
layout_same "$T_DIR/m1" "$T_DIR/back-a"
skopeo_ copy -q --src-tls-verify=false "docker://$DST_HOST/app/b:v1" \
	"oci:$T_DIR/back-b:v1" >>"$T_DIR/skopeo.log" 2>&1 ||
	fail "app/b:v1 does not copy out of the destination"
layout_same "$T_DIR/s3" "$T_DIR/back-b"

# How it went up: the 300 kB layer in 64 KiB PATCHes, every other blob
# monolithically, the 3 blobs app/b and app/c share mounted into the
# second of them, an index's children before the index.
patches=$(_access_lines "$DST_LOG" 0 PATCH /v2/app/ | awk '$9 == 202' | wc -l)
[ "$patches" -eq "$CHUNKS" ] ||
	fail "want $CHUNKS PATCH chunks for the $BIG_SIZE-byte layer, saw $patches"
mounts=$(_access_lines "$DST_LOG" 0 POST /v2/app/ | grep -F "mount=" |
	awk '$9 == 201' | wc -l)
[ "$mounts" -eq 3 ] || fail "want the 3 shared blobs mounted, saw $mounts mounts"
assert_eq 1 "$(_access_lines "$DST_LOG" 0 PUT "/v2/app/" |
	grep -cF "digest=sha256%3A${BIG#sha256:}")" "PUTs closing the big layer's upload"
order=$(_access_lines "$DST_LOG" 0 PUT /v2/app/a/manifests/ | awk '{print $7}')
first_tag=$(printf '%s\n' "$order" | grep -n '/manifests/v1$' | cut -d: -f1)
children=$(printf '%s\n' "$order" | grep -c '/manifests/sha256:')
[ "$children" -eq 2 ] || fail "want 2 child manifests PUT by digest, saw: $order"
[ "$first_tag" = 3 ] || fail "the index was PUT before its children: $order"
curl -sf "http://127.0.0.1:$A/api/v1/replication" | jq -e '.policies[0].push |
	.pushed == 3 and .blobs_mounted == 3 and .bytes > 300000' >/dev/null ||
	fail "push stats: $(curl -s "http://127.0.0.1:$A/api/v1/replication")"

# Unchanged tags: one HEAD each at the destination, nothing written.
mark=$(log_mark "$DST_LOG")
"$REGMIRROR" sync to-backup --mirror "http://127.0.0.1:$A" --wait \
	>"$T_DIR/sync.out" || fail "second sync: $(cat "$T_DIR/sync.out")"
registry_log_sync dst
assert_eq 0 "$(_access_lines "$DST_LOG" "$mark" '(PUT|POST|PATCH)' /v2/ | wc -l)" \
	"writes to the destination for unchanged tags"
assert_eq 3 "$(_access_lines "$DST_LOG" "$mark" HEAD /v2/app/ | wc -l)" \
	"HEADs at the destination for 3 unchanged tags"

# A moved tag is pushed again.
seed_image "$T_DIR/m2" v1 "$UP_HOST" app/a:v1
"$REGMIRROR" sync to-backup --mirror "http://127.0.0.1:$A" --wait \
	>"$T_DIR/sync.out" || fail "third sync: $(cat "$T_DIR/sync.out")"
assert_eq "$M2" "$(digest_at "$DST_HOST" app/a:v1)" "moved app/a:v1 at the destination"

# A destination behind a token service: the push asks for pull,push.
"$REGMIRROR" sync to-token --mirror "http://127.0.0.1:$A" --wait \
	>"$T_DIR/sync.out" 2>&1 || fail "sync to-token: $(cat "$T_DIR/sync.out")"
for r in b c; do
	rm -rf "$T_DIR/back-tok"
	skopeo_ copy -q --src-tls-verify=false --src-creds pusher:tok-password \
		"docker://$TOKREG_HOST/app/$r:v1" "oci:$T_DIR/back-tok:v1" \
		>>"$T_DIR/skopeo.log" 2>&1 ||
		fail "app/$r:v1 does not copy out of token.test"
	layout_same "$T_DIR/s3" "$T_DIR/back-tok"
done
grep -q "scope=repository:app/[bc]:pull,push" "$TOK_LOG" ||
	fail "no pull,push token asked for: $(tail -n 5 "$TOK_LOG")"
# The mount into the second repository needs a token for both.
registry_log_sync tokreg
assert_eq 3 "$(_access_lines "$TOKREG_LOG" 0 POST /v2/app/ | grep -F "mount=" |
	awk '$9 == 201' | wc -l)" "blobs mounted at token.test"

# A destination that refuses us (wrong password) fails its policy's run,
# with the registry's reason in the report and a non-zero exit.
"$REGMIRROR" sync to-locked --mirror "http://127.0.0.1:$A" --wait \
	>"$T_DIR/sync.out" 2>&1 && fail "sync to a refusing destination exited 0"
grep -q "^to-locked: .*1 failed: push to locked.test: .*401" "$T_DIR/sync.out" ||
	fail "refusal not reported: $(cat "$T_DIR/sync.out")"
pass
