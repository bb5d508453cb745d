#!/bin/bash
# skopeo pulls a single-arch image and a multi-arch OCI index through the
# mirror: every byte and digest equals the upstream's; manifest HEAD/GET
# and blob HEAD headers equal the upstream's; tags/list matches; and a
# second pull within tag_ttl makes no upstream request at all.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need skopeo docker-registry
need_regmirror

mkimage "$T_DIR/single" single --seed t10-single --ref v1 \
	--layers 1000,50000,500000
mkimage "$T_DIR/multi" multi --seed t10-multi --ref v1 --layers 2000,100000

start_registry up
seed_image "$T_DIR/single" v1 "$UP_HOST" app/single:v1
seed_image "$T_DIR/multi" v1 "$UP_HOST" app/multi:v1
# another tag of the same image, first asked for with HEAD (cold)
seed_image "$T_DIR/single" v1 "$UP_HOST" app/single:cold

write_mirror_conf "$T_DIR/mirror.conf" "$(free_port)" "$T_DIR/cache" "$UP_URL"
start_mirror "$T_DIR/mirror.conf"

# pull IMG DEST: skopeo copy --all through the mirror.
pull() {
	skopeo_ copy -q --all --src-tls-verify=false \
		"docker://$MIRROR_HOST/app/$1:v1" "oci:$2:x" \
		>>"$T_DIR/skopeo-pull.log" 2>&1 ||
		{ tail -n 20 "$T_DIR/skopeo-pull.log" >&2;
		  fail "skopeo copy of app/$1:v1 through the mirror failed"; }
}

# -- first pull: cold ---------------------------------------------------------
for img in single multi; do
	pull "$img" "$T_DIR/pull1-$img"
	layout_same "$T_DIR/$img" "$T_DIR/pull1-$img"
	# The top digest, computed from the exact bytes each side serves.
	up=$(skopeo_ inspect --raw --tls-verify=false \
		"docker://$UP_HOST/app/$img:v1" | sha256sum | cut -d' ' -f1)
	mi=$(skopeo_ inspect --raw --tls-verify=false \
		"docker://$MIRROR_HOST/app/$img:v1" | sha256sum | cut -d' ' -f1)
	assert_eq "sha256:$up" "sha256:$mi" "app/$img:v1 manifest bytes"
	assert_eq "$(layout_top "$T_DIR/$img")" "sha256:$up" \
		"app/$img:v1 upstream digest"
done
[ "$(count_mirror_requests GET /v2/app/multi/blobs/sha256:)" -gt 0 ] ||
	fail "the mirror's log shows no blob GET for app/multi"

# -- headers: manifests by tag and by digest, HEAD and GET; blobs HEAD -------
ACCEPT=(-H 'Accept: application/vnd.oci.image.index.v1+json'
	-H 'Accept: application/vnd.oci.image.manifest.v1+json'
	-H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json'
	-H 'Accept: application/vnd.docker.distribution.manifest.v2+json')

# headers_of METHOD URL: the three headers that must match, one a line.
headers_of() {
	local m=$1 url=$2 h
	if [ "$m" = HEAD ]; then
		h=$(curl -sS -I --max-time 10 "${ACCEPT[@]}" "$url")
	else
		h=$(curl -sS -D - -o /dev/null --max-time 10 "${ACCEPT[@]}" "$url")
	fi
	h=$(printf '%s\n' "$h" | tr -d '\r')
	printf '%s\n' "$h" | head -n 1 | awk '{ print "status " $2 }'
	printf '%s\n' "$h" | grep -iE '^(content-type|content-length|docker-content-digest):' |
		sed 's/^\([^:]*\):[[:space:]]*/\L\1\E: /' | sort
}

check_headers() {
	local path=$1 m up mi
	for m in HEAD GET; do
		up=$(headers_of "$m" "$UP_URL$path")
		mi=$(headers_of "$m" "$MIRROR_URL$path")
		[ "$(printf '%s\n' "$up" | wc -l)" = 4 ] ||
			hard_error "upstream $m $path lacks a header: $up"
		[ "$up" = "$mi" ] || fail "$m $path: headers differ
upstream:
$up
mirror:
$mi"
	done
}

# cold: the mirror has never seen this tag; HEAD comes first
check_headers /v2/app/single/manifests/cold
for img in single multi; do
	check_headers "/v2/app/$img/manifests/v1"
	check_headers "/v2/app/$img/manifests/$(layout_top "$T_DIR/$img")"
	# The bytes of a GET by tag.
	up=$(curl -sf "${ACCEPT[@]}" "$UP_URL/v2/app/$img/manifests/v1" | sha256sum)
	mi=$(curl -sf "${ACCEPT[@]}" "$MIRROR_URL/v2/app/$img/manifests/v1" | sha256sum)
	assert_eq "$up" "$mi" "GET app/$img manifest body"
done
# a platform manifest of the index, by digest
check_headers "/v2/app/multi/manifests/$(jq -r '.images[1].manifest.digest' \
	"$T_DIR/multi.json")"

# blobs: HEAD must carry Content-Length and Docker-Content-Digest equal to
# upstream's (Content-Type of blobs is not compared).
for d in $(jq -r '.images[0] | .layers[].digest, .config.digest' \
	"$T_DIR/single.json"); do
	for base in "$UP_URL" "$MIRROR_URL"; do
		curl -sS -I --max-time 10 "$base/v2/app/single/blobs/$d" |
			tr -d '\r' | grep -iE '^(HTTP/|content-length:|docker-content-digest:)' |
			sed 's/^\([^:]*\):[[:space:]]*/\L\1\E: /;s/^HTTP[^ ]* \([0-9]*\).*/status \1/' |
			sort >"$T_DIR/blobhead-${base##*:}"
	done
	cmp -s "$T_DIR/blobhead-$UP_PORT" "$T_DIR/blobhead-$MIRROR_PORT" ||
		fail "HEAD blob $d: headers differ: upstream
$(cat "$T_DIR/blobhead-$UP_PORT")
mirror:
$(cat "$T_DIR/blobhead-$MIRROR_PORT")"
	# and a GET returns the exact bytes
	assert_eq "$(curl -sf "$UP_URL/v2/app/single/blobs/$d" | sha256sum)" \
		"$(curl -sf "$MIRROR_URL/v2/app/single/blobs/$d" | sha256sum)" \
		"GET blob $d"
done

# -- tags/list ----------------------------------------------------------------
up=$(curl -sf "$UP_URL/v2/app/single/tags/list" | jq -S -c .) ||
	hard_error "upstream tags/list failed"
mi=$(curl -sf "$MIRROR_URL/v2/app/single/tags/list" | jq -S -c .) ||
	fail "GET /v2/app/single/tags/list through the mirror failed"
assert_eq "$up" "$mi" "tags/list of app/single"
# Pagination: n and last are passed through, and so is any Link header.
seed_image "$T_DIR/single" v1 "$UP_HOST" app/single:v2
seed_image "$T_DIR/single" v1 "$UP_HOST" app/single:v3
for q in "n=1" "n=2&last=cold" "n=1&last=v2"; do
	curl -sf -D "$T_DIR/tl.up.h" -o "$T_DIR/tl.up.b" \
		"$UP_URL/v2/app/single/tags/list?$q" ||
		hard_error "upstream tags/list?$q failed"
	curl -sf -D "$T_DIR/tl.mi.h" -o "$T_DIR/tl.mi.b" \
		"$MIRROR_URL/v2/app/single/tags/list?$q" ||
		fail "GET tags/list?$q through the mirror failed"
	assert_eq "$(jq -S -c . "$T_DIR/tl.up.b")" \
		"$(jq -S -c . "$T_DIR/tl.mi.b")" "tags/list?$q body"
	assert_eq "$(grep -i '^link:' "$T_DIR/tl.up.h" | tr -d '\r')" \
		"$(grep -i '^link:' "$T_DIR/tl.mi.h" | tr -d '\r')" \
		"tags/list?$q Link header"
done
# (distribution 2.8 ignores n and sends no Link, so the check that they
# reach the upstream is its access log.)
registry_log_sync up
grep -q '"GET /v2/app/single/tags/list?n=1&last=v2 ' "$UP_LOG" ||
	fail "the mirror did not pass n and last on to the upstream"

# -- connection reuse: the cold pulls' upstream requests shared connections --
nreq=$(grep -c 'useragent=regmirror/' "$UP_LOG")
nconn=$(grep 'useragent=regmirror/' "$UP_LOG" |
	sed -n 's/.*http\.request\.remoteaddr="\([^"]*\)".*/\1/p' | sort -u | wc -l)
log "cold pulls: $nreq upstream requests over $nconn connections"
[ "$nreq" -gt 4 ] && [ "$nconn" -lt "$nreq" ] ||
	fail "no keep-alive: $nreq upstream requests over $nconn connections"

# -- second pull: warm, within tag_ttl: no upstream request at all -----------
registry_log_sync up
mark=$(log_mark "$UP_LOG")
mmark=$(log_mark "$MIRROR_LOG")
for img in single multi; do
	pull "$img" "$T_DIR/pull2-$img"
	layout_same "$T_DIR/$img" "$T_DIR/pull2-$img"
done
registry_log_sync up
n=$(count_upstream_requests "$UP_LOG" /v2/app/ "$mark")
[ "$n" = 0 ] || fail "the warm pull made $n upstream requests:
$(_access_lines "$UP_LOG" "$mark" '[A-Z]+' /v2/app/ | cut -c 1-200)"
# and the mirror did serve it
for img in single multi; do
	[ "$(count_mirror_requests GET "/v2/app/$img/manifests/" "$mmark")" -gt 0 ] ||
		fail "the mirror's log shows no manifest GET for app/$img in the warm pull"
done
[ "$(count_mirror_requests GET /v2/app/multi/blobs/sha256: "$mmark")" -gt 0 ] ||
	fail "the mirror's log shows no blob GET for app/multi in the warm pull"

mirror_alive
pass
