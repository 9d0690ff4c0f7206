#!/usr/bin/env bats
# The ivf index type: build, search at a fixed nprobe and at every list,
# growth, verification, parameters.  Recall is measured tie-aware against
# the exact answers shipped with digits (gt.ivecs, with their squared
# distances in gt_dist.fvecs): a result counts when its distance is no
# worse than the true 10th's.

bats_require_minimum_version 1.5.0
load test_helper


B="$BATS_TEST_DIRNAME/../data/digits/base.fvecs"
Q="$BATS_TEST_DIRNAME/../data/digits/query.fvecs"
REC=$((4 + 64 * 4)) # bytes of one digits fvecs record

@test "ivf on digits: recall@10 >= 0.95 at nprobe 8, verified, described by vec-stat" {
	run --separate-stderr vec_build -q -t ivf -o d.vec "$B"
	expect_ok
	run --separate-stderr vec_stat --verify d.vec
	expect_ok
	[[ "$output" == *"type:           ivf"* ]]
	[[ "$output" == *"lists:          nlist 165, length min "*", 0 empty"* ]]
	[[ "$output" == *"training:       k-means on 1697 vectors, "*" iterations (at most 20), seed 42"* ]]
	[[ "$output" == *"list bytes:     "*" per vector)"* ]]
	[[ "$output" == *"default nprobe: 10"* ]]
	[[ "$output" == *"verify:         ok (all checksums match, every list entry matches its vector)"* ]]
	assert_eq "$(section_ids d.vec)" "VECS NORM IVFP IVFC IVFO IVFI IVFV"
	vec_query -k 10 --nprobe 8 -F fvecs d.vec "$Q" >s.fvecs
	r=$(recall10 s.fvecs "$DATA/digits/gt_dist.fvecs")
	echo "recall@10 at nprobe 8: $r"
	at_least "$r" 0.95
	# The default nprobe (10) is at least as good; one list is worse.
	vec_query -k 10 -F fvecs d.vec "$Q" >s2.fvecs
	r2=$(recall10 s2.fvecs "$DATA/digits/gt_dist.fvecs")
	echo "recall@10 at the default nprobe: $r2"
	at_least "$r2" "$r"
	vec_query -k 10 --nprobe 1 -F fvecs d.vec "$Q" >s1.fvecs
	r1=$(recall10 s1.fvecs "$DATA/digits/gt_dist.fvecs")
	echo "recall@10 at nprobe 1: $r1"
	at_least "$r" "$r1"
}

@test "probing every list gives exactly the flat output, for l2, ip and cos" {
	for m in l2 ip cos; do
		order=desc
		[ "$m" = l2 ] && order=asc
		vec_build -q -t flat -m "$m" -o f.vec "$B"
		vec_build -q -t ivf -m "$m" --nlist 40 -o i.vec "$B"
		vec_query -k 10 f.vec "$Q" >f.tsv
		vec_query -k 10 --nprobe 40 i.vec "$Q" >i40.tsv
		vec_query -k 10 --nprobe 1000 i.vec "$Q" >i1000.tsv
		assert_same f.tsv i40.tsv
		assert_same f.tsv i1000.tsv
		vec_query -k 10 -F fvecs f.vec "$Q" >f.fvecs
		vec_query -k 10 --nprobe 4 -F fvecs i.vec "$Q" >i.fvecs
		r=$(recall_vs f.fvecs i.fvecs "$order")
		echo "$m: recall@10 at nprobe 4 of 40: $r"
		at_least "$r" 0.9
	done
}

@test "a query's answer does not depend on the batch it comes in (list-major batches, one at a time)" {
	for m in l2 ip cos; do
		run --separate-stderr vec_build -q -t ivf -m $m -o d-$m.vec "$B"
		expect_ok
		for np in 1 4 20; do
			vec_query -k 10 --nprobe $np -j 1 d-$m.vec "$Q" >batch.tsv
			vec_query -k 10 --nprobe $np -j 2 --batch 9 d-$m.vec "$Q" >b9.tsv
			vec_query -k 10 --nprobe $np --batch 1 d-$m.vec "$Q" >one.tsv
			assert_same batch.tsv one.tsv
			assert_same b9.tsv one.tsv
		done
	done
}

@test "one thread or two, a fixed seed builds the same file; another seed another" {
	vec_build -q -t ivf -j 1 --seed 7 -o a.vec "$B"
	vec_build -q -t ivf -j 2 --seed 7 -o b.vec "$B"
	assert_same a.vec b.vec
	vec_build -q -t ivf -j 1 --seed 8 -o c.vec "$B"
	! cmp -s a.vec c.vec
	run --separate-stderr vec_stat c.vec
	[[ "$output" == *", seed 8"* ]]
	# A training sample: its size is what vec-stat reports.
	vec_build -q -t ivf --nlist 20 --train-size 500 -o t.vec "$B"
	run --separate-stderr vec_stat t.vec
	[[ "$output" == *"training:       k-means on 500 vectors, "* ]]
	[[ "$output" == *"nlist 20, "* ]]
}

@test "vec-add puts new vectors in their nearest lists, no retraining" {
	head -c $((1500 * REC)) "$B" >part.fvecs
	tail -c +$((1500 * REC + 1)) "$B" >rest.fvecs
	vec_build -q -t ivf -o g.vec part.fvecs
	run --separate-stderr vec_stat g.vec
	[[ "$output" == *"nlist 155, "* ]]
	centroids=$(section g.vec IVFC | cksum)
	run --separate-stderr vec_add -q g.vec rest.fvecs
	expect_ok
	run --separate-stderr vec_stat --verify g.vec
	expect_ok
	[[ "$output" == *"count:          1697"* ]]
	[[ "$output" == *"type:           ivf"* ]]
	[[ "$output" == *"nlist 155, "* ]]
	[[ "$output" == *"training:       k-means on 1500 vectors, "* ]]
	assert_eq "$(section g.vec IVFC | cksum)" "$centroids"
	# Every list probed: the flat answer over all 1697.
	vec_build -q -t flat -o f.vec "$B"
	vec_query -k 10 f.vec "$Q" >f.tsv
	vec_query -k 10 --nprobe 155 g.vec "$Q" >g.tsv
	assert_same f.tsv g.tsv
	# Added vectors are found through their own list alone.
	tail -c $((5 * REC)) "$B" >last5.fvecs
	run --separate-stderr vec_query -k 1 --nprobe 1 g.vec last5.fvecs
	expect_ok
	assert_eq "$(cut -f3 <<<"$output" | tr '\n' ' ')" "1692 1693 1694 1695 1696 "
	# Recall stays at the one-shot build's level.
	vec_query -k 10 --nprobe 8 -F fvecs g.vec "$Q" >s.fvecs
	r=$(recall10 s.fvecs "$DATA/digits/gt_dist.fvecs")
	echo "recall@10 at nprobe 8 after growth: $r"
	at_least "$r" 0.95
}

@test "ivf keeps keys, answers small indexes, and vec-stat --json describes the lists" {
	awk '{ print "row-" NR "," $0 }' "$DATA/iris/base.csv" >keyed.csv
	vec_build -q -t ivf --nlist 6 -o k.vec keyed.csv
	run --separate-stderr vec_query -k 1 --nprobe 2 k.vec <(head -3 "$DATA/iris/base.csv")
	expect_ok
	assert_eq "$(cut -f5 <<<"$output" | tr '\n' ' ')" "row-1 row-2 row-3 "
	run --separate-stderr vec_stat --json k.vec
	expect_ok
	[[ "$output" == *'"type":"ivf"'* ]]
	[[ "$output" == *'"ivf":{"nlist":6,"list_min":'* ]]
	[[ "$output" == *'"train_size":'*'"seed":42,"list_bytes":'*'"default_nprobe":1,"payload":"flat",'* ]]
	[[ "$output" == *'"keys":true'* ]]
	# Three vectors, two lists: what there is, padded as usual.
	{ fvec 1 0; fvec 0 1; fvec 1 1; } >three.fvecs
	run --separate-stderr vec_build -q -t ivf --nlist 2 -o t.vec three.fvecs
	expect_ok
	run --separate-stderr vec_query -k 5 --nprobe 2 t.vec <(fvec 1 0.1)
	expect_ok
	assert_eq "$(cut -f3 <<<"$output" | tr '\n' ' ')" "0 2 1 "
	vec_query -k 5 --nprobe 2 -F ivecs t.vec <(fvec 1 0.1) >ids.ivecs
	assert_eq "$(ivecs_text ids.ivecs | tr -s ' ')" "0 2 1 -1 -1"
	# One vector: one list.
	fvec 3 4 >one.fvecs
	run --separate-stderr vec_build -q -t ivf -o one.vec one.fvecs
	expect_ok
	run --separate-stderr vec_query -k 2 one.vec <(fvec 0 0)
	expect_ok
	assert_eq "$output" "0	1	0	5"
}

@test "bad list parameters are refused, and nothing is written" {
	run --separate-stderr vec_build -t ivf --nlist 0 -o x.vec "$B"
	expect_usage vec-build "invalid value '0' for --nlist (expected an integer from 1 to 16777216)"
	run --separate-stderr vec_build -t ivf --nlist many -o x.vec "$B"
	expect_usage vec-build "invalid value 'many' for --nlist (expected an integer from 1 to 16777216)"
	run --separate-stderr vec_build -t ivf --train-size 0 -o x.vec "$B"
	expect_usage vec-build "invalid value '0' for --train-size (expected an integer from 1 to 18446744073709551615)"
	run --separate-stderr vec_build -t ivf --nlist 10 --train-size 5 -o x.vec "$B"
	expect_usage vec-build "--train-size 5 is smaller than --nlist 10"
	run --separate-stderr vec_build -t flat --nlist 10 -o x.vec "$B"
	expect_usage vec-build "--nlist and --train-size apply to the ivf types only"
	run --separate-stderr vec_build --nlist 10 -o x.vec "$B"
	expect_usage vec-build "--nlist and --train-size apply to the ivf types only"
	run --separate-stderr vec_build -t hnsw --train-size 100 -o x.vec "$B"
	expect_usage vec-build "--nlist and --train-size apply to the ivf types only"
	run --separate-stderr vec_build -t ivf -M 8 -o x.vec "$B"
	expect_usage vec-build "-M, --ef-construction and --sq-bits apply to -t hnsw only"
	run --separate-stderr vec_build -t flat --seed 3 -o x.vec "$B"
	expect_usage vec-build "--seed applies to -t hnsw and the ivf types only"
	# More lists than vectors: known once the input is read.
	run --separate-stderr vec_build -t ivf --nlist 1698 -o x.vec "$B"
	expect_err 1 "vec-build: --nlist 1698 is larger than the number of input vectors (1697)"
	assert_absent x.vec
	# An existing index is left as it was.
	vec_build -q -t ivf -o i.vec "$B"
	cp i.vec before.vec
	run --separate-stderr vec_build -t ivf --nlist 5000 -o i.vec "$B"
	expect_err 1 "vec-build: --nlist 5000 is larger than the number of input vectors (1697)"
	assert_same i.vec before.vec
	assert_no_temp .
	# Query side.
	run --separate-stderr vec_query --nprobe 0 i.vec "$Q"
	expect_usage vec-query "invalid value '0' for --nprobe (expected an integer from 1 to 16777216)"
	run --separate-stderr vec_query --nprobe x i.vec "$Q"
	expect_usage vec-query "invalid value 'x' for --nprobe (expected an integer from 1 to 16777216)"
	# nprobe is ignored by the other types, as ef is.
	vec_build -q -t flat -o f.vec "$B"
	run --separate-stderr vec_query -k 3 --nprobe 2 f.vec "$Q"
	expect_ok
}

@test "damaged lists are refused at open; a changed list row by --verify" {
	vec_build -q -t ivf --nlist 40 -o i.vec "$B"
	cp i.vec orig.vec
	read -r off len < <(section_entry i.vec IVFI)
	# Position 0's id now points past the last vector.
	poke i.vec "$off" '\xa1\x06\x00\x00'
	reseal i.vec
	run --separate-stderr vec_stat i.vec
	expect_err 1 "vec-stat: i.vec: section 'IVFI': position 0: out of range id 1697"
	run --separate-stderr vec_query -k 3 i.vec "$Q"
	expect_err_has 1 "vec-query: i.vec: section 'IVFI': position 0: out of range id 1697"
	# A list offset past the end.
	cp orig.vec o.vec
	read -r off len < <(section_entry o.vec IVFO)
	poke o.vec $((off + 8)) '\xff\xff\x00\x00'
	reseal o.vec
	run --separate-stderr vec_stat o.vec
	expect_err 1 "vec-stat: o.vec: section 'IVFO': list 1 ends before it starts"
	# A changed vector copy: structure intact, only --verify sees it.
	cp orig.vec v.vec
	read -r off len < <(section_entry v.vec IVFV)
	flip_byte v.vec $((off + 3))
	reseal v.vec
	run --separate-stderr vec_stat v.vec
	expect_ok
	run --separate-stderr vec_stat --verify v.vec
	expect_err_has 1 "vec-stat: v.vec: section 'IVFV': list 0 entry 0 differs from vector"
	# vec-add verifies before it rewrites: the damage is not sealed in.
	run --separate-stderr vec_add -q v.vec "$Q"
	[ "$status" -eq 1 ]
	run --separate-stderr vec_stat --verify orig.vec
	expect_ok
}
