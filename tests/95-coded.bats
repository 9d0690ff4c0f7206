#!/usr/bin/env bats
# The coded types: ivfpq (8-bit tables and the 4-bit fast scan), pq,
# ivfsq8 and sq8, with and without refinement on kept vectors.  Recall is
# counted tie-aware from the result ids (the scores of unrefined codes are
# estimates) against the exact top 100 shipped with digits.

bats_require_minimum_version 1.5.0
load test_helper

B="$BATS_TEST_DIRNAME/../data/digits/base.fvecs"
Q="$BATS_TEST_DIRNAME/../data/digits/query.fvecs"

# recall ARGS...: recall@10 of vec-query ARGS on the digits queries.
recall() {
	vec_query -k 10 -F ivecs "$@" "$Q" >r.ivecs
	recall10_ids r.ivecs "$DATA/digits/gt.ivecs" "$DATA/digits/gt_dist.fvecs"
}

@test "ivfpq on digits: 16 bytes a vector, no vectors kept, recall floors, verified, described" {
	run --separate-stderr vec_build -q -t ivfpq --pq 16 -o p.vec "$B"
	expect_ok
	assert_eq "$(section_ids p.vec)" "IVFP IVFC IVFO IVFI IVFQ IVFX"
	run --separate-stderr vec_stat --verify p.vec
	expect_ok
	[[ "$output" == *"type:           ivfpq"* ]]
	[[ "$output" == *"codes:          pq, 16 sub-quantisers of 8 bits: 16 bytes per vector, codebook 65536 bytes"* ]]
	[[ "$output" == *"refine:         none (full vectors not kept)"* ]]
	[[ "$output" == *"verify:         ok (all checksums match)"* ]]
	# A flat file holds 260 bytes a vector; this one (codebook and
	# centroids included) under a third of that.
	vec_build -q -t flat -o f.vec "$B"
	[ $(($(stat -c %s p.vec) * 3)) -lt "$(stat -c %s f.vec)" ]
	r=$(recall p.vec --nprobe 8)
	echo "recall@10 at nprobe 8: $r (measured 0.950)"
	at_least "$r" 0.93
	r4=$(recall p.vec --nprobe 4)
	echo "recall@10 at nprobe 4: $r4 (measured 0.902)"
	at_least "$r" "$r4"
	at_least "$r4" 0.88
}

@test "4-bit fast scan: refining on kept vectors lifts recall; --refine 0 ranks on codes" {
	run --separate-stderr vec_build -q -t ivfpq --pq 32 --pq-bits 4 --refine 10 -o r.vec "$B"
	expect_ok
	assert_eq "$(section_ids r.vec)" "VECS NORM IVFP IVFC IVFO IVFI IVFQ IVFX"
	run --separate-stderr vec_stat --verify r.vec
	expect_ok
	[[ "$output" == *"codes:          pq, 32 sub-quantisers of 4 bits: 16 bytes per vector"* ]]
	[[ "$output" == *"refine:         10 x k candidates re-ranked on the full vectors (kept)"* ]]
	[[ "$output" != *"refine:         none"* ]]
	[[ "$output" == *"every code matches its vector)"* ]]
	r=$(recall r.vec --nprobe 8)
	echo "refined recall@10 at nprobe 8: $r (measured 0.996)"
	at_least "$r" 0.98
	r0=$(recall r.vec --nprobe 8 --refine 0)
	echo "on the codes alone: $r0 (measured 0.875)"
	at_least "$r0" 0.84
	at_least "$r" "$r0"
	# Refined scores are the true distances: the same as a flat index's
	# for the ids both return first.
	vec_query -k 1 --nprobe 1000 r.vec "$Q" >a.tsv
	vec_build -q -t flat -o f.vec "$B"
	vec_query -k 1 f.vec "$Q" >b.tsv
	assert_same a.tsv b.tsv
	# An index without kept vectors cannot refine.
	vec_build -q -t ivfpq --pq 32 --pq-bits 4 -o n.vec "$B"
	run --separate-stderr vec_query --refine 5 n.vec "$Q"
	expect_err 1 "vec-query: this index keeps no full vectors to refine with (build it with --refine)"
	[ -z "$output" ]
	run --separate-stderr vec_query --refine x n.vec "$Q"
	expect_usage vec-query "invalid value 'x' for --refine (expected an integer from 0 to 1000)"
}

@test "refine codes: long vectors keep an 8-bit copy; exact codes of integer data stand in for the vectors" {
	# 600 vectors of 256 small integers, and 600 of 256 floats.
	perl -e 'srand(9); for (1 .. 600) { print pack("l<f<*", 256, map { int(rand(32)) } 1 .. 256) }' >i.fvecs
	perl -e 'srand(9); for (1 .. 600) { print pack("l<f<*", 256, map { rand(32) } 1 .. 256) }' >f.fvecs
	perl -e 'srand(4); for (1 .. 20) { print pack("l<f<*", 256, map { rand(32) } 1 .. 256) }' >q.fvecs
	for s in i f; do
		run --separate-stderr vec_build -q -t ivfpq --nlist 8 --pq 64 --pq-bits 4 --refine 10 -o $s.vec $s.fvecs
		expect_ok
		assert_eq "$(section_ids $s.vec)" "VECS NORM IVFP IVFC IVFO IVFI IVFQ IVFX IVFR IVFS"
	done
	run --separate-stderr vec_stat --verify i.vec
	expect_ok
	# 600 rows of 256 bytes, 2 x 256 floats of ranges, 600 bounds
	[[ "$output" == *"refine codes:   8-bit copy of the vectors read first, 158048 bytes, exact for 600 vectors"* ]]
	run --separate-stderr vec_stat --json i.vec
	[[ "$output" == *'"refine_code_bytes":158048,"refine_exact":600'* ]]
	run --separate-stderr vec_stat --verify f.vec
	expect_ok
	[[ "$output" == *"exact for 0 vectors"* ]]
	# Every list and every candidate re-ranked: the exact answers, the
	# same ids and the same distances as a flat index, whether the
	# scores come from the codes (i) or from the vectors (f).
	for s in i f; do
		vec_build -q -t flat -o flat-$s.vec $s.fvecs
		vec_query -k 5 flat-$s.vec q.fvecs >want.tsv
		vec_query -k 5 --nprobe 8 --refine 200 $s.vec q.fvecs >got.tsv
		assert_same want.tsv got.tsv
	done
}

@test "pq, ivfsq8 and sq8 on digits, every metric; --stats counts the entries scanned" {
	r=$(vec_build -q -t pq --pq 16 -o p.vec "$B" && recall p.vec)
	echo "pq recall@10: $r (measured 0.951)"
	at_least "$r" 0.93
	vec_build -q -t ivfsq8 -o s.vec "$B"
	assert_eq "$(section_ids s.vec)" "IVFP IVFC IVFO IVFI IVFQ IVFX IVFN"
	r=$(recall s.vec --nprobe 8)
	echo "ivfsq8 recall@10 at nprobe 8: $r (measured 0.992)"
	at_least "$r" 0.97
	r=$(vec_build -q -t sq8 -o q.vec "$B" && recall q.vec)
	echo "sq8 recall@10: $r (measured 1.000)"
	at_least "$r" 0.99
	run --separate-stderr vec_query --stats -k 3 q.vec "$Q"
	expect_ok
	[[ "$stderr" == "vec-query: 100 queries, "*" s searching ("*" queries/s), scanned 169700 list entries" ]]
	# ip and cos against the flat answers of the same metric.
	for m in ip cos; do
		vec_build -q -t flat -m "$m" -o f.vec "$B"
		vec_query -k 10 -F fvecs f.vec "$Q" >f.fvecs
		for t in ivfsq8 "ivfpq --pq 16 --refine 10" "ivfpq --pq 32 --pq-bits 4 --refine 10"; do
			vec_build -q -m "$m" -t $t -o c.vec "$B"
			vec_query -k 10 --nprobe 16 -F fvecs c.vec "$Q" >c.fvecs
			r=$(recall_vs f.fvecs c.fvecs desc)
			echo "$m, $t: recall@10 against flat at nprobe 16: $r"
			at_least "$r" 0.9
		done
	done
}

@test "trained on the first --train-size vectors, the rest encoded as they come; vec-add grows" {
	run --separate-stderr vec_build -q -t ivfpq --pq 16 --nlist 40 --train-size 500 -o p.vec "$B"
	expect_ok
	run --separate-stderr vec_stat p.vec
	[[ "$output" == *"count:          1697"* ]]
	[[ "$output" == *"lists:          nlist 40, "* ]]
	[[ "$output" == *"k-means on 500 vectors"* ]]
	r=$(recall p.vec --nprobe 8)
	echo "recall@10 at nprobe 8: $r"
	at_least "$r" 0.85
	# The same vectors in two steps: vec-add encodes into the lists.
	head -c $((500 * 260)) "$B" >first.fvecs
	tail -c +$((500 * 260 + 1)) "$B" >rest.fvecs
	vec_build -q -t ivfpq --pq 16 --nlist 40 -o g.vec first.fvecs
	run --separate-stderr vec_add -q g.vec rest.fvecs
	expect_ok
	run --separate-stderr vec_stat --verify g.vec
	expect_ok
	[[ "$output" == *"count:          1697"* ]]
	r2=$(recall g.vec --nprobe 8)
	echo "recall@10 after growth: $r2"
	at_least "$r2" 0.85
}

@test "bad coded parameters are refused, and nothing is written" {
	run --separate-stderr vec_build -t ivfpq --pq 5 -o x.vec "$B"
	expect_err 1 "vec-build: $B: 5 sub-quantisers do not divide the dimension 64"
	assert_absent x.vec
	run --separate-stderr vec_build -t ivfpq --pq-bits 6 -o x.vec "$B"
	expect_usage vec-build "--pq-bits must be 4 or 8, not 6"
	run --separate-stderr vec_build -t ivf --pq 8 -o x.vec "$B"
	expect_usage vec-build "--pq and --pq-bits apply to -t pq and -t ivfpq only"
	run --separate-stderr vec_build -t ivfsq8 --pq-bits 4 -o x.vec "$B"
	expect_usage vec-build "--pq and --pq-bits apply to -t pq and -t ivfpq only"
	run --separate-stderr vec_build -t ivf --refine 4 -o x.vec "$B"
	expect_usage vec-build "--refine applies to the coded types only (pq, ivfpq, sq8, ivfsq8)"
	run --separate-stderr vec_build -t pq --nlist 4 -o x.vec "$B"
	expect_usage vec-build "-t pq has one list: use -t ivfpq for --nlist"
	run --separate-stderr vec_build -t sq8 --nlist 4 -o x.vec "$B"
	expect_usage vec-build "-t sq8 has one list: use -t ivfsq8 for --nlist"
	run --separate-stderr vec_build -t ivfpq --refine 0 -o x.vec "$B"
	expect_usage vec-build "invalid value '0' for --refine (expected an integer from 1 to 1000)"
	run --separate-stderr vec_build -t ivfpq --nlist 2000 -o x.vec "$B"
	expect_err 1 "vec-build: --nlist 2000 is larger than the number of input vectors (1697)"
	# 8-bit codes need 256 training vectors; iris has 135 (and 15 queries).
	run --separate-stderr vec_build -t pq -o x.vec "$DATA/iris/base.fvecs"
	expect_err 1 "vec-build: 8-bit PQ needs at least 256 vectors to train on, not 135"
	assert_absent x.vec
	run --separate-stderr vec_build -t pq --pq-bits 4 -o x.vec "$DATA/iris/base.fvecs"
	expect_ok
	# An existing index is left as it was.
	cp x.vec before.vec
	run --separate-stderr vec_build -t ivfpq --pq 3 -o x.vec "$DATA/iris/base.fvecs"
	expect_err 1 "vec-build: $DATA/iris/base.fvecs: 3 sub-quantisers do not divide the dimension 4"
	assert_same x.vec before.vec
	assert_no_temp .
}

@test "damaged codes: a changed code is found by --verify where vectors are kept" {
	vec_build -q -t ivfpq --pq 16 --refine 4 -o p.vec "$B"
	read -r off len < <(section_entry p.vec IVFQ)
	flip_byte p.vec $((off + 1))
	reseal p.vec
	run --separate-stderr vec_stat p.vec
	expect_ok
	run --separate-stderr vec_stat --verify p.vec
	expect_err_has 1 "vec-stat: p.vec: section 'IVFQ': list 0 entry 0 is not the code of vector"
	# vec-add verifies first: the damage is not sealed in.
	run --separate-stderr vec_add -q p.vec "$Q"
	[ "$status" -eq 1 ]
	# A payload that disagrees with the header is refused at open.
	vec_build -q -t ivfpq --pq 16 -o n.vec "$B"
	read -r off len < <(section_entry n.vec IVFP)
	poke n.vec $((off + 52)) '\x05\x00\x00\x00'
	reseal n.vec
	run --separate-stderr vec_query n.vec "$Q"
	expect_err 1 "vec-query: n.vec: section 'IVFP': bad pq parameters"
}
