#!/usr/bin/env bats
# Round trips through several commands: build + add = build of everything,
# query output fed back as input, the manual's example pipelines.

bats_require_minimum_version 1.5.0
load test_helper

@test "build + add, then query = build of everything at once (digits)" {
	vec_build -o ba.vec "$DATA/digits/base.fvecs"
	vec_add ba.vec "$DATA/digits/query.fvecs"
	cat "$DATA/digits/base.fvecs" "$DATA/digits/query.fvecs" >all.fvecs
	vec_build -o all.vec all.fvecs
	assert_same ba.vec all.vec
	vec_query -k 10 ba.vec "$DATA/digits/query.fvecs" >ba.tsv
	vec_query -k 10 all.vec "$DATA/digits/query.fvecs" >all.tsv
	assert_same ba.tsv all.tsv
	# each query now finds itself (id 1697 + q) at distance 0, unless an
	# identical base vector with a smaller id came first
	awk -F'\t' '$2 == 1 && ($4 != 0 || $3 > 1697 + $1) { print; bad = 1 } END { exit bad }' ba.tsv
	run --separate-stderr vec_stat --verify -q ba.vec
	expect_ok
}

@test "adding vectors one at a time = adding them all at once" {
	vec_build -o one.vec "$DATA/iris/base.fvecs"
	for ((i = 0; i < 15; i++)); do
		tail -c +$((20 * i + 1)) "$DATA/iris/query.fvecs" | head -c 20 | vec_add one.vec
	done
	vec_build -o all.vec "$DATA/iris/base.fvecs"
	vec_add all.vec "$DATA/iris/query.csv"
	assert_same one.vec all.vec
	assert_no_temp .
}

@test "build + add with keys = build of the keyed rows at once" {
	paste -d, <(iris_species <"$DATA/iris/labels_all.txt") "$DATA/iris/iris_all.csv" >keyed.csv
	head -100 keyed.csv >first.csv
	tail -n +101 keyed.csv >rest.csv
	vec_build -o parts.vec first.csv
	vec_add parts.vec rest.csv
	vec_build -o all.vec keyed.csv
	assert_same parts.vec all.vec
}

@test "every base vector finds itself (or an identical one with a smaller id) first" {
	vec_build -o iris.vec "$DATA/iris/base.csv"
	vec_query -k 1 iris.vec "$DATA/iris/base.fvecs" >self.tsv
	assert_eq "$(wc -l <self.tsv)" 135
	# identical rows of base.csv: the first one's line number - 1
	awk -F'\t' 'NR == FNR { if (!($0 in first)) first[$0] = NR - 1; id[NR - 1] = first[$0]; next }
		$4 != 0 || $3 != id[$1] { print "query " $1 ": " $0 ", expected id " id[$1]; bad = 1 }
		END { exit bad }' "$DATA/iris/base.csv" self.tsv
}

@test "the manual's iris example: species moved to the front, header detected, stdin" {
	{ echo "sepal_length,sepal_width,petal_length,petal_width,species"
	  paste -d, "$DATA/iris/iris_all.csv" <(iris_species <"$DATA/iris/labels_all.txt"); } >iris.csv
	awk -F, -v OFS=, '{ print $5, $1, $2, $3, $4 }' iris.csv | vec_build -o iris.vec
	run --separate-stderr vec_stat --json iris.vec
	expect_ok
	grep -qF '"dim":4,"count":150' <<<"$output"
	grep -qF '"keys":true' <<<"$output"
	run --separate-stderr vec_query -k 1 iris.vec < <(printf '6.3,3.3,6.0,2.5\n5.1,3.5,1.4,0.2\n')
	expect_ok
	assert_eq "$(cut -f5 <<<"$output" | xargs)" "virginica setosa"
	assert_eq "$(cut -f4 <<<"$output" | xargs)" "0 0"
}

@test "compressed parts on a pipe build the same index as the plain file" {
	head -c $((500 * 260)) "$DATA/digits/base.fvecs" | gzip -n -c >part-1.fvecs.gz
	tail -c +$((500 * 260 + 1)) "$DATA/digits/base.fvecs" | gzip -n -c >part-2.fvecs.gz
	cat part-*.fvecs.gz | gzip -dc | vec_build -m cos -o piped.vec
	vec_build -m cos -o gz.vec part-1.fvecs.gz part-2.fvecs.gz
	vec_build -m cos -o plain.vec "$DATA/digits/base.fvecs"
	assert_same piped.vec plain.vec
	assert_same gz.vec plain.vec
	# compressed queries on stdin
	gzip -n -c "$DATA/digits/query.fvecs" >q.gz
	vec_query -k 5 plain.vec <q.gz >a.tsv
	vec_query -k 5 plain.vec "$DATA/digits/query.fvecs" >b.tsv
	assert_same a.tsv b.tsv
}

@test "fvecs query output reads back as fvecs input" {
	vec_build -o d.vec "$DATA/digits/base.fvecs"
	vec_query -F fvecs -k 6 d.vec "$DATA/digits/query.fvecs" >scores.fvecs
	run --separate-stderr vec_build -o scores.vec scores.fvecs
	expect_ok
	assert_eq "$(le_uint scores.vec 24 4)" 6
	assert_eq "$(le_uint scores.vec 32 8)" 100
	section scores.vec VECS >vecs.bin
	fvecs_strip <scores.fvecs >want.bin
	assert_same vecs.bin want.bin
	# ivecs output reads back with -f ivecs: ids as numbers
	vec_query -F ivecs -k 6 d.vec "$DATA/digits/query.fvecs" >ids.ivecs
	vec_query -F csv -k 6 d.vec "$DATA/digits/query.fvecs" | cut -d, -f3 | paste -d, - - - - - - >ids.csv
	vec_build -f ivecs -o a.vec ids.ivecs
	vec_build -o b.vec ids.csv
	assert_same a.vec b.vec
}

@test "a pipeline feeding a bad record to vec-add leaves the index unchanged" {
	vec_build -o idx.vec "$DATA/iris/base.fvecs"
	cp idx.vec before.vec
	run --separate-stderr vec_add idx.vec < <(fvec 1 2 3 4; fvec 5 6 7 8; fvec 1 2)
	expect_err 1 "vec-add: stdin: vector 3: dimension 2, expected 4"
	assert_same idx.vec before.vec
	assert_no_temp .
	vec_query -k 3 idx.vec "$DATA/iris/query.fvecs" >a.tsv
	vec_query -k 3 before.vec "$DATA/iris/query.fvecs" >b.tsv
	assert_same a.tsv b.tsv
}

@test "a query process keeps its view while vec-build replaces the index" {
	vec_build -o idx.vec "$DATA/iris/base.fvecs"
	head -c 20 "$DATA/iris/query.fvecs" >q1.fvecs
	vec_query -k 1 idx.vec q1.fvecs >want.tsv
	mkfifo q.fifo
	exec 8<>q.fifo
	timeout 60 "$VEC_BIN/vec-query" -k 1 idx.vec q.fifo >out.tsv 2>err.txt 8>&- 3>&- &
	pid=$!
	cat q1.fvecs >&8
	for ((i = 0; i < 200 && $(wc -l <out.tsv) < 1; i++)); do sleep 0.1; done
	# replace the index by one far away: the running query still sees the old one
	fvec 1000 1000 1000 1000 | vec_build -o idx.vec
	cat q1.fvecs >&8
	for ((i = 0; i < 200 && $(wc -l <out.tsv) < 2; i++)); do sleep 0.1; done
	exec 8>&-
	wait "$pid" || { echo "vec-query failed: $(cat err.txt)"; false; }
	assert_eq "$(cut -f2- out.tsv | uniq | wc -l)" 1
	assert_eq "$(head -1 out.tsv)" "$(cat want.tsv)"
}
