#!/bin/bash
# mirror.conf.example documents what the parser knows: `regmirror
# check-config --print-defaults` (printed from the key table) and the
# example name the same sections and the same keys in each, and every key
# the example gives a value with a default has that default.  A key the
# example shows commented out ("# key = ...") must have no default, unless
# its whole section is an example ("# [replication ...]"), where it shows
# the default.  So the docs and the code cannot drift apart.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need_regmirror

EXAMPLE=$top_srcdir/mirror.conf.example
[ -r "$EXAMPLE" ] || hard_error "no $EXAMPLE"

"$REGMIRROR" check-config --print-defaults >"$T_DIR/defaults" ||
	fail "check-config --print-defaults: exit $?"
# It needs no config file, and is an option of check-config only.
"$REGMIRROR" check-config -c "$T_DIR/missing.conf" --print-defaults \
	>"$T_DIR/defaults2" || fail "--print-defaults read the -c file"
cmp -s "$T_DIR/defaults" "$T_DIR/defaults2" ||
	fail "--print-defaults depends on -c"
rc=0
"$REGMIRROR" serve --print-defaults >/dev/null 2>&1 || rc=$?
assert_eq 2 "$rc" "serve --print-defaults"

# entries FILE: "SECTION KEY STATE VALUE" per key and "SECTION - section"
# per section header.  STATE: live ("key = v"), commented ("# key = v",
# "# key ="), example (commented, in a commented-out section) or stray
# (live, after a commented-out header: it would belong to the section
# before).
entries() {
	awk '
	function name(l) {
		sub(/^#[ \t]*\[[ \t]*/, "", l); sub(/^\[[ \t]*/, "", l)
		sub(/[^a-z_].*/, "", l)
		return l
	}
	function entry(l, state,	k, v) {
		sub(/^#[ \t]*/, "", l)
		k = l; sub(/[ \t]*=.*/, "", k)
		v = l; sub(/^[^=]*=[ \t]*/, "", v); sub(/[ \t]+$/, "", v)
		print sect, k, state, v
	}
	/^\[[a-z_]+( "[^"]*")?\][ \t]*$/ {
		sect = name($0); ex = 0; print sect, "-", "section"; next
	}
	/^#[ \t]*\[[a-z_]+( "[^"]*")?\][ \t]*$/ {
		sect = name($0); ex = 1; print sect, "-", "section"; next
	}
	/^[a-z_]+[ \t]*=/ { entry($0, ex ? "stray" : "live"); next }
	/^#[ \t]*[a-z_]+[ \t]*=([ \t]|$)/ {
		entry($0, ex ? "example" : "commented"); next
	}
	' "$1"
}

entries "$T_DIR/defaults" >"$T_DIR/d.entries"
entries "$EXAMPLE" >"$T_DIR/e.entries"

declare -A DFLT=() HAS=() D_KEYS=() E_KEYS=()
nkeys=0
while read -r s k state v; do
	D_KEYS["$s $k"]=1
	[ "$k" != - ] || continue
	nkeys=$((nkeys + 1))
	case $state in
	live)	DFLT["$s $k"]=$v; HAS["$s $k"]=1 ;;
	commented) [ -z "$v" ] ||
		fail "--print-defaults: '# $k = $v' in [$s]: a value" ;;
	*)	fail "--print-defaults: [$s] $k: $state" ;;
	esac
done <"$T_DIR/d.entries"
[ "$nkeys" -ge 60 ] || fail "--print-defaults printed only $nkeys keys"
for s in server cache timeouts upstream replication; do
	[ -n "${D_KEYS["$s -"]:-}" ] || fail "--print-defaults has no [$s]"
done

problems=()
problem() { problems+=("$*"); }
while read -r s k state v; do
	E_KEYS["$s $k"]=1
	if [ -z "${D_KEYS["$s -"]:-}" ]; then
		problem "[$s]: not a section the parser knows"
		continue
	fi
	[ "$k" != - ] || continue
	if [ -z "${D_KEYS["$s $k"]:-}" ]; then
		problem "[$s] $k: not a key the parser knows"
		continue
	fi
	d=${DFLT["$s $k"]:-}
	case $state in
	stray)
		problem "[$s] $k = $v: after a commented-out section header"
		;;
	commented)
		[ -z "${HAS["$s $k"]:-}" ] || problem "[$s] $k is" \
			"commented out but has a default: show '$k = $d'"
		;;
	live|example)
		[ -z "${HAS["$s $k"]:-}" ] || [ "$v" = "$d" ] ||
			problem "[$s] $k = $v, but its default is '$d'"
		;;
	esac
done <"$T_DIR/e.entries"
for sk in "${!D_KEYS[@]}"; do
	[ -n "${E_KEYS[$sk]:-}" ] && continue
	s=${sk% *} k=${sk#* }
	[ "$k" = - ] && problem "[$s]: missing from mirror.conf.example" ||
		problem "[$s] $k: missing from mirror.conf.example"
done

if [ "${#problems[@]}" -gt 0 ]; then
	printf '%s\n' "${problems[@]}" | sort -u >&2
	fail "mirror.conf.example and --print-defaults disagree (see above)"
fi
log "$nkeys keys agree with mirror.conf.example"
pass
