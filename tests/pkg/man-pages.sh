#!/bin/bash
# The man pages cannot drift from the code: every section and key that
# `regmirror check-config --print-defaults` prints is described in
# mirror.conf(5) (".It Ic KEY" under ".Ss [SECTION"), with the default
# the parser has (".No Default: Cm VALUE") or, for a key without one, no
# default at all; every command, subcommand, option and environment
# variable of `regmirror --help` is in regmirror(8); the default config
# path --help prints is under configure's sysconfdir; both pages render
# without a groff or man warning.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$top_srcdir/tests/integration/lib.sh" || exit 99
need_regmirror
need groff man

M5=$top_srcdir/docs/mirror.conf.5
M8=$top_srcdir/docs/regmirror.8
[ -r "$M5" ] && [ -r "$M8" ] || hard_error "no $M5 or $M8"

for m in "$M5" "$M8"; do
	w=$(LC_ALL=C groff -Tutf8 -mandoc -ww -z "$m" 2>&1 &&
	    LC_ALL=C MANWIDTH=80 man --warnings -l "$m" 2>&1 >/dev/null) ||
		fail "$(basename "$m") does not render: $w"
	[ -z "$w" ] || fail "$(basename "$m"): warnings: $w"
done

# "SECTION KEY DEFAULT" per key ("-" for none), from the parser's table.
"$REGMIRROR" check-config --print-defaults | awk '
	/^#?[ \t]*\[[a-z_]+/ { s = $0; sub(/^#?[ \t]*\[/, "", s)
		sub(/[^a-z_].*/, "", s); next }
	/^[a-z_]+ = / { print s, $1, $3; next }
	/^# [a-z_]+ =[ \t]*$/ { print s, $2, "-" }
' >"$T_DIR/keys"
n=$(wc -l <"$T_DIR/keys")
[ "$n" -ge 60 ] || fail "--print-defaults printed only $n keys"

# The same from the page: the default stated in each entry, "-" for none.
awk '
	/^\.Ss \[/ { s = $2; sub(/^\[/, "", s); sub(/[^a-z_].*/, "", s)
		next }
	/^\.It Ic / { flush(); k = $3; def = "-"; next }
	/^\.No Default: Cm / { def = $4 }
	/^\.(El|Ss|Sh)/ { flush() }
	function flush() { if (k != "") print s, k, def; k = "" }
	END { flush() }
' "$M5" | sort >"$T_DIR/page"

problems=()
while read -r s k d; do
	got=$(awk -v s="$s" -v k="$k" '$1 == s && $2 == k { print $3 }' \
		"$T_DIR/page")
	if [ -z "$got" ]; then
		problems+=("[$s] $k: not in mirror.conf.5")
	elif [ "$got" != "$d" ]; then
		problems+=("[$s] $k: mirror.conf.5 says default '$got', the parser '$d'")
	fi
done <"$T_DIR/keys"
while read -r s k d; do
	grep -q "^$s $k " "$T_DIR/keys" ||
		problems+=("mirror.conf.5: [$s] $k: not a key the parser knows")
done <"$T_DIR/page"

# regmirror(8): commands ("  serve ..."), cache subcommands ("      ls"),
# options and environment variables of --help.
"$REGMIRROR" --help >"$T_DIR/help" || fail "--help: exit $?"
cmds=$(awk '/^Commands:/ { on = 1; next } /^Options:/ { on = 0 }
	on && /^  [a-z]/ { print $1 }
	on && /^      [a-z]+(   *| \[| [A-Z]|$)/ { print $1 }' \
	"$T_DIR/help" | sort -u)
[ "$(wc -w <<<"$cmds")" -ge 12 ] || fail "--help: commands: $cmds"
for c in $cmds; do
	grep -qE "^\.(It|Nm|Cm)( .*)? Cm $c( |$)|^\.Cm $c( |$)" "$M8" ||
		problems+=("regmirror.8: command '$c' of --help missing")
done
opts=$(grep -oE '(^|[ [,])--?[a-z][a-z-]*' "$T_DIR/help" |
	sed 's/^[ [,]//' | sort -u)
[ "$(wc -w <<<"$opts")" -ge 15 ] || fail "--help: options: $opts"
for o in $opts; do
	f=${o#-}
	grep -qE "Fl ${f//-/\\\\?-}( |$)" "$M8" ||
		problems+=("regmirror.8: option '$o' of --help missing")
done
for e in $(grep -oE '\$[A-Z_]+' "$T_DIR/help" | tr -d '$' | sort -u); do
	grep -qE "Ev $e( |$)" "$M8" ||
		problems+=("regmirror.8: variable '$e' of --help missing")
done

# The default -c is under configure's sysconfdir, as the unit file's is;
# the pages name the Debian package's (/etc) and say where it comes from.
if [ -n "${REGMIRROR_SYSCONFDIR:-}" ]; then
	grep -qF "(default $REGMIRROR_SYSCONFDIR/regmirror/mirror.conf)" \
	    "$T_DIR/help" ||
		problems+=("--help: the default config is not under sysconfdir $REGMIRROR_SYSCONFDIR: $(grep -e '--config' "$T_DIR/help")")
fi
grep -q 'sysconfdir' "$M8" ||
	problems+=("regmirror.8: the default config path does not say it is under sysconfdir")

if [ "${#problems[@]}" -gt 0 ]; then
	printf '%s\n' "${problems[@]}" >&2
	fail "the man pages and the code disagree (see above)"
fi
log "$n keys, $(wc -w <<<"$cmds") commands, $(wc -w <<<"$opts") options"
pass
