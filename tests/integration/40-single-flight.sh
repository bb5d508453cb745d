#!/bin/bash
# Twenty concurrent cold GETs of one 64 MiB blob through the mirror: all
# twenty bodies are the blob, and the upstream served exactly one GET of
# it; a twenty-first GET afterwards makes no upstream GET; the daemon's
# peak memory stays well below the blob's size.  Then twenty concurrent
# GETs of the uncached tag cost at most one upstream manifest GET per
# worker (single-flight), each client getting the manifest whole.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo
need_regmirror

N=20
SIZE=$((64 * 1024 * 1024))
mkimage "$T_DIR/big" raw --seed t40-big --ref v1 --size "$SIZE"
start_registry up
seed_image "$T_DIR/big" v1 "$UP_HOST" app/big:v1
DG=$(jq -r '.images[0].layers[0].digest' "$T_DIR/big.json")
assert_eq "$SIZE" "$(jq -r '.images[0].layers[0].size' "$T_DIR/big.json")" "layer size"
BLOB=/v2/app/big/blobs/$DG

write_mirror_conf "$T_DIR/mirror.conf" "$(free_port)" "$T_DIR/cache" "$UP_URL"
start_mirror "$T_DIR/mirror.conf"
registry_log_sync up
mark=$(log_mark "$UP_LOG")

# Each client writes "<curl exit> <http status> <bytes> <sha256>" to its
# own file; the twenty are started before any is waited for.
get_one() {
	local out=$1 rc=0 w
	w=$(curl -s --max-time 120 -o >(sha256sum | cut -d' ' -f1 >"$out.sum") \
		-w '%{http_code} %{size_download}' "$MIRROR_URL$BLOB") || rc=$?
	echo "$rc $w" >"$out.res"
}
pids=()
for i in $(seq "$N"); do
	get_one "$T_DIR/c$i" &
	pids+=($!)
done
for p in "${pids[@]}"; do
	wait "$p" || true
done
for i in $(seq "$N"); do
	wait_for 10 test -s "$T_DIR/c$i.sum" || fail "client $i: no checksum"
	read -r rc code bytes <"$T_DIR/c$i.res"
	[ "$rc" = 0 ] && [ "$code" = 200 ] && [ "$bytes" = "$SIZE" ] ||
		fail "client $i: curl exit $rc, status $code, $bytes bytes"
	assert_eq "${DG#sha256:}" "$(cat "$T_DIR/c$i.sum")" "client $i body sha256"
done
registry_log_sync up
n=$(count_upstream_gets "$UP_LOG" "$BLOB" "$mark")
assert_eq 1 "$n" "upstream GETs of the blob for $N concurrent clients"

# Bounded memory: twenty clients streamed 64 MiB each (1.25 GiB in all);
# the daemon's peak resident set must stay far below one blob.
# (Under ASan the number means nothing: its quarantine keeps freed memory
# and shadow pages; the plain build in the same CI run asserts it.)
hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$MIRROR_PID/status")
[ -n "$hwm" ] || fail "no VmHWM for pid $MIRROR_PID"
if [ "${REGMIRROR_SANITIZERS:-no}" = yes ]; then
	log "sanitizer build: peak RSS ${hwm} KiB not asserted"
else
	[ "$hwm" -lt $((48 * 1024)) ] ||
		fail "regmirror peak RSS ${hwm} KiB: memory grows with blob size"
	log "regmirror peak RSS ${hwm} KiB after $N x 64 MiB"
fi

# The 21st: from the cache.
got=$(curl -sf --max-time 60 "$MIRROR_URL$BLOB" | sha256sum | cut -d' ' -f1) ||
	fail "GET #21 failed"
assert_eq "${DG#sha256:}" "$got" "GET #21 body sha256"
registry_log_sync up
assert_eq 1 "$(count_upstream_gets "$UP_LOG" "$BLOB" "$mark")" \
	"upstream GETs of the blob after GET #21"

# Twenty concurrent GETs of the uncached tag: manifest fetches are
# single-flighted per worker (2 here), so the upstream sees at most two
# GETs of it, and every client gets the manifest whole.
TOP=$(layout_top "$T_DIR/big")
ACC="application/vnd.oci.image.manifest.v1+json"
man_one() {
	curl -s --max-time 60 -H "Accept: $ACC" -o "$1.body" -w '%{http_code}' \
		"$MIRROR_URL/v2/app/big/manifests/v1" >"$1.code" || true
}
pids=()
for i in $(seq "$N"); do
	man_one "$T_DIR/m$i" &
	pids+=($!)
done
for p in "${pids[@]}"; do
	wait "$p" || true
done
for i in $(seq "$N"); do
	assert_eq 200 "$(cat "$T_DIR/m$i.code")" "manifest client $i status"
	assert_eq "$TOP" "sha256:$(sha256_of "$T_DIR/m$i.body")" \
		"manifest client $i body"
done
registry_log_sync up
n=$(count_upstream_gets "$UP_LOG" /v2/app/big/manifests/v1 "$mark")
[ "$n" -ge 1 ] && [ "$n" -le 2 ] ||
	fail "$n upstream GETs of the tag for $N concurrent clients (want 1 or 2: one per worker at most)"
log "manifest: $n upstream GETs for $N clients; $(grep -c 'manifests/v1" 200 .* src=coalesced' "$MIRROR_LOG") coalesced"
mirror_alive
pass
