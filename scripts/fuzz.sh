#!/bin/sh
# fuzz.sh - run the libFuzzer targets (built by make fuzz) for a bounded time.
#
#   sh scripts/fuzz.sh [TARGET...]      default: index fvecs csv npy gzip
#
# Environment: FUZZ_TIME (seconds per target, default 60), FUZZ_JOBS
# (targets run at once, default 1), FUZZ_DIR (default build/fuzz).
#
# Each target starts from the committed corpus (tests/fuzz/corpus/NAME) and
# writes what it finds new to FUZZ_DIR/corpus/NAME; a crash is saved as
# FUZZ_DIR/crash-NAME-* and makes the script exit 1.  To keep new inputs,
# merge them into the committed corpus:
#   build/fuzz/fuzz-NAME -merge=1 tests/fuzz/corpus/NAME build/fuzz/corpus/NAME
set -u
FUZZ_TIME=${FUZZ_TIME:-60}
FUZZ_JOBS=${FUZZ_JOBS:-1}
FUZZ_DIR=${FUZZ_DIR:-build/fuzz}
[ $# -gt 0 ] || set -- index fvecs csv npy gzip

run_one() {
	name=$1
	mkdir -p "$FUZZ_DIR/corpus/$name"
	# Allocations sized from the input must stay bounded: libFuzzer
	# reports any single malloc over -malloc_limit_mb as a failure.
	tm=
	if [ -x /usr/bin/time ]; then
		tm="/usr/bin/time -o $FUZZ_DIR/fuzz-$name.cpu -f %U+%S"
	fi
	$tm "$FUZZ_DIR/fuzz-$name" -max_total_time="$FUZZ_TIME" \
		-rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 \
		-max_len=65536 -print_final_stats=1 \
		-artifact_prefix="$FUZZ_DIR/crash-$name-" \
		"$FUZZ_DIR/corpus/$name" "tests/fuzz/corpus/$name" \
		>"$FUZZ_DIR/fuzz-$name.log" 2>&1
	status=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$FUZZ_DIR/fuzz-$name.log")
	cpu=$(cat "$FUZZ_DIR/fuzz-$name.cpu" 2>/dev/null | tail -n 1)
	[ -n "$cpu" ] && cpu=" in $(echo "$cpu" | bc 2>/dev/null || echo "$cpu") CPU seconds"
	if [ "$status" -eq 0 ]; then
		echo "fuzz $name: ${runs:-?} executions$cpu, no failure"
	else
		echo "fuzz $name: FAILED (status $status), see $FUZZ_DIR/fuzz-$name.log"
	fi
	return "$status"
}

fail=0
running=0
# In batches of FUZZ_JOBS targets.
for t in "$@"; do
	run_one "$t" &
	running=$((running + 1))
	if [ "$running" -ge "$FUZZ_JOBS" ]; then
		wait
		running=0
	fi
done
wait
for t in "$@"; do
	if ls "$FUZZ_DIR"/crash-"$t"-* >/dev/null 2>&1; then
		fail=1
	fi
	if grep -q "ERROR: libFuzzer\|ERROR: AddressSanitizer\|runtime error" \
		"$FUZZ_DIR/fuzz-$t.log" 2>/dev/null; then
		fail=1
	fi
done
exit "$fail"
