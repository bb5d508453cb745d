#!/bin/bash
# An upstream like Docker Hub: "beta.test" is a token-auth docker-registry
# (tokenserver.py) behind nginx, which proxies everything to the registry
# except authenticated blob GETs, answered with 307 to a separate "CDN"
# (cdn.py, on another port, serving the registry's blob files). The mirror
# has username/password_file; skopeo pulls anonymously through it.
# Checks: the copy succeeds with every digest right; the CDN served every
# blob of the image (config and layers); NO request the CDN received
# carried an Authorization header (credentials never follow a redirect to
# another origin); the token server granted the mirror (bob) a pull
# token; in nginx's access log (JSON, what the mirror sent upstream) the
# manifest requests answered 200 carried Authorization: Bearer, and the
# blob GETs were answered 307 and carried Bearer too.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo nginx
need_regmirror

mkimage "$T_DIR/v1" single --seed t74-v1 --ref v1 --layers 1000,30000,120000
start_tokenserver tok --user bob --password 'b0b-pw' --expires 300
start_registry up --token tok
seed_image "$T_DIR/v1" v1 "$UP_HOST" app/tok:v1 --dest-creds 'bob:b0b-pw'
assert_eq 401 "$(http_code "$UP_URL/v2/app/tok/manifests/v1")" \
	"tokenless GET on the registry"

# -- the CDN --------------------------------------------------------------------
CDN_DIR="$T_DIR/cdn"
mkdir -p "$CDN_DIR"
"$PY" "$T_HERE/cdn.py" --root "$UP_ROOT" --port-file "$CDN_DIR/port" \
	--log "$CDN_DIR/requests.jsonl" >>"$CDN_DIR/cdn.log" 2>&1 &
CDN_PID=$!
register_pid "$CDN_PID" cdn "$CDN_DIR/cdn.log"
wait_for 20 test -s "$CDN_DIR/port" || hard_error "cdn.py did not start"
CDN_PORT=$(cat "$CDN_DIR/port")
pid_listens "$CDN_PID" "$CDN_PORT" || hard_error "cdn.py does not own :$CDN_PORT"
d=$(jq -r '.images[0].layers[0].digest' "$T_DIR/v1.json")
assert_eq "$d" "sha256:$(curl -sf --max-time 10 \
	"http://127.0.0.1:$CDN_PORT/blobs/sha256/${d#sha256:}" | sha256sum |
	cut -d' ' -f1)" "the CDN serving a blob of the registry (self-test)"
: >"$CDN_DIR/requests.jsonl"

# -- nginx in front of the registry ---------------------------------------------
NPORT=$(free_port)
NDIR="$T_DIR/nginx-front"
mkdir -p "$NDIR/logs" "$NDIR/tmp"
cat >"$NDIR/nginx.conf" <<EOF
worker_processes 1;
pid $NDIR/nginx.pid;
error_log $NDIR/logs/error.log info;
events { worker_connections 256; }
http {
	client_body_temp_path $NDIR/tmp/body;
	proxy_temp_path $NDIR/tmp/proxy;
	fastcgi_temp_path $NDIR/tmp/fastcgi;
	uwsgi_temp_path $NDIR/tmp/uwsgi;
	scgi_temp_path $NDIR/tmp/scgi;
	map \$http_authorization \$authkind {
		""		none;
		~*^bearer\\s	bearer;
		~*^basic\\s	basic;
		default		other;
	}
	log_format reqjson escape=json '{"method":"\$request_method",'
		'"uri":"\$request_uri","status":"\$status",'
		'"auth":"\$authkind","location":"\$sent_http_location"}';
	access_log $NDIR/logs/access.jsonl reqjson;
	server {
		listen 127.0.0.1:$NPORT;
		proxy_http_version 1.1;
		proxy_set_header Host \$http_host;
		proxy_set_header Connection "";
		proxy_buffering off;
		proxy_request_buffering off;
		location ~ "^/v2/(.+)/blobs/sha256:([0-9a-f]{64})\$" {
			# before \$authkind: its map's regex resets \$1, \$2
			set \$blobhex \$2;
			set \$redir "\$request_method:\$authkind";
			if (\$redir = "GET:bearer") {
				return 307 http://127.0.0.1:$CDN_PORT/blobs/sha256/\$blobhex;
			}
			proxy_pass http://127.0.0.1:$UP_PORT;
		}
		location / {
			proxy_pass http://127.0.0.1:$UP_PORT;
		}
	}
}
EOF
start_nginx front "$NDIR/nginx.conf" "$NPORT"
NLOG="$NDIR/logs/access.jsonl"
# nginx relays the registry's challenge (its realm is the token server)
curl -sS -D - -o /dev/null --max-time 10 \
	"http://127.0.0.1:$NPORT/v2/app/tok/manifests/v1" | tr -d '\r' |
	grep -qi "^www-authenticate: bearer realm=\"$TOK_URL/token\"" ||
	hard_error "nginx does not relay the registry's token challenge"

# -- the mirror ----------------------------------------------------------------
printf '%s\n' 'b0b-pw' >"$T_DIR/pw"
write_mirror_base "$T_DIR/mirror.conf" "$(free_port)" "$T_DIR/cache" 5m
cat >>"$T_DIR/mirror.conf" <<EOF

[upstream "beta.test"]
url = http://127.0.0.1:$NPORT
default = yes
username = bob
password_file = $T_DIR/pw
# The CDN is another port of the registry's (loopback) address: listed.
redirect_hosts = 127.0.0.1:$CDN_PORT
EOF
start_mirror "$T_DIR/mirror.conf"

tmark=$(log_mark "$TOK_LOG")
nmark=$(log_mark "$NLOG")
skopeo_ copy -q --all --src-tls-verify=false \
	"docker://$MIRROR_HOST/app/tok:v1" "oci:$T_DIR/pull:x" \
	>"$T_DIR/skopeo-pull.log" 2>&1 ||
	{ tail -n 20 "$T_DIR/skopeo-pull.log" >&2;
	  fail "skopeo copy of app/tok:v1 through the mirror failed"; }
layout_same "$T_DIR/v1" "$T_DIR/pull"

# The CDN served every blob (nginx's log is written after the response,
# the CDN's too: wait for the lines rather than assume them).
BLOBS=$(jq -r '.images[0] | .config.digest, .layers[].digest' "$T_DIR/v1.json")
cdn_served() {
	local d
	for d in $BLOBS; do
		jq -e -s --arg p "/blobs/sha256/${d#sha256:}" \
			'any(.[]; .method == "GET" and .path == $p and .status == 200)' \
			"$CDN_DIR/requests.jsonl" >/dev/null || return 1
	done
}
wait_for 10 cdn_served || fail "the CDN did not serve every blob with 200:
$(jq -c '[.method, .path, .status]' "$CDN_DIR/requests.jsonl")"

# ... and never saw credentials.
leaks=$(jq -c 'select([.headers[][0] | ascii_downcase] |
	index("authorization") or index("cookie") or
	index("proxy-authorization")) | {method, path, headers}' \
	"$CDN_DIR/requests.jsonl")
[ -z "$leaks" ] || fail "requests to the CDN carried credentials:
$leaks"

# The token server granted bob a pull token for app/tok.
tail -n +"$((tmark + 1))" "$TOK_LOG" | grep -E \
	'^token-request method=(GET|POST) user=bob service=test-tok scope=[^ ]*repository:app/tok:pull[^ ]* status=200$' \
	>/dev/null || fail "the token server has no grant for bob on app/tok:
$(tail -n +"$((tmark + 1))" "$TOK_LOG")"

# What the mirror sent upstream, as nginx saw it.
nginx_lines() { tail -n +"$((nmark + 1))" "$NLOG"; }
n_redirects() {
	nginx_lines | jq -s '[.[] | select(.method == "GET" and .status == "307"
		and (.uri | test("^/v2/app/tok/blobs/sha256:")))] | length'
}
all_redirected() { [ "$(n_redirects)" -ge "$(echo "$BLOBS" | wc -w)" ]; }
wait_for 10 all_redirected ||
	fail "nginx did not redirect every blob GET of the mirror to the CDN:
$(nginx_lines)"
bad=$(nginx_lines | jq -c 'select((.uri | test("^/v2/app/tok/manifests/")) and
	.status == "200" and .auth != "bearer")')
[ -z "$bad" ] || fail "manifest requests answered 200 without a Bearer token:
$bad"
nginx_lines | jq -e -s 'any(.[]; (.uri | test("^/v2/app/tok/manifests/")) and
	.status == "200" and .auth == "bearer")' >/dev/null ||
	fail "no manifest request with a Bearer token answered 200 in nginx's log:
$(nginx_lines)"
bad=$(nginx_lines | jq -c 'select(.status == "307" and .auth != "bearer")')
[ -z "$bad" ] || fail "redirected blob GETs without a Bearer token: $bad"

mirror_alive
pass
