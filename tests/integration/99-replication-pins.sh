#!/bin/bash
# Replicated content is pinned while its tag matches the policy.  A mirror
# replicates app/a from a primary docker-registry (tags v.*, keep_newest =
# 1, interval 1h: after the start-up run, runs happen only when "regmirror
# sync --wait" asks for one).  Images X, Y and Z share their first layer;
# their other layer and their config are their own.  Checks, from
# "regmirror cache ls --json" (pinned_until: -1 pinned forever, 0 not
# pinned):
#  1. app/a:v1 = X at the primary; after a sync exactly X's blobs are
#     cached, all pinned.
#  2. app/a:v2 = Y pushed; after a sync Y's blobs are pinned, X's own
#     blobs are no longer pinned though app/a:v1 is still cached (it just
#     stopped being the newest), the shared layer stays pinned, and the
#     mirror logs that app/a:v1 was unpinned.
#  3. app/a:v2 moved to Z; after a sync Z's blobs are pinned, Y's own
#     blobs are no longer pinned (X's still are not), the shared layer
#     stays pinned, and the mirror logs that app/a:v2 was unpinned (each
#     tag once).
#  4. "regmirror cache evict --to 0" removes exactly the unpinned blobs
#     (X's and Y's own: 4) and keeps every pinned one (Z's, still pinned).
#  5. With a second policy "all" (every v* tag, no keep_newest) holding
#     v1 and v2, "apps" moving on to v3 (W) releases v2, but Z's blobs
#     stay pinned: another policy still holds them.
# The source upstream is named "primary" (no dot: not a host name).
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo jq
need_regmirror

# Same seed, same first layer size: the first layer is the same blob.
mkimage "$T_DIR/x" single --seed t99 --ref v1 --layers 2000,30000
mkimage "$T_DIR/y" single --seed t99 --ref v1 --layers 2000,50000
mkimage "$T_DIR/z" single --seed t99 --ref v1 --layers 2000,70000
X=$(layout_top "$T_DIR/x") Y=$(layout_top "$T_DIR/y") Z=$(layout_top "$T_DIR/z")
blobs_of() {	# blobs_of NAME: config and layer digests, one a line
	jq -r '.images[0] | .config.digest, .layers[].digest' "$T_DIR/$1.json"
}
SHARED=$(jq -r '.images[0].layers[0].digest' "$T_DIR/x.json")
for i in y z; do
	assert_eq "$SHARED" "$(jq -r '.images[0].layers[0].digest' \
		"$T_DIR/$i.json")" "first layer of $i (shared with x)"
done
own() {		# own NAME: its blobs but the shared layer
	blobs_of "$1" | grep -vx "$SHARED"
}
assert_eq 2 "$(own x | wc -l)" "blobs of x that y and z lack"
if [ -n "$(comm -12 <(own x | sort) <(own y | sort))" ] ||
	[ -n "$(comm -12 <(own y | sort) <(own z | sort))" ]; then
	fail "x, y and z share more than their first layer"
fi

start_registry up
seed_image "$T_DIR/x" v1 "$UP_HOST" app/a:v1

P=$(free_port) A=$(free_port)
CONF=$T_DIR/mirror.conf
write_mirror_base "$CONF" "$P" "$T_DIR/cache" 1h "admin_listen = 127.0.0.1:$A"
cat >>"$CONF" <<EOC
[upstream "primary"]
url = $UP_URL
default = yes
[replication "apps"]
source = primary
repositories = app/a
tags = v.*
keep_newest = 1
interval = 1h
EOC
start_mirror "$CONF"

sync_wait() {	# sync_wait STEP: one run, 1 tag in sync
	"$REGMIRROR" sync --mirror "http://127.0.0.1:$A" --wait \
		>"$T_DIR/sync-$1.out" 2>&1 ||
		fail "step $1: sync: $(cat "$T_DIR/sync-$1.out")"
	grep -q "^apps: idle, run [0-9]*: 1 tags in sync, 0 failed$" \
		"$T_DIR/sync-$1.out" ||
		fail "step $1: sync output: $(cat "$T_DIR/sync-$1.out")"
}
ls_json() { "$REGMIRROR" cache ls --json -c "$CONF"; }
tags() {	# repo:tag=digest of the cached tags, sorted
	ls_json | jq -r '.tags[] | select(.digest != "") |
		"\(.repository):\(.tag)=\(.digest)"' | sort
}
pin_of() {	# pin_of DIGEST: its pinned_until, empty when not cached
	ls_json | jq -r --arg d "$1" \
		'.blobs[] | select(.digest == $d) | .pinned_until'
}
# expect_pins STEP WANT NAME...: every blob of each image is cached with
# pinned_until WANT (-1 or 0); "own:NAME" leaves out the shared layer.
expect_pins() {
	local step=$1 want=$2 n d
	local -a ds
	shift 2
	for n in "$@"; do
		case $n in
		own:*) mapfile -t ds < <(own "${n#own:}") ;;
		*) mapfile -t ds < <(blobs_of "$n") ;;
		esac
		[ "${#ds[@]}" -gt 0 ] || fail "step $step: no blobs for $n"
		for d in "${ds[@]}"; do
			assert_eq "$want" "$(pin_of "$d")" \
				"step $step: pinned_until of $n blob $d"
		done
	done
}
cached_blobs() { ls_json | jq -r '.blobs[].digest' | sort; }

# 1. X is the newest matching tag: pinned.
sync_wait 1
assert_eq "app/a:v1=$X" "$(tags)" "step 1: cached tags"
assert_eq "$(blobs_of x | sort)" "$(cached_blobs)" "step 1: cached blobs"
expect_pins 1 -1 x

# 2. v2 (Y) is newer: keep_newest moves on, X's own blobs lose their pin.
seed_image "$T_DIR/y" v1 "$UP_HOST" app/a:v2
sync_wait 2
assert_eq "app/a:v1=$X
app/a:v2=$Y" "$(tags)" "step 2: cached tags (v1 still cached)"
expect_pins 2 -1 y
expect_pins 2 0 own:x
grep -q "replication apps: app/a:v1 no longer matches the policy (or moved): unpinned" \
	"$MIRROR_LOG" || fail "step 2: the unpinning of app/a:v1 is not logged"

# 3. v2 moves to Z: Y's own blobs lose their pin, Z's are pinned.
seed_image "$T_DIR/z" v1 "$UP_HOST" app/a:v2
sync_wait 3
assert_eq "app/a:v1=$X
app/a:v2=$Z" "$(tags)" "step 3: cached tags"
expect_pins 3 -1 z
expect_pins 3 0 own:x own:y
unpins=$(grep -o "replication apps: app/a:v[0-9]* no longer matches the \
policy (or moved): unpinned" "$MIRROR_LOG" | cut -d' ' -f3)
assert_eq "app/a:v1
app/a:v2" "$unpins" "step 3: unpinnings logged (v1, then the moved v2)"

# 4. Evicting down to nothing takes exactly the unpinned blobs.
out=$("$REGMIRROR" cache evict --to 0 --json -c "$CONF") ||
	fail "step 4: cache evict: $out"
assert_eq 4 "$(jq -r .evicted <<<"$out")" "step 4: blobs evicted"
assert_eq "$(blobs_of z | sort)" "$(cached_blobs)" "step 4: blobs left"
expect_pins 4 -1 z
mirror_alive

# 5. Pins are shared between policies: a second policy "all" (every v*
# tag) holds v1 and v2; when "apps" moves on to v3 (W) it releases v2,
# but Z's blobs stay pinned for "all".
mkimage "$T_DIR/w" single --seed t99 --ref v1 --layers 2000,90000
stop_pid "$MIRROR_PID" || fail "step 5: the mirror did not stop"
cat >>"$CONF" <<EOC
[replication "all"]
source = primary
repositories = app/a
tags = v.*
interval = 1h
EOC
start_mirror "$CONF" mirror2
sync_one() {	# sync_one STEP POLICY TAGS
	"$REGMIRROR" sync "$2" --mirror "http://127.0.0.1:$A" --wait \
		>"$T_DIR/sync-$1.out" 2>&1 ||
		fail "step $1: sync $2: $(cat "$T_DIR/sync-$1.out")"
	grep -q "^$2: idle, run [0-9]*: $3 tags in sync, 0 failed$" \
		"$T_DIR/sync-$1.out" ||
		fail "step $1: sync $2 output: $(cat "$T_DIR/sync-$1.out")"
}
sync_one 5a all 2
expect_pins 5a -1 x z
seed_image "$T_DIR/w" v1 "$UP_HOST" app/a:v3
sync_one 5b apps 1
grep -q "replication apps: app/a:v2 no longer matches the policy (or moved): unpinned" \
	"$MIRROR_LOG" || fail "step 5: apps did not release app/a:v2"
expect_pins 5b -1 w z x
pass
