#!/bin/bash
# Replication filters and deletes: semver = ">=1.2 <2" keeps exactly the
# releases in range (not 1.0.0, 2.0.0, a 1.x pre-release or latest); with
# delete = yes a tag deleted at the source is deleted on the mirror at the
# next run (counted in GET /api/v1/replication), while the others stay; a
# bad semver range is a FILE:LINE config error.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo jq
need_regmirror

mkimage "$T_DIR/m1" single --seed t94-1 --ref v1 --layers 2000
mkimage "$T_DIR/m2" single --seed t94-2 --ref v1 --layers 3000
start_registry up
for t in 1.0.0 1.2.0 2.0.0 1.5.0-rc1 latest; do
	seed_image "$T_DIR/m1" v1 "$UP_HOST" "app/s:$t"
done
seed_image "$T_DIR/m2" v1 "$UP_HOST" app/s:1.9.1
D1=$(layout_top "$T_DIR/m1") D2=$(layout_top "$T_DIR/m2")

PA=$(free_port) AA=$(free_port)
write_mirror_base "$T_DIR/a.conf" "$PA" "$T_DIR/cache-a" 1h \
	"admin_listen = 127.0.0.1:$AA"
cat >>"$T_DIR/a.conf" <<EOC
[upstream "primary.test:5000"]
url = $UP_URL
default = yes
[replication "rel"]
source = primary.test:5000
repositories = app/s
semver = >=1.2 <2
delete = yes
interval = 1h
EOC
start_mirror "$T_DIR/a.conf" mirror-a
A=http://127.0.0.1:$AA
tags() { "$REGMIRROR" cache ls --json -c "$T_DIR/a.conf" |
	jq -r '.tags[] | select(.digest != "") | "\(.tag)=\(.digest)"' | sort; }

"$REGMIRROR" sync --mirror "$A" --wait >"$T_DIR/s1" || fail "sync: $(cat "$T_DIR/s1")"
assert_eq "1.2.0=$D1
1.9.1=$D2" "$(tags)" "tags within >=1.2 <2"

# Delete 1.9.1 at the source (its manifest, by digest).
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE \
	-H 'Accept: application/vnd.oci.image.manifest.v1+json' \
	"$UP_URL/v2/app/s/manifests/$D2")
assert_eq 202 "$code" "DELETE at the source"
"$REGMIRROR" sync --mirror "$A" --wait >"$T_DIR/s2" || fail "sync: $(cat "$T_DIR/s2")"
assert_eq "1.2.0=$D1" "$(tags)" "tags after the source deleted 1.9.1"
[ "$(curl -sf "$A/api/v1/replication" | jq -r '.policies[0].deleted')" = 1 ] ||
	fail "deletes not counted: $(curl -sf "$A/api/v1/replication")"
grep -q "app/s:1.9.1 is gone at primary.test:5000: deleted here" "$MIRROR_LOG" ||
	fail "the delete is not logged"

# A bad range is a config error with its line.
sed 's/^semver = .*/semver = >=banana/' "$T_DIR/a.conf" >"$T_DIR/bad.conf"
line=$(grep -n '^semver' "$T_DIR/bad.conf" | cut -d: -f1)
rc=0
"$REGMIRROR" check-config -c "$T_DIR/bad.conf" 2>"$T_DIR/err" || rc=$?
assert_eq 2 "$rc" "check-config exit for a bad semver range"
grep -q "bad.conf:$line: bad semver range" "$T_DIR/err" ||
	fail "error message: $(cat "$T_DIR/err")"
pass
