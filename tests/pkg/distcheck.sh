#!/bin/bash
# `make distcheck` passes: the tarball `make dist` makes holds everything
# the build and its own tests need, builds out of tree from it, installs
# into a staging dir and uninstalls cleanly, and its own `make check`
# passes (the unit tests, lint and the packaging checks that need no root:
# AM_DISTCHECK_CONFIGURE_FLAGS leaves out the root integration suite,
# which this make check is already running).  Run from a `make distdir`
# copy of this tree, configured on its own, so the outer build directory
# is not touched while the suite runs.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$top_srcdir/tests/integration/lib.sh" || exit 99
need_regmirror
need make autoreconf tar gzip
# The outer make hands its sub-makes TESTS / TEST_LOGS (its own test
# list) through MAKEFLAGS: passed on, distcheck's own make check would run
# this suite, this test included, again and again.  A clean make, and a
# guard.
[ -z "${REGMIRROR_IN_DISTCHECK:-}" ] ||
	hard_error "distcheck.sh inside its own distcheck: the test list leaked"
export REGMIRROR_IN_DISTCHECK=1
mk() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u TESTS -u TEST_LOGS make "$@"; }

src=$T_DIR/src
mk -s -C "$top_builddir" distdir distdir="$src" >"$T_DIR/distdir.log" \
	2>&1 || fail "make distdir: $(tail -n 20 "$T_DIR/distdir.log")"
mkdir "$T_DIR/build"
(cd "$T_DIR/build" && "$src/configure" -q >"$T_DIR/configure.log" 2>&1) ||
	fail "configure of the distdir: $(tail -n 20 "$T_DIR/configure.log")"
t0=${EPOCHREALTIME/./}
mk -C "$T_DIR/build" -j2 distcheck DISTCHECK_CONFIGURE_FLAGS=--enable-werror \
	>"$T_DIR/distcheck.log" 2>&1 ||
	{ tail -n 40 "$T_DIR/distcheck.log" >&2; fail "make distcheck failed"; }
grep -q "archives ready for distribution" "$T_DIR/distcheck.log" ||
	fail "make distcheck did not say its archive is ready"
log "make distcheck: $(((${EPOCHREALTIME/./} - t0) / 1000000)) s"
pass
