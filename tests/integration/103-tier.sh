#!/bin/bash
# A regional tier: three members behind Debian's haproxy running the
# shipped deploy/haproxy/regmirror.cfg.
#  a. skopeo and podman pull a multi-layer image through the front: every
#     blob is fetched from upstream exactly once across the tier and
#     stored on exactly one member (hashing by digest); the manifest by
#     tag is asked of one member per path form (hashing by repository).
#  b. one member hangs (SIGSTOP) holding a GET of its largest layer
#     while 10 clients pull, and is killed (SIGKILL) once haproxy's checks
#     have marked it down: every pull completes (haproxy retries and
#     redispatches; skopeo retries a layer cut in the middle), the held
#     GET is answered by a survivor, and only that member's share is
#     fetched again, once.  (A live member killed with requests in flight
#     can cost a key two fetches: README, "A dead member".)
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo podman haproxy jq timeout ss
need_regmirror
[ "$(id -u)" = 0 ] || hard_error "podman runs as root here (vfs, cgroupfs)"

mkimage "$T_DIR/img" single --seed t103 --ref v1 \
	--layers 210000,320000,430000,540000,650000,760000
start_registry up
seed_image "$T_DIR/img" v1 "$UP_HOST" app/demo:v1
mapfile -t BLOBS < <(jq -r '.images[0].config.digest,
	.images[0].layers[].digest' "$T_DIR/img.json")

for m in a b c; do write_member_conf $m "$UP_URL"; done
for m in a b c; do start_member $m; done
start_haproxy

log "a. skopeo through the front"
mark=$(log_mark "$UP_LOG")
skopeo_ copy -q --src-tls-verify=false "docker://$FRONT_HOST/app/demo:v1" \
	"oci:$T_DIR/out-skopeo:v1" >"$T_DIR/skopeo-a.out" 2>&1 ||
	{ cat "$T_DIR/skopeo-a.out" >&2; fail "skopeo copy through the front"; }
layout_same "$T_DIR/img" "$T_DIR/out-skopeo"

log "a. podman through the front"
PM=$(mktemp -d /tmp/pm.XXXXXX)
T_EXTRA_DIRS+=("$PM")
printf '%s\n' 'unqualified-search-registries = []' '[[registry]]' \
	'prefix = "docker.io"' 'location = "docker.io"' '[[registry.mirror]]' \
	"location = \"$FRONT_HOST/docker.io\"" 'insecure = true' \
	>"$CONTAINERS_REGISTRIES_CONF"
export CONTAINERS_CONF="$T_DIR/containers.conf"
printf '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nevents_logfile_path = "%s"\n' \
	"$T_DIR/podman-events.log" >"$CONTAINERS_CONF"
export CONTAINERS_STORAGE_CONF="$T_DIR/storage.conf"
printf '[storage]\ndriver = "vfs"\nrunroot = "%s"\ngraphroot = "%s"\n' \
	"$PM/rr" "$PM/r" >"$CONTAINERS_STORAGE_CONF"
podman_() {
	podman --root "$PM/r" --runroot "$PM/rr" --tmpdir "$PM/t" \
		--storage-driver vfs --cgroup-manager cgroupfs "$@"
}
timeout 120 podman --root "$PM/r" --runroot "$PM/rr" --tmpdir "$PM/t" \
	--storage-driver vfs --cgroup-manager cgroupfs \
	pull --signature-policy "$T_DIR/policy.json" \
	docker.io/app/demo:v1 >"$T_DIR/podman.out" 2>&1 ||
	{ tail -n 20 "$T_DIR/podman.out" >&2; fail "podman pull through the front"; }
CONFIG=$(jq -r '.images[0].config.digest' "$T_DIR/img.json")
assert_eq "${CONFIG#sha256:}" \
	"$(podman_ image inspect --format '{{.Id}}' docker.io/app/demo:v1)" \
	"podman's image id"

registry_log_sync up
declare -A OWNER
spread=''
for d in "${BLOBS[@]}"; do
	assert_eq 1 "$(count_upstream_gets_ok "$UP_LOG" "/v2/app/demo/blobs/$d" "$mark")" \
		"upstream GETs of $d across the tier (skopeo, then podman)"
	h=$(blob_holders "$d")
	[ "${#h}" = 1 ] || fail "$d is held by members '$h', want exactly one"
	OWNER[$d]=$h
	case $spread in *"$h"*) ;; *) spread="$spread$h" ;; esac
done
[ "${#spread}" -ge 2 ] || fail "every blob landed on member $spread: no spread"
log "blobs spread over members: $spread"
# The manifest by tag, in skopeo's path form and in podman's
# (/v2/docker.io/...): both hash to one member, the repository's.
n=0
for m in A B C; do
	v=${m}_LOG
	if grep -qE '"GET /v2/(docker.io/)?app/demo/manifests/v1' "${!v}"; then
		n=$((n + 1))
	fi
done
assert_eq 1 "$n" "members that answered GET of the manifest by tag"

log "b. SIGKILL of one member while 10 clients pull"
# The owner of the largest layer.
victim=${OWNER[${BLOBS[6]}]}
V=$(echo "$victim" | tr a-z A-Z)
vpid=${V}_PID
mark=$(log_mark "$UP_LOG")
# Frozen first (SIGSTOP), so that the kill cannot come after the
# victim has already served its share of these small, warm layers: the
# kernel still accepts connections for it, and the kill falls on
# requests it holds unanswered.
# A GET of its largest layer goes to it first, at once: the frozen member
# fails its health checks within seconds, and the pulls' first requests
# (manifest, config) may well go elsewhere, so without it the member
# might hold nothing when it dies.
vport=${V}_PORT
kill -STOP "${!vpid}"
victim_holds() {
	[ "$(ss -Htn state established "( sport = :${!vport} )" | wc -l)" -gt 0 ]
}
curl -s --max-time 120 -o "$T_DIR/first.body" -w '%{http_code}' \
	"$FRONT_URL/v2/app/demo/blobs/${BLOBS[6]}" >"$T_DIR/first.code" 2>&1 &
first=$!
pids=()
# On a failure, the clients still running are stopped: only this shell's
# own unreaped jobs (jobs -p), so never a PID reused by another process.
b_stop_clients() {
	local p
	for p in $(jobs -p); do
		case " ${pids[*]} $first " in *" $p "*) kill "$p" 2>/dev/null ;; esac
	done
}
at_exit b_stop_clients
for i in $(seq 1 10); do
	skopeo_ copy -q --retry-times 5 --src-tls-verify=false \
		"docker://$FRONT_HOST/app/demo:v1" "oci:$T_DIR/out-$i:v1" \
		>"$T_DIR/skopeo-b$i.out" 2>&1 &
	pids+=($!)
done
wait_for 20 victim_holds || fail "no request reached member $victim"
# Killed once haproxy has marked it down (its checks time out while it
# is frozen): the requests it holds are then retried on the ring without
# it, which is where every new request for its share goes too.  Killed
# before that, each held request's retry races the mark-down, and one
# may be redispatched off the ring's next member: a second fetch.
victim_down() { grep -q "Server regmirror/$victim is DOWN" "$HAPROXY_LOG"; }
wait_for 30 victim_down || fail "haproxy did not mark the frozen member $victim down"
kill -KILL "${!vpid}"
wait "$first" || fail "GET of ${BLOBS[6]} through the front failed after the SIGKILL"
assert_eq 200 "$(cat "$T_DIR/first.code")" \
	"status of the GET the victim held, retried by haproxy"
assert_eq "${BLOBS[6]#sha256:}" "$(sha256_of "$T_DIR/first.body")" \
	"sha256 of the layer the victim held"
for i in $(seq 1 10); do
	wait "${pids[i - 1]}" ||
		{ cat "$T_DIR/skopeo-b$i.out" >&2; fail "pull $i failed after the SIGKILL"; }
	layout_same "$T_DIR/img" "$T_DIR/out-$i"
done
registry_log_sync up
for d in "${BLOBS[@]}"; do
	want=0
	[ "${OWNER[$d]}" != "$victim" ] || want=1
	assert_eq "$want" "$(count_upstream_gets_ok "$UP_LOG" "/v2/app/demo/blobs/$d" "$mark")" \
		"upstream GETs of $d after member $victim (owner ${OWNER[$d]}) died"
done
pass
