#!/usr/bin/env bats
# Input formats (fvecs, bvecs, ivecs, CSV/TSV, npy, gzip) and bad input:
# every bad record is refused by number, with exit 1 and no index written.

bats_require_minimum_version 1.5.0
load test_helper

# The same 3 small-integer vectors of dimension 4, as CSV.
ints_csv() { printf '0,1,2,3\n255,128,7,0\n10,20,30,40\n'; }

# A bad build: exit 1, exactly this message, no index and no temporary file.
refused() {
	expect_err 1 "$1"
	assert_absent out.vec
}

# ---- formats that must work ---------------------------------------------------

@test "gzip-compressed fvecs gives the same index as the plain file" {
	vec_build -o plain.vec "$DATA/digits/base.fvecs"
	gzip -n -c "$DATA/digits/base.fvecs" >base.fvecs.gz
	run --separate-stderr vec_build -o gz.vec base.fvecs.gz
	expect_ok
	assert_same gz.vec plain.vec
	# and through a pipe
	run --separate-stderr vec_build -o gzpipe.vec < <(cat base.fvecs.gz)
	expect_ok
	assert_same gzpipe.vec plain.vec
}

@test "concatenated gzip members are read as one stream" {
	head -c $((100 * 260)) "$DATA/digits/base.fvecs" | gzip -n -c >parts.gz
	tail -c +$((100 * 260 + 1)) "$DATA/digits/base.fvecs" | gzip -n -c >>parts.gz
	vec_build -o plain.vec "$DATA/digits/base.fvecs"
	run --separate-stderr vec_build -o gz.vec parts.gz
	expect_ok
	assert_same gz.vec plain.vec
}

@test "CSV gives the same index as fvecs of the same numbers" {
	vec_build -o fvecs.vec "$DATA/iris/base.fvecs"
	run --separate-stderr vec_build -o csv.vec "$DATA/iris/base.csv"
	expect_ok
	assert_same csv.vec fvecs.vec
	gzip -n -c "$DATA/iris/base.csv" >base.csv.gz
	run --separate-stderr vec_build -o csvgz.vec base.csv.gz
	expect_ok
	assert_same csvgz.vec fvecs.vec
}

@test "CSV with a header line, CRLF line ends, spaces and a final blank line" {
	vec_build -o want.vec "$DATA/iris/base.fvecs"
	{ echo "sepal_length,sepal_width,petal_length,petal_width"; cat "$DATA/iris/base.csv"; } >header.csv
	run --separate-stderr vec_build -o header.vec header.csv
	expect_ok
	assert_same header.vec want.vec
	sed 's/$/\r/' "$DATA/iris/base.csv" >crlf.csv
	run --separate-stderr vec_build -o crlf.vec crlf.csv
	expect_ok
	assert_same crlf.vec want.vec
	{ sed 's/,/ , /g; s/^/ /' "$DATA/iris/base.csv"; echo; } >spaces.csv
	run --separate-stderr vec_build -o spaces.vec spaces.csv
	expect_ok
	assert_same spaces.vec want.vec
	# no newline after the last line
	printf '%s' "$(cat "$DATA/iris/base.csv")" >nonl.csv
	run --separate-stderr vec_build -o nonl.vec nonl.csv
	expect_ok
	assert_same nonl.vec want.vec
}

@test "--no-header and --header override the detection" {
	printf 'a,b\n1,2\n3,4\n' >h.csv
	run --separate-stderr vec_build --no-header -o out.vec h.csv
	expect_err 1 "vec-build: h.csv:1: field 1: not a number 'a'"
	assert_absent out.vec
	printf '1,2\n3,4\n5,6\n' >n.csv
	run --separate-stderr vec_build --header -o n.vec n.csv
	expect_ok
	assert_eq "$(le_uint n.vec 32 8)" 2
}

@test "TSV gives the same index as CSV" {
	vec_build -o want.vec "$DATA/iris/base.csv"
	tr , '\t' <"$DATA/iris/base.csv" >base.tsv
	run --separate-stderr vec_build -o tsv.vec base.tsv
	expect_ok
	assert_same tsv.vec want.vec
	run --separate-stderr vec_build -f tsv -o tsv2.vec base.tsv
	expect_ok
	assert_same tsv2.vec want.vec
}

@test "CSV with a key column (iris species) stores one key per vector" {
	paste -d, <(iris_species <"$DATA/iris/labels_all.txt") "$DATA/iris/iris_all.csv" >keyed.csv
	{ echo "species,sl,sw,pl,pw"; cat keyed.csv; } >keyed-header.csv
	vec_build -o plain.vec "$DATA/iris/iris_all.csv"
	for f in keyed.csv keyed-header.csv; do
		run --separate-stderr vec_build -o keyed.vec "$f"
		expect_ok
		assert_eq "$(section_ids keyed.vec)" "VECS NORM KEYS"
		# the vectors are those without the key
		section keyed.vec VECS >a.bin
		section plain.vec VECS >b.bin
		assert_same a.bin b.bin
		# KEYS: count + 1 offsets, then the keys NUL-terminated, in order
		section keyed.vec KEYS | perl -e 'binmode STDIN; local $/; my $b = <STDIN>;
			my @o = unpack("Q<151", $b); my $blob = substr($b, 151 * 8);
			print substr($blob, $o[$_], $o[$_ + 1] - $o[$_] - 1), "\n" for 0 .. 149' >keys.txt
		iris_species <"$DATA/iris/labels_all.txt" >want.txt
		assert_same keys.txt want.txt
	done
}

@test "--keys takes numeric keys; --no-keys refuses a text first column" {
	printf '101,1,2\n102,3,4\n' >num.csv
	run --separate-stderr vec_build --keys -o k.vec num.csv
	expect_ok
	assert_eq "$(le_uint k.vec 24 4)" 2
	section k.vec KEYS >keys.bin
	assert_eq "$(tail -c 8 keys.bin | tr '\0' ' ')" "101 102 "
	# without --keys the same file is 3-d and has no keys
	vec_build -o n.vec num.csv
	assert_eq "$(le_uint n.vec 24 4)" 3
	assert_eq "$(section_ids n.vec)" "VECS NORM"
	printf 'a,1,2\nb,3,4\n' >txt.csv
	run --separate-stderr vec_build --no-keys -o out.vec txt.csv
	refused "vec-build: txt.csv:1: field 1: not a number 'a'"
}

@test "quoted CSV keys may hold commas, quotes and newlines" {
	printf '"a,b",1,2\n"say ""hi""",3,4\n"two\nlines",5,6\nplain,7,8\n' >q.csv
	run --separate-stderr vec_build -o q.vec q.csv
	expect_ok
	assert_eq "$(le_uint q.vec 32 8)" 4
	section q.vec KEYS | perl -e 'binmode STDIN; local $/; my $b = <STDIN>;
		my @o = unpack("Q<5", $b); my $blob = substr($b, 40);
		print "[", substr($blob, $o[$_], $o[$_ + 1] - $o[$_] - 1), "]" for 0 .. 3' >keys.txt
	assert_eq "$(cat keys.txt)" '[a,b][say "hi"][two
lines][plain]'
}

@test "bvecs is detected from the file size, or named with -f bvecs" {
	ints_csv >ints.csv
	vec_build -o want.vec ints.csv
	{ bvec 0 1 2 3; bvec 255 128 7 0; bvec 10 20 30 40; } >ints.bvecs
	run --separate-stderr vec_build -o auto.vec ints.bvecs
	expect_ok
	assert_same auto.vec want.vec
	run --separate-stderr vec_build -f bvecs -o named.vec ints.bvecs
	expect_ok
	assert_same named.vec want.vec
	# 5 records of 8 bytes also fit fvecs (2 x 20): -f bvecs decides
	{ ints_csv; printf '1,1,1,1\n2,2,2,2\n'; } >five.csv
	vec_build -o want5.vec five.csv
	{ bvec 0 1 2 3; bvec 255 128 7 0; bvec 10 20 30 40; bvec 1 1 1 1; bvec 2 2 2 2; } >five.bvecs
	run --separate-stderr vec_build -f bvecs -o five.vec five.bvecs
	expect_ok
	assert_same five.vec want5.vec
}

@test "ivecs with -f ivecs, negative values included" {
	printf '1,-2,3\n-2147483,0,65536\n' >i.csv
	vec_build -o want.vec i.csv
	{ ivec 1 -2 3; ivec -2147483 0 65536; } >i.ivecs
	run --separate-stderr vec_build -f ivecs -o i.vec i.ivecs
	expect_ok
	assert_same i.vec want.vec
}

@test "npy float32 (<f4 and >f4) gives the same index as fvecs" {
	vec_build -o want.vec "$DATA/iris/base.fvecs"
	{ npy_header '<f4' False '(135, 4)'; fvecs_strip <"$DATA/iris/base.fvecs"; } >le.npy
	# the header is a multiple of 64 bytes and ends in a newline
	hlen=$(($(wc -c <le.npy) - 135 * 16))
	[ $((hlen % 64)) -eq 0 ]
	assert_eq "$(head -c "$hlen" le.npy | tail -c 1 | od -An -t x1 | tr -d " ")" 0a
	run --separate-stderr vec_build -o le.vec le.npy
	expect_ok
	assert_same le.vec want.vec
	{ npy_header '>f4' False '(135, 4)'
	  fvecs_strip <"$DATA/iris/base.fvecs" | perl -e 'binmode STDIN; local $/; print pack("f>*", unpack("f<*", <STDIN>))'
	} >be.npy
	run --separate-stderr vec_build -o be.vec be.npy
	expect_ok
	assert_same be.vec want.vec
	# gzip-compressed too
	gzip -n -c le.npy >le.npy.gz
	run --separate-stderr vec_build -o gz.vec le.npy.gz
	expect_ok
	assert_same gz.vec want.vec
}

@test "npy uint8 and float16 give the same index as fvecs (digits, values 0..16)" {
	vec_build -o want.vec "$DATA/digits/base.fvecs"
	{ npy_header '|u1' False '(1697, 64)'
	  fvecs_strip <"$DATA/digits/base.fvecs" | perl -e 'binmode STDIN; local $/; print pack("C*", unpack("f<*", <STDIN>))'
	} >u8.npy
	run --separate-stderr vec_build -o u8.vec u8.npy
	expect_ok
	assert_same u8.vec want.vec
	{ npy_header '<f2' False '(1697, 64)'
	  fvecs_strip <"$DATA/digits/base.fvecs" | perl -e 'binmode STDIN; local $/;
		for my $v (unpack("f<*", <STDIN>)) {
			my $h = 0;
			if ($v > 0) { my $e = int(log($v) / log(2) + 1e-9);
				$h = (($e + 15) << 10) | int(($v / 2**$e - 1) * 1024 + 0.5); }
			print pack("v", $h);
		}'
	} >f16.npy
	run --separate-stderr vec_build -o f16.vec f16.npy
	expect_ok
	assert_same f16.vec want.vec
}

@test "npy: a 1-D array is one vector" {
	{ npy_header '<f4' False '(3,)'; perl -e 'print pack("f<*", 1.5, -2, 3)'; } >one.npy
	run --separate-stderr vec_build -o one.vec one.npy
	expect_ok
	fvec 1.5 -2 3 >one.fvecs
	vec_build -o want.vec one.fvecs
	assert_same one.vec want.vec
}

# ---- bad input: one test each ------------------------------------------------

@test "fvecs: a record of another dimension is refused by vector number" {
	{ fvec 1 2 3 4; fvec 5 6 7 8; fvec 9 10 11; fvec 1 1 1 1; } >bad.fvecs
	run --separate-stderr vec_build -o out.vec bad.fvecs
	refused "vec-build: bad.fvecs: vector 3: dimension 3, expected 4"
}

@test "fvecs: NaN is refused by vector and component" {
	{ fvec 1 2 3; fvec 4 5 6; fvec_bits 3f800000 7fc00000 3f800000; } >nan.fvecs
	run --separate-stderr vec_build -o out.vec nan.fvecs
	refused "vec-build: nan.fvecs: vector 3: component 2 is NaN"
}

@test "fvecs: +Inf and -Inf are refused by vector and component" {
	{ fvec 1 2 3; fvec_bits 3f800000 3f800000 7f800000; } >inf.fvecs
	run --separate-stderr vec_build -o out.vec inf.fvecs
	refused "vec-build: inf.fvecs: vector 2: component 3 is infinite"
	{ fvec_bits ff800000 0 0; } >ninf.fvecs
	run --separate-stderr vec_build -o out.vec ninf.fvecs
	refused "vec-build: ninf.fvecs: vector 1: component 1 is infinite"
}

@test "fvecs: a truncated last record is refused" {
	{ fvec 1 2 3 4; fvec 5 6 7 8; fvec 9 10 11 12; } >full.fvecs
	head -c 54 full.fvecs >cut.fvecs
	run --separate-stderr vec_build -o out.vec cut.fvecs
	refused "vec-build: cut.fvecs: vector 3: truncated record (got 14 of 20 bytes)"
	# cut inside the dimension field
	head -c 42 full.fvecs >cut2.fvecs
	run --separate-stderr vec_build -o out.vec cut2.fvecs
	expect_err_has 1 "vec-build: cut2.fvecs: vector 3: truncated record"
	assert_absent out.vec
}

@test "bvecs: a truncated last record is refused" {
	{ bvec 1 2 3 4; bvec 5 6 7 8; bvec 9 10 11 12; } >full.bvecs
	head -c 22 full.bvecs >cut.bvecs
	run --separate-stderr vec_build -f bvecs -o out.vec cut.bvecs
	refused "vec-build: cut.bvecs: vector 3: truncated record (got 6 of 8 bytes)"
}

@test "fvecs -f fvecs: dimension 0, negative and 70000 in the first header" {
	fvec_hdr 0 1 2 >d0.fvecs
	run --separate-stderr vec_build -f fvecs -o out.vec d0.fvecs
	refused "vec-build: d0.fvecs: vector 1: bad dimension 0 (must be 1..65536)"
	fvec_hdr -5 1 2 >dneg.fvecs
	run --separate-stderr vec_build -f fvecs -o out.vec dneg.fvecs
	refused "vec-build: dneg.fvecs: vector 1: bad dimension -5 (must be 1..65536)"
	fvec_hdr 70000 1 2 >dbig.fvecs
	run --separate-stderr vec_build -f fvecs -o out.vec dbig.fvecs
	refused "vec-build: dbig.fvecs: vector 1: bad dimension 70000 (must be 1..65536)"
}

@test "fvecs: dimension 0, negative and 70000 in a later record's header" {
	for d in 0 -5 70000; do
		{ fvec 1 2; fvec 3 4; fvec_hdr "$d" 5 6; } >bad.fvecs
		run --separate-stderr vec_build -o out.vec bad.fvecs
		refused "vec-build: bad.fvecs: vector 3: bad dimension $d (must be 1..65536)"
	done
}

@test "a binary file with dimension 0, negative or 70000 first is not called empty" {
	# Detection does not see a *vecs header here; whatever it then says, it
	# must name the file and must not claim that a non-empty file is empty.
	for d in 0 -5 70000; do
		{ fvec_hdr "$d" 1 2; fvec 3 4; } >bad.fvecs
		run --separate-stderr vec_build -o out.vec bad.fvecs
		expect_err_has 1 "vec-build: bad.fvecs:"
		[[ "$stderr" != *"empty input"* ]] || { echo "dim $d: $stderr"; false; }
		assert_absent out.vec
	done
}

@test "an empty file, and empty stdin, are refused as empty input" {
	: >empty.fvecs
	run --separate-stderr vec_build -o out.vec empty.fvecs
	refused "vec-build: empty.fvecs: empty input (no vectors)"
	run --separate-stderr vec_build -o out.vec </dev/null
	refused "vec-build: stdin: empty input (no vectors)"
	gzip -n -c </dev/null >empty.gz
	run --separate-stderr vec_build -o out.vec empty.gz
	refused "vec-build: empty.gz: empty input (no vectors)"
}

@test "a CSV holding only a header is empty input" {
	printf 'a,b,c\n' >header.csv
	run --separate-stderr vec_build -o out.vec header.csv
	refused "vec-build: header.csv: empty input (no vectors)"
}

@test "CSV: a non-numeric field is refused by line and field" {
	printf '1,2,3\n4,5,6\n7,abc,9\n' >bad.csv
	run --separate-stderr vec_build -o out.vec bad.csv
	refused "vec-build: bad.csv:3: field 2: not a number 'abc'"
	# with a header, lines still count from the top of the file
	printf 'x,y,z\n1,2,3\n4,5,n/a\n' >bad2.csv
	run --separate-stderr vec_build -o out.vec bad2.csv
	refused "vec-build: bad2.csv:3: field 3: not a number 'n/a'"
}

@test "CSV: NaN and infinite fields are refused by line and field" {
	printf '1,2\n3,nan\n' >nan.csv
	run --separate-stderr vec_build -o out.vec nan.csv
	refused "vec-build: nan.csv:2: field 2: NaN"
	printf '1,2\n3,4\n-inf,5\n' >inf.csv
	run --separate-stderr vec_build -o out.vec inf.csv
	refused "vec-build: inf.csv:3: field 1: infinite value"
	printf '1,2\n3,1e39\n' >big.csv
	run --separate-stderr vec_build -o out.vec big.csv
	refused "vec-build: big.csv:2: field 2: infinite value"
}

@test "CSV: ragged rows are refused by line" {
	printf '1,2,3,4\n5,6,7,8\n1,2,3,4\n9,10,11\n' >short.csv
	run --separate-stderr vec_build -o out.vec short.csv
	refused "vec-build: short.csv:4: 3 fields, expected 4"
	printf '1,2,3\n4,5,6,7\n' >long.csv
	run --separate-stderr vec_build -o out.vec long.csv
	refused "vec-build: long.csv:2: 4 fields, expected 3"
	printf '1\t2\n3\t4\t5\n' >ragged.tsv
	run --separate-stderr vec_build -o out.vec ragged.tsv
	refused "vec-build: ragged.tsv:2: 3 fields, expected 2"
}

@test "CSV: a blank line before more data is refused" {
	printf '1,2\n3,4\n\n5,6\n' >blank.csv
	run --separate-stderr vec_build -o out.vec blank.csv
	refused "vec-build: blank.csv:3: empty line"
}

@test "CSV: an unterminated quoted field is refused" {
	printf 'a,1,2\n"b,3,4\n' >q.csv
	run --separate-stderr vec_build -o out.vec q.csv
	refused "vec-build: q.csv:2: unterminated quoted field"
}

@test "corrupt gzip data (bytes flipped in the middle) is refused" {
	gzip -n -c "$DATA/digits/base.fvecs" >bad.gz
	size=$(wc -c <bad.gz)
	for off in $((size / 2)) $((size / 2 + 1)) $((size / 2 + 2)) $((size / 2 + 3)); do
		flip_byte bad.gz "$off"
	done
	run --separate-stderr vec_build -o out.vec bad.gz
	expect_err_has 1 "vec-build: bad.gz: "
	assert_absent out.vec
	# the CRC in the trailer no longer matches the data
	gzip -n -c "$DATA/digits/base.fvecs" >crc.gz
	size=$(wc -c <crc.gz)
	flip_byte crc.gz $((size - 8))
	run --separate-stderr vec_build -o out.vec crc.gz
	refused "vec-build: crc.gz: corrupt gzip data (incorrect data check)"
}

@test "a gzip stream cut short is refused" {
	gzip -n -c "$DATA/digits/base.fvecs" >full.gz
	head -c $(($(wc -c <full.gz) / 2)) full.gz >cut.gz
	run --separate-stderr vec_build -o out.vec cut.gz
	refused "vec-build: cut.gz: unexpected end of gzip data"
	# only the trailer missing
	head -c $(($(wc -c <full.gz) - 4)) full.gz >cut2.gz
	run --separate-stderr vec_build -o out.vec cut2.gz
	refused "vec-build: cut2.gz: unexpected end of gzip data"
}

@test "npy with dtype <f8 is refused" {
	{ npy_header '<f8' False '(2, 2)'; perl -e 'print pack("d<*", 1, 2, 3, 4)'; } >f8.npy
	run --separate-stderr vec_build -o out.vec f8.npy
	refused "vec-build: f8.npy: npy: unsupported dtype '<f8' (supported: <f4, >f4, <f2, >f2, |u1)"
}

@test "npy in Fortran order is refused" {
	{ npy_header '<f4' True '(2, 2)'; perl -e 'print pack("f<*", 1, 2, 3, 4)'; } >fortran.npy
	run --separate-stderr vec_build -o out.vec fortran.npy
	refused "vec-build: fortran.npy: npy: Fortran-order arrays are not supported"
}

@test "npy: a 3-D array, truncated data and NaN are refused" {
	{ npy_header '<f4' False '(2, 2, 2)'; perl -e 'print pack("f<*", 1 .. 8)'; } >3d.npy
	run --separate-stderr vec_build -o out.vec 3d.npy
	refused "vec-build: 3d.npy: npy: shape must be 2-D"
	{ npy_header '<f4' False '(3, 2)'; perl -e 'print pack("f<*", 1 .. 5)'; } >short.npy
	run --separate-stderr vec_build -o out.vec short.npy
	refused "vec-build: short.npy: vector 3: truncated record (got 4 of 8 bytes)"
	{ npy_header '<f4' False '(2, 2)'; perl -e 'print pack("f<*", 1, 2, 3), pack("L<", 0x7fc00000)'; } >nan.npy
	run --separate-stderr vec_build -o out.vec nan.npy
	refused "vec-build: nan.npy: vector 2: component 2 is NaN"
}

@test "a bad record in a gzip-compressed input is still named by number" {
	{ fvec 1 2 3; fvec 4 5 6; fvec 7 8; } | gzip -n -c >bad.fvecs.gz
	run --separate-stderr vec_build -o out.vec bad.fvecs.gz
	refused "vec-build: bad.fvecs.gz: vector 3: dimension 2, expected 3"
}

@test "an input that does not exist, or is a directory, is refused" {
	run --separate-stderr vec_build -o out.vec missing.fvecs
	refused "vec-build: missing.fvecs: cannot open: No such file or directory"
	mkdir dir.fvecs
	run --separate-stderr vec_build -o out.vec dir.fvecs
	refused "vec-build: dir.fvecs: is a directory"
}

@test "an unreadable input is refused" {
	unprivileged
	fvec 1 2 >secret.fvecs
	chmod 000 secret.fvecs
	run --separate-stderr vec_build -o out.vec secret.fvecs
	refused "vec-build: secret.fvecs: cannot open: Permission denied"
}

@test "the same bad records are refused by vec-add and vec-query" {
	vec_build -o idx.vec "$FIX/small.fvecs"
	cp idx.vec before.vec
	printf '1,2,3\n4,x,6\n' >bad.csv
	run --separate-stderr vec_add idx.vec bad.csv
	expect_err 1 "vec-add: bad.csv:2: field 2: not a number 'x'"
	assert_same idx.vec before.vec
	assert_no_temp .
	run --separate-stderr vec_query idx.vec bad.csv
	expect_err 1 "vec-query: bad.csv:2: field 2: not a number 'x'"
}
