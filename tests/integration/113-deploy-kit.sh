#!/bin/bash
# The staging/production kit (deploy/examples/, deploy/rollout.sh).
#  1. Every example mirror.conf passes "regmirror check-config" for
#     real: a copy with /etc/regmirror and /var/lib/regmirror moved under
#     a temp root (sed), where each file the copy names is created (mode
#     0600, one token line), so every FILE key is opened; no warning is
#     printed; a copy missing one of those files fails (the check reads
#     them).  The examples name no other absolute path.
#  2. The tier keys: each production region has front = its front door,
#     job_token_file, trusted_proxies, a locked admin listener and TLS;
#     every region's registry.example.com upstream is the primary's
#     front door.
#  3. The replication filters, as written in the examples (their
#     [replication] sections, repositories cut to org/api), run against
#     a docker-registry holding release, pre-release, main- and other
#     tags: production regions end up with exactly the newest three
#     releases in range, staging with exactly the -rc and main- tags,
#     the primary with both.
#  4. HAProxy: "haproxy -c" accepts deploy/examples/haproxy/regmirror-tls.cfg
#     with each region's .env (certificates generated for the test; the
#     only warnings are the members' names not resolving here), and each
#     .env's member ports are its region's listen and admin_listen ports;
#     its directives are deploy/haproxy/regmirror.cfg's plus the TLS ones
#     (no drift in hashing, checks, retries, timeouts).  Then for real, in front of one member with HTTPS registry and admin
#     listeners: skopeo copies an image through the TLS front door (every
#     blob verified) and the /readyz checks over TLS never mark it down;
#     with another CA for the members, the check fails the handshake
#     (Layer6) and the front answers 503.
#  5. Client configs: every daemon.json parses (jq) and names its
#     region's front door as its only mirror; every hosts.toml and
#     registries.conf.d file parses (python3 tomllib) and sends its
#     registry to that front door (containerd: the host; podman: the
#     host plus the registry as the first path component).
#  6. deploy/rollout.sh under dash against two real mirrors ("regions",
#     one with a token-locked HTTPS admin listener, one plain) and a
#     docker-registry: prints exactly NAME@DIGEST per image (the
#     registry's digests), exits 0, the second region was asked for the
#     digest, both hold the blobs pinned; a region that is down makes it
#     exit 1 with "REGION FAILED" and nothing on stdout, also when it is
#     the first one (the next region resolves); a wrong token too; a
#     usage error or a bad regions line exits 2.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo jq haproxy openssl dash
need_regmirror

EX=$top_srcdir/deploy/examples
ROLLOUT=$top_srcdir/deploy/rollout.sh
REGIONS="primary eu-production us-production eu-staging us-staging"
PRODUCTION="eu-production us-production"
STAGING="eu-staging us-staging"
declare -A FRONT=(
	[primary]=mirror.primary.example.net
	[eu-production]=mirror.eu.example.net
	[us-production]=mirror.us.example.net
	[eu-staging]=mirror.eu-staging.example.net
	[us-staging]=mirror.us-staging.example.net
)
for r in $REGIONS; do
	[ -f "$EX/$r/mirror.conf" ] || fail "no $EX/$r/mirror.conf"
done

# key_of FILE KEY: the values of KEY in FILE (every section), one a line.
key_of() {
	sed -n "s/^$2[[:space:]]*=[[:space:]]*//p" "$1"
}

# -- 1. check-config, for real ------------------------------------------------
ROOT=$T_DIR/root
mkdir -p "$T_DIR/conf" "$ROOT"
for r in $REGIONS; do
	# Every absolute path in the example is under the two trees moved.
	other=$(grep -v '^[[:space:]]*[#;]' "$EX/$r/mirror.conf" |
		grep -oE '(^|[ ,=])/[^ ,]*' | tr -d ' ,=' |
		grep -vE '^/(etc/regmirror|var/lib/regmirror)(/|$)' || true)
	[ -z "$other" ] || fail "$r: paths outside /etc/regmirror: $other"
	sed "s|/etc/regmirror/|$ROOT/etc/regmirror/|g
	     s|/var/lib/regmirror|$ROOT/var/lib/regmirror|g" \
		"$EX/$r/mirror.conf" >"$T_DIR/conf/$r.conf"
	! grep -E '(^|[ =])/(etc|var/lib)/regmirror' "$T_DIR/conf/$r.conf" ||
		fail "$r: a path escaped the substitution"
	for f in $(grep -oE "$ROOT/etc/regmirror/[^ ,]+" \
		"$T_DIR/conf/$r.conf" | sort -u); do
		mkdir -p "$(dirname "$f")"
		[ -f "$f" ] || printf 'placeholder-%s\n' "$(basename "$f")" >"$f"
		chmod 600 "$f"
	done
done
for r in $REGIONS; do
	c=$T_DIR/conf/$r.conf
	"$REGMIRROR" check-config -c "$c" >"$T_DIR/cc.out" 2>"$T_DIR/cc.err" ||
		fail "$r: check-config: $(cat "$T_DIR/cc.out" "$T_DIR/cc.err")"
	grep -qx "$c: ok (2 upstreams, 1 listener)" "$T_DIR/cc.out" ||
		fail "$r: check-config said: $(cat "$T_DIR/cc.out")"
	[ ! -s "$T_DIR/cc.err" ] ||
		fail "$r: check-config warned: $(cat "$T_DIR/cc.err")"
done
# The files are really read: without the admin token file, it fails.
mv "$ROOT/etc/regmirror/admin.token" "$T_DIR/admin.token.away"
rc=0
"$REGMIRROR" check-config -c "$T_DIR/conf/eu-production.conf" \
	>/dev/null 2>"$T_DIR/cc.err" || rc=$?
assert_eq 2 "$rc" "check-config exit without admin.token"
grep -q "cannot read admin_token_file '$ROOT/etc/regmirror/admin.token'" \
	"$T_DIR/cc.err" || fail "missing admin.token: $(cat "$T_DIR/cc.err")"
mv "$T_DIR/admin.token.away" "$ROOT/etc/regmirror/admin.token"

# -- 2. the tier keys ---------------------------------------------------------
for r in $REGIONS; do
	c=$EX/$r/mirror.conf
	for k in admin_listen admin_token_file admin_tls_cert tls_cert; do
		[ -n "$(key_of "$c" "$k")" ] || fail "$r: no $k"
	done
	case " $PRODUCTION primary " in
	*" $r "*)
		assert_eq "https://${FRONT[$r]}" "$(key_of "$c" front)" \
			"$r: front"
		for k in job_token_file trusted_proxies; do
			[ -n "$(key_of "$c" "$k")" ] || fail "$r: no $k"
		done
		;;
	*)	[ -z "$(key_of "$c" front)" ] || fail "$r: staging has a front" ;;
	esac
	[ "$r" = primary ] && continue
	url=$(awk '/^\[upstream "registry.example.com"\]/ { s = 1; next }
		/^\[/ { s = 0 } s && $1 == "url" { print $3 }' "$c")
	assert_eq "$(key_of "$EX/primary/mirror.conf" front)" "$url" \
		"$r: registry.example.com comes from the primary's front door"
done

# -- 3. the replication filters as written -----------------------------------
mkimage "$T_DIR/img" single --seed t113 --ref v1 --layers 1500,20000
start_registry up
seed_image "$T_DIR/img" v1 "$UP_HOST" org/api:v2.4.1
MT='application/vnd.oci.image.manifest.v1+json'
curl -sf -H "Accept: $MT" -o "$T_DIR/manifest.json" \
	"$UP_URL/v2/org/api/manifests/v2.4.1" || hard_error "manifest GET"
ALL_TAGS="v2.2.0 v2.3.0 v2.3.1 v2.4.0 v2.5.0-rc1 v2.5.0-rc2 main-999
main-1042 latest feature-x"
for t in $ALL_TAGS; do
	[ "$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H "Content-Type: $MT" \
		--data-binary "@$T_DIR/manifest.json" \
		"$UP_URL/v2/org/api/manifests/$t")" = 201 ] ||
		hard_error "tagging org/api:$t"
done
declare -A WANT=(
	[primary]="main-1042 main-999 v2.3.0 v2.3.1 v2.4.0 v2.4.1 v2.5.0-rc1
		v2.5.0-rc2"
	[eu-production]="v2.3.1 v2.4.0 v2.4.1"
	[us-production]="v2.3.1 v2.4.0 v2.4.1"
	[eu-staging]="main-1042 main-999 v2.5.0-rc1 v2.5.0-rc2"
	[us-staging]="main-1042 main-999 v2.5.0-rc1 v2.5.0-rc2"
)
for r in $REGIONS; do
	P=$(free_port) A=$(free_port)
	c=$T_DIR/repl-$r.conf
	write_mirror_base "$c" "$P" "$T_DIR/cache-repl-$r" 5m \
		"admin_listen = 127.0.0.1:$A" "drain = 0s"
	printf '[upstream "registry.example.com"]\nurl = %s\n' "$UP_URL" >>"$c"
	awk '/^\[replication / { s = 1 } /^\[/ && !/^\[replication / { s = 0 }
		s && $1 == "repositories" { print "repositories = org/api"; next }
		s' "$EX/$r/mirror.conf" >>"$c"
	grep -q '^\[replication ' "$c" || fail "$r: no [replication] section"
	start_mirror "$c" "mirror-repl-$r"
	"$REGMIRROR" sync --mirror "http://127.0.0.1:$A" --wait \
		>"$T_DIR/sync-$r.out" 2>&1 ||
		fail "$r: sync: $(cat "$T_DIR/sync-$r.out")"
	got=$("$REGMIRROR" cache ls --json -c "$c" | jq -r '.tags[] |
		select(.digest != "") | .tag' | sort -u | tr '\n' ' ')
	# shellcheck disable=SC2086
	assert_eq "$(printf '%s\n' ${WANT[$r]} | sort | tr '\n' ' ')" \
		"$got" "$r: tags replicated by the example's policies"
	stop_pid "$MIRROR_PID" || fail "$r: the mirror did not stop"
done

# -- 4. HAProxy ----------------------------------------------------------------
make_test_ca "$T_DIR/ca"
make_server_cert "$T_DIR/ca" "$T_DIR/front" 1001
cat "$T_DIR/front.crt" "$T_DIR/front.key" >"$T_DIR/front.pem"
# The TLS config is the shipped one plus TLS: their directives, without
# comments and with the TLS additions taken out, are the same.
directives() {	# directives FILE: its directive lines, TLS additions out
	sed -e 's/[[:space:]]*#.*//' -e '/^[[:space:]]*$/d' \
		-e '/^[[:space:]]*ssl-default-/d' \
		-e '/X-Forwarded-Proto/d' \
		-e 's/ ssl crt .*//' \
		-e 's/ ssl verify required .* check-ssl init-addr last,libc,none$//' \
		"$1"
}
diff <(directives "$top_srcdir/deploy/haproxy/regmirror.cfg") \
	<(directives "$EX/haproxy/regmirror-tls.cfg") >"$T_DIR/cfg.diff" ||
	fail "regmirror-tls.cfg drifted from regmirror.cfg: $(cat "$T_DIR/cfg.diff")"
for e in "$EX"/haproxy/*.env; do
	r=$(basename "$e" .env)
	[ -f "$EX/$r/mirror.conf" ] || fail "$e: no region $r"
	out=$(env -i PATH="$PATH" bash -c 'set -a; . "$1"; set +a
		REGMIRROR_FRONT_CERT=$2 REGMIRROR_MEMBERS_CA=$3 \
		exec haproxy -c -f "$4"' sh "$e" "$T_DIR/front.pem" \
		"$T_DIR/ca/ca.crt" "$EX/haproxy/regmirror-tls.cfg" 2>&1) ||
		fail "haproxy -c with $r.env: $out"
	grep -q 'Configuration file is valid' <<<"$out" ||
		fail "haproxy -c with $r.env: $out"
	odd=$(grep -E '\[(WARNING|ALERT)\]' <<<"$out" |
		grep -v "could not resolve address 'mirror-[abc]\.[a-z]*\.example\.net'" ||
		true)
	[ -z "$odd" ] || fail "haproxy -c with $r.env warns: $odd"
	port=$(key_of "$EX/$r/mirror.conf" listen | sed 's/.*://')
	aport=$(key_of "$EX/$r/mirror.conf" admin_listen | sed 's/.*://')
	for m in A B C; do
		v=$(sed -n "s/^REGMIRROR_$m=//p" "$e")
		assert_eq "mirror-${m,,}.${FRONT[$r]#mirror.}:$port" "$v" \
			"$r.env: REGMIRROR_$m"
		assert_eq "$aport" "$(sed -n "s/^REGMIRROR_${m}_ADMIN_PORT=//p" \
			"$e")" "$r.env: REGMIRROR_${m}_ADMIN_PORT"
	done
done
for r in $PRODUCTION primary; do
	[ -f "$EX/haproxy/$r.env" ] || fail "no haproxy/$r.env"
done

# The TLS parts for real: one member (HTTPS registry and admin
# listeners, certificates from the members' CA) behind haproxy with this
# config, the three server lines pointing at it.  Its /readyz checks pass
# over TLS and skopeo copies an image through the front door, verifying
# the front's certificate; a haproxy given another CA for the members
# answers 503 and logs the failed check (verify required holds).
mkimage "$T_DIR/roll" multi --seed t113-roll --ref v1 --layers 3000,90000
seed_image "$T_DIR/roll" v1 "$UP_HOST" app/roll:v1
D1=$(layout_top "$T_DIR/roll")
make_server_cert "$T_DIR/ca" "$T_DIR/member" 1003
printf 'member-token-113\n' >"$T_DIR/member.tok"
chmod 600 "$T_DIR/member.tok"
MP=$(free_port) MA=$(free_port)
write_mirror_base "$T_DIR/member.conf" "$MP" "$T_DIR/cache-member" 5m \
	"admin_listen = 127.0.0.1:$MA" "drain = 0s" \
	"admin_token_file = $T_DIR/member.tok" \
	"admin_tls_cert = $T_DIR/member.crt" "admin_tls_key = $T_DIR/member.key" \
	"tls_cert = $T_DIR/member.crt" "tls_key = $T_DIR/member.key" \
	"trusted_proxies = 127.0.0.1" "max_connections_per_client = 0"
printf '[upstream "docker.io"]\nurl = %s\n' "$UP_URL" >>"$T_DIR/member.conf"
"$REGMIRROR" serve -c "$T_DIR/member.conf" >>"$T_DIR/member.log" 2>&1 &
MEMBER_PID=$!
register_pid "$MEMBER_PID" "regmirror member" "$T_DIR/member.log"
member_ready() {
	is_alive "$MEMBER_PID" || fail "the TLS member exited"
	[ "$(http_code "https://127.0.0.1:$MA/readyz" \
		--cacert "$T_DIR/ca/ca.crt")" = 200 ]
}
wait_for 20 member_ready || fail "the TLS member is not ready"
# start_tls_haproxy NAME MEMBERS_CA: exports NAME_PORT (its front door).
start_tls_haproxy() {
	local name=$1 port pid
	port=$(free_port)
	env REGMIRROR_FRONT="127.0.0.1:$port" \
		REGMIRROR_FRONT_CERT="$T_DIR/front.pem" \
		REGMIRROR_MEMBERS_CA="$2" \
		REGMIRROR_A="127.0.0.1:$MP" REGMIRROR_B="127.0.0.1:$MP" \
		REGMIRROR_C="127.0.0.1:$MP" REGMIRROR_A_ADMIN_PORT="$MA" \
		REGMIRROR_B_ADMIN_PORT="$MA" REGMIRROR_C_ADMIN_PORT="$MA" \
		haproxy -db -f "$EX/haproxy/regmirror-tls.cfg" \
		>>"$T_DIR/haproxy-$name.log" 2>&1 &
	pid=$!
	register_pid "$pid" "haproxy $name" "$T_DIR/haproxy-$name.log"
	wait_for 20 pid_listens "$pid" "$port" ||
		hard_error "haproxy $name did not listen on :$port"
	printf -v "${name^^}_PORT" %s "$port"
}
start_tls_haproxy good "$T_DIR/ca/ca.crt"
front_ok() {
	[ "$(http_code "https://127.0.0.1:$GOOD_PORT/v2/" \
		--cacert "$T_DIR/ca/ca.crt")" = 200 ]
}
wait_for 20 front_ok || fail "GET /v2/ through the TLS front door"
mkdir -p "$T_DIR/certs" && cp "$T_DIR/ca/ca.crt" "$T_DIR/certs/"
skopeo_ copy -q --all --src-cert-dir "$T_DIR/certs" \
	"docker://127.0.0.1:$GOOD_PORT/app/roll:v1" "oci:$T_DIR/via-front:x" \
	>"$T_DIR/skopeo-front.log" 2>&1 ||
	fail "skopeo through the TLS front: $(cat "$T_DIR/skopeo-front.log")"
layout_same "$T_DIR/roll" "$T_DIR/via-front"
grep -q "\"GET /v2/app/roll/manifests/v1\" 200 " "$T_DIR/member.log" ||
	fail "the member did not serve the pull through the front"
make_test_ca "$T_DIR/ca2"
start_tls_haproxy bad "$T_DIR/ca2/ca.crt"
bad_logged() {
	grep -q 'Server regmirror/a is DOWN, reason: Layer6' \
		"$T_DIR/haproxy-bad.log"
}
wait_for 20 bad_logged || fail "no failed check with the wrong members' CA"
assert_eq 503 "$(http_code "https://127.0.0.1:$BAD_PORT/v2/" \
	--cacert "$T_DIR/ca/ca.crt")" "GET /v2/ with the wrong members' CA"

# -- 5. client configs -----------------------------------------------------
for r in $PRODUCTION $STAGING; do
	d=$EX/clients/$r/etc
	jq -e --arg u "https://${FRONT[$r]}" '.["registry-mirrors"] == [$u]' \
		"$d/docker/daemon.json" >/dev/null ||
		fail "$r: daemon.json: $(cat "$d/docker/daemon.json")"
	"$PY" - "$d" "${FRONT[$r]}" <<'EOPY' || fail "$r: client configs"
import sys, tomllib
d, front = sys.argv[1], sys.argv[2]
for reg, server in (("docker.io", "https://registry-1.docker.io"),
                    ("registry.example.com", "https://registry.example.com")):
    with open(f"{d}/containerd/certs.d/{reg}/hosts.toml", "rb") as f:
        h = tomllib.load(f)
    assert h["server"] == server, (reg, h)
    assert h["host"] == {f"https://{front}":
                         {"capabilities": ["pull", "resolve"]}}, (reg, h)
with open(f"{d}/containers/registries.conf.d/50-regmirror.conf", "rb") as f:
    c = tomllib.load(f)
got = {r["prefix"]: (r["location"], [m["location"] for m in r["mirror"]])
       for r in c["registry"]}
want = {reg: (reg, [f"{front}/{reg}"])
        for reg in ("docker.io", "registry.example.com")}
assert got == want, got
EOPY
done

# -- 6. deploy/rollout.sh end to end -----------------------------------------
mkimage "$T_DIR/other" single --seed t113-other --ref v1 --layers 2000,40000
seed_image "$T_DIR/other" v1 "$UP_HOST" app/other:v2
D2=$(layout_top "$T_DIR/other")

make_server_cert "$T_DIR/ca" "$T_DIR/admin" 1002
printf 'rollout-token-113\n' >"$T_DIR/admin.tok"
chmod 600 "$T_DIR/admin.tok"
P1=$(free_port) A1=$(free_port) P2=$(free_port) A2=$(free_port)
write_mirror_base "$T_DIR/one.conf" "$P1" "$T_DIR/cache-one" 5m \
	"admin_listen = 127.0.0.1:$A1" "drain = 0s" \
	"admin_token_file = $T_DIR/admin.tok" \
	"admin_tls_cert = $T_DIR/admin.crt" "admin_tls_key = $T_DIR/admin.key"
write_mirror_base "$T_DIR/two.conf" "$P2" "$T_DIR/cache-two" 5m \
	"admin_listen = 127.0.0.1:$A2" "drain = 0s"
for n in one two; do
	printf '[upstream "docker.io"]\nurl = %s\n' "$UP_URL" >>"$T_DIR/$n.conf"
	start_mirror "$T_DIR/$n.conf" "mirror-$n"
done
DOWN=$(free_port)	# nobody listens there

{
	echo '# test regions'
	echo "one https://127.0.0.1:$A1 $T_DIR/admin.tok $T_DIR/ca/ca.crt"
	echo
	echo "two http://127.0.0.1:$A2 - -"
} >"$T_DIR/regions"
rollout() {	# rollout OUT REGIONS ARGS...: rc in ROLL_RC
	local out=$1 regions=$2
	shift 2
	ROLL_RC=0
	REGMIRROR=$REGMIRROR dash "$ROLLOUT" -f "$regions" "$@" \
		>"$T_DIR/$out.out" 2>"$T_DIR/$out.err" || ROLL_RC=$?
}
rollout ok "$T_DIR/regions" -p linux/amd64 -P 1h app/roll:v1 app/other:v2
assert_eq 0 "$ROLL_RC" "rollout exit (stderr: $(cat "$T_DIR/ok.err"))"
assert_eq "app/roll@$D1
app/other@$D2" "$(cat "$T_DIR/ok.out")" "rollout output"
assert_eq "rollout: one ok
rollout: two ok" "$(cat "$T_DIR/ok.err")" "rollout stderr"
grep -q "\"GET /v2/app/roll/manifests/$D1?ns=docker.io\"" \
	"$T_DIR/mirror-two.log" || fail "region two was not asked for the digest"
for n in one two; do
	pb=$("$REGMIRROR" cache du --json -c "$T_DIR/$n.conf" |
		jq -r .pinned_blobs)
	# roll: amd64's config and 2 layers; other: config and 2 layers.
	[ "$pb" -ge 6 ] || fail "region $n: $pb pinned blobs, want >= 6"
done

# A region that is down, last: exit 1, nothing to deploy.
cp "$T_DIR/regions" "$T_DIR/regions-down"
printf 'three http://127.0.0.1:%s - -\n' "$DOWN" >>"$T_DIR/regions-down"
rollout down "$T_DIR/regions-down" app/roll:v1
assert_eq 1 "$ROLL_RC" "rollout exit with a region down"
[ ! -s "$T_DIR/down.out" ] || fail "digests printed: $(cat "$T_DIR/down.out")"
grep -qx "rollout: three FAILED: regmirror prefetch: http://127.0.0.1:$DOWN \
refused the job (status 0): no answer" "$T_DIR/down.err" &&
	grep -qx 'rollout: two ok' "$T_DIR/down.err" &&
	grep -qx 'rollout: FAILED in: three (nothing to deploy)' \
	"$T_DIR/down.err" ||
	fail "region down, stderr: $(cat "$T_DIR/down.err")"

# Down and first: the next region resolves, the rollout still fails.
{ printf 'three http://127.0.0.1:%s - -\n' "$DOWN"; cat "$T_DIR/regions"; } \
	>"$T_DIR/regions-first"
rollout first "$T_DIR/regions-first" app/roll:v1
assert_eq 1 "$ROLL_RC" "rollout exit with the first region down"
[ ! -s "$T_DIR/first.out" ] || fail "digests printed: $(cat "$T_DIR/first.out")"
grep -q '^rollout: three FAILED: .*no answer$' "$T_DIR/first.err" &&
	grep -qx 'rollout: one ok' "$T_DIR/first.err" &&
	grep -qx 'rollout: two ok' "$T_DIR/first.err" &&
	grep -qx 'rollout: FAILED in: three (nothing to deploy)' \
	"$T_DIR/first.err" || fail "first down, stderr: $(cat "$T_DIR/first.err")"

# A wrong token: that region fails (401), the other is fine.
printf 'wrong-token\n' >"$T_DIR/bad.tok"
sed "s|$T_DIR/admin.tok|$T_DIR/bad.tok|" "$T_DIR/regions" >"$T_DIR/regions-tok"
rollout tok "$T_DIR/regions-tok" app/roll:v1
assert_eq 1 "$ROLL_RC" "rollout exit with a wrong token"
grep -q '^rollout: one FAILED: .*(status 401)' "$T_DIR/tok.err" &&
	grep -qx 'rollout: two ok' "$T_DIR/tok.err" ||
	fail "wrong token, stderr: $(cat "$T_DIR/tok.err")"

# An image nobody has: exit 1.
rollout missing "$T_DIR/regions" app/nope:v9
assert_eq 1 "$ROLL_RC" "rollout exit for a missing image"
grep -q '^rollout: one FAILED: .*app/nope:v9: .*404' "$T_DIR/missing.err" ||
	fail "missing image, stderr: $(cat "$T_DIR/missing.err")"
[ ! -s "$T_DIR/missing.out" ] || fail "digests printed for a missing image"

# Usage errors: exit 2.
rollout usage "$T_DIR/regions"
assert_eq 2 "$ROLL_RC" "rollout exit without an image"
grep -q '^usage: ' "$T_DIR/usage.err" ||
	fail "no usage: $(cat "$T_DIR/usage.err")"
printf 'one https://127.0.0.1:1\n' >"$T_DIR/regions-bad"
rollout bad "$T_DIR/regions-bad" app/roll:v1
assert_eq 2 "$ROLL_RC" "rollout exit for a bad regions line"
grep -qx "$T_DIR/regions-bad:1: want NAME ADMIN_URL TOKEN_FILE CACERT" \
	"$T_DIR/bad.err" || fail "bad regions line: $(cat "$T_DIR/bad.err")"

# The good haproxy's TLS checks of the member's /readyz passed all along
# (the bad one shows that a failing check is logged).
! grep -q 'is DOWN' "$T_DIR/haproxy-good.log" ||
	fail "haproxy marked the TLS member down: $(cat "$T_DIR/haproxy-good.log")"

pass
