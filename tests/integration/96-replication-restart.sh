#!/bin/bash
# A restart in the middle of a replication run: the mirror is SIGKILLed
# while the run is fetching a (slow) layer; started again on the same
# cache, it knows from the index that the run was cut short, redoes it at
# once, and finishes: the tag and its blobs are there and verified, the
# run count continues from before the restart, and the policy reports
# that it resumed.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need jq
need_regmirror

mkimage "$T_DIR/img" single --seed t96 --ref v1 --layers 1000,1200000
# 1.2 MB at 256 KB/s: the fetch takes ~5 s, plenty of time to be cut.
start_fakeupstream src --layout "$T_DIR/img" --repo app/slow --rate 262144
PA=$(free_port) AA=$(free_port)
write_mirror_base "$T_DIR/m.conf" "$PA" "$T_DIR/cache" 1h \
	"admin_listen = 127.0.0.1:$AA"
cat >>"$T_DIR/m.conf" <<EOC
[upstream "src.test"]
url = $SRC_URL
default = yes
[replication "slow"]
source = src.test
repositories = app/slow
interval = 1h
EOC
start_mirror "$T_DIR/m.conf" mirror1
A=http://127.0.0.1:$AA
LAYER=$(jq -r '.images[0].layers[-1].digest' "$T_DIR/img.json")
# A fill in progress is a temp file named after the digest.
fetching() { compgen -G "$T_DIR/cache/tmp/${LAYER:7:16}.*" >/dev/null; }
wait_for 20 fetching || fail "the replication run did not start fetching"
kill -9 "$MIRROR_PID"
wait_for 10 sh -c "! kill -0 $MIRROR_PID 2>/dev/null" || fail "mirror survived SIGKILL"
test ! -f "$T_DIR/cache/blobs/sha256/${LAYER:7:2}/${LAYER#sha256:}" ||
	fail "the layer was already stored: the kill came too late to test"

start_mirror "$T_DIR/m.conf" mirror2
grep -q "replication slow: run 1 was cut short by a restart: resuming" \
	"$MIRROR_LOG" || fail "the restart did not see the cut run"
finished() { curl -sf "$A/api/v1/replication" | jq -e \
	'.policies[0] | .state == "idle" and .runs >= 2 and .last_tags == 1' \
	>/dev/null; }
wait_for 60 finished || fail "the resumed run did not finish: $(curl -sf "$A/api/v1/replication")"
curl -sf "$A/api/v1/replication" | jq -e '.policies[0].resumed == true' \
	>/dev/null || fail "the policy does not report that it resumed"
"$REGMIRROR" cache ls --json -c "$T_DIR/m.conf" |
	jq -e --arg d "$(layout_top "$T_DIR/img")" \
	'.tags | any(.tag == "v1" and .digest == $d)' >/dev/null ||
	fail "the tag was not replicated after the restart"
f="$T_DIR/cache/blobs/sha256/${LAYER:7:2}/${LAYER#sha256:}"
assert_eq "${LAYER#sha256:}" "$(sha256sum <"$f" | cut -d' ' -f1)" "stored layer"
pass
