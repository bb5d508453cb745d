#!/bin/bash
# A member sent SIGTERM in the middle of a download through the tier's
# front (deploy/haproxy/regmirror.cfg, Debian's haproxy):
#  - its /readyz turns 503 at once, and haproxy marks it down;
#  - new requests for what it owns go to another member while it drains
#    (none reaches it once haproxy has marked it down);
#  - its listener closes after [server] drain (connections refused);
#  - the download in flight (read slowly; its cold fill is stored long
#    before) completes with the right bytes, and only then does the
#    member exit, 0.  (A fill that outlives its clients holds the exit
#    too: 106-readyz-drain e.)
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo haproxy curl jq
need_regmirror

mkimage "$T_DIR/big" raw --size $((48 * 1024 * 1024)) --seed t104 --ref v1
start_registry up
seed_image "$T_DIR/big" v1 "$UP_HOST" app/big:v1
D=$(jq -r '.images[0].layers[0].digest' "$T_DIR/big.json")
WANT=${D#sha256:}

for m in a b c; do
	write_member_conf $m "$UP_URL" "drain = 3s" "shutdown_timeout = 60s"
done
for m in a b c; do start_member $m; done
start_haproxy

# The blob's owner: the member the front sends a HEAD of it to.
for m in A B C; do v=${m}_LOG; eval "mark_$m=\$(log_mark \"\${!v}\")"; done
assert_eq 200 "$(http_code "$FRONT_URL/v2/app/big/blobs/$D" -I)" "HEAD through the front"
owner=''
for m in A B C; do
	v=${m}_LOG mk=mark_$m
	if tail -n +"$((${!mk} + 1))" "${!v}" | grep -qF "\"HEAD /v2/app/big/blobs/$D"; then
		owner="$owner$m"
	fi
done
[ "${#owner}" = 1 ] || fail "HEAD reached members '$owner', want one"
OPID=${owner}_PID OLOG=${owner}_LOG OADMIN=${owner}_ADMIN OPORT=${owner}_PORT
ONAME=$(echo "$owner" | tr A-Z a-z)
log "owner of $D: member $ONAME"

# A cold download, read at 6 MB/s: about 8 s.
curl -s --limit-rate 6M -o "$T_DIR/big.blob" "$FRONT_URL/v2/app/big/blobs/$D" &
CURL=$!
got_some() { [ "$(stat -c %s "$T_DIR/big.blob" 2>/dev/null || echo 0)" -gt 1000000 ]; }
wait_for 30 got_some || fail "the download did not start"

kill -TERM "${!OPID}"
not_ready() { [ "$(http_code "${!OADMIN}/readyz")" = 503 ]; }
wait_for 1 not_ready || fail "/readyz of the draining member is not 503 within 1 s"
assert_eq draining "$(curl -s "${!OADMIN}/readyz" | jq -r .reason)" "readyz reason"
marked_down() { grep -q "Server regmirror/$ONAME is DOWN" "$HAPROXY_LOG"; }
wait_for 10 marked_down || fail "haproxy did not mark member $ONAME down"
omark=$(log_mark "${!OLOG}")

# New requests for the owner's blob now go elsewhere, and succeed.
for i in 1 2 3; do
	assert_eq 200 "$(http_code "$FRONT_URL/v2/app/big/blobs/$D" -I)" \
		"HEAD $i through the front while $ONAME drains"
done
assert_eq 0 "$(tail -n +"$((omark + 1))" "${!OLOG}" | grep -c ' access r' || true)" \
	"requests that reached the draining member after haproxy marked it down"

refused() { [ "$(http_code "http://127.0.0.1:${!OPORT}/v2/")" = 000 ]; }
wait_for 10 refused || fail "the draining member still accepts after drain"
is_alive "$CURL" || fail "the download ended before the listener closed (too fast to test)"
is_alive "${!OPID}" || fail "member $ONAME exited with a download in flight"

wait "$CURL" || fail "the download in flight failed (curl exit $?)"
assert_eq "$WANT" "$(sha256_of "$T_DIR/big.blob")" "sha256 of the drained download"
exited() { ! is_alive "${!OPID}"; }
wait_for 20 exited || fail "member $ONAME did not exit after its last download"
rc=0
wait "${!OPID}" || rc=$?
assert_eq 0 "$rc" "exit status of the drained member"
[ -f "$(cache_blob_file "$T_DIR/cache-$ONAME" "$D")" ] ||
	fail "the fill in flight was not stored before the exit"
grep -q "drained: shutting down" "${!OLOG}" || fail "no 'drained' line in its log"
pass
