#!/bin/bash
# dockerd (docker.io 20.10) with --registry-mirror pulls demo:v1 (Docker
# media types) through the mirror: the mirror's log shows the manifest and
# every blob for library/demo, the image id is the config digest, and the
# layers were extracted. dockerd falls back to Docker Hub (unreachable
# here) on any mirror error, so the mirror's log is what proves the path.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo dockerd "$DOCKER" timeout
need_regmirror

mkimage "$T_DIR/demo" single --seed t20-demo --ref v1 --layers 1000,20000,300000
start_registry up
seed_image "$T_DIR/demo" v1 "$UP_HOST" library/demo:v1 --format v2s2

write_mirror_conf "$T_DIR/mirror.conf" "$(free_port)" "$T_DIR/cache" "$UP_URL"
start_mirror "$T_DIR/mirror.conf"

start_dockerd --registry-mirror "$MIRROR_URL" --insecure-registry "$MIRROR_HOST"
timeout 120 "$DOCKER" -H "unix://$DOCKERD_SOCK" pull demo:v1 \
	>"$T_DIR/pull.out" 2>&1 ||
	{ cat "$T_DIR/pull.out" >&2; fail "docker pull demo:v1 failed"; }

# What dockerd asked the mirror for.
grep -E '"(HEAD|GET) /v2/library/demo/manifests/v1" 200' "$MIRROR_LOG" \
	>/dev/null || fail "no HEAD or GET of library/demo/manifests/v1 with 200 in the mirror's log"
config=$(jq -r '.images[0].config.digest' "$T_DIR/demo.json")
for d in $config $(jq -r '.images[0].layers[].digest' "$T_DIR/demo.json"); do
	grep -F "\"GET /v2/library/demo/blobs/$d\" 200" "$MIRROR_LOG" \
		>/dev/null || fail "no GET of blob $d with 200 in the mirror's log"
done
# and the mirror fetched them from the upstream
registry_log_sync up
for d in $config $(jq -r '.images[0].layers[].digest' "$T_DIR/demo.json"); do
	[ "$(count_upstream_gets_ok "$UP_LOG" "/v2/library/demo/blobs/$d")" -ge 1 ] ||
		fail "the upstream never served blob $d"
done

# The image: id = config digest; the files of the layers are there.
assert_eq "$config" "$(docker_ image inspect -f '{{.Id}}' demo:v1)" \
	"image id of demo:v1"
cid=$(docker_ create demo:v1)
docker_ cp "$cid:/layer2/data.bin" "$T_DIR/data.bin"
assert_eq 300000 "$(stat -c %s "$T_DIR/data.bin")" "size of /layer2/data.bin"
docker_ cp "$cid:/layer0/hello.txt" "$T_DIR/hello.txt"
assert_eq "hello from layer 0" "$(cat "$T_DIR/hello.txt")" "/layer0/hello.txt"
docker_ rm "$cid" >/dev/null

# dockerd stops on TERM (it stops its own containerd).
stop_pid "$DOCKERD_PID" 30 || fail "dockerd did not stop on TERM within 30s"
mirror_alive
pass
