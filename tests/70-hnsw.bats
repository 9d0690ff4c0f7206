#!/usr/bin/env bats
# The hnsw index type: build, search, growth, verification, defaults.
# Recall is measured against the exact answers shipped with each data set
# (gt_dist.fvecs: squared distances of the true top-100), tie-aware: a
# result counts when its distance is no worse than the true 10th's.

bats_require_minimum_version 1.5.0
load test_helper

# The larger real data sets live beside the repository when they are there
# (VEC_DATA overrides); tests that need them say so when they skip.
BIG="${VEC_DATA:-$BATS_TEST_DIRNAME/../../shared/data}"


@test "hnsw on digits: recall@10 >= 0.95 at the default ef, verified" {
	run --separate-stderr vec_build -q -t hnsw -o d.vec "$DATA/digits/base.fvecs"
	expect_ok
	run --separate-stderr vec_stat --verify d.vec
	expect_ok
	[[ "$output" == *"type:           hnsw"* ]]
	[[ "$output" == *"graph:          M 16, M0 32, ef-construction 200"* ]]
	[[ "$output" == *"every link points to a node"* ]]
	vec_query -k 10 -F fvecs d.vec "$DATA/digits/query.fvecs" >s.fvecs
	r=$(recall10 s.fvecs "$DATA/digits/gt_dist.fvecs")
	echo "recall@10 $r"
	at_least "$r" 0.95
}

@test "hnsw on mnist (10,000 x 784): recall@10 >= 0.95 at the default ef" {
	[ -f "$BIG/mnist/base.fvecs.gz" ] || skip "mnist data set not present beside the repository"
	run --separate-stderr vec_build -q -t hnsw -o m.vec "$BIG/mnist/base.fvecs.gz"
	expect_ok
	vec_query -k 10 -F fvecs m.vec "$BIG/mnist/query.fvecs" >s.fvecs
	r=$(recall10 s.fvecs "$BIG/mnist/gt_dist.fvecs")
	echo "recall@10 $r"
	at_least "$r" 0.95
	# A larger ef does not make it worse.
	vec_query -k 10 --ef 200 -F fvecs m.vec "$BIG/mnist/query.fvecs" >s2.fvecs
	r2=$(recall10 s2.fvecs "$BIG/mnist/gt_dist.fvecs")
	echo "recall@10 at ef 200: $r2"
	at_least "$r2" "$r"
}

@test "hnsw answers every metric close to exact search (l2, ip, cos)" {
	for m in l2 ip cos; do
		order=desc
		[ "$m" = l2 ] && order=asc
		vec_build -q -t flat -m "$m" -o f.vec "$DATA/digits/base.fvecs"
		vec_build -q -t hnsw -m "$m" -o h.vec "$DATA/digits/base.fvecs"
		vec_query -k 10 -F fvecs f.vec "$DATA/digits/query.fvecs" >f.fvecs
		vec_query -k 10 -F fvecs h.vec "$DATA/digits/query.fvecs" >h.fvecs
		r=$(recall_vs f.fvecs h.fvecs "$order")
		echo "$m: recall@10 $r"
		at_least "$r" 0.95
	done
}

@test "growing an hnsw index in ten vec-add steps keeps recall within 0.01" {
	d="$DATA/digits/base.fvecs"
	rec=$((4 + 64 * 4))
	vec_build -q -t hnsw -j 1 -o once.vec "$d"
	head -c $((170 * rec)) "$d" >part.fvecs
	vec_build -q -t hnsw -j 1 -o grown.vec part.fvecs
	for i in 1 2 3 4 5 6 7 8 9; do
		start=$((170 * i))
		n=170
		[ "$i" = 9 ] && n=$((1697 - start))
		tail -c +$((start * rec + 1)) "$d" | head -c $((n * rec)) >part.fvecs
		run --separate-stderr vec_add -q -j 1 grown.vec part.fvecs
		expect_ok
	done
	run --separate-stderr vec_stat --verify grown.vec
	expect_ok
	[[ "$output" == *"count:          1697"* ]]
	[[ "$output" == *"type:           hnsw"* ]]
	# At the default ef, and at ef = k where a worse graph shows most.
	for ef in "" 10; do
		vec_query -k 10 ${ef:+--ef $ef} -F fvecs once.vec "$DATA/digits/query.fvecs" >a.fvecs
		vec_query -k 10 ${ef:+--ef $ef} -F fvecs grown.vec "$DATA/digits/query.fvecs" >b.fvecs
		ra=$(recall10 a.fvecs "$DATA/digits/gt_dist.fvecs")
		rb=$(recall10 b.fvecs "$DATA/digits/gt_dist.fvecs")
		echo "ef ${ef:-default}: once $ra, grown $rb"
		at_least "$rb" "$(awk -v a="$ra" 'BEGIN { print a - 0.01 }')"
	done
	# Added vectors are found: each finds itself first.
	tail -c $((5 * rec)) "$d" >last5.fvecs
	run --separate-stderr vec_query -k 1 grown.vec last5.fvecs
	expect_ok
	assert_eq "$(cut -f3 <<<"$output" | tr '\n' ' ')" "1692 1693 1694 1695 1696 "
}

@test "queries of a batch take turns: the same answers as one query at a time" {
	run --separate-stderr vec_build -q -t hnsw -o d.vec "$DATA/digits/base.fvecs"
	expect_ok
	for ef in 10 40; do
		vec_query -k 10 --ef $ef -j 1 d.vec "$DATA/digits/query.fvecs" >batch.tsv
		vec_query -k 10 --ef $ef -j 2 --batch 7 d.vec "$DATA/digits/query.fvecs" >b7.tsv
		vec_query -k 10 --ef $ef --batch 1 d.vec "$DATA/digits/query.fvecs" >one.tsv
		assert_same batch.tsv one.tsv
		assert_same b7.tsv one.tsv
	done
}

@test "one thread and a fixed seed build the same file twice" {
	vec_build -q -t hnsw -j 1 --seed 7 -o a.vec "$DATA/digits/base.fvecs"
	vec_build -q -t hnsw -j 1 --seed 7 -o b.vec "$DATA/digits/base.fvecs"
	assert_same a.vec b.vec
	vec_build -q -t hnsw -j 1 --seed 8 -o c.vec "$DATA/digits/base.fvecs"
	! cmp -s a.vec c.vec
}

@test "a link to a node that does not exist is refused by --verify" {
	vec_build -q -t hnsw -o h.vec "$DATA/digits/base.fvecs"
	cp h.vec orig.vec
	read -r off len < <(section_entry h.vec HNSL)
	n=$(vec_stat h.vec | awk '$1 == "count:" { print $2 }')
	# Node 0's first link (the first 11 bits, enough for n - 1 = 1796,
	# after one epoch base and n + 1 offsets) now points past the end.
	poke h.vec $((off + 8 + (n + 1) * 4)) '\xff\x07'
	reseal h.vec
	run --separate-stderr vec_stat --verify h.vec
	expect_err_has 1 "vec-stat: h.vec:" "node 0" "link"
	# vec-add verifies before it rewrites: the damage is not sealed in.
	run --separate-stderr vec_add -q h.vec "$DATA/digits/query.fvecs"
	[ "$status" -eq 1 ]
	# A query never follows the bad link out of bounds.
	run --separate-stderr vec_query -k 3 h.vec "$DATA/digits/query.fvecs"
	[ "$status" -le 1 ]
	# The untouched copy is fine.
	run --separate-stderr vec_stat --verify orig.vec
	expect_ok
}

@test "traversal codes: 4 bits from 256 dimensions on, 8 below, --sq-bits chooses" {
	d="$DATA/digits/base.fvecs"
	vec_build -q -t hnsw -j 1 -o d8.vec "$d"
	run --separate-stderr vec_build -q -t hnsw -j 1 --sq-bits 4 -o d4.vec "$d"
	expect_ok
	run --separate-stderr vec_stat d8.vec
	[[ "$output" == *"quantised copy: 8 bits per component, "* ]]
	run --separate-stderr vec_stat --verify d4.vec
	expect_ok
	# 1697 rows of 64 bytes (128 components at 4 bits), 512 bytes of ranges,
	# 1697 norms
	[[ "$output" == *"quantised copy: 4 bits per component, 115908 bytes (68.3 per vector)"* ]]
	run --separate-stderr vec_stat --json d4.vec
	[[ "$output" == *'"code_bits":4,'* ]]
	# The codes only steer: results are scored on the vectors.
	vec_query -k 10 -F fvecs d4.vec "$DATA/digits/query.fvecs" >s4.fvecs
	r=$(recall10 s4.fvecs "$DATA/digits/gt_dist.fvecs")
	echo "4-bit codes on digits: recall@10 $r (8 bits: 0.99 and up)"
	at_least "$r" 0.95
	vec_query -k 1 d4.vec <(head -c $((3 * (4 + 64 * 4))) "$d") >self.tsv
	assert_eq "$(cut -f3,4 self.tsv | tr '\t\n' ', ')" "0,0 1,0 2,0 "
	# Growing keeps the index's bits.
	run --separate-stderr vec_add -q d4.vec "$DATA/digits/query.fvecs"
	expect_ok
	run --separate-stderr vec_stat --verify d4.vec
	expect_ok
	[[ "$output" == *"quantised copy: 4 bits per component, "* ]]
	# The default by dimension: 256 components take 4 bits, 255 take 8.
	for n in 255 256; do
		perl -e 'srand(5); for (1 .. 300) { print pack("l<f<*", $ARGV[0], map { rand() } 1 .. $ARGV[0]) }' "$n" >r$n.fvecs
		vec_build -q -t hnsw -o r$n.vec r$n.fvecs
	done
	run --separate-stderr vec_stat r255.vec
	[[ "$output" == *"quantised copy: 8 bits per component, "* ]]
	run --separate-stderr vec_stat r256.vec
	[[ "$output" == *"quantised copy: 4 bits per component, "* ]]
	# Half the bytes a row: 128 instead of 256, for each of the 300 rows.
	vec_build -q -t hnsw --sq-bits 8 -o r256-8.vec r256.fvecs
	read -r off len8 < <(section_entry r256-8.vec HSQ8)
	read -r off len4 < <(section_entry r256.vec HSQ8)
	assert_eq "$len8 $len4" "$((300 * 256)) $((300 * 128))"
	run --separate-stderr vec_query -k 1 r256.vec <(head -c $((2 * (4 + 256 * 4))) r256.fvecs)
	expect_ok
	assert_eq "$(cut -f3 <<<"$output" | tr '\n' ' ')" "0 1 "
}

@test "damaged code bits in a 4-bit graph are refused" {
	vec_build -q -t hnsw --sq-bits 4 -o h.vec "$DATA/digits/base.fvecs"
	read -r off len < <(section_entry h.vec HNSP)
	assert_eq "$(le_uint h.vec $((off + 52)) 1)" 4
	poke h.vec $((off + 52)) '\x05'
	reseal h.vec
	run --separate-stderr vec_query -k 3 h.vec "$DATA/digits/query.fvecs"
	expect_err_has 1 "vec-query: h.vec:" "section 'HNSP': bad code bits 5"
	[ -z "$output" ]
	run --separate-stderr vec_stat --verify h.vec
	expect_err_has 1 "bad code bits 5"
}

@test "vec-build picks hnsw from 20000 vectors on, flat below" {
	perl -e 'srand(3); for (1 .. 20000) { print pack("l<f<4", 4, map { rand() } 1 .. 4) }' >big.fvecs
	head -c $((19999 * 20)) big.fvecs >small.fvecs
	run --separate-stderr vec_build -q -o big.vec big.fvecs
	expect_ok
	run --separate-stderr vec_stat big.vec
	[[ "$output" == *"type:           hnsw"* ]]
	run --separate-stderr vec_build -q -o small.vec small.fvecs
	expect_ok
	run --separate-stderr vec_stat small.vec
	[[ "$output" == *"type:           flat"* ]]
	run --separate-stderr vec_build -q -t auto -o small2.vec small.fvecs
	expect_ok
	assert_same small.vec small2.vec
}

@test "an hnsw index smaller than k returns what it has" {
	{ fvec 1 0; fvec 0 1; fvec 1 1; } >three.fvecs
	run --separate-stderr vec_build -q -t hnsw -o t.vec three.fvecs
	expect_ok
	run --separate-stderr vec_query -k 5 t.vec <(fvec 1 0.1)
	expect_ok
	assert_eq "$(cut -f3 <<<"$output" | tr '\n' ' ')" "0 2 1 "
	vec_query -k 5 -F ivecs t.vec <(fvec 1 0.1) >ids.ivecs
	assert_eq "$(ivecs_text ids.ivecs | tr -s ' ')" "0 2 1 -1 -1"
}

@test "graph options are checked" {
	run --separate-stderr vec_build -t hnsw -M 1 -o x.vec "$DATA/iris/base.fvecs"
	expect_usage vec-build "invalid value '1' for -M (expected an integer from 2 to 256)"
	run --separate-stderr vec_build -t flat -M 8 -o x.vec "$DATA/iris/base.fvecs"
	expect_usage vec-build "-M, --ef-construction and --sq-bits apply to -t hnsw only"
	run --separate-stderr vec_build -t hnsw --sq-bits 5 -o x.vec "$DATA/iris/base.fvecs"
	expect_usage vec-build "--sq-bits must be 4 or 8, not 5"
	run --separate-stderr vec_build -t hnsw --sq-bits 16 -o x.vec "$DATA/iris/base.fvecs"
	expect_usage vec-build "invalid value '16' for --sq-bits (expected an integer from 4 to 8)"
	run --separate-stderr vec_build -t ivf --sq-bits 4 -o x.vec "$DATA/iris/base.fvecs"
	expect_usage vec-build "-M, --ef-construction and --sq-bits apply to -t hnsw only"
	run --separate-stderr vec_build -t hnsw --ef-construction 0 -o x.vec "$DATA/iris/base.fvecs"
	expect_usage vec-build "invalid value '0' for --ef-construction (expected an integer from 1 to 100000)"
	run --separate-stderr vec_build -t graph -o x.vec "$DATA/iris/base.fvecs"
	expect_usage vec-build "unknown index type 'graph' (expected flat, hnsw, ivf, ivfpq, pq, ivfsq8, sq8 or auto)"
	assert_absent x.vec
	vec_build -q -t hnsw -o h.vec "$DATA/iris/base.fvecs"
	run --separate-stderr vec_query -k 10 --ef 5 h.vec "$DATA/iris/query.fvecs"
	expect_usage vec-query "--ef 5 is smaller than -k 10"
	run --separate-stderr vec_query --ef x h.vec "$DATA/iris/query.fvecs"
	expect_usage vec-query "invalid value 'x' for --ef (expected an integer from 1 to 1000000)"
}

@test "hnsw keeps keys, and vec-stat --json describes the graph" {
	awk '{ print "row-" NR "," $0 }' "$DATA/iris/base.csv" >keyed.csv
	vec_build -q -t hnsw -M 8 -o k.vec keyed.csv
	run --separate-stderr vec_query -k 1 k.vec <(head -3 "$DATA/iris/base.csv")
	expect_ok
	assert_eq "$(cut -f5 <<<"$output" | tr '\n' ' ')" "row-1 row-2 row-3 "
	run --separate-stderr vec_stat --json k.vec
	expect_ok
	[[ "$output" == *'"type":"hnsw"'* ]]
	[[ "$output" == *'"hnsw":{"M":8,"M0":16,'* ]]
	[[ "$output" == *'"keys":true'* ]]
}
