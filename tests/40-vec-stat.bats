#!/usr/bin/env bats
# vec-stat: what an index holds (text and JSON), --verify, damaged files.
# The damaged indexes are fixtures written by scripts/gen-fixtures.sh.

bats_require_minimum_version 1.5.0
load test_helper

@test "vec-stat --help prints the usage on stdout and exits 0" {
	run --separate-stderr vec_stat --help
	expect_ok
	[[ "${lines[0]}" == "Usage: vec-stat [OPTION]... INDEX..." ]]
	[[ "$output" == *"--verify"* ]]
	[ -z "$stderr" ]
}

@test "vec-stat --version prints 'vec-stat (vecutils) 0.1.0'" {
	run --separate-stderr vec_stat --version
	expect_ok
	assert_eq "$output" "vec-stat (vecutils) 0.1.0"
}

@test "vec-stat: an unknown option is a usage error (exit 2)" {
	run --separate-stderr vec_stat --bogus "$FIX/small.vec"
	expect_err_has 2 "unrecognized option '--bogus'" "Try 'vec-stat --help' for more information."
	[ -z "$output" ]
}

@test "vec-stat without an index is a usage error" {
	run --separate-stderr vec_stat
	expect_usage vec-stat "no index given"
}

@test "vec-stat text output: type, metric, dim, count, keys, bytes, sections" {
	vec_build -o iris.vec "$DATA/iris/base.fvecs"
	run --separate-stderr vec_stat iris.vec
	expect_ok
	[ -z "$stderr" ]
	size=$(stat -c %s iris.vec)
	[[ "$output" == *"index:          iris.vec"* ]]
	# "version 1 (read 1, write 1)" (vec-stat(1)) or "read version 1, write version 1"
	grep -Eq "^format: +(version 1 \(read 1, write 1\)|read version 1, write version 1)\$" <<<"$output"
	[[ "$output" == *"type:           flat"* ]]
	[[ "$output" == *"metric:         l2"* ]]
	[[ "$output" == *"dim:            4"* ]]
	[[ "$output" == *"count:          135"* ]]
	[[ "$output" == *"keys:           no"* ]]
	per=$(awk -v s="$size" 'BEGIN { printf "%.1f", s / 135 }')
	[[ "$output" == *"bytes:          $size ($per per vector)"* ]]
	[[ "$output" == *"sections:       2"* ]]
	# each section's row: offset and length from the table, crc32 of the bytes
	for s in VECS NORM; do
		read -r off len <<<"$(section_entry iris.vec $s)"
		crc=$(crc32_hex iris.vec "$off" "$len")
		row=$(grep "^  $s " <<<"$output")
		assert_eq "$(xargs <<<"$row")" "$s $([ $s = VECS ] && echo yes || echo no) $off $len $crc"
	done
	# VECS is count x dim x 4 bytes, NORM count x 4
	assert_eq "$(section_entry iris.vec VECS | cut -d' ' -f2)" $((135 * 4 * 4))
	assert_eq "$(section_entry iris.vec NORM | cut -d' ' -f2)" $((135 * 4))
}

@test "vec-stat shows metric ip / cos, and keys with a KEYS section" {
	vec_build -m ip -o ip.vec "$FIX/small.fvecs"
	run --separate-stderr vec_stat ip.vec
	expect_ok
	[[ "$output" == *"metric:         ip"* ]]
	[[ "$output" == *"sections:       1"* ]]
	printf 'alpha,1,2\nbeta,3,4\n' >k.csv
	vec_build -m cos -o k.vec k.csv
	run --separate-stderr vec_stat k.vec
	expect_ok
	[[ "$output" == *"metric:         cos"* ]]
	[[ "$output" == *"dim:            2"* ]]
	[[ "$output" == *"count:          2"* ]]
	[[ "$output" == *"keys:           yes"* ]]
	# KEYS: 3 offsets of 8 bytes, then "alpha\0beta\0"
	[[ "$output" =~ "  KEYS  no "\ +[0-9]+\ +35\  ]]
}

@test "vec-stat --json prints one line with the same facts" {
	vec_build -o iris.vec "$DATA/iris/base.fvecs"
	run --separate-stderr vec_stat --json iris.vec
	expect_ok
	assert_eq "${#lines[@]}" 1
	size=$(stat -c %s iris.vec)
	for f in '"index":"iris.vec"' '"read_version":1' '"write_version":1' '"type":"flat"' '"metric":"l2"' '"dim":4' \
		'"count":135' '"keys":false' "\"bytes\":$size" '"verified":false' \
		'"id":"VECS","required":true' '"id":"NORM","required":false'; do
		grep -qF "$f" <<<"$output" || { echo "missing $f in $output"; false; }
	done
	read -r off len <<<"$(section_entry iris.vec VECS)"
	grep -qF "\"id\":\"VECS\",\"required\":true,\"offset\":$off,\"length\":$len,\"crc32\":\"$(crc32_hex iris.vec "$off" "$len")\"" <<<"$output"
	run --separate-stderr vec_stat --json --verify iris.vec
	expect_ok
	grep -qF '"verified":true' <<<"$output"
}

@test "vec-stat --json of several indexes prints one line each" {
	vec_build -o a.vec "$FIX/small.fvecs"
	vec_build -m ip -o b.vec "$DATA/iris/base.fvecs"
	run --separate-stderr vec_stat --json a.vec b.vec
	expect_ok
	assert_eq "${#lines[@]}" 2
	[[ "${lines[0]}" == '{"index":"a.vec",'*'"count":5,'* ]]
	[[ "${lines[1]}" == '{"index":"b.vec",'*'"metric":"ip"'* ]]
}

@test "vec-stat --verify of an intact index says ok" {
	run --separate-stderr vec_stat --verify "$FIX/small.vec"
	expect_ok
	[[ "${lines[-1]}" == "verify:         ok (all checksums match)" ]]
	run --separate-stderr vec_stat --check "$FIX/small.vec"
	expect_ok
	[[ "$output" == *"verify:         ok"* ]]
}

@test "a flipped byte in VECS: vec-stat works, --verify fails naming 'VECS'" {
	idx="$FIX/vecs-damaged.vec"
	run --separate-stderr vec_stat "$idx"
	expect_ok
	[[ "$output" == *"count:          5"* ]]
	read -r off len <<<"$(section_entry "$idx" VECS)"
	stored=$(perl -e 'open(my $f, "<", $ARGV[0]) or die; binmode $f; local $/; my $b = <$f>;
		printf "%08x", unpack("L<", substr($b, 64 + 24, 4))' "$idx")
	computed=$(crc32_hex "$idx" "$off" "$len")
	[ "$stored" != "$computed" ]
	run --separate-stderr vec_stat --verify "$idx"
	expect_err 1 "vec-stat: $idx: section 'VECS' checksum mismatch (stored $stored, computed $computed)"
	[ -z "$output" ]
}

@test "a flipped byte in NORM: --verify names 'NORM'" {
	cp "$FIX/small.vec" idx.vec
	read -r off len <<<"$(section_entry idx.vec NORM)"
	flip_byte idx.vec $((off + len - 1))
	run --separate-stderr vec_stat --verify idx.vec
	expect_err_has 1 "vec-stat: idx.vec: section 'NORM' checksum mismatch"
}

@test "a flipped header byte: header checksum mismatch" {
	run --separate-stderr vec_stat "$FIX/bad-header-crc.vec"
	expect_err 1 "vec-stat: $FIX/bad-header-crc.vec: header checksum mismatch (index is damaged)"
	[ -z "$output" ]
	# any header byte: the count field
	cp "$FIX/small.vec" idx.vec
	flip_byte idx.vec 32
	run --separate-stderr vec_stat idx.vec
	expect_err 1 "vec-stat: idx.vec: header checksum mismatch (index is damaged)"
}

@test "a truncated index is refused" {
	run --separate-stderr vec_stat "$FIX/truncated.vec"
	expect_err 1 "vec-stat: $FIX/truncated.vec: truncated index (section 'NORM' needs 192+20 bytes, file is 206)"
	head -c 40 "$FIX/small.vec" >short.vec
	run --separate-stderr vec_stat short.vec
	expect_err 1 "vec-stat: short.vec: truncated index (40 bytes, header needs 64)"
	# the whole section table gone
	head -c 70 "$FIX/small.vec" >notoc.vec
	run --separate-stderr vec_stat notoc.vec
	expect_err_has 1 "vec-stat: notoc.vec: truncated index"
}

@test "a wrong magic: not a vec index (bad magic)" {
	run --separate-stderr vec_stat "$FIX/bad-magic.vec"
	expect_err 1 "vec-stat: $FIX/bad-magic.vec: not a vec index (bad magic)"
	run --separate-stderr vec_stat "$DATA/iris/base.csv"
	expect_err 1 "vec-stat: $DATA/iris/base.csv: not a vec index (bad magic)"
	: >empty.vec
	run --separate-stderr vec_stat empty.vec
	expect_err_has 1 "vec-stat: empty.vec: not a vec index"
}

@test "a short file that is not an index is not called a truncated index" {
	printf '1,2,3\n4,5,6\n' >short.csv
	run --separate-stderr vec_stat short.csv
	expect_err_has 1 "vec-stat: short.csv: not a vec index"
}

@test "a future format version is refused: newer than this tool" {
	assert_eq "$(le_uint "$FIX/future-version.vec" 8 2)" 2
	run --separate-stderr vec_stat "$FIX/future-version.vec"
	expect_err 1 "vec-stat: $FIX/future-version.vec: format version 2 is newer than this tool (1)"
	[ -z "$output" ]
	# the same made here from a fresh index, header CRC recomputed
	vec_build -o idx.vec "$DATA/iris/base.fvecs"
	poke idx.vec 8 '\x07'
	run --separate-stderr vec_stat idx.vec
	expect_err 1 "vec-stat: idx.vec: header checksum mismatch (index is damaged)"
	fix_header_crc idx.vec
	run --separate-stderr vec_stat idx.vec
	expect_err 1 "vec-stat: idx.vec: format version 7 is newer than this tool (1)"
}

@test "a newer write version is still readable, and shown" {
	run --separate-stderr vec_stat --verify "$FIX/future-write.vec"
	expect_ok
	grep -Eq "^format: +(version 1 \(read 1, write 2\)|read version 1, write version 2)\$" <<<"$output"
}

@test "vec-stat of a missing file, a directory, an unreadable file" {
	run --separate-stderr vec_stat nope.vec
	expect_err 1 "vec-stat: nope.vec: cannot open: No such file or directory"
	mkdir d.vec
	run --separate-stderr vec_stat d.vec
	expect_err 1 "vec-stat: d.vec: is a directory"
	cp "$FIX/small.vec" secret.vec
	chmod 000 secret.vec
	unprivileged
	run --separate-stderr vec_stat secret.vec
	expect_err 1 "vec-stat: secret.vec: cannot open: Permission denied"
}

@test "vec-stat goes on after a bad index and exits 1" {
	run --separate-stderr vec_stat "$FIX/small.vec" "$FIX/bad-magic.vec" "$FIX/small.vec"
	expect_err 1 "vec-stat: $FIX/bad-magic.vec: not a vec index (bad magic)"
	assert_eq "$(grep -c '^count:          5$' <<<"$output")" 2
}

@test "vec-stat -q prints nothing; the exit status tells" {
	run --separate-stderr vec_stat -q --verify "$FIX/small.vec"
	expect_ok
	[ -z "$output" ]
	[ -z "$stderr" ]
	run --separate-stderr vec_stat -q --verify "$FIX/vecs-damaged.vec"
	[ "$status" -eq 1 ]
	[ -z "$output" ]
}

@test "vec-stat does not change the files it reads" {
	cp "$FIX/small.vec" a.vec
	cp "$FIX/vecs-damaged.vec" b.vec
	run vec_stat --verify a.vec b.vec
	assert_same a.vec "$FIX/small.vec"
	assert_same b.vec "$FIX/vecs-damaged.vec"
	assert_no_temp .
}
