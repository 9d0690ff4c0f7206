#!/usr/bin/env bats
# vec-query: exact results (checked against the shipped ground truth and an
# awk brute force, tie-aware), output formats, options, streaming.

bats_require_minimum_version 1.5.0
load test_helper

setup_file() {
	local b="$BATS_TEST_DIRNAME/../bin"
	VEC_BIN="${VEC_BIN:-$b}"
	cd "$BATS_FILE_TMPDIR" || return 1
	"$VEC_BIN/vec-build" -q -o iris.vec "$BATS_TEST_DIRNAME/../data/iris/base.fvecs"
	"$VEC_BIN/vec-build" -q -o digits.vec "$BATS_TEST_DIRNAME/../data/digits/base.fvecs"
	"$VEC_BIN/vec-build" -q -m ip -o iris-ip.vec "$BATS_TEST_DIRNAME/../data/iris/base.fvecs"
	"$VEC_BIN/vec-build" -q -m cos -o iris-cos.vec "$BATS_TEST_DIRNAME/../data/iris/base.fvecs"
	# base (0,0) (3,4) (6,8) (0,-5): from (0,0) the distances are 0 5 10 5
	# from (6,8): 10 5 0 sqrt(205) = 14.3178211 (float32: 14.3178215)
	perl -e 'print pack("l<f<*", 2, @$_) for [0, 0], [3, 4], [6, 8], [0, -5]' >tiny.fvecs
	"$VEC_BIN/vec-build" -q -o tiny.vec tiny.fvecs
	printf 'zero,0,0\n"x,y",3,4\nsay "hi",6,8\n,0,-5\n' >tiny-keys.csv
	"$VEC_BIN/vec-build" -q --keys -o tiny-keys.vec tiny-keys.csv
}

teardown() {
	if [ -n "${bg_pid:-}" ]; then
		kill "$bg_pid" 2>/dev/null || :
	fi
}

IDX() { echo "$BATS_FILE_TMPDIR/$1"; }

# check_gt DATADIR K RESULTS.tsv: every query has K rows ranked 1..K; the
# squared score of rank r is the r-th ground-truth squared distance (1e-4
# relative); every id is distinct and one whose true distance is at most
# the K-th true distance (ids may differ from gt.ivecs where distances tie).
check_gt() {
	awk -v k="$2" '
	function abs(x) { return x < 0 ? -x : x }
	function fail(msg) { print "query " q " rank " r ": " msg " (" $0 ")"; bad = 1 }
	FNR == 1 { f++ }
	f == 1 { for (i = 2; i <= NF; i++) gid[NR - 1, i - 2] = $i; ngt = NR; next }
	f == 2 { for (i = 2; i <= NF; i++) gd[FNR - 1, i - 2] = $i; next }
	f == 3 {
		q = $1; r = $2; id = $3; s = $4
		if (q >= ngt) { fail("no such query"); next }
		if (r != ++cnt[q]) fail("ranks out of order")
		want = gd[q, r - 1]; tol = 1e-4 * (want > 1 ? want : 1)
		if (abs(s * s - want) > tol) fail("squared score " s * s " but true distance " want)
		p = -1
		for (j = 0; j < 100; j++) if (gid[q, j] == id) { p = j; break }
		if (p < 0) fail("id " id " is not among the true 100 nearest")
		else if (gd[q, p] > gd[q, k - 1] + tol) fail("id " id " is farther than the true k-th")
		if (seen[q, id]++) fail("id " id " twice")
	}
	END {
		for (q = 0; q < ngt; q++) if (cnt[q] != k) { print "query " q ": " cnt[q] + 0 " rows"; bad = 1 }
		exit bad
	}' <(od -An -v -t d4 -w404 "$1/gt.ivecs") <(od -An -v -t f4 -w404 "$1/gt_dist.fvecs") "$3"
}

# check_bf METRIC RESULTS.tsv K: iris queries against an awk brute force in
# double precision: the r-th score is the r-th best true score, and every
# returned id has the score printed for it.
check_bf() {
	awk -F'[,\t]' -v metric="$1" -v k="$3" '
	BEGIN { nb = 0; nq = 0 }
	function abs(x) { return x < 0 ? -x : x }
	function score(qi, bi,   j, d, nq2, nb2) {
		d = 0; nq2 = 0; nb2 = 0
		for (j = 1; j <= 4; j++) { d += Q[qi, j] * B[bi, j]; nq2 += Q[qi, j] ^ 2; nb2 += B[bi, j] ^ 2 }
		return metric == "cos" ? d / sqrt(nq2 * nb2) : d
	}
	function ranked(qi,   i, j, t) {
		for (i = 0; i < nb; i++) S[i] = score(qi, i)
		for (i = 1; i < nb; i++) { t = S[i]; for (j = i - 1; j >= 0 && S[j] < t; j--) S[j + 1] = S[j]; S[j + 1] = t }
		done = qi
	}
	function fail(msg) { print "query " q " rank " r ": " msg " (" $0 ")"; bad = 1 }
	FNR == 1 { f++ }
	f == 1 { for (j = 1; j <= 4; j++) B[nb, j] = $j; nb++; next }
	f == 2 { for (j = 1; j <= 4; j++) Q[nq, j] = $j; nq++; next }
	f == 3 {
		q = $1; r = $2; id = $3; s = $4; rows++
		if (done != q "") ranked(q)
		if (r != ++cnt[q]) fail("ranks out of order")
		if (abs(s - S[r - 1]) > 1e-4 * (abs(S[r - 1]) > 1 ? abs(S[r - 1]) : 1)) fail("score " s " but the true " r "-th best is " S[r - 1])
		t = score(q, id)
		if (abs(s - t) > 1e-4 * (abs(t) > 1 ? abs(t) : 1)) fail("id " id " has the true score " t)
		if (seen[q, id]++) fail("id " id " twice")
	}
	END { if (rows != nq * k) { print rows " rows, expected " nq * k; bad = 1 } exit bad }
	' "$DATA/iris/base.csv" "$DATA/iris/query.csv" "$2"
}

# Wait until a file has at least n lines (up to 20 s).
wait_lines() {
	local i
	for ((i = 0; i < 200; i++)); do
		[ "$(wc -l <"$1")" -ge "$2" ] && return 0
		sleep 0.1
	done
	echo "$1 has $(wc -l <"$1") lines after 20 s, expected $2"
	return 1
}

@test "vec-query --help prints the usage on stdout and exits 0" {
	run --separate-stderr vec_query --help
	expect_ok
	[[ "${lines[0]}" == "Usage: vec-query [OPTION]... INDEX [INDEX]... [QUERIES]..." ]]
	[[ "${lines[1]}" == "  or:  vec-query --merge [OPTION]... [RESULTS]..." ]]
	[[ "$output" == *"-k, --k=K"* ]]
	[ -z "$stderr" ]
}

@test "vec-query --version prints 'vec-query (vecutils) 0.1.0'" {
	run --separate-stderr vec_query --version
	expect_ok
	assert_eq "$output" "vec-query (vecutils) 0.1.0"
}

@test "vec-query: an unknown option is a usage error (exit 2)" {
	run --separate-stderr vec_query --bogus "$(IDX iris.vec)" "$DATA/iris/query.fvecs"
	expect_err_has 2 "unrecognized option '--bogus'" "Try 'vec-query --help' for more information."
	[ -z "$output" ]
}

@test "vec-query without an index is a usage error" {
	run --separate-stderr vec_query
	expect_usage vec-query "no index given"
}

@test "vec-query -k 0, -k -3, -k abc and -k 100001 are usage errors" {
	for k in 0 -3 abc 100001 ""; do
		run --separate-stderr vec_query -k "$k" "$(IDX iris.vec)" "$DATA/iris/query.fvecs"
		expect_usage vec-query "invalid value '$k' for -k (expected an integer from 1 to 100000)"
		[ -z "$output" ]
	done
}

@test "vec-query -j 0 and --batch x / --batch 0 are usage errors" {
	run --separate-stderr vec_query -j 0 "$(IDX iris.vec)" "$DATA/iris/query.fvecs"
	expect_usage vec-query "invalid value '0' for -j (expected an integer from 1 to 1024)"
	run --separate-stderr vec_query --batch x "$(IDX iris.vec)" "$DATA/iris/query.fvecs"
	expect_usage vec-query "invalid value 'x' for --batch (expected an integer from 1 to 1048576)"
	run --separate-stderr vec_query --batch 0 "$(IDX iris.vec)" "$DATA/iris/query.fvecs"
	expect_usage vec-query "invalid value '0' for --batch (expected an integer from 1 to 1048576)"
	[ -z "$output" ]
}

@test "vec-query: unknown output and input formats are usage errors" {
	run --separate-stderr vec_query -F xml "$(IDX iris.vec)" "$DATA/iris/query.fvecs"
	expect_usage vec-query "unknown output format 'xml' (expected tsv, csv, jsonl, ivecs or fvecs)"
	run --separate-stderr vec_query -f xml "$(IDX iris.vec)" "$DATA/iris/query.fvecs"
	expect_usage vec-query "unknown input format 'xml' (expected fvecs, bvecs, ivecs, csv, tsv or npy)"
}

@test "digits (64-d, many ties): k=10 results equal the ground truth, tie-aware" {
	run --separate-stderr vec_query -k 10 "$(IDX digits.vec)" "$DATA/digits/query.fvecs"
	expect_ok
	[ -z "$stderr" ]
	printf '%s\n' "$output" >res.tsv
	assert_eq "$(wc -l <res.tsv)" 1000
	check_gt "$DATA/digits" 10 res.tsv
}

@test "digits: k=1 and k=37 also equal the ground truth" {
	vec_query -k 1 "$(IDX digits.vec)" "$DATA/digits/query.fvecs" >res1.tsv
	check_gt "$DATA/digits" 1 res1.tsv
	vec_query -k 37 "$(IDX digits.vec)" "$DATA/digits/query.fvecs" >res37.tsv
	check_gt "$DATA/digits" 37 res37.tsv
}

@test "iris: k=10 results equal the ground truth, tie-aware" {
	vec_query -k 10 "$(IDX iris.vec)" "$DATA/iris/query.fvecs" >res.tsv
	check_gt "$DATA/iris" 10 res.tsv
	# CSV queries give the same answers
	vec_query -k 10 "$(IDX iris.vec)" "$DATA/iris/query.csv" >res-csv.tsv
	assert_same res-csv.tsv res.tsv
}

@test "ivecs and fvecs output carry the same ids and scores as TSV" {
	vec_query -k 10 "$(IDX digits.vec)" "$DATA/digits/query.fvecs" >res.tsv
	vec_query -k 10 -F ivecs "$(IDX digits.vec)" "$DATA/digits/query.fvecs" >res.ivecs
	vec_query -k 10 -F fvecs "$(IDX digits.vec)" "$DATA/digits/query.fvecs" >res.fvecs
	assert_eq "$(wc -c <res.ivecs)" $((100 * 44))
	assert_eq "$(vecs_dim res.ivecs)" 10
	ivecs_text res.ivecs | tr ' ' '\n' >ids.txt
	cut -f3 res.tsv >want-ids.txt
	assert_same ids.txt want-ids.txt
	fvecs_text res.fvecs | tr ' ' '\n' >scores.txt
	paste scores.txt <(cut -f4 res.tsv) | awk '{ d = $1 - $2; if (d < 0) d = -d;
		if (d > 1e-6 * ($2 > 1 ? $2 : 1)) { print NR ": " $0; bad = 1 } } END { exit bad }'
	# and the ivecs ids pass the tie-aware check with the fvecs scores
	paste -d'\t' <(awk '{ print int((NR - 1) / 10) "\t" (NR - 1) % 10 + 1 }' ids.txt) ids.txt scores.txt >joined.tsv
	check_gt "$DATA/digits" 10 joined.tsv
}

@test "results do not depend on threads or batch size" {
	vec_query -k 10 "$(IDX digits.vec)" "$DATA/digits/query.fvecs" >all.tsv
	vec_query -k 10 -j 1 "$(IDX digits.vec)" "$DATA/digits/query.fvecs" >j1.tsv
	vec_query -k 10 -j 3 --batch 7 "$(IDX digits.vec)" "$DATA/digits/query.fvecs" >j3.tsv
	vec_query -k 10 --batch 1 "$(IDX digits.vec)" "$DATA/digits/query.fvecs" >b1.tsv
	assert_same j1.tsv all.tsv
	assert_same j3.tsv all.tsv
	assert_same b1.tsv all.tsv
}

@test "-m ip results equal an awk brute force on iris" {
	vec_query -k 10 "$(IDX iris-ip.vec)" "$DATA/iris/query.fvecs" >res.tsv
	check_bf ip res.tsv 10
}

@test "-m cos results equal an awk brute force on iris" {
	vec_query -k 10 "$(IDX iris-cos.vec)" "$DATA/iris/query.fvecs" >res.tsv
	check_bf cos res.tsv 10
	# queries need not be unit length: scaling them changes nothing
	awk -F, -v OFS=, '{ for (i = 1; i <= NF; i++) $i *= 8 } 1' "$DATA/iris/query.csv" >scaled.csv
	vec_query -k 10 "$(IDX iris-cos.vec)" scaled.csv >scaled.tsv
	check_bf cos scaled.tsv 10
}

@test "-m cos: a zero query scores 0 against everything (ties by smaller id)" {
	run --separate-stderr vec_query -k 3 "$(IDX iris-cos.vec)" < <(printf '0,0,0,0\n')
	expect_ok
	assert_eq "$output" "$(printf '0\t1\t0\t0\n0\t2\t1\t0\n0\t3\t2\t0')"
}

@test "TSV rows are query, rank, id, score; ties go to the smaller id" {
	run --separate-stderr vec_query -k 4 "$(IDX tiny.vec)" < <(fvec 0 0; fvec 6 8)
	expect_ok
	assert_eq "$output" "$(printf '%s\n' \
		"0	1	0	0" "0	2	1	5" "0	3	3	5" "0	4	2	10" \
		"1	1	2	0" "1	2	1	5" "1	3	0	10" "1	4	3	14.3178215")"
}

@test "CSV output" {
	run --separate-stderr vec_query -F csv -k 2 "$(IDX tiny.vec)" < <(fvec 0 0)
	expect_ok
	assert_eq "$output" "$(printf '0,1,0,0\n0,2,1,5')"
}

@test "JSON lines output" {
	run --separate-stderr vec_query -F jsonl -k 2 "$(IDX tiny.vec)" < <(fvec 3 4)
	expect_ok
	assert_eq "${lines[0]}" '{"query":0,"rank":1,"id":1,"score":0}'
	assert_eq "${lines[1]}" '{"query":0,"rank":2,"id":0,"score":5}'
	assert_eq "${#lines[@]}" 2
}

@test "fewer than k rows when the index holds fewer than k vectors" {
	for fmt in tsv csv jsonl; do
		run --separate-stderr vec_query -F "$fmt" -k 10 "$(IDX tiny.vec)" < <(fvec 0 0; fvec 1 1)
		expect_ok
		assert_eq "${#lines[@]}" 8
	done
}

@test "ivecs output is padded with -1, fvecs with inf, when k exceeds the count" {
	vec_query -F ivecs -k 6 "$(IDX tiny.vec)" < <(fvec 0 0) >res.ivecs
	assert_eq "$(wc -c <res.ivecs)" 28
	assert_eq "$(od -An -v -t d4 res.ivecs | xargs)" "6 0 1 3 2 -1 -1"
	vec_query -F fvecs -k 6 "$(IDX tiny.vec)" < <(fvec 0 0) >res.fvecs
	assert_eq "$(fvecs_text res.fvecs | xargs)" "0 5 5 10 inf inf"
}

@test "a keyed index prints the key column in every text format" {
	idx=$(IDX tiny-keys.vec)
	run --separate-stderr vec_query -k 4 "$idx" < <(fvec 0 0)
	expect_ok
	assert_eq "$output" "$(printf '%s\n' "0	1	0	0	zero" "0	2	1	5	x,y" "0	3	3	5	" "0	4	2	10	say \"hi\"")"
	run --separate-stderr vec_query -F csv -k 4 "$idx" < <(fvec 0 0)
	expect_ok
	assert_eq "$output" "$(printf '%s\n' '0,1,0,0,zero' '0,2,1,5,"x,y"' '0,3,3,5,' '0,4,2,10,"say ""hi"""')"
	run --separate-stderr vec_query -F jsonl -k 4 "$idx" < <(fvec 0 0)
	expect_ok
	assert_eq "${lines[1]}" '{"query":0,"rank":2,"id":1,"score":5,"key":"x,y"}'
	assert_eq "${lines[2]}" '{"query":0,"rank":3,"id":3,"score":5,"key":null}'
	assert_eq "${lines[3]}" '{"query":0,"rank":4,"id":2,"score":10,"key":"say \"hi\""}'
}

@test "iris with species keys: each result's key is the species of that vector" {
	paste -d, <(iris_species <"$DATA/iris/labels_all.txt") "$DATA/iris/iris_all.csv" >keyed.csv
	vec_build -o keyed.vec keyed.csv
	vec_query -k 5 keyed.vec "$DATA/iris/iris_all.csv" >res.tsv
	assert_eq "$(wc -l <res.tsv)" 750
	iris_species <"$DATA/iris/labels_all.txt" >species.txt
	awk -F'\t' 'NR == FNR { sp[NR - 1] = $1; next }
		NF != 5 || $5 != sp[$3] { print "bad row: " $0; bad = 1 }
		$2 == 1 && $4 != 0 { print "rank 1 should be at distance 0: " $0; bad = 1 }
		END { exit bad }' species.txt res.tsv
}

@test "query numbers run on over several query inputs" {
	head -c 60 "$DATA/iris/query.fvecs" >q1.fvecs
	tail -c +61 "$DATA/iris/query.fvecs" >q2.fvecs
	vec_query -k 2 "$(IDX iris.vec)" "$DATA/iris/query.fvecs" >want.tsv
	run --separate-stderr vec_query -k 2 "$(IDX iris.vec)" q1.fvecs q2.fvecs
	expect_ok
	printf '%s\n' "$output" >got.tsv
	assert_same got.tsv want.tsv
	run --separate-stderr vec_query -k 2 "$(IDX iris.vec)" q1.fvecs - <q2.fvecs
	printf '%s\n' "$output" >got2.tsv
	assert_same got2.tsv want.tsv
}

@test "queries of another dimension are refused" {
	fvec 1 2 3 >q.fvecs
	run --separate-stderr vec_query "$(IDX iris.vec)" q.fvecs
	expect_err 1 "vec-query: q.fvecs: vector 1: dimension 3, expected 4 (the index's)"
	[ -z "$output" ]
}

@test "a bad query record stops vec-query with exit 1, naming it" {
	{ fvec 1 2 3 4; fvec_bits 0 0 7fc00000 0; } >q.fvecs
	run --separate-stderr vec_query "$(IDX iris.vec)" q.fvecs
	expect_err 1 "vec-query: q.fvecs: vector 2: component 3 is NaN"
	printf '1,2,3,4\n5,6,7\n' >q.csv
	run --separate-stderr vec_query "$(IDX iris.vec)" q.csv
	expect_err 1 "vec-query: q.csv:2: 3 fields, expected 4"
	: >empty.fvecs
	run --separate-stderr vec_query "$(IDX iris.vec)" empty.fvecs
	expect_err 1 "vec-query: empty.fvecs: empty input (no vectors)"
}

@test "vec-query refuses missing, directory and non-index files" {
	run --separate-stderr vec_query nope.vec "$DATA/iris/query.fvecs"
	expect_err 1 "vec-query: nope.vec: cannot open: No such file or directory"
	mkdir d.vec
	run --separate-stderr vec_query d.vec "$DATA/iris/query.fvecs"
	expect_err 1 "vec-query: d.vec: is a directory"
	cp "$DATA/iris/base.csv" csv.vec
	run --separate-stderr vec_query csv.vec "$DATA/iris/query.fvecs"
	expect_err 1 "vec-query: csv.vec: not a vec index (bad magic)"
	[ -z "$output" ]
}

@test "vec-query refuses an unreadable index" {
	unprivileged
	cp "$FIX/small.vec" idx.vec
	chmod 000 idx.vec
	run --separate-stderr vec_query idx.vec "$FIX/small.fvecs"
	expect_err 1 "vec-query: idx.vec: cannot open: Permission denied"
}

@test "vec-query refuses damaged and too-new indexes" {
	for f in bad-magic bad-header-crc truncated future-version; do
		cp "$FIX/$f.vec" idx.vec
		run --separate-stderr vec_query idx.vec "$FIX/small.fvecs"
		case $f in
		bad-magic) expect_err 1 "vec-query: idx.vec: not a vec index (bad magic)" ;;
		bad-header-crc) expect_err 1 "vec-query: idx.vec: header checksum mismatch (index is damaged)" ;;
		truncated) expect_err 1 "vec-query: idx.vec: truncated index (section 'NORM' needs 192+20 bytes, file is 206)" ;;
		future-version) expect_err 1 "vec-query: idx.vec: format version 2 is newer than this tool (1)" ;;
		esac
		[ -z "$output" ]
	done
}

@test "binary output to a terminal is refused unless --force" {
	command -v script >/dev/null || skip "script(1) is not installed"
	script -qec true /dev/null </dev/null >/dev/null 2>&1 || skip "script(1) cannot open a pseudo-terminal here"
	fvec 0 0 >q.fvecs
	run script -qec "'$VEC_BIN/vec-query' -F ivecs '$(IDX tiny.vec)' q.fvecs" /dev/null </dev/null
	[ "$status" -eq 2 ] || { echo "status $status: $output"; false; }
	[[ "$output" == *"vec-query: refusing to write binary ivecs output to a terminal (use --force)"* ]]
	run script -qec "'$VEC_BIN/vec-query' -F fvecs '$(IDX tiny.vec)' q.fvecs" /dev/null </dev/null
	[ "$status" -eq 2 ]
	run script -qec "'$VEC_BIN/vec-query' --force -F ivecs '$(IDX tiny.vec)' q.fvecs" /dev/null </dev/null
	[ "$status" -eq 0 ] || { echo "status $status: $output"; false; }
	# text output to a terminal is fine
	run script -qec "'$VEC_BIN/vec-query' -k 1 '$(IDX tiny.vec)' q.fvecs" /dev/null </dev/null
	[ "$status" -eq 0 ]
	[[ "$output" == *"0	1	0	0"* ]]
}

@test "streaming: fvecs queries written one at a time into a fifo are answered at once" {
	head -c 40 "$DATA/iris/query.fvecs" >two.fvecs
	vec_query -k 3 "$(IDX iris.vec)" two.fvecs >want.tsv
	mkfifo q.fifo
	exec 8<>q.fifo
	timeout 60 "$VEC_BIN/vec-query" -k 3 "$(IDX iris.vec)" q.fifo >out.tsv 2>err.txt 8>&- 3>&- &
	bg_pid=$!
	head -c 20 two.fvecs >&8
	wait_lines out.tsv 3
	tail -c 20 two.fvecs >&8
	wait_lines out.tsv 6
	exec 8>&-
	wait "$bg_pid" || { echo "vec-query failed: $(cat err.txt)"; false; }
	bg_pid=
	assert_same out.tsv want.tsv
	[ ! -s err.txt ]
}

@test "streaming: CSV query lines on stdin are answered before stdin closes" {
	head -2 "$DATA/iris/query.csv" >two.csv
	vec_query -k 2 "$(IDX iris.vec)" two.csv >want.tsv
	mkfifo q.fifo
	exec 8<>q.fifo
	timeout 60 "$VEC_BIN/vec-query" -k 2 "$(IDX iris.vec)" <q.fifo >out.tsv 2>err.txt 8>&- 3>&- &
	bg_pid=$!
	head -1 two.csv >&8
	wait_lines out.tsv 2
	tail -1 two.csv >&8
	wait_lines out.tsv 4
	exec 8>&-
	wait "$bg_pid" || { echo "vec-query failed: $(cat err.txt)"; false; }
	bg_pid=
	assert_same out.tsv want.tsv
}

@test "ip: fvecs output is padded with -inf, ivecs with -1, best (largest) first" {
	vec_build -m ip -o ip.vec "$BATS_FILE_TMPDIR/tiny.fvecs"
	# from (1,1) the inner products are 0 7 14 -5
	vec_query -F fvecs -k 6 ip.vec < <(fvec 1 1) >res.fvecs
	assert_eq "$(fvecs_text res.fvecs | xargs)" "14 7 0 -5 -inf -inf"
	vec_query -F ivecs -k 6 ip.vec < <(fvec 1 1) >res.ivecs
	assert_eq "$(ivecs_text res.ivecs | xargs)" "2 1 0 3 -1 -1"
}

@test "a key column in the queries is accepted and ignored" {
	vec_query -k 3 "$(IDX iris.vec)" "$DATA/iris/query.csv" >want.tsv
	nl -s, -w1 "$DATA/iris/query.csv" | sed 's/^/k/' >keyed.csv
	run --separate-stderr vec_query -k 3 "$(IDX iris.vec)" keyed.csv
	expect_ok
	printf '%s\n' "$output" >got.tsv
	assert_same got.tsv want.tsv
}

@test "TSV output prints a tab or newline inside a key as a space" {
	printf '"a\tb",0,0\n"c\nd",3,4\n' >k.csv
	vec_build -o k.vec k.csv
	run --separate-stderr vec_query -k 2 k.vec < <(fvec 0 0)
	expect_ok
	assert_eq "$output" "$(printf '0\t1\t0\t0\ta b\n0\t2\t1\t5\tc d')"
	run --separate-stderr vec_query -F jsonl -k 2 k.vec < <(fvec 0 0)
	expect_ok
	assert_eq "${lines[0]}" '{"query":0,"rank":1,"id":0,"score":0,"key":"a\tb"}'
	assert_eq "${lines[1]}" '{"query":0,"rank":2,"id":1,"score":5,"key":"c\nd"}'
}
