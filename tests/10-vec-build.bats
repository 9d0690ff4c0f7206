#!/usr/bin/env bats
# vec-build: options, metrics, inputs from files and stdin, atomic output.
# Input formats and bad records are in 50-formats.bats.

bats_require_minimum_version 1.5.0
load test_helper

@test "vec-build --help prints the usage on stdout and exits 0" {
	run --separate-stderr vec_build --help
	expect_ok
	[[ "${lines[0]}" == "Usage: vec-build [OPTION]... -o INDEX [INPUT]..." ]]
	[[ "$output" == *"-o, --output=INDEX"* ]]
	[[ "$output" == *"-m, --metric=METRIC"* ]]
	[ -z "$stderr" ]
}

@test "vec-build --version and -V print 'vec-build (vecutils) 0.1.0'" {
	run --separate-stderr vec_build --version
	expect_ok
	assert_eq "$output" "vec-build (vecutils) 0.1.0"
	[ -z "$stderr" ]
	run --separate-stderr vec_build -V
	expect_ok
	assert_eq "$output" "vec-build (vecutils) 0.1.0"
}

@test "vec-build: an unknown option is a usage error (exit 2) pointing at --help" {
	run --separate-stderr vec_build --bogus -o out.vec "$DATA/iris/base.fvecs"
	expect_err_has 2 "unrecognized option '--bogus'" "Try 'vec-build --help' for more information."
	[ -z "$output" ]
	assert_absent out.vec
}

@test "vec-build without -o is a usage error" {
	run --separate-stderr vec_build "$DATA/iris/base.fvecs"
	expect_usage vec-build "no output index given (use -o INDEX)"
	[ -z "$(ls -A)" ]
}

@test "vec-build -o - is a usage error (the index must be a file)" {
	run --separate-stderr vec_build -o - "$DATA/iris/base.fvecs"
	expect_usage vec-build "the index must be a file, not '-'"
	[ -z "$(ls -A)" ]
}

@test "vec-build: unknown metric is a usage error" {
	run --separate-stderr vec_build -m manhattan -o out.vec "$DATA/iris/base.fvecs"
	expect_usage vec-build "unknown metric 'manhattan' (expected l2, ip or cos)"
	assert_absent out.vec
}

@test "vec-build: unknown index type is a usage error" {
	run --separate-stderr vec_build -t hnswx -o out.vec "$DATA/iris/base.fvecs"
	expect_usage vec-build "unknown index type 'hnswx' (expected flat, hnsw, ivf, ivfpq, pq, ivfsq8, sq8 or auto)"
	assert_absent out.vec
}

@test "vec-build: unknown input format is a usage error" {
	run --separate-stderr vec_build -f parquet -o out.vec "$DATA/iris/base.fvecs"
	expect_usage vec-build "unknown input format 'parquet' (expected fvecs, bvecs, ivecs, csv, tsv or npy)"
	assert_absent out.vec
}

@test "vec-build -j 0 and -j abc are usage errors" {
	run --separate-stderr vec_build -j 0 -o out.vec "$DATA/iris/base.fvecs"
	expect_usage vec-build "invalid value '0' for -j (expected an integer from 1 to 1024)"
	assert_absent out.vec
	run --separate-stderr vec_build -j abc -o out.vec "$DATA/iris/base.fvecs"
	expect_usage vec-build "invalid value 'abc' for -j (expected an integer from 1 to 1024)"
	assert_absent out.vec
}

@test "vec-build stores the fvecs vectors unchanged, in order (VECS section)" {
	run --separate-stderr vec_build -o iris.vec "$DATA/iris/base.fvecs"
	expect_ok
	[ -z "$stderr" ]
	[ -z "$output" ]
	section iris.vec VECS >vecs.bin
	fvecs_strip <"$DATA/iris/base.fvecs" >expected.bin
	assert_same vecs.bin expected.bin
	assert_eq "$(le_uint iris.vec 24 4)" 4     # dim
	assert_eq "$(le_uint iris.vec 32 8)" 135   # count
	assert_no_temp .
}

@test "vec-build -m l2 stores squared norms in NORM" {
	vec_build -m l2 -o iris.vec "$DATA/iris/base.fvecs"
	assert_eq "$(section_ids iris.vec)" "VECS NORM"
	section iris.vec NORM | od -An -v -t f4 -w4 | tr -d ' ' >norms.txt
	awk -F, '{ printf "%.6g\n", $1*$1 + $2*$2 + $3*$3 + $4*$4 }' "$DATA/iris/base.csv" >want.txt
	awk '{ printf "%.6g\n", $1 }' norms.txt >got.txt
	# float32 rounding of the inputs: compare to 5 significant digits
	paste got.txt want.txt | awk '{ d = $1 - $2; if (d < 0) d = -d;
		if (d > 1e-4 * ($2 > 1 ? $2 : 1)) { print "row " NR ": " $0; bad = 1 } }
		END { exit bad }'
	assert_eq "$(wc -l <norms.txt)" 135
}

@test "vec-build -m ip stores the vectors unchanged and no norms" {
	vec_build -m ip -o ip.vec "$DATA/iris/base.fvecs"
	assert_eq "$(le_uint ip.vec 20 4)" 2
	assert_eq "$(section_ids ip.vec)" "VECS"
	section ip.vec VECS >vecs.bin
	fvecs_strip <"$DATA/iris/base.fvecs" >expected.bin
	assert_same vecs.bin expected.bin
}

@test "vec-build -m cos stores unit vectors in the direction of the inputs" {
	vec_build -m cos -o cos.vec "$DATA/iris/base.fvecs"
	assert_eq "$(le_uint cos.vec 20 4)" 3
	assert_eq "$(section_ids cos.vec)" "VECS"
	section cos.vec VECS | od -An -v -t f4 -w16 >unit.txt
	paste -d' ' unit.txt <(tr , ' ' <"$DATA/iris/base.csv") | awk '{
		n = $1*$1 + $2*$2 + $3*$3 + $4*$4
		if (n < 0.9999 || n > 1.0001) { print "row " NR ": norm^2 " n; bad = 1 }
		m = sqrt($5*$5 + $6*$6 + $7*$7 + $8*$8)
		for (i = 1; i <= 4; i++) { d = $i - $(i+4) / m; if (d < 0) d = -d
			if (d > 1e-5) { print "row " NR ": component " i; bad = 1 } }
	} END { if (NR != 135) bad = 1; exit bad }'
}

@test "vec-build accepts the metric synonyms euclidean, dot and cosine" {
	vec_build -m euclidean -o a.vec "$DATA/iris/base.fvecs"
	vec_build -m l2 -o b.vec "$DATA/iris/base.fvecs"
	assert_same a.vec b.vec
	vec_build -m dot -o a.vec "$DATA/iris/base.fvecs"
	vec_build -m ip -o b.vec "$DATA/iris/base.fvecs"
	assert_same a.vec b.vec
	vec_build -m cosine -o a.vec "$DATA/iris/base.fvecs"
	vec_build -m cos -o b.vec "$DATA/iris/base.fvecs"
	assert_same a.vec b.vec
	vec_build -t flat -o c.vec "$DATA/iris/base.fvecs"
	vec_build -o d.vec "$DATA/iris/base.fvecs"
	assert_same c.vec d.vec
}

@test "vec-build -m cos refuses a zero vector, naming it" {
	{ fvec 1 2; fvec 3 4; fvec 0 0; fvec 5 6; } >z.fvecs
	run --separate-stderr vec_build -m cos -o out.vec z.fvecs
	expect_err 1 "vec-build: z.fvecs: vector 3: zero vector has no direction (metric cos)"
	assert_absent out.vec
	# l2 has no such restriction
	run --separate-stderr vec_build -o out.vec z.fvecs
	expect_ok
}

@test "vec-build reads standard input given as '-' and when no input is named" {
	vec_build -o file.vec "$DATA/iris/base.fvecs"
	run --separate-stderr vec_build -o dash.vec - <"$DATA/iris/base.fvecs"
	expect_ok
	run --separate-stderr vec_build -o none.vec <"$DATA/iris/base.fvecs"
	expect_ok
	assert_same dash.vec file.vec
	assert_same none.vec file.vec
	# a pipe, not a regular file
	cat "$DATA/iris/base.csv" | vec_build -o pipe.vec
	assert_same pipe.vec file.vec
}

@test "vec-build names stdin in messages" {
	run --separate-stderr vec_build -o out.vec < <(fvec 1 2 3; fvec 1 2)
	expect_err 1 "vec-build: stdin: vector 2: dimension 2, expected 3"
	assert_absent out.vec
}

@test "vec-build concatenates several inputs, of different formats, in order" {
	cat "$DATA/iris/base.fvecs" "$DATA/iris/query.fvecs" >all.fvecs
	vec_build -o want.vec all.fvecs
	run --separate-stderr vec_build -o got.vec "$DATA/iris/base.fvecs" "$DATA/iris/query.csv"
	expect_ok
	assert_same got.vec want.vec
	assert_eq "$(le_uint got.vec 32 8)" 150
	run --separate-stderr vec_build -o got2.vec "$DATA/iris/base.csv" - <"$DATA/iris/query.fvecs"
	expect_ok
	assert_same got2.vec want.vec
}

@test "vec-build refuses inputs of different dimensions, naming the second input" {
	{ fvec 1 2 3; fvec 4 5 6; } >three.fvecs
	{ fvec 1 2; } >two.fvecs
	run --separate-stderr vec_build -o out.vec three.fvecs two.fvecs
	expect_err_has 1 "vec-build: two.fvecs: vector 1: dimension 2, expected 3"
	assert_absent out.vec
}

@test "vec-build replaces an existing index and leaves no temporary file" {
	vec_build -o idx.vec "$DATA/iris/query.fvecs"
	vec_build -o idx.vec "$DATA/iris/base.fvecs"
	vec_build -o want.vec "$DATA/iris/base.fvecs"
	assert_same idx.vec want.vec
	assert_no_temp .
}

@test "a failed vec-build leaves an existing index byte-identical" {
	vec_build -o idx.vec "$DATA/iris/base.fvecs"
	cp idx.vec before.vec
	{ fvec 1 2 3 4; fvec 1 2 3; } >bad.fvecs
	run --separate-stderr vec_build -o idx.vec bad.fvecs
	expect_err 1 "vec-build: bad.fvecs: vector 2: dimension 3, expected 4"
	assert_same idx.vec before.vec
	assert_no_temp .
}

@test "vec-build -o into a directory that does not exist fails cleanly" {
	run --separate-stderr vec_build -o nodir/out.vec "$DATA/iris/base.fvecs"
	expect_err_has 1 "vec-build: nodir/out.vec: " "No such file or directory"
	[ -z "$(ls -A)" ]
}

@test "vec-build -o naming a directory fails and leaves the directory alone" {
	mkdir out.vec
	run --separate-stderr vec_build -o out.vec "$DATA/iris/base.fvecs"
	expect_err 1 "vec-build: out.vec: is a directory"
	[ -d out.vec ]
	[ -z "$(ls -A out.vec)" ]
	assert_no_temp .
}

@test "vec-build writes the index with mode 0666 less the umask" {
	umask 027
	vec_build -o idx.vec "$DATA/iris/base.fvecs"
	assert_eq "$(stat -c %a idx.vec)" 640
	umask 002
	vec_build -o idx.vec "$DATA/iris/base.fvecs"
	assert_eq "$(stat -c %a idx.vec)" 664
}

@test "vec-build -q prints nothing on success" {
	run --separate-stderr vec_build -q -o idx.vec "$DATA/digits/base.fvecs"
	expect_ok
	[ -z "$output" ]
	[ -z "$stderr" ]
}

@test "vec-build of the committed fixture input gives the committed index (format is stable)" {
	vec_build -o small.vec "$FIX/small.fvecs"
	assert_same small.vec "$FIX/small.vec"
}
