#!/usr/bin/env bats
# Global ids: --ids, --id-column, --id-start and --shard in vec-build and
# vec-add; the index stores them, answers with them and refuses duplicates.

bats_require_minimum_version 1.5.0
load test_helper

# The shard of an id as vec-build(1) documents it: SplitMix64's finaliser,
# modulo N, computed here in big integers, independently of the C code.
shard_of() {
	perl -MMath::BigInt -e '
		my ($id, $n) = @ARGV; my $m = Math::BigInt->new(2)->bpow(64);
		my $z = (Math::BigInt->new($id) + Math::BigInt->from_hex("9e3779b97f4a7c15")) % $m;
		$z = (($z ^ ($z >> 30)) * Math::BigInt->from_hex("bf58476d1ce4e5b9")) % $m;
		$z = (($z ^ ($z >> 27)) * Math::BigInt->from_hex("94d049bb133111eb")) % $m;
		$z = $z ^ ($z >> 31);
		print $z % $n, "\n"' "$1" "$2"
}

# Rows of one index's answer with ids shifted by N: shift_ids N < rows.
shift_ids() { awk -v n="$1" 'BEGIN { OFS = "\t" } { $3 += n; print }'; }

@test "--id-start N: the same answers as positions, with ids N higher; vec-stat shows them" {
	vec_build -t flat -o plain.vec "$DATA/digits/base.fvecs"
	run --separate-stderr vec_build -t flat --id-start 1000000 -o ids.vec "$DATA/digits/base.fvecs"
	expect_ok
	vec_query -k 7 plain.vec "$DATA/digits/query.fvecs" | shift_ids 1000000 >want.tsv
	vec_query -k 7 ids.vec "$DATA/digits/query.fvecs" >got.tsv
	assert_same got.tsv want.tsv
	[ "$(wc -l <got.tsv)" -eq $((7 * 100)) ]
	run --separate-stderr vec_stat ids.vec
	[[ "$output" == *"ids:            stored, 1000000 to 1001696"* ]]
	run --separate-stderr vec_stat plain.vec
	[[ "$output" == *"ids:            positions (0 to count-1)"* ]]
	run --separate-stderr vec_stat --json ids.vec
	[[ "$output" == *'"ids":"stored","id_min":1000000,"id_max":1001696'* ]]
}

@test "--ids as text and as ivecs give the same index; --id-column reads ids from CSV" {
	printf '0.5,1\n2,0\n1,1\n' >v.csv
	printf '70\n5\n900\n' >ids.txt
	{ ivec 70; ivec 5; ivec 900; } >ids.ivecs
	printf '70,0.5,1\n5,2,0\n900,1,1\n' >k.csv
	vec_build -o a.vec --ids ids.txt v.csv
	vec_build -o b.vec --ids ids.ivecs v.csv
	vec_build -o c.vec --id-column k.csv
	assert_same a.vec b.vec
	assert_same a.vec c.vec
	run --separate-stderr vec_query -k 3 a.vec <(printf '2,0\n')
	expect_ok
	assert_eq "$output" "$(printf '0\t1\t5\t0\n0\t2\t900\t1.41421354\n0\t3\t70\t1.80277562')"
	# The id column is not kept as a key.
	run --separate-stderr vec_stat c.vec
	[[ "$output" == *"keys:           no"* ]]
}

@test "equal scores are listed by the smaller id, whatever the input order" {
	printf '1,1\n1,1\n1,1\n0,0\n' >v.csv
	printf '30\n10\n20\n40\n' >ids.txt
	for t in flat hnsw; do
		vec_build -t "$t" -o "$t.vec" --ids ids.txt v.csv
		run --separate-stderr vec_query -k 4 "$t.vec" <(printf '1,1\n')
		expect_ok
		assert_eq "$(cut -f3 <<<"$output" | tr '\n' ' ')" "10 20 30 40 "
	done
}

@test "--shard I/N: the shards partition the ids by the documented hash" {
	local i n=3
	for i in 0 1 2; do
		vec_build -q -t flat --shard "$i/$n" -o "s$i.vec" "$DATA/iris/base.fvecs"
		vec_query -k 200 "s$i.vec" <(fvec 0 0 0 0) | cut -f3 | sort -n >"ids$i"
	done
	# Every vector in exactly one shard.
	sort -n ids0 ids1 ids2 >all
	assert_eq "$(uniq all | wc -l)" "$(wc -l <all)"
	assert_eq "$(head -1 all) $(tail -1 all) $(wc -l <all)" "0 134 135"
	# Each in the shard the formula names (a sample: the hash is slow in perl).
	for id in $(sed -n '1p;7p;$p' ids0) $(sed -n '1p;$p' ids1) $(sed -n '2p;$p' ids2); do
		grep -qx "$id" "ids$(shard_of "$id" "$n")"
	done
	# Not all in one: three shards of 135 vectors hold 25 to 65 each.
	for i in 0 1 2; do
		[ "$(wc -l <"ids$i")" -ge 25 ] && [ "$(wc -l <"ids$i")" -le 65 ]
	done
}

@test "sharded exact search finds the single index's neighbours, ids and scores" {
	local i
	vec_build -t flat -o one.vec "$DATA/digits/base.fvecs"
	vec_query -k 10 one.vec "$DATA/digits/query.fvecs" | cut -f1,3,4 >want
	for i in 0 1 2 3; do
		vec_build -q -t flat --shard "$i/4" -o "s$i.vec" "$DATA/digits/base.fvecs"
		vec_query -k 10 "s$i.vec" "$DATA/digits/query.fvecs"
	done | sort -t "$(printf '\t')" -k1,1n -k4,4g -k3,3n |
		awk -F '\t' '++n[$1] <= 10 { print $1 "\t" $3 "\t" $4 }' >got
	assert_same got want
}

@test "hnsw and ivfpq keep their ids through save, open and vec-add" {
	head -c $((1000 * 260)) "$DATA/digits/base.fvecs" >a.fvecs
	tail -c +$((1000 * 260 + 1)) "$DATA/digits/base.fvecs" >b.fvecs
	for t in hnsw ivfpq; do
		vec_build -q -t "$t" --id-start 5000 -o "$t.vec" a.fvecs
		run --separate-stderr vec_add "$t.vec" b.fvecs
		expect_ok
		run --separate-stderr vec_stat --verify "$t.vec"
		expect_ok
		[[ "$output" == *"ids:            stored, 5000 to 6696"* ]]
		# The added vectors answer with the ids after the largest.
		run --separate-stderr vec_query -k 1 "$t.vec" <(tail -c 260 "$DATA/digits/base.fvecs")
		assert_eq "$(cut -f3 <<<"$output")" 6696
		run --separate-stderr vec_query -k 1 "$t.vec" <(head -c 260 "$DATA/digits/base.fvecs")
		assert_eq "$(cut -f3 <<<"$output")" 5000
	done
}

@test "vec-add with ids into an index without: earlier vectors keep their positions" {
	vec_build -o idx.vec "$DATA/iris/base.fvecs"
	run --separate-stderr vec_add --id-start 1000 idx.vec "$DATA/iris/query.fvecs"
	expect_ok
	run --separate-stderr vec_stat idx.vec
	[[ "$output" == *"ids:            stored, 0 to 1014"* ]]
	run --separate-stderr vec_query -k 1 idx.vec <(head -c 20 "$DATA/iris/base.fvecs")
	assert_eq "$(cut -f3 <<<"$output")" 0
	# A position is an id too: 134 is taken.
	cp idx.vec before.vec
	run --separate-stderr vec_add --id-start 134 idx.vec "$DATA/iris/query.fvecs"
	expect_err 1 "vec-add: $DATA/iris/query.fvecs: vector 1: id 134 is already in the index"
	assert_same idx.vec before.vec
}

@test "an empty shard is an index that stores ids and answers nothing" {
	local other
	printf '1,1\n' >v.csv
	# Id 0's shard of 3 (by the hash, checked above) holds it; another is empty.
	other=$(( ($(shard_of 0 3) + 1) % 3 ))
	run --separate-stderr vec_build -q --shard "$other/3" -o e.vec v.csv
	expect_ok
	run --separate-stderr vec_stat --verify e.vec
	expect_ok
	[[ "$output" == *"ids:            stored (none yet)"* ]]
	run --separate-stderr vec_query e.vec <(printf '1,1\n')
	expect_ok
	[ -z "$output" ]
}

@test "an id given twice is refused, and nothing is written" {
	printf '1,1\n2,2\n3,3\n' >v.csv
	printf '4\n9\n4\n' >ids.txt
	run --separate-stderr vec_build -o idx.vec --ids ids.txt v.csv
	expect_err 1 "vec-build: v.csv: vector 3: id 4 is already in the index"
	[ ! -e idx.vec ]
	assert_no_temp .
	printf '4,1,1\n5,2,2\n' >k.csv
	vec_build -o idx.vec --id-column k.csv
	cp idx.vec before.vec
	printf '6,1,1\n5,2,2\n' >more.csv
	run --separate-stderr vec_add --id-column idx.vec more.csv
	expect_err 1 "vec-add: more.csv: vector 2: id 5 is already in the index"
	assert_same idx.vec before.vec
	assert_no_temp .
}

@test "bad id streams are refused by file and line, and nothing is written" {
	printf '1,1\n2,2\n3,3\n' >v.csv
	printf '1\n2\n' >short.txt
	run --separate-stderr vec_build -o idx.vec --ids short.txt v.csv
	expect_err 1 "vec-build: short.txt: no id for v.csv: vector 3 (2 ids for more vectors)"
	printf '1\n2\n3\n4\n' >long.txt
	run --separate-stderr vec_build -o idx.vec --ids long.txt v.csv
	expect_err 1 "vec-build: long.txt: more ids than the 3 input vectors"
	printf '1\nx7\n3\n' >bad.txt
	run --separate-stderr vec_build -o idx.vec --ids bad.txt v.csv
	expect_err 1 "vec-build: bad.txt: line 2: 'x7' is not an id (an unsigned integer below 2^64-1)"
	printf '1\n18446744073709551615\n3\n' >max.txt
	run --separate-stderr vec_build -o idx.vec --ids max.txt v.csv
	expect_err 1 "vec-build: max.txt: line 2: '18446744073709551615' is not an id (an unsigned integer below 2^64-1)"
	printf '1\n\n3\n' >empty.txt
	run --separate-stderr vec_build -o idx.vec --ids empty.txt v.csv
	expect_err 1 "vec-build: empty.txt: line 2: empty line, expected an id"
	{ ivec 1; ivec -5; ivec 3; } >neg.ivecs
	run --separate-stderr vec_build -o idx.vec --ids neg.ivecs v.csv
	expect_err 1 "vec-build: neg.ivecs: id 2: negative id -5"
	{ ivec 1; ivec 2 3; } >wide.ivecs
	run --separate-stderr vec_build -o idx.vec --ids wide.ivecs v.csv
	expect_err 1 "vec-build: wide.ivecs: id 2: ivecs record of dimension 2, expected 1"
	printf '1,1,1\nseven,2,2\n' >k.csv
	run --separate-stderr vec_build -o idx.vec --id-column k.csv
	expect_err 1 "vec-build: k.csv: vector 2: id 'seven' is not an unsigned integer below 2^64-1"
	run --separate-stderr vec_build -o idx.vec --id-column "$DATA/iris/base.fvecs"
	expect_err 1 "vec-build: $DATA/iris/base.fvecs: --id-column: the input has no leading id column (CSV/TSV only)"
	run --separate-stderr vec_build -o idx.vec --ids missing.txt v.csv
	expect_err 1 "vec-build: missing.txt: No such file or directory"
	[ ! -e idx.vec ]
	assert_no_temp .
}

@test "id and shard options: usage errors (exit 2)" {
	printf '1,1\n' >v.csv
	printf '1\n' >ids.txt
	run --separate-stderr vec_build -o idx.vec --ids ids.txt --id-start 3 v.csv
	expect_usage vec-build "--ids, --id-column and --id-start exclude each other"
	run --separate-stderr vec_build -o idx.vec --id-column --no-keys v.csv
	expect_usage vec-build "--id-column and --no-keys exclude each other"
	run --separate-stderr vec_build -o idx.vec --shard 4/4 v.csv
	expect_usage vec-build "--shard 4/4: shards are numbered 0 to 3"
	run --separate-stderr vec_build -o idx.vec --shard 2 v.csv
	expect_usage vec-build "--shard '2': expected I/N, e.g. 0/4"
	run --separate-stderr vec_build -o idx.vec --shard 0/0 v.csv
	expect_usage vec-build "invalid value '0' for --shard N (expected an integer from 1 to 1048576)"
	run --separate-stderr vec_build -o idx.vec --id-start -1 v.csv
	expect_usage vec-build "invalid value '-1' for --id-start (expected an integer from 0 to 18446744073709551614)"
	[ ! -e idx.vec ]
	vec_build -o idx.vec v.csv
	run --separate-stderr vec_add --shard 0/2 idx.vec v.csv
	expect_usage vec-add "--shard needs the vectors' ids: --ids, --id-column or --id-start"
}

@test "vec-add --shard keeps its part of a stream, by the ids given" {
	vec_build -q -t flat --shard 1/2 -o s1.vec "$DATA/iris/base.fvecs"
	run --separate-stderr vec_add --shard 1/2 --id-start 135 s1.vec "$DATA/iris/query.fvecs"
	expect_ok
	vec_build -q -t flat --shard 1/2 -o want.vec <(cat "$DATA/iris/base.fvecs" "$DATA/iris/query.fvecs")
	vec_query -k 200 s1.vec <(fvec 5 3 1 0) >got.tsv
	vec_query -k 200 want.vec <(fvec 5 3 1 0) >want.tsv
	assert_same got.tsv want.tsv
}

@test "--verify finds a stored id that appears twice" {
	printf '1,1\n2,2\n3,3\n' >v.csv
	printf '10\n11\n12\n' >ids.txt
	vec_build -t flat -o idx.vec --ids ids.txt v.csv
	# The IDS section: its table entry is the third (VECS, NORM, IDS).
	local off
	off=$(le_uint idx.vec $((64 + 2 * 32 + 8)) 8)
	poke idx.vec $((off + 8)) '\x0a'
	reseal idx.vec
	run --separate-stderr vec_stat --verify idx.vec
	expect_err 1 "vec-stat: idx.vec: section 'IDS ': vector 1: id 10 is stored twice"
	cp idx.vec before.vec
	run --separate-stderr vec_add idx.vec v.csv
	expect_err 1 "vec-add: idx.vec: section 'IDS ': vector 1: id 10 is stored twice"
	assert_same idx.vec before.vec
}
