#!/bin/sh
# valgrind.sh - a representative part of the suite under valgrind's
# memcheck: the C unit tests (all suites but flat), the fuzz corpus replay, and the bats files
# that drive every command through its options, formats and errors.  Any
# memcheck report (invalid access, uninitialised value, definite or
# indirect leak) fails the run.  Ends with "N passed, N failed" like
# make test.  Run by make valgrind.
#
# Environment: VEC_BIN, UNIT, REPLAY as for run-tests.sh; VG_BATS (the
# bats files, default below).
set -u
: "${VEC_BIN:?}" "${UNIT:?}" "${REPLAY:?}"
VG="valgrind --quiet --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect --track-origins=yes"
VG_BATS=${VG_BATS:-"tests/10-vec-build.bats tests/20-vec-add.bats tests/30-vec-query.bats tests/40-vec-stat.bats tests/50-formats.bats tests/60-pipeline.bats"}

if ! command -v valgrind >/dev/null 2>&1; then
	echo "valgrind.sh: valgrind not found (apt-get install valgrind)" >&2
	exit 1
fi
out=$(mktemp "${TMPDIR:-/tmp}/vec-vg.XXXXXX") || exit 1
trap 'rm -f "$out"' EXIT INT TERM
pass=0 fail=0

# count FILE STATUS: add a runner's ok / not ok lines; a runner that died
# or that valgrind failed (status 99) without a failing line is one failure.
count() {
	p=$(grep -c '^ok ' "$1") f=$(grep -c '^not ok ' "$1")
	if [ "$2" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "not ok - runner exited with status $2 (99: a valgrind report)"
		f=1
	fi
	pass=$((pass + p)) fail=$((fail + f))
}

# The unit tests print "ok"/"not ok"; memcheck's reports go to stderr.
# (The flat suite's large exact searches are left to the native runs.)
$VG "$UNIT" error distance topk io file index hnsw kmeans ivf pq sq8 ivfpq >"$out" 2>&1
st=$?
cat "$out"
count "$out" "$st"
$VG "$REPLAY" tests/fuzz/corpus >"$out" 2>&1
st=$?
cat "$out"
count "$out" "$st"
# The commands under memcheck (VEC_WRAP, see tests/test_helper.bash); a
# report turns a command's status into 99, which its test does not expect.
VEC_WRAP="$VG" VEC_TIMEOUT=600 bats --tap $VG_BATS >"$out" 2>&1
st=$?
cat "$out"
count "$out" "$st"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
