#!/bin/bash
# The fill of a cold blob belongs to no client: when the client that
# started it goes away mid-body, the fill still runs to the end, the blob
# is published, and the next GET is a cache hit with no new upstream GET.
# The upstream is named by host name here (localhost), so the upstream
# client's asynchronous resolver (evdns, /etc/hosts) is on the path.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo
need_regmirror

SIZE=$((48 * 1024 * 1024))
mkimage "$T_DIR/big" raw --seed t41-big --ref v1 --size "$SIZE"
start_registry up
seed_image "$T_DIR/big" v1 "$UP_HOST" app/leave:v1
DG=$(jq -r '.images[0].layers[0].digest' "$T_DIR/big.json")
BLOB=/v2/app/leave/blobs/$DG
FILE="$T_DIR/cache/blobs/sha256/${DG:7:2}/${DG#sha256:}"

write_mirror_conf "$T_DIR/mirror.conf" "$(free_port)" "$T_DIR/cache" \
	"${UP_URL/127.0.0.1/localhost}"
start_mirror "$T_DIR/mirror.conf"
registry_log_sync up
mark=$(log_mark "$UP_LOG")

# A client that reads 1 MiB and hangs up.
curl -s "$MIRROR_URL$BLOB" | head -c 1048576 >"$T_DIR/part" || true
assert_eq 1048576 "$(stat -c %s "$T_DIR/part")" "bytes the leaving client read"

wait_for 60 test -f "$FILE" ||
	fail "the blob was not published after its first client left"
# The file is renamed in before the fill leaves the table: a GET in
# between attaches to the (verified) fill instead of hitting the cache.
stored() { grep -q "fill $DG: stored" "$MIRROR_LOG"; }
wait_for 30 stored || fail "the fill did not finish publishing"
got=$(curl -sf "$MIRROR_URL$BLOB" | sha256sum | cut -d' ' -f1) ||
	fail "GET after the fill failed"
assert_eq "${DG#sha256:}" "$got" "body sha256 after the fill"
registry_log_sync up
assert_eq 1 "$(count_upstream_gets "$UP_LOG" "$BLOB" "$mark")" \
	"upstream GETs of the blob (the fill went on without its client)"
grep -q "\"GET $BLOB\" 200 .* src=hit" "$MIRROR_LOG" ||
	fail "the GET after the fill was not a cache hit"
mirror_alive
pass
