#!/usr/bin/env bats
# Reliability: an index is always the old one or the new one, intact.
# Kills at every step of the write path, concurrent writers, readers while
# the index is replaced, full disks and failing system calls, file safety.
#
# Failures and kills inside the write path come from a fault injector
# loaded with LD_PRELOAD (tests/fault/fault.c, built by make test); the
# tests that need it skip without it.

bats_require_minimum_version 1.5.0
load test_helper

# The injector, in front of a command: faulty RULES CMD ARGS...
faulty() {
	[ -n "${VEC_FAULT_LIB:-}" ] && [ -f "$VEC_FAULT_LIB" ] ||
		skip "the fault injector (VEC_FAULT_LIB) is not built"
	local rules=$1
	shift
	VEC_FAULT="$rules" LD_PRELOAD="$VEC_FAULT_LIB" \
		ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" "$@"
}
sum() { cksum <"$1" | cut -d' ' -f1; }
temps() { ls -A | grep -c '^\..*\.tmp-' || :; }

# The state of idx.vec after a kill: "old", "new" or "absent", after
# checking that it verifies and answers exactly as that state does.
# Needs old.sum/new.sum and old.ans/new.ans (absent: no old.sum).
state_of() {
	local s
	if [ ! -e idx.vec ]; then
		[ ! -e old.sum ] || { echo "idx.vec vanished"; return 1; }
		echo absent
		return 0
	fi
	s=$(sum idx.vec)
	if [ -e old.sum ] && [ "$s" = "$(cat old.sum)" ]; then
		set -- old
	elif [ "$s" = "$(cat new.sum)" ]; then
		set -- new
	else
		echo "idx.vec is neither the old nor the new index"
		return 1
	fi
	vec_stat --verify -q idx.vec || { echo "$1 index fails --verify"; return 1; }
	vec_query -j 1 -k 5 idx.vec "$DATA/digits/query.fvecs" >ans ||
		{ echo "$1 index: query failed"; return 1; }
	cmp -s ans "$1.ans" || { echo "$1 index answers differently"; return 1; }
	echo "$1"
}

# kill_campaign NAME PREP CMD...: run CMD (which turns the old index into
# the new one) after PREP, killed at each write-path step (every pwrite,
# the fsync, the rename, the directory fsync, mkstemp, fchmod), at 40 byte
# counts spread over the file, and at random moments from outside; check
# each time.  Prints the number of runs that died of SIGKILL.
kill_campaign() {
	local name=$1 prep=$2 killed=0 st size rule r n t
	shift 2
	eval "$prep"
	"$@" || return 1
	sum idx.vec >new.sum
	vec_query -j 1 -k 5 idx.vec "$DATA/digits/query.fvecs" >new.ans
	size=$(stat -c %s idx.vec)
	t0=$(date +%s%N)
	eval "$prep"
	"$@"
	t=$((($(date +%s%N) - t0) / 1000)) # microseconds, one whole run
	rules="mkstemp:1:kill fchmod:1:kill fsync:1:kill rename:1:kill fsync:2:kill"
	for n in $(seq 1 24); do rules="$rules pwrite:$n:kill"; done
	for n in $(seq 1 40); do rules="$rules bytes:$((size * n / 41 + 1)):kill"; done
	for n in $(seq 1 60); do rules="$rules outside:$(((t * n / 61 + RANDOM % 997) + 1)):kill"; done
	for rule in $rules; do
		eval "$prep"
		if [ "${rule%%:*}" = outside ]; then
			r=${rule#outside:}
			st=0
			perl -MTime::HiRes=usleep -e '
				my $us = shift; my $pid = fork // die;
				if (!$pid) { exec @ARGV or die "exec: $!" }
				usleep($us); kill "KILL", $pid; waitpid($pid, 0);
				exit($? & 127 ? 128 + ($? & 127) : $? >> 8)' "${r%:kill}" "$@" 2>err || st=$?
		else
			st=0
			# (in a subshell: bash's "Killed" goes to err, not the log)
			(faulty "$rule" "$@") 2>err || st=$?
		fi
		case $st in
		137) killed=$((killed + 1)) ;;
		0) ;;
		*) echo "$name: $rule: exit status $st"; cat err; return 1 ;;
		esac
		state_of >state || { echo "$name: after $rule: $(cat state)"; return 1; }
		[ "$st" != 0 ] || [ "$(cat state)" = new ] ||
			{ echo "$name: $rule: finished but the index is $(cat state)"; return 1; }
		[ "$(temps)" -le 1 ] ||
			{ echo "$name: $rule: $(temps) temporary files"; ls -A; return 1; }
	done
	# A killed writer's temporary file is left; the next writer of the
	# same index removes it, and does not trip over it.
	eval "$prep"
	(faulty "bytes:$((size / 2)):kill" "$@") 2>err && return 1
	[ "$(temps)" = 1 ] || { echo "$name: a kill mid-write left $(temps) temporary files"; return 1; }
	"$@" || { echo "$name: the run after the kills failed"; return 1; }
	[ "$(state_of)" = new ] || { echo "$name: not new after the last run"; return 1; }
	assert_no_temp . || return 1
	echo "$killed" >"$name.killed"
}

@test "SIGKILL anywhere in vec-build -o or vec-add leaves the old or the new index, whole" {
	head -c $((260 * 900)) "$DATA/digits/base.fvecs" >part1.fvecs
	tail -c +$((260 * 900 + 1)) "$DATA/digits/base.fvecs" >part2.fvecs
	vec_build -q -t hnsw -j 1 --seed 7 -o old.vec part1.fvecs
	sum old.vec >old.sum
	vec_query -j 1 -k 5 old.vec "$DATA/digits/query.fvecs" >old.ans

	# vec-add grows the graph of the old index
	kill_campaign add 'cp old.vec idx.vec' \
		"$VEC_BIN/vec-add" -q -j 1 idx.vec part2.fvecs
	# vec-build -o replaces it with a flat index of everything
	kill_campaign build 'cp old.vec idx.vec' \
		"$VEC_BIN/vec-build" -q -t flat -o idx.vec "$DATA/digits/base.fvecs"
	# vec-build -o where no index was: absent or complete
	rm -f old.sum
	kill_campaign create 'rm -f idx.vec' \
		"$VEC_BIN/vec-build" -q -t hnsw -j 1 --seed 3 -o idx.vec "$DATA/digits/base.fvecs"
	total=$(($(cat add.killed) + $(cat build.killed) + $(cat create.killed)))
	echo "# kills survived: $total (vec-add $(cat add.killed), vec-build $(cat build.killed), new index $(cat create.killed))" >&3
	[ "$total" -ge 200 ]
}

# Random vectors (dim 16, 4 decimals) with keys NAME-1.., as CSV: rnd SEED N NAME
rnd() {
	perl -e 'my ($s, $n, $name) = @ARGV; srand($s);
		for my $i (1 .. $n) {
			print join(",", "$name-$i", map { sprintf "%.4f", rand(2) - 1 } 1 .. 16), "\n" }' "$@"
}

# writers TYPE: 8 vec-adds at once, 50 vectors each, into one index; every
# vector must then be found (k = 1, distance 0, its own key) exactly once.
writers() {
	local type=$1 p pids=()
	rnd 1 100 base >base.csv
	vec_build -q -t "$type" -j 1 --keys -o idx.vec base.csv
	for p in 1 2 3 4 5 6 7 8; do
		rnd $((100 + p)) 50 "w$p" >"w$p.csv"
	done
	for p in 1 2 3 4 5 6 7 8; do
		vec_add -q -j 1 --keys idx.vec "w$p.csv" 2>"w$p.err" & pids+=($!)
	done
	for p in "${pids[@]}"; do
		wait "$p"
	done
	cat w?.err
	assert_eq "$(cat w?.err)" ""
	vec_stat --verify -q idx.vec
	assert_eq "$(le_uint idx.vec 32 8)" 500
	cat base.csv w?.csv >all.csv
	run --separate-stderr vec_query -j 1 --ef 500 -k 1 --keys idx.vec all.csv
	expect_ok
	# row i answers with its own key at distance 0: each vector is there,
	# and 500 distinct keys in 500 vectors means none twice
	assert_eq "$(awk -F'\t' '$4 != 0' <<<"$output")" ""
	assert_eq "$(cut -f5 <<<"$output")" "$(cut -d, -f1 all.csv)"
	assert_eq "$(cut -f3 <<<"$output" | sort -u | wc -l)" 500
	assert_no_temp .
	echo "# $type: 8 writers, 400 vectors added, all 500 found once" >&3
}

@test "8 concurrent vec-adds into a flat index: every vector present exactly once" {
	writers flat
}

@test "8 concurrent vec-adds into an hnsw index: every vector present exactly once" {
	writers hnsw
}

@test "queries while vec-add and vec-build -o replace the index all answer from a whole index" {
	# Sizes the index passes through: 300 (built), +100 per vec-add up
	# to 600, then rebuilt at 300 by vec-build -o, and again, until the
	# readers have asked 100 times.
	rnd 1 300 a >a.csv
	for i in 1 2 3; do rnd $((10 + i)) 100 "b$i" >"b$i.csv"; done
	rnd 2 5 q >q.csv
	vec_build -q -t hnsw -j 1 --keys -o idx.vec a.csv
	(
		r=0
		while [ ! -e enough ]; do
			for i in 1 2 3; do
				"$VEC_BIN/vec-add" -q -j 1 --keys idx.vec "b$i.csv" || exit 1
			done
			"$VEC_BIN/vec-build" -q -t hnsw -j 1 --keys -o idx.vec a.csv || exit 1
			r=$((r + 4))
			echo "$r" >replaced
		done
	) 2>writers.err &
	writer=$!
	n=0 bad=0
	# k = 1000 is more than the index ever holds: every vector comes back,
	# so the row count tells which complete index answered.
	while kill -0 "$writer" 2>/dev/null; do
		st=0
		"$VEC_BIN/vec-query" -j 1 --ef 1000 -k 1000 --keys idx.vec q.csv >out 2>err || st=$?
		rows=$(wc -l <out)
		case "$st:$rows:$(wc -c <err)" in
		0:1500:0 | 0:2000:0 | 0:2500:0 | 0:3000:0) ;;
		*) bad=$((bad + 1)); echo "query $n: status $st, $rows rows: $(cat err)" ;;
		esac
		n=$((n + 1))
		[ "$n" -lt 100 ] || touch enough
	done
	wait "$writer"
	assert_eq "$(cat writers.err)" ""
	echo "# $n queries during $(cat replaced) replacements, $bad wrong" >&3
	[ "$bad" -eq 0 ]
	[ "$n" -ge 100 ]
	[ "$(cat replaced)" -ge 4 ]
}

# ---- full disks and failing system calls -----------------------------------

# An old index to fail to replace: idx.vec (digits, first 900) and its
# checksum in old.sum; part2.fvecs is the rest of digits.
old_index() {
	head -c $((260 * 900)) "$DATA/digits/base.fvecs" >part1.fvecs
	tail -c +$((260 * 900 + 1)) "$DATA/digits/base.fvecs" >part2.fvecs
	vec_build -q -t hnsw -j 1 -o idx.vec part1.fvecs
	sum idx.vec >old.sum
}
# idx.vec is still the old index, whole, and nothing was left beside it.
assert_old() {
	assert_eq "$(sum idx.vec)" "$(cat old.sum)"
	vec_stat --verify -q idx.vec
	assert_eq "$(ls -A | grep -v -e '^idx.vec$' -e '^old.sum$' -e '^part[12].fvecs$' || :)" ""
}

@test "past a file size limit (ulimit -f) vec-add and vec-build say so, exit 1, old index intact" {
	old_index
	run --separate-stderr bash -c "ulimit -f 100; exec \"\$0\" -q idx.vec part2.fvecs" "$VEC_BIN/vec-add"
	expect_err 1 "vec-add: idx.vec: cannot write index: File too large"
	assert_old
	run --separate-stderr bash -c "ulimit -f 100; exec \"\$0\" -q -o idx.vec \"\$1\"" "$VEC_BIN/vec-build" "$DATA/digits/base.fvecs"
	expect_err 1 "vec-build: idx.vec: cannot write index: File too large"
	assert_old
}

@test "on a full file system vec-add and vec-build say so, exit 1, old index intact" {
	[ "$(id -u)" = 0 ] || skip "mounting a small file system needs root"
	old_index
	mkdir small
	# room for the old index, not for a new one beside it
	mount -t tmpfs -o size=$(($(stat -c %s idx.vec) + 64 * 1024)) tmpfs small 2>/dev/null ||
		skip "this machine does not allow mounting a tmpfs"
	mv idx.vec old.sum small/
	cd small
	run --separate-stderr vec_add -q idx.vec ../part2.fvecs
	expect_err 1 "vec-add: idx.vec: cannot write index: No space left on device"
	assert_old
	run --separate-stderr vec_build -q -o idx.vec "$DATA/digits/base.fvecs"
	expect_err 1 "vec-build: idx.vec: cannot write index: No space left on device"
	assert_old
}

# The tmpfs of the test above, unmounted whatever happened.
teardown() {
	cd "$BATS_TEST_TMPDIR" || return 0
	if [ -d w/small ] && mountpoint -q w/small; then
		umount w/small
	fi
}


# fail_at RULE MESSAGE-END: vec-add with that call failing.
fail_at() {
	old_index
	run --separate-stderr faulty "$1" "$VEC_BIN/vec-add" -q -j 1 idx.vec part2.fvecs
	expect_err 1 "vec-add: idx.vec: $2"
	assert_old
}

@test "a failed write (ENOSPC, EIO, EDQUOT) leaves the old index and no temporary file" {
	fail_at pwrite:1:ENOSPC "cannot write index: No space left on device"
	fail_at pwrite:4:EIO "cannot write index: Input/output error"
	fail_at pwrite:9:EDQUOT "cannot write index: Disk quota exceeded"
}

@test "a failed fsync of the new file leaves the old index and no temporary file" {
	fail_at fsync:1:EIO "cannot write index: Input/output error"
}

@test "a failed rename leaves the old index and no temporary file" {
	fail_at rename:1:EXDEV "cannot write index: Invalid cross-device link"
	fail_at rename:1:EACCES "cannot write index: Permission denied"
}

@test "a temporary file that cannot be made or set up: clear message, old index intact" {
	fail_at mkstemp:1:EROFS "cannot create temporary file in '.': Read-only file system"
	fail_at fchmod:1:EROFS "cannot write index: Read-only file system"
}

@test "vec-build -o with a failing write leaves no index and no temporary file" {
	run --separate-stderr faulty pwrite:2:EIO "$VEC_BIN/vec-build" -q -o new.vec "$DATA/iris/base.fvecs"
	expect_err 1 "vec-build: new.vec: cannot write index: Input/output error"
	assert_absent new.vec
}

@test "a failed fsync of the directory: the new index is in place, and the user is told" {
	old_index
	run --separate-stderr faulty fsync:2:EIO "$VEC_BIN/vec-add" -q -j 1 idx.vec part2.fvecs
	expect_err 1 "vec-add: idx.vec: the new index is in place, but syncing it failed (Input/output error): it may not survive a crash"
	assert_eq "$(le_uint idx.vec 32 8)" 1697
	vec_stat --verify -q idx.vec
	assert_no_temp .
}

# ---- file safety ---------------------------------------------------------------

@test "a symlink at the output path is replaced, never followed to overwrite its target" {
	vec_build -q -o other.vec "$DATA/iris/base.fvecs"
	cp other.vec other.copy
	ln -s other.vec idx.vec
	vec_build -q -o idx.vec "$FIX/small.fvecs"
	[ -f idx.vec ] && [ ! -L idx.vec ]
	assert_same other.vec other.copy
	assert_eq "$(le_uint idx.vec 32 8)" "$(le_uint "$FIX/small.vec" 32 8)"
	# vec-add reads through a symlink, then replaces the link by the result
	rm idx.vec
	ln -s other.vec idx.vec
	vec_add -q idx.vec "$DATA/iris/base.fvecs"
	[ -f idx.vec ] && [ ! -L idx.vec ]
	assert_same other.vec other.copy
	assert_eq "$(le_uint idx.vec 32 8)" $((2 * $(le_uint other.vec 32 8)))
	# a dangling symlink is replaced too, and nothing is created at its target
	ln -s nowhere.vec dangling.vec
	vec_build -q -o dangling.vec "$FIX/small.fvecs"
	[ -f dangling.vec ] && [ ! -L dangling.vec ] && [ ! -e nowhere.vec ]
}

@test "a dead writer's temporary file is removed by the next writer; a live writer's is not" {
	vec_build -q -o idx.vec "$FIX/small.fvecs"
	echo junk >.idx.vec.tmp-dead01          # nobody holds it: a dead writer's
	echo live >.idx.vec.tmp-live01
	echo other >.other.vec.tmp-dead02       # another index's: not ours
	echo mine >.idx.vec.tmp-notatemp        # not the pattern
	hold .idx.vec.tmp-live01
	vec_add -q idx.vec "$FIX/small.fvecs"
	kill "$holder"
	wait "$holder" || :
	[ ! -e .idx.vec.tmp-dead01 ]
	[ -e .idx.vec.tmp-live01 ] && [ -e .other.vec.tmp-dead02 ] && [ -e .idx.vec.tmp-notatemp ]
}

@test "the writer lock is held only while writing: vec-build -o reading its input blocks nobody" {
	vec_build -q -o idx.vec "$FIX/small.fvecs"
	mkfifo in.fifo
	vec_build -q -o idx.vec in.fifo & builder=$!
	exec 7>in.fifo                          # the builder waits for input
	# meanwhile a vec-add goes through at once, and readers never wait
	VEC_TIMEOUT=10 vec_add -q idx.vec "$FIX/small.fvecs"
	hold idx.vec
	VEC_TIMEOUT=10 vec_query -k 1 idx.vec "$FIX/small.fvecs" >/dev/null
	kill "$holder"
	wait "$holder" || :
	cat "$FIX/small.fvecs" >&7
	exec 7>&-
	wait "$builder"
	assert_eq "$(le_uint idx.vec 32 8)" "$(le_uint "$FIX/small.vec" 32 8)"
	vec_stat --verify -q idx.vec
}

# ---- hostile index files ---------------------------------------------------------

# The byte offset of section NAME in an index: sec_off IDX NAME
sec_off() {
	perl -e 'open(my $f, "<", $ARGV[0]) or die; binmode $f; local $/; my $b = <$f>;
		my $toc = unpack("Q<", substr($b, 40, 8)); my $n = unpack("L<", substr($b, 48, 4));
		for my $i (0 .. $n - 1) {
			my ($id, $fl, $off) = unpack("a4 L< Q<", substr($b, $toc + 32 * $i, 32));
			if ($id eq $ARGV[1]) { print $off; exit 0 } }
		exit 3' "$1" "$2"
}

@test "a NaN sealed into a vector is refused by --verify and by vec-add, never sealed in again" {
	for t in flat hnsw ivf; do
		vec_build -q -t $t -j 1 -o $t.vec "$DATA/iris/base.fvecs"
		# vector 2, component 3 := NaN; every checksum recomputed
		poke $t.vec $(($(sec_off $t.vec VECS) + (2 * 4 + 2) * 4)) '\x00\x00\xc0\x7f'
		reseal $t.vec
		cp $t.vec $t.bad
		run --separate-stderr vec_stat --verify $t.vec
		expect_err 1 "vec-stat: $t.vec: vector 2: component 3 is not a finite number"
		run --separate-stderr vec_add -q $t.vec "$FIX/small.fvecs"
		expect_err 1 "vec-add: $t.vec: vector 2: component 3 is not a finite number"
		assert_same $t.vec $t.bad
	done
}

@test "a hostile l2 index without its norms section still searches and grows safely" {
	vec_build -q -t flat -o n.vec "$DATA/iris/base.fvecs"
	vec_query -k 3 n.vec "$DATA/iris/query.fvecs" >with-norms.tsv
	# rename NORM to an unknown optional section: the norms are computed
	poke n.vec $(($(le_uint n.vec 40 8) + 32)) 'ZZZZ'
	reseal n.vec
	run --separate-stderr vec_query -k 3 n.vec "$DATA/iris/query.fvecs"
	expect_ok
	assert_eq "$output" "$(cat with-norms.tsv)"
	run --separate-stderr vec_add -q n.vec "$DATA/iris/query.fvecs"
	expect_ok
	vec_stat --verify -q n.vec
}
