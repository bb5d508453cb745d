#!/bin/bash
# The test kit against the real pieces, without regmirror: images from
# mkimage.py survive a push to docker-registry and a skopeo copy back
# byte for byte; the log counters count; htpasswd and token auth work with
# skopeo directly; fakeupstream.py's fault modes do what they say; dockerd
# pulls a mkimage.py image straight from the registry. When this fails,
# the other scenarios' failures say nothing about the daemon.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need skopeo htpasswd docker-registry dockerd "$DOCKER"

# -- images and an anonymous registry --------------------------------------
mkimage "$T_DIR/single" single --seed kit-s --ref v1 --layers 1000,20000,300000
mkimage "$T_DIR/multi" multi --seed kit-m --ref v1 --layers 5000,70000
mkimage "$T_DIR/raw" raw --seed kit-r --ref v1 --size 3000000
mkimage "$T_DIR/single2" single --seed kit-s --ref v1 --layers 1000,20000,300000
cmp -s "$T_DIR/single.json" "$T_DIR/single2.json" ||
	fail "mkimage.py is not deterministic"
layout_check "$T_DIR/single"
layout_check "$T_DIR/multi"
layout_check "$T_DIR/raw"
assert_eq 3000000 "$(jq '.images[0].layers[0].size' "$T_DIR/raw.json")" \
	"raw layer size"

start_registry up
seed_image "$T_DIR/single" v1 "$UP_HOST" app/single:v1
seed_image "$T_DIR/multi" v1 "$UP_HOST" app/multi:v1
seed_image "$T_DIR/raw" v1 "$UP_HOST" app/raw:v1
seed_image "$T_DIR/single" v1 "$UP_HOST" library/demo:v1 --format v2s2

# The registry keeps OCI manifests and the index byte for byte.
for img in single multi raw; do
	got=$(curl -sf -H 'Accept: application/vnd.oci.image.index.v1+json' \
		-H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		"$UP_URL/v2/app/$img/manifests/v1" | sha256sum | cut -d' ' -f1)
	assert_eq "$(layout_top "$T_DIR/$img")" "sha256:$got" \
		"registry's app/$img:v1 digest"
done

mark=$(log_mark "$UP_LOG")
for img in single multi raw; do
	skopeo_ copy -q --all --src-tls-verify=false \
		"docker://$UP_HOST/app/$img:v1" "oci:$T_DIR/copy-$img:x" ||
		fail "skopeo copy from the registry: app/$img"
	layout_same "$T_DIR/$img" "$T_DIR/copy-$img"
done
registry_log_sync up
# skopeo fetches each blob once; configs and layers are all blobs.
n=$(count_upstream_gets_ok "$UP_LOG" /v2/app/multi/blobs/ "$mark")
assert_eq "$(jq '[.images[] | .layers[], .config] | length' \
	"$T_DIR/multi.json")" "$n" "blob GETs counted for app/multi"
n=$(count_upstream_requests "$UP_LOG" /v2/app/single/ "$mark")
[ "$n" -ge 5 ] || fail "count_upstream_requests counted $n for app/single"
[ "$(count_upstream_gets "$UP_LOG" /v2/app/nothing/ 0)" = 0 ] ||
	fail "count_upstream_gets counts what is not there"

# The v2s2 copy: docker media types, same config (so same image id).
ct=$(curl -sf -o /dev/null -w '%{content_type}' \
	-H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
	"$UP_URL/v2/library/demo/manifests/v1")
assert_eq application/vnd.docker.distribution.manifest.v2+json "$ct" \
	"v2s2 manifest media type"

# -- htpasswd ---------------------------------------------------------------
start_registry basic --htpasswd alice s3cret
seed_image "$T_DIR/single" v1 "$BASIC_HOST" app/single:v1 \
	--dest-creds alice:s3cret
assert_eq 401 "$(http_code "$BASIC_URL/v2/app/single/manifests/v1")" \
	"anonymous GET on the htpasswd registry"
skopeo_ copy -q --all --src-tls-verify=false --src-creds alice:s3cret \
	"docker://$BASIC_HOST/app/single:v1" "oci:$T_DIR/copy-basic:x" ||
	fail "skopeo copy with basic credentials"
layout_same "$T_DIR/single" "$T_DIR/copy-basic"
if skopeo_ copy -q --src-tls-verify=false --src-creds alice:wrong \
	"docker://$BASIC_HOST/app/single:v1" "oci:$T_DIR/copy-basic2:x" \
	2>/dev/null; then
	fail "skopeo copy with a wrong password worked"
fi

# -- token auth -------------------------------------------------------------
start_tokenserver tok --user bob --password t0ken
start_registry tokreg --token tok
seed_image "$T_DIR/multi" v1 "$TOKREG_HOST" app/multi:v1 \
	--dest-creds bob:t0ken
before=$(count_token_requests "$TOK_LOG")
skopeo_ copy -q --all --src-tls-verify=false --src-creds bob:t0ken \
	"docker://$TOKREG_HOST/app/multi:v1" "oci:$T_DIR/copy-token:x" ||
	fail "skopeo copy with a token"
layout_same "$T_DIR/multi" "$T_DIR/copy-token"
after=$(count_token_requests "$TOK_LOG")
[ "$after" -gt "$before" ] || fail "no token fetched for the copy"
grep -q 'token-request method=GET user=bob service=test-tok scope=repository:app/multi:pull status=200' \
	"$TOK_LOG" || fail "token server log lacks bob's pull"
if skopeo_ copy -q --src-tls-verify=false \
	"docker://$TOKREG_HOST/app/multi:v1" "oci:$T_DIR/copy-token2:x" \
	2>/dev/null; then
	fail "anonymous copy from the token registry worked"
fi
if skopeo_ copy -q --src-tls-verify=false --src-creds bob:nope \
	"docker://$TOKREG_HOST/app/multi:v1" "oci:$T_DIR/copy-token3:x" \
	2>/dev/null; then
	fail "copy with a wrong token password worked"
fi
grep -q 'user=bob .*status=401$' "$TOK_LOG" ||
	fail "token server did not refuse the wrong password"

# -- fakeupstream.py modes ----------------------------------------------------
start_fakeupstream fake --blob-size 2000000 --mode ok
repo=$(jq -r .repo "$FAKE_INFO")
dg=$(jq -r .blob.digest "$FAKE_INFO")
size=$(jq -r .blob.size "$FAKE_INFO")
bpath=/v2/$repo/blobs/$dg
assert_eq 200 "$(http_code "$FAKE_URL/v2/")" "fake /v2/"
hdr=$(curl -sfI "$FAKE_URL/v2/$repo/manifests/v1" | tr -d '\r')
echo "$hdr" | grep -qix "docker-content-digest: $(jq -r .manifest.digest "$FAKE_INFO")" ||
	fail "fake manifest HEAD lacks its digest"
# fetch MODE -> "curl_rc bytes sha256"
fetch() {
	local rc=0
	curl -s --max-time 20 -o "$T_DIR/fake.body" "$FAKE_URL$bpath" || rc=$?
	echo "$rc $(stat -c %s "$T_DIR/fake.body") sha256:$(sha256_of "$T_DIR/fake.body")"
}
assert_eq "0 $size $dg" "$(fetch)" "fake mode ok"
fake_mode "$FAKE_URL" corrupt
read -r rc bytes sum <<<"$(fetch)"
[ "$rc" = 0 ] && [ "$bytes" = "$size" ] && [ "$sum" != "$dg" ] ||
	fail "fake corrupt: rc=$rc bytes=$bytes sum=$sum"
fake_mode "$FAKE_URL" truncate
read -r rc bytes sum <<<"$(fetch)"
[ "$rc" = 18 ] && [ "$bytes" = $((size / 2)) ] ||
	fail "fake truncate: rc=$rc bytes=$bytes (want curl 18, $((size / 2)))"
fake_mode "$FAKE_URL" reset
read -r rc bytes sum <<<"$(fetch)"
[ "$rc" = 56 ] && [ "$bytes" -lt "$size" ] ||
	fail "fake reset: rc=$rc bytes=$bytes (want curl 56, short)"
fake_mode "$FAKE_URL" stall
rc=0
curl -s --max-time 1 -o "$T_DIR/fake.body" "$FAKE_URL$bpath" || rc=$?
bytes=$(stat -c %s "$T_DIR/fake.body")
[ "$rc" = 28 ] && [ "$bytes" = $((size / 2)) ] ||
	fail "fake stall: rc=$rc bytes=$bytes (want curl 28, $((size / 2)))"
fake_mode "$FAKE_URL" status-503
assert_eq 503 "$(http_code "$FAKE_URL$bpath")" "fake status-503"
assert_eq 6 "$(fake_count "$FAKE_URL" "$bpath")" "fake GET count"
assert_eq 0 "$(fake_count "$FAKE_URL" "$bpath" HEAD)" "fake HEAD count"
grep -qF "fakeupstream \"GET $bpath\" 200 mode=reset sent=$((size / 2))" \
	"$FAKE_LOG" || fail "fake log line for reset"

# The fake serving an mkimage.py layout.
start_fakeupstream fakel --layout "$T_DIR/multi" --repo app/multi --tag v1
assert_eq "$(layout_top "$T_DIR/multi")" \
	"$(jq -r .manifest.digest "$FAKEL_INFO")" "fake --layout top digest"
skopeo_ copy -q --all --src-tls-verify=false \
	"docker://127.0.0.1:$FAKEL_PORT/app/multi:v1" "oci:$T_DIR/copy-fake:x" ||
	fail "skopeo copy from the fake upstream"
layout_same "$T_DIR/multi" "$T_DIR/copy-fake"

# -- dockerd pulls straight from the registry ------------------------------
start_dockerd --insecure-registry "$UP_HOST"
docker_ pull -q "$UP_HOST/library/demo:v1" >/dev/null ||
	fail "dockerd could not pull $UP_HOST/library/demo:v1"
assert_eq "$(jq -r '.images[0].config.digest' "$T_DIR/single.json")" \
	"$(docker_ image inspect -f '{{.Id}}' "$UP_HOST/library/demo:v1")" \
	"image id of the pulled demo:v1"
# the layers were extracted: a file of layer 2 has the right size
cid=$(docker_ create "$UP_HOST/library/demo:v1")
docker_ cp "$cid:/layer2/data.bin" "$T_DIR/data.bin"
assert_eq 300000 "$(stat -c %s "$T_DIR/data.bin")" "extracted layer file"
stop_pid "$DOCKERD_PID" 30 || fail "dockerd did not stop on TERM within 30s"
pass
