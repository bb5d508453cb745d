#!/bin/bash
# Twenty cold GETs of one 64 MiB blob, made to overlap: the upstream (a
# docker-registry) is reached through fakeupstream.py --proxy in gate
# mode, which passes the registry's answer through but holds the blob's
# body at half until the test releases it.  While it is held, every one
# of the twenty clients has its 200 and Content-Length (so each is
# streaming the one fill in flight: the blob is nowhere whole yet), the
# upstream has seen one GET of it and the blob is not in the cache.  Then
# the body is released, and: all twenty bodies are the blob; the registry
# served exactly one GET of it; the mirror's access log has one src=miss
# and nineteen src=attach for it, and /metrics counts 1 blob miss and 19
# attaches; a twenty-first GET afterwards is a hit and makes no upstream
# GET; the daemon's peak memory stays well below the blob's size.  Then
# twenty concurrent GETs of the uncached tag cost at most one upstream
# manifest GET per worker (single-flight), each client getting the
# manifest whole (42-manifest-single-flight forces that overlap).
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

# The gate in front of the registry: a stall a real registry cannot make.
start_fakeupstream gate --proxy "$UP_URL" --mode gate --fault-digest "$DG" \
	--stall-seconds 60
APORT=$(free_port)
write_mirror_conf "$T_DIR/mirror.conf" "$(free_port)" "$T_DIR/cache" "$GATE_URL"
sed -i "s/^workers = 2$/workers = 2\nadmin_listen = 127.0.0.1:$APORT/" \
	"$T_DIR/mirror.conf"
start_mirror "$T_DIR/mirror.conf"
ADMIN=http://127.0.0.1:$APORT
registry_log_sync up
mark=$(log_mark "$UP_LOG")

# Each client keeps its reply's headers (curl writes them as they come)
# and writes "<curl exit> <http status> <bytes>" and the body's sha256
# to files of its own; the twenty are started before any is waited for.
get_one() {
	local out=$1 rc=0 w
	w=$(curl -s --max-time 120 -D "$out.hdrs" \
		-o >(sha256sum | cut -d' ' -f1 >"$out.sum") \
		-w '%{http_code} %{size_download}' "$MIRROR_URL$BLOB") || rc=$?
	echo "$rc $w" >"$out.res"
}
pids=()
for i in $(seq "$N"); do
	get_one "$T_DIR/c$i" &
	pids+=($!)
done

# Held: every client has its headers, none has all of the body.
client_streaming() {	# client_streaming I: a 200 with the blob's length
	[ -f "$T_DIR/c$1.hdrs" ] || return 1
	tr -d '\r' <"$T_DIR/c$1.hdrs" | awk -v n="$SIZE" '
		NR == 1 && $2 == 200 { ok = 1 }
		tolower($1) == "content-length:" && $2 == n { len = 1 }
		END { exit !(ok && len) }'
}
all_streaming() {
	local i
	for i in $(seq "$N"); do client_streaming "$i" || return 1; done
}
gate_held() { grep -q "\"GET $BLOB\" held mode=gate" "$GATE_LOG"; }
wait_for 20 gate_held || fail "the gate never held the blob's body"
wait_for 30 all_streaming ||
	fail "not every client got its 200 and headers while the body was held ($(for i in $(seq "$N"); do client_streaming "$i" || printf ' c%s' "$i"; done) had not)"
assert_eq 1 "$(fake_count "$GATE_URL" "$BLOB")" \
	"upstream GETs of the blob while $N clients wait on it"
[ ! -e "$(cache_blob_file "$T_DIR/cache" "$DG")" ] ||
	fail "the blob is cached while its body is held"
for i in $(seq "$N"); do
	[ ! -e "$T_DIR/c$i.res" ] || fail "client $i finished while the body was held: $(cat "$T_DIR/c$i.res")"
done
log "all $N clients streaming one held fill"
fake_mode "$GATE_URL" ok || hard_error "could not release the gate"

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

# One fill, N readers: the access line of each request (written when it
# ends) says how it was served, and the counters agree.
blob_lines() { mirror_access_grep "\"GET $BLOB\" 200 $SIZE .* src=$1\$"; }
all_logged() { [ "$(blob_lines '(miss|attach)' | wc -l)" -ge "$N" ]; }
wait_for 10 all_logged || fail "access lines of the $N blob GETs: $(blob_lines '.*' | wc -l)"
assert_eq 1 "$(blob_lines miss | wc -l)" "blob GETs that started a fill (src=miss)"
assert_eq $((N - 1)) "$(blob_lines attach | wc -l)" \
	"blob GETs that attached to the fill in flight (src=attach)"
assert_eq 1 "$(mirror_metric "$ADMIN" blob_misses_total)" "blob_misses_total"
assert_eq $((N - 1)) "$(mirror_metric "$ADMIN" blob_attaches_total)" \
	"blob_attaches_total"

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
hit_logged() { [ "$(blob_lines hit | wc -l)" -ge 1 ]; }
wait_for 10 hit_logged || fail "GET #21 was not a hit"

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
