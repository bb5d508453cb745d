#!/bin/bash
# podman (4.3, as root, vfs) pulls alpha.test/app/demo:v1 and
# beta.test/app/demo:v1 through one mirror with two upstreams, "alpha.test"
# (registry A) and "beta.test" (registry B), neither the default, holding
# DIFFERENT images under the same repository name. registries.conf makes
# 127.0.0.1:PORT/alpha.test (and /beta.test) the mirror of each, so the
# registry host arrives as the first path component:
# /v2/alpha.test/app/demo/manifests/v1. Checks: both pulls succeed; each
# image's ID is the config digest of ITS upstream's image; in the mirror's
# log every /v2/alpha.test/... request was served by up=alpha.test and
# every /v2/beta.test/... one by up=beta.test, with 200, covering the tag
# and every blob; registry A never got a GET for beta's content and B none
# for alpha's.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo podman timeout
need_regmirror
[ "$(id -u)" = 0 ] || hard_error "podman scenario runs as root (vfs, cgroupfs)"

mkimage "$T_DIR/alpha" single --seed t71-alpha --ref v1 --layers 1000,40000
mkimage "$T_DIR/beta" single --seed t71-beta --ref v1 --layers 3000,70000
start_registry a
start_registry b
seed_image "$T_DIR/alpha" v1 "$A_HOST" app/demo:v1
seed_image "$T_DIR/beta" v1 "$B_HOST" app/demo:v1
A_CONFIG=$(jq -r '.images[0].config.digest' "$T_DIR/alpha.json")
B_CONFIG=$(jq -r '.images[0].config.digest' "$T_DIR/beta.json")
[ "$A_CONFIG" != "$B_CONFIG" ] || hard_error "the two images are the same"

MPORT=$(free_port)
write_mirror_base "$T_DIR/mirror.conf" "$MPORT" "$T_DIR/cache" 5m
cat >>"$T_DIR/mirror.conf" <<EOF

[upstream "alpha.test"]
url = $A_URL
default = no

[upstream "beta.test"]
url = $B_URL
default = no
EOF
start_mirror "$T_DIR/mirror.conf"

# podman's own config, nothing from the machine.
PM=$(mktemp -d /tmp/pm.XXXXXX)
T_EXTRA_DIRS+=("$PM")
cat >"$CONTAINERS_REGISTRIES_CONF" <<EOF
unqualified-search-registries = []

[[registry]]
prefix = "alpha.test"
location = "alpha.test"
[[registry.mirror]]
location = "127.0.0.1:$MPORT/alpha.test"
insecure = true

[[registry]]
prefix = "beta.test"
location = "beta.test"
[[registry.mirror]]
location = "127.0.0.1:$MPORT/beta.test"
insecure = true
EOF
export CONTAINERS_CONF="$T_DIR/containers.conf"
cat >"$CONTAINERS_CONF" <<EOF
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$T_DIR/podman-events.log"
EOF
export CONTAINERS_STORAGE_CONF="$T_DIR/storage.conf"
cat >"$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "vfs"
runroot = "$PM/rr"
graphroot = "$PM/r"
EOF
podman_() {
	podman --root "$PM/r" --runroot "$PM/rr" --tmpdir "$PM/t" \
		--storage-driver vfs --cgroup-manager cgroupfs "$@"
}

for h in alpha.test beta.test; do
	timeout 60 podman --log-level debug --root "$PM/r" --runroot "$PM/rr" \
		--tmpdir "$PM/t" --storage-driver vfs --cgroup-manager cgroupfs \
		pull --signature-policy "$T_DIR/policy.json" "$h/app/demo:v1" \
		>"$T_DIR/pull-$h.out" 2>&1 ||
		{ grep -v 'level=debug' "$T_DIR/pull-$h.out" | tail -n 20 >&2;
		  fail "podman pull $h/app/demo:v1 through the mirror failed"; }
done

# The image IDs are the config digests of each upstream's image.
assert_eq "${A_CONFIG#sha256:}" \
	"$(podman_ image inspect --format '{{.Id}}' alpha.test/app/demo:v1)" \
	"image id of alpha.test/app/demo:v1"
assert_eq "${B_CONFIG#sha256:}" \
	"$(podman_ image inspect --format '{{.Id}}' beta.test/app/demo:v1)" \
	"image id of beta.test/app/demo:v1"

# The mirror's log: routed by the path's first component.
for h in alpha.test beta.test; do
	lines=$(mirror_access_grep "\"(GET|HEAD) /v2/$h/")
	[ -n "$lines" ] || fail "no access line for /v2/$h/ in the mirror's log"
	bad=$(printf '%s\n' "$lines" | grep -v " up=$h src=" || true)
	[ -z "$bad" ] || fail "requests for /v2/$h/ not served by up=$h:
$bad"
	bad=$(printf '%s\n' "$lines" | grep -vE '" 200 ' || true)
	[ -z "$bad" ] || fail "requests for /v2/$h/ not answered 200:
$bad"
	printf '%s\n' "$lines" |
		grep -E "\"(GET|HEAD) /v2/$h/app/demo/manifests/v1\"" >/dev/null ||
		fail "no request for the tag /v2/$h/app/demo/manifests/v1:
$lines"
done
check_blobs() { # JSON HOST
	local d
	for d in $(jq -r '.images[0] | .config.digest, .layers[].digest' "$1"); do
		mirror_access_grep "\"GET /v2/$2/app/demo/blobs/$d\" 200 .* up=$2 " |
			grep -q . || fail "no GET of /v2/$2/app/demo/blobs/$d served by up=$2"
	done
}
check_blobs "$T_DIR/alpha.json" alpha.test
check_blobs "$T_DIR/beta.json" beta.test

# No cross traffic; each registry served its own image's blobs.
registry_log_sync a
registry_log_sync b
cross() { # LOG JSON: GETs in LOG for the manifest or blobs of JSON
	local d n=0
	for d in $(jq -r '.top.digest, .blobs[]' "$2" | sort -u); do
		n=$((n + $(count_upstream_gets "$1" "/v2/app/demo/manifests/$d") +
			$(count_upstream_gets "$1" "/v2/app/demo/blobs/$d")))
	done
	echo "$n"
}
assert_eq 0 "$(cross "$A_LOG" "$T_DIR/beta.json")" \
	"GETs of beta's content at registry A"
assert_eq 0 "$(cross "$B_LOG" "$T_DIR/alpha.json")" \
	"GETs of alpha's content at registry B"
for pair in "A_LOG:alpha" "B_LOG:beta"; do
	log=${pair%%:*} log=${!log} img=${pair#*:}
	for d in $(jq -r '.images[0] | .config.digest, .layers[].digest' \
		"$T_DIR/$img.json"); do
		[ "$(count_upstream_gets_ok "$log" "/v2/app/demo/blobs/$d")" -ge 1 ] ||
			fail "the $img registry never served blob $d"
	done
done

mirror_alive
pass
