#!/bin/sh
# run-tests.sh - the whole test suite: C unit tests, then the bats suite.
# Prints every test's result, then one last line "N passed, N failed"
# (", N skipped" when some were skipped) summing both; exits 1 on failure.
#
# Environment: VEC_BIN (directory of the vec-* binaries), UNIT (the unit
# test runner), REPLAY (the fuzz corpus replay driver; optional), BATS
# (default: bats).
set -u
: "${VEC_BIN:?VEC_BIN must name the directory of the vec-* binaries}"
: "${UNIT:?UNIT must name the unit test runner}"
BATS=${BATS:-bats}
export VEC_BIN

out=$(mktemp "${TMPDIR:-/tmp}/vec-tests.XXXXXX") || exit 1
trap 'rm -f "$out"' EXIT INT TERM

"$UNIT" >"$out"
unit_status=$?
cat "$out"
unit_pass=$(grep -c '^ok ' "$out")
unit_fail=$(grep -c '^not ok ' "$out")
if [ "$unit_status" -ne 0 ] && [ "$unit_fail" -eq 0 ]; then
	# The runner died before reporting (a crash is a failure too).
	unit_fail=1
fi

# Every committed fuzz input, replayed through its target.
if [ -n "${REPLAY:-}" ]; then
	"$REPLAY" tests/fuzz/corpus >"$out"
	replay_status=$?
	cat "$out"
	rp=$(grep -c '^ok ' "$out")
	rf=$(grep -c '^not ok ' "$out")
	if [ "$replay_status" -ne 0 ] && [ "$rf" -eq 0 ]; then
		echo "not ok fuzz corpus replay died (status $replay_status)"
		rf=1
	fi
	unit_pass=$((unit_pass + rp))
	unit_fail=$((unit_fail + rf))
fi

if ! command -v "$BATS" >/dev/null 2>&1; then
	echo "run-tests: bats not found (install bats, e.g. apt-get install bats)" >&2
	echo "$unit_pass passed, $((unit_fail + 1)) failed"
	exit 1
fi
"$BATS" --tap tests >"$out" 2>&1
bats_status=$?
cat "$out"
bats_skip=$(grep -c '^ok [0-9]* .*# skip' "$out")
bats_pass=$(($(grep -c '^ok ' "$out") - bats_skip))
bats_fail=$(grep -c '^not ok ' "$out")
if [ "$bats_status" -ne 0 ] && [ "$bats_fail" -eq 0 ]; then
	bats_fail=1
fi

pass=$((unit_pass + bats_pass))
fail=$((unit_fail + bats_fail))
if [ "$bats_skip" -gt 0 ]; then
	echo "$pass passed, $fail failed, $bats_skip skipped"
else
	echo "$pass passed, $fail failed"
fi
[ "$fail" -eq 0 ]
