#!/bin/bash
# The mirror is never an open proxy: with one upstream, "alpha.test" (the
# default), a request whose ?ns= or /PREFIX/v2 names a registry that is
# not configured (evil.example) is refused with 404 and the OCI error code
# NAME_UNKNOWN (manifest GET and HEAD by tag, blob GET and HEAD by digest,
# in both forms), is NOT sent to the default upstream instead: the
# registry logs zero requests and the mirror (log_level = debug) logs no
# upstream exchange while they are served. A request with ns=alpha.test
# is served (200, right digest) with an `OCI-Namespace: alpha.test` header
# and does show up upstream (so the debug log is not silent anyway).
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo
need_regmirror

mkimage "$T_DIR/img" single --seed t75 --ref v1 --layers 1000,20000
start_registry up
seed_image "$T_DIR/img" v1 "$UP_HOST" app/demo:v1
TOP=$(layout_top "$T_DIR/img")
BLOB=$(jq -r '.images[0].layers[1].digest' "$T_DIR/img.json")

write_mirror_base "$T_DIR/mirror.conf" "$(free_port)" "$T_DIR/cache" 5m \
	"log_level = debug"
cat >>"$T_DIR/mirror.conf" <<EOF

[upstream "alpha.test"]
url = $UP_URL
default = yes
EOF
start_mirror "$T_DIR/mirror.conf"

ACCEPT=(-H 'Accept: application/vnd.oci.image.manifest.v1+json'
	-H 'Accept: application/vnd.oci.image.index.v1+json')

registry_log_sync up
umark=$(log_mark "$UP_LOG")
mmark=$(log_mark "$MIRROR_LOG")

# refused METHOD PATH: 404 and, for GET, NAME_UNKNOWN in the body.
refused() {
	local m=$1 p=$2 code body
	if [ "$m" = HEAD ]; then
		code=$(curl -s -o /dev/null -w '%{http_code}' -I --max-time 10 \
			"${ACCEPT[@]}" "$MIRROR_URL$p") || true
		assert_eq 404 "$code" "HEAD $p"
		return
	fi
	code=$(curl -s -o "$T_DIR/body" -w '%{http_code}' --max-time 10 \
		"${ACCEPT[@]}" "$MIRROR_URL$p") || true
	assert_eq 404 "$code" "GET $p"
	body=$(jq -r '.errors[0].code' "$T_DIR/body" 2>/dev/null) ||
		fail "GET $p: the body is not OCI error JSON: $(head -c 300 "$T_DIR/body")"
	assert_eq NAME_UNKNOWN "$body" "OCI error code of GET $p"
}
for m in GET HEAD; do
	refused $m "/v2/app/demo/manifests/v1?ns=evil.example"
	refused $m "/v2/app/demo/manifests/$TOP?ns=evil.example"
	refused $m "/v2/app/demo/blobs/$BLOB?ns=evil.example"
	refused $m "/evil.example/v2/app/demo/manifests/v1"
	refused $m "/evil.example/v2/app/demo/blobs/$BLOB"
done
# the base endpoint with a foreign ns
refused GET "/v2/?ns=evil.example"
refused GET "/evil.example/v2/"

# Nothing reached the registry (its only lines are our sync markers).
registry_log_sync up
seen=$(_access_lines "$UP_LOG" "$umark" '[A-Z]+' / | grep -vF '"GET /v2/?sync-' || true)
[ -z "$seen" ] || fail "refused requests reached the registry:
$seen"
# and the mirror logged no upstream exchange while serving them
ups=$(tail -n +"$((mmark + 1))" "$MIRROR_LOG" | grep -E ' upstream [^ ]+: ' || true)
[ -z "$ups" ] || fail "the mirror talked to an upstream for refused requests:
$ups"
[ "$(mirror_access_grep 'evil\.example' "$mmark" | grep -c '" 404 ')" = 12 ] ||
	fail "expected 12 access lines with 404 for evil.example:
$(mirror_access_grep 'evil\.example' "$mmark")"
bad=$(mirror_access_grep 'evil\.example' "$mmark" | grep -v ' up=- ' || true)
[ -z "$bad" ] || fail "refused requests logged with an upstream:
$bad"

# ns=alpha.test is served, with OCI-Namespace.
mmark=$(log_mark "$MIRROR_LOG")
curl -sS -D "$T_DIR/hdr" -o "$T_DIR/man" --max-time 10 "${ACCEPT[@]}" \
	"$MIRROR_URL/v2/app/demo/manifests/v1?ns=alpha.test" ||
	fail "GET with ns=alpha.test: curl failed"
tr -d '\r' <"$T_DIR/hdr" >"$T_DIR/hdr.txt"
assert_eq 200 "$(head -n 1 "$T_DIR/hdr.txt" | awk '{ print $2 }')" \
	"status of GET app/demo:v1 with ns=alpha.test"
assert_eq alpha.test "$(awk -F': ' 'tolower($1) == "oci-namespace" { print $2 }' \
	"$T_DIR/hdr.txt")" "OCI-Namespace header with ns=alpha.test"
assert_eq "$TOP" "sha256:$(sha256_of "$T_DIR/man")" \
	"digest of the manifest served with ns=alpha.test"
code=$(curl -s -o /dev/null -w '%{http_code}' -I --max-time 10 \
	-D "$T_DIR/hdr2" "$MIRROR_URL/v2/app/demo/blobs/$BLOB?ns=alpha.test") || true
assert_eq 200 "$code" "HEAD blob with ns=alpha.test"
tr -d '\r' <"$T_DIR/hdr2" | grep -qix 'oci-namespace: alpha.test' ||
	fail "HEAD blob with ns=alpha.test: no OCI-Namespace: alpha.test header:
$(cat "$T_DIR/hdr2")"
mirror_access_grep '"GET /v2/app/demo/manifests/v1\?ns=alpha\.test" 200 .* up=alpha\.test ' \
	"$mmark" | grep -q . ||
	fail "no access line for the ns=alpha.test GET served by up=alpha.test"
tail -n +"$((mmark + 1))" "$MIRROR_LOG" |
	grep -qE ' upstream alpha\.test: (GET|HEAD) ' ||
	fail "log_level = debug shows no upstream exchange even for ns=alpha.test"

mirror_alive
pass
