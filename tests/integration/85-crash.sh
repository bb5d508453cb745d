#!/bin/bash
# Crash safety. fakeupstream.py serves 40 random blobs of 1-2.5 MiB, each
# body paced at 16 MiB/s so that fills take a while. 15 times: the mirror
# starts on the same cache dir, 4 clients GET blobs it has not cached yet,
# concurrently, and the mirror is SIGKILLed at a random point (after a
# random 0-300 ms, or once the clients have received a random number of
# bytes). After every kill:
#  - a client whose curl ended without error got exactly the blob (sha256);
#  - every file under CACHE/blobs hashes to its name (checked before the
#    next start, so nothing can tidy a bad file away first).
# After the last kill the mirror restarts: CACHE/tmp is empty. With the
# upstream still up, a GET of every blob through the mirror returns the
# right sha256; every blob is then cached, and every file under
# CACHE/blobs still hashes to its name. At least 3 of the kills must have
# left a fill behind in CACHE/tmp (else they never hit mid-fill and the
# test proved nothing: error 99).
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need find shuf
need_regmirror

N=40
ITER=15
CACHE=$T_DIR/cache
"$PY" - "$T_DIR/img" "$N" t85 >"$T_DIR/blobs.txt" <<'EOPY' ||
import hashlib, json, os, random, sys
out, n, seed = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rng = random.Random(seed)
bd = os.path.join(out, "blobs", "sha256")
os.makedirs(bd)
MT = "application/vnd.oci.image.manifest.v1+json"

def put(data):
    h = hashlib.sha256(data).hexdigest()
    with open(os.path.join(bd, h), "wb") as f:
        f.write(data)
    return "sha256:" + h

layers = []
for i in range(n):
    size = rng.randint(1 << 20, 5 << 19)
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                   "digest": put(rng.randbytes(size)), "size": size})
config = json.dumps({"architecture": "amd64", "os": "linux",
                     "rootfs": {"type": "layers",
                                "diff_ids": [l["digest"] for l in layers]},
                     "config": {}}).encode()
manifest = json.dumps({
    "schemaVersion": 2, "mediaType": MT,
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
               "digest": put(config), "size": len(config)},
    "layers": layers}).encode()
md = put(manifest)
with open(os.path.join(out, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [{
        "mediaType": MT, "digest": md, "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}, f)
with open(os.path.join(out, "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion": "1.0.0"}')
for l in layers:
    print(l["digest"])
EOPY
	hard_error "could not write the test layout"
mapfile -t B <"$T_DIR/blobs.txt"
[ "${#B[@]}" = "$N" ] || hard_error "layout: expected $N blobs"

start_fakeupstream up --layout "$T_DIR/img" --repo crash/x --tag v1 \
	--rate $((16 * 1024 * 1024))

bfile() { cache_blob_file "$CACHE" "$1"; }
burl() { echo "$MIRROR_URL/v2/crash/x/blobs/$1"; }

declare -A VERIFIED=()
# check_blobs WHEN: every file under CACHE/blobs hashes to its name
# (files already verified are not hashed again: published files are
# never rewritten).
check_blobs() {
	local f n
	while read -r f; do
		n=$(basename "$f")
		[ -z "${VERIFIED[$f]:-}" ] || continue
		[ "$(sha256_of "$f")" = "$n" ] ||
			fail "$1: $f does not hash to its name"
		VERIFIED[$f]=1
	done < <(find "$CACHE/blobs" -type f 2>/dev/null)
}

# client_bytes: bytes the clients of this round have received so far.
client_bytes() {
	local f t=0
	for f in "$T_DIR"/round/*; do
		[ -f "$f" ] && t=$((t + $(stat -c %s "$f")))
	done
	echo "$t"
}
# kill_point N: the clients have received N bytes, or all of them ended.
kill_point() {
	local p
	[ "$(client_bytes)" -lt "$1" ] || return 0
	for p in "${pids[@]}"; do is_alive "$p" && return 1; done
	return 0
}

midfill=0
for ((it = 1; it <= ITER; it++)); do
	write_mirror_conf "$T_DIR/mirror.conf" "$(free_port)" "$CACHE" "$UP_URL"
	start_mirror "$T_DIR/mirror.conf"
	# four blobs not cached yet (any, once few are left)
	mapfile -t cold < <(for d in "${B[@]}"; do
		[ -e "$(bfile "$d")" ] || echo "$d"; done | shuf -n 4)
	[ "${#cold[@]}" -ge 4 ] || mapfile -t cold < <(printf '%s\n' "${B[@]}" | shuf -n 4)
	rm -rf "$T_DIR/round"
	mkdir -p "$T_DIR/round"
	pids=()
	for d in "${cold[@]}"; do
		curl -s --max-time 20 -o "$T_DIR/round/${d#sha256:}" "$(burl "$d")" &
		pids+=($!)
	done
	# The fault injection: a random delay, or a random number of bytes
	# received by the clients.
	if ((RANDOM % 2)); then
		how="after $((RANDOM % 301)) ms"
		sleep "$(awk -v ms="${how//[^0-9]/}" 'BEGIN { printf "%.3f", ms / 1000 }')"
	else
		total=0
		for d in "${cold[@]}"; do
			total=$((total + $(stat -c %s "$T_DIR/img/blobs/sha256/${d#sha256:}")))
		done
		n=$(((RANDOM * 32768 + RANDOM) % total))
		how="after the clients got $n of $total bytes"
		wait_for 10 kill_point "$n" || how="$how (not reached in 10s)"
	fi
	kill -KILL "$MIRROR_PID"
	wait "$MIRROR_PID" 2>/dev/null || true
	ok=0
	for i in "${!pids[@]}"; do
		rc=0
		wait "${pids[i]}" || rc=$?
		d=${cold[i]}
		[ "$rc" = 0 ] || continue
		[ "$(sha256_of "$T_DIR/round/${d#sha256:}")" = "${d#sha256:}" ] ||
			fail "round $it: a client's GET of $d ended without error with the wrong bytes"
		ok=$((ok + 1))
	done
	tmpn=$(find "$CACHE/tmp" -type f 2>/dev/null | wc -l)
	[ "$tmpn" = 0 ] || midfill=$((midfill + 1))
	check_blobs "round $it, after SIGKILL"
	log "round $it: SIGKILL $how: $ok/${#cold[@]} clients complete, $tmpn fill(s) left in tmp, $(find "$CACHE/blobs" -type f | wc -l) blobs cached"
done
[ "$midfill" -ge 3 ] || hard_error "only $midfill of $ITER kills left a fill in \
tmp: the kills did not land mid-fill (too fast a machine for the pacing?)"

# -- after the crashes ----------------------------------------------------------
write_mirror_conf "$T_DIR/mirror.conf" "$(free_port)" "$CACHE" "$UP_URL"
start_mirror "$T_DIR/mirror.conf"
tmp_empty() { [ -z "$(find "$CACHE/tmp" -type f 2>/dev/null)" ]; }
tmp_empty || fail "CACHE/tmp is not empty after a restart: $(ls "$CACHE/tmp")"
check_blobs "after the restart"
for d in "${B[@]}"; do
	rq "$(burl "$d")"
	[ "$RQ_CODE" = 200 ] && [ "$RQ_RC" = 0 ] ||
		fail "GET $d after the crashes: status $RQ_CODE, curl exit $RQ_RC"
	assert_eq "${d#sha256:}" "$(rq_sha)" "GET $d after the crashes: sha256"
done
all_cached() {
	local d
	for d in "${B[@]}"; do [ -f "$(bfile "$d")" ] || return 1; done
}
wait_for 10 all_cached || fail "not every blob is cached after a GET of each"
wait_for 10 tmp_empty || fail "fills left in CACHE/tmp after every GET ended"
check_blobs "at the end"
log "$N blobs right after $ITER SIGKILLs ($midfill mid-fill)"
mirror_alive
pass
