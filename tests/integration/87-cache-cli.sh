#!/bin/bash
# Cache lifecycle with the daemon running: "regmirror cache du/ls/pin/
# unpin/verify/gc/evict" with readable and --json output; a byte budget
# (max_size) evicts least-recently-used blobs but never pinned ones; verify
# quarantines a corrupted file, which is then fetched again, correct; a
# blob evicted while a client downloads it still reaches that client whole.
# "ls --json" (which streams its elements) is one JSON object with a tags
# and a blobs array, empty ones included; what "cache evict" removes
# behind the daemon's back is off the daemon's cache_bytes gauge at once
# (the totals are a record in the index, not a count in the daemon).
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo jq
need_regmirror

MB=$((1024 * 1024))
mkimage "$T_DIR/a" raw --seed t87-a --ref v1 --size $((3 * MB))
mkimage "$T_DIR/b" raw --seed t87-b --ref v1 --size $((3 * MB))
mkimage "$T_DIR/c" raw --seed t87-c --ref v1 --size $((3 * MB))
start_registry up
for x in a b c; do
	seed_image "$T_DIR/$x" v1 "$UP_HOST" "app/$x:v1"
done
layer() { jq -r '.images[0].layers[0].digest' "$T_DIR/$1.json"; }
LA=$(layer a) LB=$(layer b) LC=$(layer c)

# Budget 8 MiB: two 3 MiB layers fit under the 95% mark, three do not.
write_mirror_conf "$T_DIR/mirror.conf" "$(free_port)" "$T_DIR/cache" "$UP_URL"
APORT=$(free_port)
sed -i -e 's/^tag_ttl = 5m$/tag_ttl = 5m\nmax_size = 8M/' \
	-e "s/^workers = 2$/workers = 2\nadmin_listen = 127.0.0.1:$APORT/" "$T_DIR/mirror.conf"
start_mirror "$T_DIR/mirror.conf"
RM() { "$REGMIRROR" cache "$@" -c "$T_DIR/mirror.conf"; }
assert_eq '{"tags":[],"blobs":[]}' "$(RM ls --json)" "ls --json of an empty cache"
pull() {
	curl -sf -o /dev/null -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		"$MIRROR_URL/v2/app/$1/manifests/v1" || fail "manifest app/$1"
	got=$(curl -sf "$MIRROR_URL/v2/app/$1/blobs/$2" | sha256sum | cut -d' ' -f1) ||
		fail "blob app/$1"
	assert_eq "${2#sha256:}" "$got" "app/$1 layer sha256"
}

# Access times have one-second resolution: let a second pass between
# pulls so that the LRU order is a, b, c (polling the clock).
after_second() { [ "$(date +%s)" -gt "$1" ]; }
next_second() { wait_for 5 after_second "$(date +%s)" || fail "clock stuck"; }
pull a "$LA"
next_second
pull b "$LB"
next_second
du=$(RM du --json) || fail "cache du --json"
[ "$(jq -r .blobs <<<"$du")" -ge 2 ] || fail "du: $du"
RM ls | grep -q "tag   docker.io/app/a:v1 -> sha256:" || fail "ls shows no tag for app/a"
RM ls --json | jq -e --arg d "$LA" '.blobs | map(.digest) | index($d)' >/dev/null ||
	fail "ls --json lacks $LA"
RM ls --json | jq -e '(keys == ["blobs", "tags"]) and (.tags | length) == 2 and
	(.blobs | length) == 2 and (.tags | map(.repository) | sort) == ["app/a", "app/b"] and
	all(.blobs[]; (.size | type) == "number" and (.digest | startswith("sha256:")))' \
	>/dev/null || fail "ls --json: $(RM ls --json)"

# Pin a (the image, through its manifest), then pull c: over budget.
RM pin app/a:v1 | grep -q "pinned [1-9]" || fail "pin app/a:v1"
[ "$(RM du --json | jq -r .pinned_bytes)" -ge $((3 * MB)) ] || fail "pinned bytes"
pull c "$LC"
blob_file() { echo "$T_DIR/cache/blobs/sha256/${1:7:2}/${1#sha256:}"; }
# The manager evicts within a few ticks: b (least recently used, unpinned).
wait_for 20 test ! -f "$(blob_file "$LB")" ||
	fail "over max_size, the LRU blob app/b was not evicted"
test -f "$(blob_file "$LA")" || fail "the pinned blob app/a was evicted"
test -f "$(blob_file "$LC")" || fail "the newest blob app/c was evicted"
grep -q "evicted" "$MIRROR_LOG" || fail "no eviction in the mirror's log"
# What was evicted is fetched again, correct.
pull b "$LB"

# verify: corrupt the file of c behind the daemon's back.
f=$(blob_file "$LC")
printf 'X' | dd of="$f" bs=1 seek=100 conv=notrunc 2>/dev/null
rc=0
RM verify >"$T_DIR/verify.out" || rc=$?
assert_eq 3 "$rc" "verify exit status with a corrupt blob"
grep -q "CORRUPT $LC" "$T_DIR/verify.out" || fail "verify did not name $LC"
test -f "$T_DIR/cache/quarantine/$LC" || fail "corrupt blob not quarantined"
test ! -f "$f" || fail "corrupt blob still in blobs/"
pull c "$LC"

# unpin, then gc with no grace: everything reachable from tags stays.
RM unpin app/a:v1 | grep -q "unpinned [1-9]" || fail "unpin"
RM gc --grace 0 --json | jq -e '.removed >= 0' >/dev/null || fail "gc --json"
pull a "$LA"
# A blob being read is never deleted from under its reader: evict it in
# the middle of a slow download, which still completes, correct.
curl -sf --limit-rate 1M -o "$T_DIR/slow.bin" \
	"$MIRROR_URL/v2/app/a/blobs/$LA" &
slow=$!
got_some() { [ "$(stat -c %s "$T_DIR/slow.bin" 2>/dev/null || echo 0)" -gt 200000 ]; }
wait_for 10 got_some || fail "the slow download did not start"
RM evict "$LA" | grep -q "evicted 1" || fail "evict $LA during a download"
test ! -f "$(blob_file "$LA")" || fail "evicted blob file still there"
wait "$slow" || fail "the slow download failed after the eviction"
assert_eq "${LA#sha256:}" "$(sha256sum <"$T_DIR/slow.bin" | cut -d' ' -f1)" \
	"download that outlived the eviction of its blob"
pull a "$LA"

# evict --to 0 empties the cache; the next pull refills it.  A client
# has the whole blob once it is verified, before its index commit (after
# the fsync, on a helper thread): wait for that, or evict could miss it.
in_index() { RM ls --json | jq -e --arg d "$1" '.blobs | map(.digest) | index($d)' >/dev/null; }
wait_for 10 in_index "$LA" || fail "the refilled $LA never reached the index"
[ "$(mirror_metric "http://127.0.0.1:$APORT" cache_bytes)" -gt 0 ] ||
	fail "the daemon's cache_bytes gauge is 0 with blobs stored"
RM evict --to 0 | grep -q "evicted [1-9]" || fail "evict --to 0"
assert_eq 0 "$(RM du --json | jq -r .blobs)" "blobs after evict --to 0"
assert_eq 0 "$(RM du --json | jq -r .bytes)" "blob bytes after evict --to 0"
assert_eq 0 "$(mirror_metric "http://127.0.0.1:$APORT" cache_bytes)" \
	"the daemon's cache_bytes gauge right after another process's evict --to 0"
pull a "$LA"
mirror_alive
pass
