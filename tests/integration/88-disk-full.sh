#!/bin/bash
# Disk full: the cache lives on an 8 MiB tmpfs made by the test.  A blob
# larger than the free space still reaches every client whole and correct
# (passed through, not cached); the failure is logged and counted; nothing
# is left in tmp/ or blobs/ for it; blobs cached before keep being served
# as hits; and a slow reader holds the fill back rather than being cut off.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo mount umount
need_regmirror
[ "$(id -u)" = 0 ] || hard_error "mounting a tmpfs needs root"

MB=$((1024 * 1024))
mkimage "$T_DIR/small" raw --seed t88-small --ref v1 --size $((1 * MB))
mkimage "$T_DIR/big" raw --seed t88-big --ref v1 --size $((24 * MB))
start_registry up
seed_image "$T_DIR/small" v1 "$UP_HOST" app/small:v1
seed_image "$T_DIR/big" v1 "$UP_HOST" app/big:v1
LS=$(jq -r '.images[0].layers[0].digest' "$T_DIR/small.json")
LB=$(jq -r '.images[0].layers[0].digest' "$T_DIR/big.json")

FS=$(mktemp -d /tmp/rm88.XXXXXX)
T_EXTRA_DIRS+=("$FS")
mount -t tmpfs -o size=8m tmpfs "$FS" || hard_error "mount tmpfs on $FS"
write_mirror_conf "$T_DIR/mirror.conf" "$(free_port)" "$FS/cache" "$UP_URL"
start_mirror "$T_DIR/mirror.conf"

sum() { curl -sf ${3:-} "$MIRROR_URL/v2/app/$1/blobs/$2" | sha256sum | cut -d' ' -f1; }
assert_eq "${LS#sha256:}" "$(sum small "$LS")" "small blob, cold"
wait_for 10 test -f "$FS/cache/blobs/sha256/${LS:7:2}/${LS#sha256:}" ||
	fail "the small blob was not cached"

# Three concurrent clients and one slow one (4 MiB/s) for the big blob.
pids=()
for i in 1 2 3; do
	(sum big "$LB" >"$T_DIR/big.$i") &
	pids+=($!)
done
(sum big "$LB" "--limit-rate 4M" >"$T_DIR/big.slow") &
pids+=($!)
for p in "${pids[@]}"; do
	wait "$p" || true
done
for f in "$T_DIR"/big.[123] "$T_DIR"/big.slow; do
	assert_eq "${LB#sha256:}" "$(cat "$f")" "big blob body ($(basename "$f"))"
done
grep -q "is full after .* passing the blob through uncached (disk-full pass-throughs: 1)" "$MIRROR_LOG" ||
	fail "the full disk was not logged and counted"
grep -q "passed through $((24 * MB)) bytes, not cached" "$MIRROR_LOG" ||
	fail "the pass-through was not logged"
test ! -e "$FS/cache/blobs/sha256/${LB:7:2}/${LB#sha256:}" ||
	fail "the big blob was cached on a full disk"
wait_for 10 sh -c "[ -z \"\$(ls -A '$FS/cache/tmp')\" ]" ||
	fail "temp files left in tmp/: $(ls -A "$FS/cache/tmp")"

# Hits keep being served.
registry_log_sync up
mark=$(log_mark "$UP_LOG")
assert_eq "${LS#sha256:}" "$(sum small "$LS")" "small blob, warm"
registry_log_sync up
assert_eq 0 "$(count_upstream_gets "$UP_LOG" "/v2/app/small/blobs/$LS" "$mark")" \
	"upstream GETs for the cached small blob"
mirror_alive
pass
