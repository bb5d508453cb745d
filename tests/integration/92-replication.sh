#!/bin/bash
# Replication across regions: a primary docker-registry; region A's mirror
# replicates from it (repositories glob app/*, tags v.*, exclude_tags
# .*-rc.*, keep_newest 2, platforms linux/amd64, interval 2s); region B's
# mirror has A as its upstream and replicates app/a from it.  Checks: the
# filters decide exactly what arrives (and only amd64 blobs of a multi-
# arch tag); a new tag pushed to the primary reaches A and B within an
# interval; a moved tag propagates by digest; a run over unchanged tags
# makes no manifest GET at the primary (one HEAD per tag); the primary's
# catalog is paged (maxentries 1) and every page is read; "regmirror sync
# --wait" and GET /api/v1/replication report runs and tags in sync.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo jq
need_regmirror

mkimage "$T_DIR/m1" multi --seed t92-1 --ref v1 --layers 3000,50000
mkimage "$T_DIR/m2" multi --seed t92-2 --ref v1 --layers 3000,60000
mkimage "$T_DIR/s3" single --seed t92-3 --ref v1 --layers 2000,40000
# The primary pages its catalog one repository at a time: the glob must
# follow Link headers (and must not ask for n above the registry's cap).
REGISTRY_EXTRA_YAML="catalog:
  maxentries: 1" start_registry up
for t in v1.0 v1.2 v1.10 latest v2.0-rc1; do
	seed_image "$T_DIR/m1" v1 "$UP_HOST" "app/a:$t"
done
seed_image "$T_DIR/s3" v1 "$UP_HOST" app/b:v3
seed_image "$T_DIR/s3" v1 "$UP_HOST" lib/c:v1
M1=$(layout_top "$T_DIR/m1") M2=$(layout_top "$T_DIR/m2")
ARM_LAYER=$(jq -r '.images[] | select(.platform.architecture == "arm64") |
	.layers[-1].digest' "$T_DIR/m1.json")
AMD_LAYER=$(jq -r '.images[] | select(.platform.architecture == "amd64") |
	.layers[-1].digest' "$T_DIR/m1.json")

# Region A.
PA=$(free_port) AA=$(free_port)
write_mirror_base "$T_DIR/a.conf" "$PA" "$T_DIR/cache-a" 1h \
	"admin_listen = 127.0.0.1:$AA"
cat >>"$T_DIR/a.conf" <<EOC
[upstream "primary.test:5000"]
url = $UP_URL
default = yes
[replication "apps"]
source = primary.test:5000
repositories = app/*
tags = v.*
exclude_tags = .*-rc.*
keep_newest = 2
platforms = linux/amd64
interval = 2s
EOC
start_mirror "$T_DIR/a.conf" mirror-a
A_URL=$MIRROR_URL
# Region B: its upstream is region A.
PB=$(free_port) AB=$(free_port)
write_mirror_base "$T_DIR/b.conf" "$PB" "$T_DIR/cache-b" 1h \
	"admin_listen = 127.0.0.1:$AB"
cat >>"$T_DIR/b.conf" <<EOC
[upstream "region-a.test"]
url = $A_URL
default = yes
[replication "from-a"]
source = region-a.test
repositories = app/a
tags = v1\..*
platforms = linux/amd64
interval = 2s
EOC
start_mirror "$T_DIR/b.conf" mirror-b

tags_of() {	# tags_of CONF: "upstream/repo:tag=digest" lines, sorted
	"$REGMIRROR" cache ls --json -c "$1" |
		jq -r '.tags[] | select(.digest != "") |
			"\(.upstream)/\(.repository):\(.tag)=\(.digest)"' | sort
}
"$REGMIRROR" sync --mirror "http://127.0.0.1:$AA" --wait >"$T_DIR/sync.out" ||
	fail "sync on A: $(cat "$T_DIR/sync.out")"
grep -q "^apps: idle, run [0-9]*: 3 tags in sync, 0 failed$" "$T_DIR/sync.out" ||
	fail "sync output: $(cat "$T_DIR/sync.out")"
assert_eq "primary.test:5000/app/a:v1.10=$M1
primary.test:5000/app/a:v1.2=$M1
primary.test:5000/app/b:v3=$(layout_top "$T_DIR/s3")" "$(tags_of "$T_DIR/a.conf")" \
	"tags replicated to A (v.*, no rc, newest 2, app/* only)"
registry_log_sync up
[ "$(count_upstream_gets_ok "$UP_LOG" /v2/_catalog)" -ge 2 ] ||
	fail "the paged catalog was not followed (app/b is on page 2)"
blob_in() { test -f "$1/blobs/sha256/${2:7:2}/${2#sha256:}"; }
blob_in "$T_DIR/cache-a" "$AMD_LAYER" || fail "amd64 layer not in A"
! blob_in "$T_DIR/cache-a" "$ARM_LAYER" || fail "arm64 layer replicated to A"
curl -sf "http://127.0.0.1:$AA/api/v1/replication" |
	jq -e '.policies[0].tags_synced >= 3 and .policies[0].name == "apps"' \
	>/dev/null || fail "GET /api/v1/replication"

# B follows A.
"$REGMIRROR" sync --mirror "http://127.0.0.1:$AB" --wait >/dev/null ||
	fail "sync on B"
has_tag() { tags_of "$1" | grep -qx "$2"; }
has_tag "$T_DIR/b.conf" "region-a.test/app/a:v1.10=$M1" ||
	fail "B lacks app/a:v1.10: $(tags_of "$T_DIR/b.conf")"

# A run over unchanged tags: HEADs at the primary, no manifest GET by tag.
registry_log_sync up
mark=$(log_mark "$UP_LOG")
"$REGMIRROR" sync --mirror "http://127.0.0.1:$AA" --wait >/dev/null ||
	fail "second sync on A"
registry_log_sync up
assert_eq 0 "$(count_upstream_gets "$UP_LOG" /v2/app/a/manifests/v "$mark")" \
	"manifest GETs by tag for unchanged tags"
[ "$(count_upstream_requests "$UP_LOG" /v2/app/a/manifests/v "$mark")" -ge 2 ] ||
	fail "no HEAD revalidation of the replicated tags"

# A new tag at the primary reaches A and B within an interval or two.
seed_image "$T_DIR/m1" v1 "$UP_HOST" app/a:v1.11
wait_for 20 has_tag "$T_DIR/a.conf" "primary.test:5000/app/a:v1.11=$M1" ||
	fail "v1.11 did not reach A: $(tags_of "$T_DIR/a.conf")"
wait_for 20 has_tag "$T_DIR/b.conf" "region-a.test/app/a:v1.11=$M1" ||
	fail "v1.11 did not reach B: $(tags_of "$T_DIR/b.conf")"

# A moved tag propagates by digest.
seed_image "$T_DIR/m2" v1 "$UP_HOST" app/a:v1.11
wait_for 20 has_tag "$T_DIR/a.conf" "primary.test:5000/app/a:v1.11=$M2" ||
	fail "moved v1.11 did not reach A: $(tags_of "$T_DIR/a.conf")"
wait_for 20 has_tag "$T_DIR/b.conf" "region-a.test/app/a:v1.11=$M2" ||
	fail "moved v1.11 did not reach B: $(tags_of "$T_DIR/b.conf")"
pass
