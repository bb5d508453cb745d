#!/bin/bash
# Start-up reconcile of the cache's disk and index. Layers L0 and L1 of
# app/x (and L4) are cached through the mirror; the mirror is stopped,
# and then:
#  (a) L0's blob file is deleted (its index entry stays), and with it its
#      <ab> directory when L0 was alone there;
#  (b) a correct file for L2 (a digest the index does not know, copied
#      from the OCI layout) and a corrupt file under L3's name (L3's bytes
#      with one byte flipped, same size) are planted under
#      CACHE/blobs/sha256/<ab>/<hex>;
#  (c) L4's file is cut to half its size (reconcile does not stat each
#      blob: the size is checked when the blob is opened);
#  (d) L5's correct bytes are planted under a directory that is not a
#      blob directory, CACHE/blobs/sha256/stray/<hex> (and under
#      blobs/sha256/stray/<ab>/<hex>, the right shape one level down).
# After a restart on the same cache dir:
#  - the corrupt L3 file disappears (polled), the L2 file stays and still
#    hashes to its name, and the mirror's log names L2 in a line saying it
#    adopted it and L3 in a line saying it removed it (case-insensitive
#    "adopt" / "remov");
#  - GET L0 goes upstream again (a second registry GET) and returns the
#    right bytes, and L0 is cached again;
#  - GET L2 returns the right bytes with no registry GET of it (it was
#    adopted from disk);
#  - GET L3 returns the right bytes (one registry GET) and its cache file
#    then hashes to its name;
#  - GET L4 returns the right bytes (one registry GET: the short file was
#    not served) and its cache file then hashes to its name;
#  - GET L1 (untouched) is still a cache hit: no new registry GET;
#  - the stray files are left alone (still there, same bytes), the log
#    warns that blobs/sha256/stray is not a blob directory, and GET L5
#    goes upstream (one registry GET): a file outside blobs/<algo>/<ab>/
#    is never adopted or served.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need skopeo docker-registry
need_regmirror

CACHE=$T_DIR/cache
mkimage "$T_DIR/img" single --seed t84 --ref v1 --layers 50000,60000,70000,80000,90000,40000
mapfile -t L < <(jq -r '.images[0].layers[].digest' "$T_DIR/img.json")
[ "${#L[@]}" = 6 ] || hard_error "mkimage: expected 6 layers"
start_registry up
seed_image "$T_DIR/img" v1 "$UP_HOST" app/x:v1
write_mirror_conf "$T_DIR/mirror.conf" "$(free_port)" "$CACHE" "$UP_URL"
start_mirror "$T_DIR/mirror.conf"

src() { echo "$T_DIR/img/blobs/sha256/${1#sha256:}"; }
cf() { cache_blob_file "$CACHE" "$1"; }
# get I WHAT: GET layer L[I] through the mirror: 200, right bytes.
get() {
	rq "$MIRROR_URL/v2/app/x/blobs/${L[$1]}"
	assert_eq 200 "$RQ_CODE" "$2: GET L$1: status"
	assert_eq "${L[$1]#sha256:}" "$(rq_sha)" "$2: GET L$1: sha256 of the body"
}
ups() { # I [FROM]: registry GETs of L[I]
	registry_log_sync up
	count_upstream_gets "$UP_LOG" "/v2/app/x/blobs/${L[$1]}" "${2:-0}"
}

get 0 warm
get 1 warm
get 4 warm
for i in 0 1 4; do
	wait_for 10 test -f "$(cf "${L[$i]}")" || fail "L$i was not cached"
done
stop_pid "$MIRROR_PID" || fail "the mirror did not stop on TERM"

# (a) an index entry without its file
rm -f "$(cf "${L[0]}")"
rmdir "$(dirname "$(cf "${L[0]}")")" 2>/dev/null || :
# (c) a cached blob cut short
truncate -s 45000 "$(cf "${L[4]}")"
# (b) files without index entries: one right, one corrupt
for i in 2 3; do
	mkdir -p "$(dirname "$(cf "${L[$i]}")")"
	[ ! -e "$(cf "${L[$i]}")" ] || hard_error "L$i is in the cache already"
done
cp "$(src "${L[2]}")" "$(cf "${L[2]}")"
"$PY" - "$(src "${L[3]}")" "$(cf "${L[3]}")" <<'EOPY'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
data[len(data) // 2] ^= 0xff
open(sys.argv[2], "wb").write(data)
EOPY
[ "$(sha256_of "$(cf "${L[3]}")")" != "${L[3]#sha256:}" ] ||
	hard_error "the planted corrupt file is not corrupt"
# (d) a blob's bytes outside the blob directories
STRAY=$CACHE/blobs/sha256/stray
h5=${L[5]#sha256:}
[ ! -e "$(cf "${L[5]}")" ] || hard_error "L5 is in the cache already"
mkdir -p "$STRAY/${h5:0:2}"
cp "$(src "${L[5]}")" "$STRAY/$h5"
cp "$(src "${L[5]}")" "$STRAY/${h5:0:2}/$h5"

start_mirror "$T_DIR/mirror.conf" mirror2
log_has() { [ "$(grep -i "$1" "$MIRROR_LOG" | grep -cF "$2")" -gt 0 ]; }
wait_for 15 eval '[ ! -e "$(cf "${L[3]}")" ]' ||
	fail "the corrupt file planted as L3 is still in the cache after a restart"
wait_for 10 log_has adopt "${L[2]#sha256:}" ||
	fail "the mirror's log has no line saying it adopted L2 (${L[2]}): $(grep -i 'adopt\|reconcil' "$MIRROR_LOG")"
log_has remov "${L[3]#sha256:}" ||
	fail "the mirror's log has no line saying it removed L3 (${L[3]}): $(grep -i 'remov\|reconcil' "$MIRROR_LOG")"
[ -f "$(cf "${L[2]}")" ] || fail "the correct file planted as L2 was removed"
assert_eq "${L[2]#sha256:}" "$(sha256_of "$(cf "${L[2]}")")" \
	"sha256 of the adopted L2 file"
log "$(grep -i 'adopt\|remov\|dropp\|reconcil' "$MIRROR_LOG" | cut -c 1-200)"

registry_log_sync up
mark=$(log_mark "$UP_LOG")
get 0 "index entry without a file"
assert_eq 1 "$(ups 0 "$mark")" "registry GETs of L0 after its file was deleted"
wait_for 10 test -f "$(cf "${L[0]}")" || fail "L0 was not cached again"
assert_eq "${L[0]#sha256:}" "$(sha256_of "$(cf "${L[0]}")")" "sha256 of L0's new cache file"

get 2 "adopted file"
assert_eq 0 "$(ups 2)" "registry GETs of the adopted L2"

get 3 "removed corrupt file"
assert_eq 1 "$(ups 3)" "registry GETs of L3 after its corrupt file was removed"
wait_for 10 test -f "$(cf "${L[3]}")" || fail "L3 was not cached"
assert_eq "${L[3]#sha256:}" "$(sha256_of "$(cf "${L[3]}")")" "sha256 of L3's cache file"

get 4 "file cut short"
assert_eq 1 "$(ups 4 "$mark")" "registry GETs of L4 after its file was cut short"
wait_for 10 eval '[ "$(sha256_of "$(cf "${L[4]}")")" = "${L[4]#sha256:}" ]' ||
	fail "L4's cache file does not hash to its name after the refetch"

get 1 "untouched entry"
assert_eq 1 "$(ups 1)" "registry GETs of L1 (cached before the restart)"

grep -F "$STRAY" "$MIRROR_LOG" | grep -qi "not a blob directory" ||
	fail "the mirror's log has no warning that $STRAY is not a blob directory: $(grep -F stray "$MIRROR_LOG")"
get 5 "bytes outside the blob directories"
assert_eq 1 "$(ups 5)" "registry GETs of L5 (its bytes were only under blobs/sha256/stray)"
for f in "$STRAY/$h5" "$STRAY/${h5:0:2}/$h5"; do
	[ -f "$f" ] || fail "reconcile removed $f (outside the blob directories)"
	assert_eq "$h5" "$(sha256_of "$f")" "sha256 of $f"
done
mirror_alive
pass
