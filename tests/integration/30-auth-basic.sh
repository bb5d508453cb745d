#!/bin/bash
# An upstream with htpasswd (Basic) auth: the mirror, configured with
# username and password_file, serves anonymous clients; with a wrong
# password the pull fails with a 401/403 OCI error from the mirror, never
# a 5xx.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo htpasswd
need_regmirror

mkimage "$T_DIR/img" single --seed t30-basic --ref v1 --layers 1000,40000,200000
start_registry up --htpasswd alice 'S3cret!pw'
seed_image "$T_DIR/img" v1 "$UP_HOST" app/private:v1 --dest-creds 'alice:S3cret!pw'
assert_eq 401 "$(http_code "$UP_URL/v2/app/private/manifests/v1")" \
	"anonymous GET on the upstream"

# -- right password -------------------------------------------------------
printf '%s' 'S3cret!pw' >"$T_DIR/pw"
write_mirror_conf "$T_DIR/mirror.conf" "$(free_port)" "$T_DIR/cache" "$UP_URL" \
	"username = alice" "password_file = $T_DIR/pw"
start_mirror "$T_DIR/mirror.conf"
skopeo_ copy -q --all --src-tls-verify=false \
	"docker://$MIRROR_HOST/app/private:v1" "oci:$T_DIR/pull:x" \
	>"$T_DIR/skopeo-ok.log" 2>&1 ||
	{ cat "$T_DIR/skopeo-ok.log" >&2;
	  fail "anonymous skopeo copy through the authenticating mirror failed"; }
layout_same "$T_DIR/img" "$T_DIR/pull"
registry_log_sync up
[ "$(count_upstream_gets_ok "$UP_LOG" /v2/app/private/blobs/)" -ge 4 ] ||
	fail "the upstream did not serve the blobs to the mirror"
mirror_alive
stop_pid "$MIRROR_PID" 15 || fail "regmirror did not stop on TERM"

# -- wrong password ---------------------------------------------------------
printf '%s' 'wrong' >"$T_DIR/pw-bad"
write_mirror_conf "$T_DIR/mirror-bad.conf" "$(free_port)" "$T_DIR/cache-bad" \
	"$UP_URL" "username = alice" "password_file = $T_DIR/pw-bad"
start_mirror "$T_DIR/mirror-bad.conf" mirror-bad
if skopeo_ copy -q --all --src-tls-verify=false \
	"docker://$MIRROR_HOST/app/private:v1" "oci:$T_DIR/pull-bad:x" \
	>"$T_DIR/skopeo-bad.log" 2>&1; then
	fail "skopeo copy worked with a wrong upstream password"
fi

# check_refusal PATH: 401 or 403 with an OCI error body.
check_refusal() {
	local code
	code=$(curl -s -o "$T_DIR/body" -w '%{http_code}' --max-time 20 \
		"$MIRROR_URL$1") || true
	case $code in
	401 | 403) ;;
	*) fail "GET $1 with a wrong upstream password: status $code, want 401/403; body: $(head -c 300 "$T_DIR/body")" ;;
	esac
	jq -e '.errors[0].code | strings' "$T_DIR/body" >/dev/null ||
		fail "GET $1: not an OCI error body: $(head -c 300 "$T_DIR/body")"
}
check_refusal /v2/app/private/manifests/v1
check_refusal "/v2/app/private/manifests/$(layout_top "$T_DIR/img")"
check_refusal "/v2/app/private/blobs/$(jq -r '.images[0].layers[0].digest' "$T_DIR/img.json")"
[ -z "$(find "$T_DIR/cache-bad" -name "$(jq -r '.images[0].layers[0].digest' "$T_DIR/img.json" | cut -d: -f2)*" 2>/dev/null)" ] ||
	fail "a blob was cached without upstream access"
mirror_alive
pass
