#!/usr/bin/env bats
# Several indexes searched as one, vec-query --mergeable and --merge: over
# shards of digits the answer is that of one index over all the vectors,
# byte for byte; so is the merge of one --mergeable run per shard; every
# refusal names the file and line, exits 1 and prints nothing.

bats_require_minimum_version 1.5.0
load test_helper

B="$BATS_TEST_DIRNAME/../data/digits/base.fvecs"
Q="$BATS_TEST_DIRNAME/../data/digits/query.fvecs"
REC=$((4 + 64 * 4)) # bytes of one digits fvecs record
DESC_FORM='"#vec-query k=K metric=l2|ip|cos format=tsv|csv keys=yes|no"'

# Records [FROM, TO) of digits.
part() { tail -c +$(($1 * REC + 1)) "$B" | head -c $((($2 - $1) * REC)); }
# N records of 64 components -1000: farthest from every digit (their
# components are 0 to 16) under l2, and the worst under ip and cos.
pad() { perl -e 'print pack("l<f<*", 64, (-1000) x 64) x $ARGV[0]' "$1"; }

setup_file() {
	local b="$BATS_TEST_DIRNAME/../bin" m i
	VEC_BIN="${VEC_BIN:-$b}"
	cd "$BATS_FILE_TMPDIR" || return 1
	# Three shards of digits, [0,600) [600,1200) [1200,1697).  A vector's
	# id is its place in its index until indexes store ids: so shards 1
	# and 2 begin with pad records, which never rank, and hold each digit
	# at its place in the whole set.
	part 0 600 >s0.fvecs
	{ pad 600; part 600 1200; } >s1.fvecs
	{ pad 1200; part 1200 1697; } >s2.fvecs
	for m in l2 ip cos; do
		"$VEC_BIN/vec-build" -q -m $m -o all-$m.vec "$B"
		for i in 0 1 2; do
			"$VEC_BIN/vec-build" -q -m $m -o s$i-$m.vec s$i.fvecs
		done
	done
	"$VEC_BIN/vec-build" -q -o iris.vec "$BATS_TEST_DIRNAME/../data/iris/base.fvecs"
	for i in 0 1 2; do
		"$VEC_BIN/vec-query" -q --mergeable -k 10 s$i-l2.vec "$Q" >r$i.tsv
		"$VEC_BIN/vec-query" -q --mergeable -k 10 -F csv s$i-l2.vec "$Q" >r$i.csv
	done
	"$VEC_BIN/vec-query" -q -k 10 all-l2.vec "$Q" >all.tsv
}

IDX() { echo "$BATS_FILE_TMPDIR/$1"; }

@test "three flat shards answer as one index over all of digits: the same rows, l2, ip and cos" {
	for m in l2 ip cos; do
		vec_query -k 10 "$(IDX all-$m.vec)" "$Q" >one.tsv
		run --separate-stderr vec_query -k 10 "$(IDX s0-$m.vec)" "$(IDX s1-$m.vec)" "$(IDX s2-$m.vec)" "$Q"
		expect_ok
		[ -z "$stderr" ]
		printf '%s\n' "$output" >three.tsv
		assert_eq "$(wc -l <three.tsv)" 1000
		assert_same three.tsv one.tsv
	done
	# (the shards alone do not: each misses the others' neighbours)
	vec_query -k 10 "$(IDX s0-l2.vec)" "$Q" >s0.tsv
	run -1 cmp -s s0.tsv "$(IDX all.tsv)"
}

@test "shards: the same in every output format, at any k, threads, batch or shard order" {
	S="$(IDX s0-l2.vec) $(IDX s1-l2.vec) $(IDX s2-l2.vec)"
	for f in csv jsonl ivecs fvecs; do
		vec_query -k 10 -F $f "$(IDX all-l2.vec)" "$Q" >one.$f
		vec_query -k 10 -F $f $S "$Q" >three.$f
		assert_same three.$f one.$f
	done
	for k in 1 37; do
		vec_query -k $k "$(IDX all-l2.vec)" "$Q" >one.tsv
		vec_query -k $k $S "$Q" >three.tsv
		assert_same three.tsv one.tsv
	done
	vec_query -k 10 -j 1 $S "$Q" >j1.tsv
	vec_query -k 10 -j 3 --batch 7 $S "$Q" >j3.tsv
	vec_query -k 10 --batch 1 "$(IDX s2-l2.vec)" "$(IDX s0-l2.vec)" "$(IDX s1-l2.vec)" "$Q" >order.tsv
	# an index given twice adds nothing: an id is kept once
	vec_query -k 10 $S "$(IDX s1-l2.vec)" "$Q" >twice.tsv
	for f in j1 j3 order twice; do
		assert_same $f.tsv "$(IDX all.tsv)"
	done
}

@test "stored ids (vec-build --id-start): shards answer as one index, byte for byte" {
	vec_build --help | grep -q -- --id-start || skip "vec-build has no --id-start yet"
	part 0 600 >p0.fvecs
	part 600 1200 >p1.fvecs
	part 1200 1697 >p2.fvecs
	vec_build -q --id-start 0 -o a.vec p0.fvecs
	vec_build -q --id-start 600 -o b.vec p1.fvecs
	vec_build -q --id-start 1200 -o c.vec p2.fvecs
	vec_query -k 10 a.vec b.vec c.vec "$Q" >three.tsv
	assert_same three.tsv "$(IDX all.tsv)"
	for i in a b c; do
		vec_query --mergeable -k 10 $i.vec "$Q" >$i.tsv
	done
	cat c.tsv a.tsv b.tsv | vec_query --merge >merged.tsv
	assert_same merged.tsv "$(IDX all.tsv)"
}

@test "stored ids (vec-build --shard I/N): shards answer as one index, byte for byte" {
	vec_build --help | grep -q -- --shard || skip "vec-build has no --shard yet"
	for i in 0 1 2 3; do
		vec_build -q --shard $i/4 -o sh$i.vec "$B"
	done
	vec_query -k 10 sh0.vec sh1.vec sh2.vec sh3.vec "$Q" >four.tsv
	assert_same four.tsv "$(IDX all.tsv)"
}

@test "--mergeable begins tsv and csv output with the description line, then the usual rows" {
	run --separate-stderr vec_query --mergeable -k 10 "$(IDX s0-l2.vec)" "$Q"
	expect_ok
	assert_eq "${lines[0]}" "#vec-query k=10 metric=l2 format=tsv keys=no"
	vec_query -k 10 "$(IDX s0-l2.vec)" "$Q" >plain.tsv
	assert_eq "$(printf '%s\n' "$output" | tail -n +2)" "$(cat plain.tsv)"
	run --separate-stderr vec_query --mergeable -k 3 -F csv "$(IDX s1-ip.vec)" "$Q"
	expect_ok
	assert_eq "${lines[0]}" "#vec-query k=3 metric=ip format=csv keys=no"
	assert_eq "${#lines[@]}" 301
	run --separate-stderr vec_query --mergeable -k 1 "$(IDX all-cos.vec)" "$(IDX s0-cos.vec)" "$Q"
	expect_ok
	assert_eq "${lines[0]}" "#vec-query k=1 metric=cos format=tsv keys=no"
}

@test "--merge of one --mergeable run per shard = the answer over all shards (files or one stream, tsv or csv)" {
	run --separate-stderr vec_query --merge "$(IDX r0.tsv)" "$(IDX r1.tsv)" "$(IDX r2.tsv)"
	expect_ok
	[ -z "$stderr" ]
	printf '%s\n' "$output" >merged.tsv
	assert_same merged.tsv "$(IDX all.tsv)"
	# runs one after another in one stream, in any order
	cat "$(IDX r2.tsv)" "$(IDX r0.tsv)" "$(IDX r1.tsv)" | vec_query --merge >stream.tsv
	assert_same stream.tsv "$(IDX all.tsv)"
	cat "$(IDX r1.tsv)" "$(IDX r2.tsv)" | vec_query --merge "$(IDX r0.tsv)" - >mixed.tsv
	assert_same mixed.tsv "$(IDX all.tsv)"
	# CSV runs print CSV unless -F says otherwise
	vec_query -k 10 -F csv "$(IDX all-l2.vec)" "$Q" >all.csv
	vec_query --merge "$(IDX r0.csv)" "$(IDX r1.csv)" "$(IDX r2.csv)" >merged.csv
	assert_same merged.csv all.csv
	vec_query --merge -F tsv "$(IDX r0.csv)" "$(IDX r1.tsv)" "$(IDX r2.csv)" >fromcsv.tsv
	assert_same fromcsv.tsv "$(IDX all.tsv)"
	# jsonl, ivecs and fvecs as vec-query writes them for one index
	for f in jsonl ivecs fvecs; do
		vec_query -k 10 -F $f "$(IDX all-l2.vec)" "$Q" >all.$f
		vec_query --merge -F $f "$(IDX r0.tsv)" "$(IDX r1.tsv)" "$(IDX r2.tsv)" >merged.$f
		assert_same merged.$f all.$f
	done
}

@test "--merge -k takes each query's best K; with --mergeable its output merges again" {
	vec_query -k 4 "$(IDX all-l2.vec)" "$Q" >all4.tsv
	vec_query --merge -k 4 "$(IDX r0.tsv)" "$(IDX r1.tsv)" "$(IDX r2.tsv)" >m4.tsv
	assert_same m4.tsv all4.tsv
	run --separate-stderr vec_query --merge --mergeable "$(IDX r0.tsv)" "$(IDX r1.tsv)"
	expect_ok
	assert_eq "${lines[0]}" "#vec-query k=10 metric=l2 format=tsv keys=no"
	printf '%s\n' "$output" >m01.tsv
	vec_query --merge m01.tsv "$(IDX r2.tsv)" >again.tsv
	assert_same again.tsv "$(IDX all.tsv)"
	vec_query --merge --mergeable -k 4 -F csv m01.tsv "$(IDX r2.csv)" >m4.csv
	assert_eq "$(head -1 m4.csv)" "#vec-query k=4 metric=l2 format=csv keys=no"
	vec_query --merge -F tsv m4.csv >again4.tsv
	assert_same again4.tsv all4.tsv
}

@test "a small shard (fewer than K vectors), a run with fewer than K rows, a query a run leaves out" {
	part 0 3 >t.fvecs
	{ pad 3; part 3 1697; } >rest.fvecs
	vec_build -q -o t.vec t.fvecs
	vec_build -q -o rest.vec rest.fvecs
	# the small shard holds the first 3 vectors again: the same ids
	vec_query -k 10 t.vec rest.vec "$Q" >two.tsv
	assert_same two.tsv "$(IDX all.tsv)"
	vec_query -k 10 t.vec "$(IDX s0-l2.vec)" "$(IDX s1-l2.vec)" "$(IDX s2-l2.vec)" "$Q" >four.tsv
	assert_same four.tsv "$(IDX all.tsv)"
	vec_query --mergeable -k 10 t.vec "$Q" >t.tsv
	assert_eq "$(grep -c . t.tsv)" 301
	vec_query --merge t.tsv "$(IDX r0.tsv)" "$(IDX r1.tsv)" "$(IDX r2.tsv)" >m.tsv
	assert_same m.tsv "$(IDX all.tsv)"
	# run 0 without query 5: that query is merged from the others
	awk -F'\t' '$1 != 5' "$(IDX r0.tsv)" >r0-no5.tsv
	vec_query --merge r0-no5.tsv "$(IDX r1.tsv)" "$(IDX r2.tsv)" >m5.tsv
	vec_query --merge "$(IDX r1.tsv)" "$(IDX r2.tsv)" | awk -F'\t' '$1 == 5' >want5.tsv
	awk -F'\t' '$1 != 5' "$(IDX all.tsv)" >want-rest.tsv
	assert_eq "$(awk -F'\t' '$1 == 5' m5.tsv)" "$(cat want5.tsv)"
	assert_eq "$(awk -F'\t' '$1 != 5' m5.tsv)" "$(cat want-rest.tsv)"
	awk -F'\t' '$1 == 5' "$(IDX all.tsv)" >all5.tsv
	run -1 cmp -s want5.tsv all5.tsv
}

@test "keys: the key column appears when any index stores keys, and survives --merge (CSV quoting too)" {
	printf 'zero,0,0\n"x,y",3,4\n"say ""hi""",6,8\n"two\nlines",0,-5\n' >k.csv
	vec_build -q --keys -o k.vec k.csv
	# no keys: ids 4 and 5, after 4 pad records
	perl -e 'print pack("l<f<*", 2, @$_) for [-900, -900], [-900, -900], [-900, -900], [-900, -900], [1, 1], [2, 2]' >n.fvecs
	vec_build -q -o n.vec n.fvecs
	fvec 0 0 >q.fvecs
	run --separate-stderr vec_query -k 4 k.vec n.vec q.fvecs
	expect_ok
	assert_eq "$output" "$(printf '%s\n' "0	1	0	0	zero" "0	2	4	1.41421354	" \
		"0	3	5	2.82842708	" "0	4	1	5	x,y")"
	vec_query -k 6 -F csv --mergeable k.vec q.fvecs >k.run
	vec_query -k 6 -F csv --mergeable n.vec q.fvecs >n.run
	assert_eq "$(head -1 k.run)" "#vec-query k=6 metric=l2 format=csv keys=yes"
	assert_eq "$(head -1 n.run)" "#vec-query k=6 metric=l2 format=csv keys=no"
	vec_query -k 6 -F csv k.vec n.vec q.fvecs >want.csv
	vec_query --merge k.run n.run >got.csv
	assert_same got.csv want.csv
	grep -q '^0,6,2,10,"say ""hi"""$' got.csv
	grep -q '^0,5,3,5,"two$' got.csv
	vec_query -k 6 -F jsonl k.vec n.vec q.fvecs >want.jsonl
	vec_query --merge -F jsonl n.run k.run >got.jsonl
	assert_same got.jsonl want.jsonl
	grep -q '"id":4,"score":1.41421354,"key":null}' got.jsonl
}

@test "refused: indexes of different dimensions or metrics (exit 1, nothing printed)" {
	run --separate-stderr vec_query "$(IDX s0-l2.vec)" "$(IDX iris.vec)" "$Q"
	expect_err 1 "vec-query: $(IDX iris.vec): dimension 4, expected 64 ($(IDX s0-l2.vec)'s)"
	[ -z "$output" ]
	cd "$BATS_FILE_TMPDIR"
	run --separate-stderr vec_query --mergeable s0-l2.vec s1-l2.vec s2-ip.vec "$Q"
	expect_err 1 "vec-query: s2-ip.vec: metric ip, expected l2 (s0-l2.vec's)"
	[ -z "$output" ]
	run --separate-stderr vec_query s0-cos.vec s1-cos.vec all-l2.vec "$Q"
	expect_err 1 "vec-query: all-l2.vec: metric l2, expected cos (s0-cos.vec's)"
	[ -z "$output" ]
}

@test "refused: runs of different k or metric, rows without a description line" {
	cd "$BATS_FILE_TMPDIR"
	vec_query --mergeable -k 5 s1-l2.vec "$Q" >"$BATS_TEST_TMPDIR/w/k5.tsv"
	vec_query --mergeable -k 10 s1-ip.vec "$Q" >"$BATS_TEST_TMPDIR/w/ip.tsv"
	cd "$BATS_TEST_TMPDIR/w"
	cp "$(IDX r0.tsv)" r0.tsv
	run --separate-stderr vec_query --merge r0.tsv k5.tsv
	expect_err 1 "vec-query: k5.tsv:1: k=5, expected k=10 (as the first run, r0.tsv:1)"
	[ -z "$output" ]
	run --separate-stderr vec_query --merge r0.tsv ip.tsv
	expect_err 1 "vec-query: ip.tsv:1: metric=ip, expected metric=l2 (as the first run, r0.tsv:1)"
	[ -z "$output" ]
	# in one stream, the line of the second run's description
	cat r0.tsv ip.tsv >both.tsv
	run --separate-stderr vec_query --merge <both.tsv
	expect_err 1 "vec-query: stdin:1002: metric=ip, expected metric=l2 (as the first run, stdin:1)"
	[ -z "$output" ]
	# the output of vec-query without --mergeable
	cp "$(IDX all.tsv)" plain.tsv
	run --separate-stderr vec_query --merge r0.tsv plain.tsv
	expect_err 1 "vec-query: plain.tsv:1: a row before any description line (expected $DESC_FORM, as vec-query --mergeable writes)"
	[ -z "$output" ]
	run --separate-stderr vec_query --merge </dev/null
	expect_err 1 "vec-query: nothing to merge: no description line $DESC_FORM in the input"
	[ -z "$output" ]
	run --separate-stderr vec_query --merge -k 11 r0.tsv
	expect_err 1 "vec-query: -k 11 is larger than the runs' k=10"
	[ -z "$output" ]
}

@test "refused: malformed rows, rows out of order, a cut last line (file and line named)" {
	cp "$(IDX r0.tsv)" r.tsv
	sed '5s/\t[^\t]*$/\tx/' r.tsv >bad.tsv
	run --separate-stderr vec_query --merge r.tsv bad.tsv
	expect_err 1 "vec-query: bad.tsv:5: bad score 'x'"
	[ -z "$output" ]
	sed '7s/\t[^\t]*$//' r.tsv >bad.tsv
	run --separate-stderr vec_query --merge bad.tsv
	expect_err 1 "vec-query: bad.tsv:7: 3 fields, expected 4 (query, rank, id, score)"
	[ -z "$output" ]
	sed '7s/$/\textra/' r.tsv >bad.tsv
	run --separate-stderr vec_query --merge <bad.tsv
	expect_err 1 "vec-query: stdin:7: 5 fields, expected 4 (query, rank, id, score)"
	[ -z "$output" ]
	sed '1s/k=10/k=ten/' r.tsv >bad.tsv
	run --separate-stderr vec_query --merge bad.tsv
	expect_err 1 "vec-query: bad.tsv:1: bad description line (expected $DESC_FORM)"
	[ -z "$output" ]
	# rank 2's score swapped with rank 3's (line 3 holds rank 2)
	awk -F'\t' -v OFS='\t' 'NR == 3 { s = $4; getline n; split(n, f, "\t"); print $1, $2, $3, f[4]; print f[1], f[2], f[3], s; next } 1' r.tsv >bad.tsv
	run --separate-stderr vec_query --merge bad.tsv
	expect_err_has 1 "vec-query: bad.tsv:4: score " " is better than rank 2's (scores out of order)"
	[ -z "$output" ]
	sed '3d' r.tsv >bad.tsv
	run --separate-stderr vec_query --merge bad.tsv
	expect_err 1 "vec-query: bad.tsv:3: rank 3 after rank 1 of query 0 (ranks out of order)"
	[ -z "$output" ]
	{ head -1 r.tsv; grep '^1	' r.tsv; grep '^0	' r.tsv; } >bad.tsv
	run --separate-stderr vec_query --merge bad.tsv
	expect_err 1 "vec-query: bad.tsv:12: query 0 after query 1 (query numbers go backwards)"
	[ -z "$output" ]
	head -c -1 r.tsv >bad.tsv
	run --separate-stderr vec_query --merge bad.tsv
	expect_err 1 "vec-query: bad.tsv:1001: incomplete last line (no newline at the end)"
	[ -z "$output" ]
	run --separate-stderr vec_query --merge r.tsv nope.tsv
	expect_err 1 "vec-query: nope.tsv: cannot open: No such file or directory"
	[ -z "$output" ]
}

@test "usage errors: --mergeable with jsonl/ivecs/fvecs, search options with --merge" {
	for f in jsonl ivecs fvecs; do
		run --separate-stderr vec_query --mergeable -F $f --force "$(IDX s0-l2.vec)" "$Q"
		expect_usage vec-query "--mergeable needs tsv or csv output, not $f"
		[ -z "$output" ]
	done
	for o in --ef=20 --nprobe=2 --refine=1 --batch=3 --stats -f=csv --header --no-keys; do
		run --separate-stderr vec_query --merge "${o/-f=/-f}" "$(IDX r0.tsv)"
		expect_usage vec-query "${o%%=*} cannot be used with --merge"
		[ -z "$output" ]
	done
}

@test "arguments: the leading index files are indexes; queries may be a pipe, gzip, or a damaged index" {
	S="$(IDX s0-l2.vec) $(IDX s1-l2.vec) $(IDX s2-l2.vec)"
	vec_query -k 10 $S <(cat "$Q") >pipe.tsv
	assert_same pipe.tsv "$(IDX all.tsv)"
	gzip -c "$Q" >q.fvecs.gz
	vec_query -k 10 $S q.fvecs.gz >gz.tsv
	assert_same gz.tsv "$(IDX all.tsv)"
	vec_query -k 10 $S <"$Q" >stdin.tsv
	assert_same stdin.tsv "$(IDX all.tsv)"
	# a damaged index still begins as one: it is opened, and refused
	cp "$FIX/bad-header-crc.vec" bad.vec
	run --separate-stderr vec_query "$(IDX s0-l2.vec)" bad.vec "$Q"
	expect_err 1 "vec-query: bad.vec: header checksum mismatch (index is damaged)"
	[ -z "$output" ]
	# the first argument is always an index
	run --separate-stderr vec_query "$Q" "$(IDX s0-l2.vec)"
	expect_err 1 "vec-query: $Q: not a vec index (bad magic)"
	[ -z "$output" ]
}

@test "--stats over several indexes: every query, and the list entries of every ivf shard" {
	part 0 900 >a.fvecs
	{ pad 900; part 900 1697; } >b.fvecs
	vec_build -q -t ivf --nlist 16 -o a.vec a.fvecs
	vec_build -q -t ivf --nlist 16 -o b.vec b.fvecs
	n=0
	for i in a b; do
		run --separate-stderr vec_query --stats --nprobe 3 $i.vec "$Q"
		expect_ok
		[[ "$stderr" =~ scanned\ ([0-9]+)\ list\ entries ]]
		n=$((n + BASH_REMATCH[1]))
	done
	run --separate-stderr vec_query --stats --nprobe 3 a.vec b.vec "$Q"
	expect_ok
	[[ "$stderr" == "vec-query: 100 queries, "*" s searching ("*" queries/s), scanned $n list entries" ]]
	run --separate-stderr vec_query --stats "$(IDX s0-l2.vec)" "$(IDX s1-l2.vec)" "$Q"
	expect_ok
	[[ "$stderr" == "vec-query: 100 queries, "*" s searching ("*" queries/s)" ]]
}

@test "--stats over several query inputs: a line for each input, then the total" {
	part 0 900 >a.fvecs
	vec_build -q -t ivf --nlist 16 -o a.vec a.fvecs
	head -c $((30 * (4 + 64 * 4))) "$Q" >q30.fvecs
	run --separate-stderr vec_query --stats --nprobe 3 a.vec q30.fvecs "$Q"
	expect_ok
	[ "${#lines[@]}" -eq $((130 * 10)) ]
	mapfile -t err <<<"$stderr"
	[ "${#err[@]}" -eq 3 ]
	[[ "${err[0]}" =~ ^vec-query:\ q30.fvecs:\ 30\ queries,\ .*\ s\ searching\ \(.*\ queries/s\),\ scanned\ ([0-9]+)\ list\ entries$ ]]
	a=${BASH_REMATCH[1]}
	[[ "${err[1]}" =~ ^vec-query:\ "$Q":\ 100\ queries,\ .*\ s\ searching\ \(.*\ queries/s\),\ scanned\ ([0-9]+)\ list\ entries$ ]]
	b=${BASH_REMATCH[1]}
	[[ "${err[2]}" == "vec-query: 130 queries, "*" s searching ("*" queries/s), scanned $((a + b)) list entries" ]]
	# one input: the total alone, as before
	run --separate-stderr vec_query --stats --nprobe 3 a.vec "$Q"
	expect_ok
	[[ "$stderr" == "vec-query: 100 queries, "*" s searching ("*" queries/s), scanned $b list entries" ]]
}

@test "the manual's example: GNU parallel runs a query per shard, vec-query --merge merges" {
	command -v parallel >/dev/null || skip "GNU parallel is not installed"
	cd "$BATS_FILE_TMPDIR"
	PATH="$VEC_BIN:$PATH" timeout 120 parallel --will-cite vec-query --mergeable -k 10 {} "$Q" \
		::: s0-l2.vec s1-l2.vec s2-l2.vec | vec_query --merge >"$BATS_TEST_TMPDIR/w/p.tsv"
	assert_same "$BATS_TEST_TMPDIR/w/p.tsv" all.tsv
}

@test "hnsw shards (vec-build --shard) at the same ef: recall@10 within 0.01 of one index, or better" {
	local S i one got
	vec_build -q -t hnsw -M 4 -o one.vec "$DATA/digits/base.fvecs"
	vec_query -k 10 --ef 10 -F ivecs one.vec "$DATA/digits/query.fvecs" >one.ivecs
	one=$(recall10_ids one.ivecs "$DATA/digits/gt.ivecs" "$DATA/digits/gt_dist.fvecs")
	# Not saturated: there is room to be worse.
	! at_least "$one" 0.99
	for S in 2 4; do
		for ((i = 0; i < S; i++)); do
			vec_build -q -t hnsw -M 4 --shard "$i/$S" -o "s$S-$i.vec" "$DATA/digits/base.fvecs"
		done
		vec_query -k 10 --ef 10 -F ivecs s"$S"-*.vec "$DATA/digits/query.fvecs" >got.ivecs
		got=$(recall10_ids got.ivecs "$DATA/digits/gt.ivecs" "$DATA/digits/gt_dist.fvecs")
		echo "one index $one, $S shards $got"
		at_least "$got" "$(awk -v r="$one" 'BEGIN { print r - 0.01 }')"
	done
}
