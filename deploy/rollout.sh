#!/bin/sh
# deploy/rollout.sh — warm a release in every region before deploying it,
# and print the digests to deploy.
#
#   deploy/rollout.sh [-f REGIONS] [-p OS/ARCH]... [-P DURATION] IMAGE...
#
# REGIONS (default deploy/examples/regions.txt) has one region a line:
#
#   NAME ADMIN_URL TOKEN_FILE CACERT
#
# ADMIN_URL is one member's admin listener (any member: prefetch through
# a tier's front door lands each blob on the member that serves it);
# TOKEN_FILE is sent as the admin token (regmirror prefetch --token-file)
# and CACERT verifies an https admin listener (--cacert); "-" for either
# means none (the system's CAs).  Blank lines and lines starting with #
# are skipped.
#
# The first region resolves each IMAGE's tag to a digest; every region is
# then asked for those digests (not the tags), so every region deploys the
# same bytes even if a tag moves meanwhile.  Each region's prefetch runs
# with --wait: it returns once every blob is in that region's cache.
#
# Output.  stdout: only when every region succeeded, one line per IMAGE,
# in the order given: NAME@sha256:HEX (the image without its tag), the
# reference to deploy.  stderr: one line per region,
#   rollout: REGION ok
#   rollout: REGION FAILED: REASON
# and when any failed, "rollout: FAILED in: REGION... (nothing to
# deploy)" and what each failed region's regmirror said.  The regmirror
# outputs (with JSON progress lines) stay in $ROLLOUT_LOGDIR when it is
# set.  Exit 0 when every region has every image; 1 when any region
# failed; 2 on a usage error.
#
# REGMIRROR (default: regmirror on PATH) is the client used.
set -eu

prog=rollout
usage() {
	echo "usage: $0 [-f REGIONS] [-p OS/ARCH]... [-P DURATION] IMAGE..." >&2
	echo "  REGIONS lines: NAME ADMIN_URL TOKEN_FILE CACERT ('-': none)" >&2
	exit 2
}

regions=$(dirname "$0")/examples/regions.txt
platforms=
pin=
while getopts f:p:P:h opt; do
	case $opt in
	f) regions=$OPTARG ;;
	p) # Split into words later: nothing but OS/ARCH[/VARIANT].
	   case $OPTARG in
	   *[!a-z0-9/]*|/*|*/|*//*|'') echo "$prog: bad platform '$OPTARG'" \
		>&2; exit 2 ;;
	   esac
	   platforms="$platforms --platform $OPTARG" ;;
	P) pin=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || usage
[ -r "$regions" ] || { echo "$prog: cannot read $regions" >&2; exit 2; }
: "${REGMIRROR:=regmirror}"
command -v "$REGMIRROR" >/dev/null 2>&1 ||
	{ echo "$prog: $REGMIRROR not found (set REGMIRROR)" >&2; exit 2; }
for img in "$@"; do
	case $img in
	-*|*[[:space:]]*|'') echo "$prog: bad image '$img'" >&2; exit 2 ;;
	esac
done

if [ -n "${ROLLOUT_LOGDIR:-}" ]; then
	logs=$ROLLOUT_LOGDIR
	mkdir -p "$logs"
else
	logs=$(mktemp -d "${TMPDIR:-/tmp}/rollout.XXXXXX")
	trap 'rm -rf "$logs"' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
fi

# The regions, checked before anything is asked of them: "NAME URL TOK CA"
# lines in $logs/regions.
awk -v f="$regions" '
	/^[ \t]*(#|$)/ { next }
	NF != 4 || $1 !~ /^[A-Za-z0-9._-]+$/ ||
	    $2 !~ /^(https?:\/\/|unix:\/)/ {
		printf "%s:%d: want NAME ADMIN_URL TOKEN_FILE CACERT\n", f, NR \
		    > "/dev/stderr"
		bad = 1
		next
	}
	seen[$1]++ { printf "%s:%d: region %s twice\n", f, NR, $1 \
		    > "/dev/stderr"; bad = 1 }
	{ print $1, $2, $3, $4 }
	END { exit bad }' "$regions" >"$logs/regions" || exit 2
[ -s "$logs/regions" ] || { echo "$prog: no region in $regions" >&2; exit 2; }

# prefetch NAME URL TOKEN CACERT REF...: one region's prefetch --wait;
# its stdout in $logs/NAME.out, its stderr in $logs/NAME.err.
prefetch() {
	n=$1 u=$2 t=$3 c=$4
	shift 4
	set -- --mirror "$u" --wait "$@"
	[ "$t" = - ] || set -- --token-file "$t" "$@"
	[ "$c" = - ] || set -- --cacert "$c" "$@"
	[ -z "$pin" ] || set -- --pin "$pin" "$@"
	# shellcheck disable=SC2086
	"$REGMIRROR" prefetch $platforms "$@" </dev/null \
	    >"$logs/$n.out" 2>"$logs/$n.err"
}

# show NAME: what a failed region's prefetch said, but its JSON progress
# lines.
show() {
	say "---- $1"
	grep -v '^{"mirror":' "$logs/$1.err" >&2 || true
}

# name_of IMAGE: the image without its tag or digest.
name_of() {
	case $1 in
	*@*) printf '%s\n' "${1%%@*}" ;;
	*) case ${1##*/} in
	   *:*) printf '%s\n' "${1%:*}" ;;
	   *) printf '%s\n' "$1" ;;
	   esac ;;
	esac
}

# digest_in FILE IMAGE: the digest of IMAGE's line in a prefetch output:
# IMAGE@sha256:... for a tag, IMAGE itself when IMAGE is by digest
# (NAME@D); the part after the line's last @.
digest_in() {
	awk -v i="$2" '($0 == i || index($0, i "@") == 1) &&
	    $0 ~ /@sha256:[0-9a-f]+$/ {
		sub(/.*@/, ""); if (length($0) == 71) print; exit }' "$1"
}

say() { echo "$prog: $*" >&2; }
failed=

# region_failed NAME: say that region failed, with the last thing its
# prefetch said that is not a progress line (the most specific error).
region_failed() {
	why=$(grep -v '^{"mirror":' "$logs/$1.err" | tail -n 1 || true)
	say "$1 FAILED: ${why:-regmirror prefetch failed}"
	failed="$failed $1"
}

# Resolve: the first region that answers turns every tag into a digest
# ($logs/resolved: "IMAGE NAME@DIGEST" lines).  A region that fails here
# has failed the rollout, but the next one may still resolve.
resolver=
while read -r n u t c; do
	if prefetch "$n" "$u" "$t" "$c" "$@"; then
		: >"$logs/resolved"
		k=0
		for img in "$@"; do
			d=$(digest_in "$logs/$n.out" "$img")
			[ -n "$d" ] || break
			echo "$img $(name_of "$img")@$d" >>"$logs/resolved"
			k=$((k + 1))
		done
		if [ "$k" -eq $# ]; then
			resolver=$n
			say "$n ok"
			break
		fi
		echo "no IMAGE@DIGEST for every image in its output" \
		    >>"$logs/$n.err"
	fi
	region_failed "$n"
done <"$logs/regions"
if [ -z "$resolver" ]; then
	say "no region resolved the images"
	for n in $failed; do show "$n"; done
	exit 1
fi

# Every other region (after the resolver in the file; those before it
# have failed already), by digest, in parallel.
set --
while read -r img ref; do set -- "$@" "$ref"; done <"$logs/resolved"
pids=
after=
while read -r n u t c; do
	if [ -z "$after" ]; then
		[ "$n" != "$resolver" ] || after=1
		continue
	fi
	prefetch "$n" "$u" "$t" "$c" "$@" &
	pids="$pids $!:$n"
done <"$logs/regions"
for p in $pids; do
	n=${p#*:}
	if ! wait "${p%%:*}"; then
		region_failed "$n"
		continue
	fi
	# Each region must hold exactly the resolved digests.
	ok=1
	for ref in "$@"; do
		d=$(digest_in "$logs/$n.out" "$ref")
		if [ "$d" != "${ref##*@}" ]; then
			echo "$ref not in its output" >>"$logs/$n.err"
			ok=
		fi
	done
	if [ -n "$ok" ]; then
		say "$n ok"
	else
		region_failed "$n"
	fi
done

if [ -n "$failed" ]; then
	say "FAILED in:$failed (nothing to deploy)"
	for n in $failed; do show "$n"; done
	exit 1
fi
while read -r img ref; do echo "$ref"; done <"$logs/resolved"
