#!/usr/bin/env bats
# vec-add: appending keeps ids, refuses bad input and damaged indexes, and
# never changes the index unless everything succeeded.

bats_require_minimum_version 1.5.0
load test_helper

# vec-add failed: exit 1, this message, the index as it was, no temp file.
add_refused() {
	expect_err 1 "$1"
	assert_same idx.vec before.vec
	assert_no_temp .
}

@test "vec-add --help prints the usage on stdout and exits 0" {
	run --separate-stderr vec_add --help
	expect_ok
	[[ "${lines[0]}" == "Usage: vec-add [OPTION]... INDEX [INPUT]..." ]]
	[ -z "$stderr" ]
}

@test "vec-add --version prints 'vec-add (vecutils) 0.1.0'" {
	run --separate-stderr vec_add --version
	expect_ok
	assert_eq "$output" "vec-add (vecutils) 0.1.0"
}

@test "vec-add: an unknown option is a usage error (exit 2)" {
	vec_build -o idx.vec "$FIX/small.fvecs"
	cp idx.vec before.vec
	run --separate-stderr vec_add --bogus idx.vec "$FIX/small.fvecs"
	expect_err_has 2 "unrecognized option '--bogus'" "Try 'vec-add --help' for more information."
	assert_same idx.vec before.vec
}

@test "vec-add without an index is a usage error" {
	run --separate-stderr vec_add
	expect_usage vec-add "no index given"
}

@test "vec-add -j 0 is a usage error and changes nothing" {
	vec_build -o idx.vec "$FIX/small.fvecs"
	cp idx.vec before.vec
	run --separate-stderr vec_add -j 0 idx.vec "$FIX/small.fvecs"
	expect_usage vec-add "invalid value '0' for -j (expected an integer from 1 to 1024)"
	assert_same idx.vec before.vec
}

@test "vec-add gives the same index file as building everything at once" {
	vec_build -o idx.vec "$DATA/iris/base.fvecs"
	run --separate-stderr vec_add idx.vec "$DATA/iris/query.fvecs"
	expect_ok
	[ -z "$stderr" ]
	[ -z "$output" ]
	cat "$DATA/iris/base.fvecs" "$DATA/iris/query.fvecs" >all.fvecs
	vec_build -o all.vec all.fvecs
	assert_same idx.vec all.vec
	assert_no_temp .
}

@test "vec-add: ids continue from the index's count" {
	vec_build -o idx.vec "$DATA/iris/base.fvecs"
	{ fvec 100 0 0 0; fvec 0 100 0 0; fvec 0 0 100 0; } >new.fvecs
	vec_add idx.vec new.fvecs
	assert_eq "$(le_uint idx.vec 32 8)" 138
	run --separate-stderr vec_query -k 1 idx.vec new.fvecs
	expect_ok
	assert_eq "$output" "$(printf '0\t1\t135\t0\n1\t1\t136\t0\n2\t1\t137\t0')"
	# a second add continues from 138
	fvec 0 0 0 100 >more.fvecs
	vec_add idx.vec more.fvecs
	run --separate-stderr vec_query -k 1 idx.vec more.fvecs
	assert_eq "$output" "$(printf '0\t1\t138\t0')"
}

@test "vec-add reads stdin as '-' and when no input is named" {
	vec_build -o want.vec "$FIX/small.fvecs" "$FIX/small.fvecs" "$FIX/small.fvecs"
	vec_build -o idx.vec "$FIX/small.fvecs"
	run --separate-stderr vec_add idx.vec - <"$FIX/small.fvecs"
	expect_ok
	run --separate-stderr vec_add idx.vec < <(cat "$FIX/small.fvecs")
	expect_ok
	assert_same idx.vec want.vec
}

@test "vec-add of several inputs appends them in order" {
	{ fvec 1 1 1; fvec 2 2 2; } >a.fvecs
	printf '3,3,3\n' >b.csv
	vec_build -o want.vec "$FIX/small.fvecs" a.fvecs b.csv
	vec_build -o idx.vec "$FIX/small.fvecs"
	run --separate-stderr vec_add idx.vec a.fvecs b.csv
	expect_ok
	assert_same idx.vec want.vec
}

@test "vec-add refuses vectors of another dimension and leaves the index unchanged" {
	vec_build -o idx.vec "$DATA/iris/base.fvecs"
	cp idx.vec before.vec
	{ fvec 1 2 3; fvec 4 5 6; } >three.fvecs
	run --separate-stderr vec_add idx.vec three.fvecs
	add_refused "vec-add: three.fvecs: vector 1: dimension 3, expected 4 (the index's)"
	printf '1,2,3,4,5\n' >five.csv
	run --separate-stderr vec_add idx.vec five.csv
	add_refused "vec-add: five.csv: vector 1: dimension 5, expected 4 (the index's)"
}

@test "vec-add: a bad record in the last input adds nothing at all" {
	vec_build -o idx.vec "$FIX/small.fvecs"
	cp idx.vec before.vec
	{ fvec 7 7 7; } >good.fvecs
	{ fvec 1 2 3; fvec 4 5 6; fvec_bits 0 7f800000 0; } >bad.fvecs
	run --separate-stderr vec_add idx.vec good.fvecs bad.fvecs
	add_refused "vec-add: bad.fvecs: vector 3: component 2 is infinite"
}

@test "vec-add to an index that does not exist fails and creates nothing" {
	run --separate-stderr vec_add nope.vec "$FIX/small.fvecs"
	expect_err 1 "vec-add: nope.vec: cannot open: No such file or directory"
	assert_absent nope.vec
}

@test "vec-add to a directory fails" {
	mkdir d.vec
	run --separate-stderr vec_add d.vec "$FIX/small.fvecs"
	expect_err 1 "vec-add: d.vec: is a directory"
	[ -z "$(ls -A d.vec)" ]
	assert_no_temp .
}

@test "vec-add to a file that is not an index fails and leaves it alone" {
	cp "$DATA/iris/base.csv" idx.vec
	cp idx.vec before.vec
	run --separate-stderr vec_add idx.vec "$DATA/iris/query.csv"
	add_refused "vec-add: idx.vec: not a vec index (bad magic)"
}

@test "vec-add to a short text file says it is not an index" {
	printf '1,2,3\n4,5,6\n' >idx.vec
	cp idx.vec before.vec
	run --separate-stderr vec_add idx.vec "$FIX/small.fvecs"
	expect_err_has 1 "vec-add: idx.vec: not a vec index"
	assert_same idx.vec before.vec
}

@test "vec-add to an unreadable index fails" {
	unprivileged
	vec_build -o idx.vec "$FIX/small.fvecs"
	chmod 000 idx.vec
	run --separate-stderr vec_add idx.vec "$FIX/small.fvecs"
	expect_err 1 "vec-add: idx.vec: cannot open: Permission denied"
	chmod 644 idx.vec
	assert_same idx.vec "$FIX/small.vec"
}

@test "vec-add refuses damaged and too-new indexes and leaves them unchanged" {
	for f in bad-magic bad-header-crc truncated future-version; do
		cp "$FIX/$f.vec" idx.vec
		cp idx.vec before.vec
		run --separate-stderr vec_add idx.vec "$FIX/small.fvecs"
		case $f in
		bad-magic) add_refused "vec-add: idx.vec: not a vec index (bad magic)" ;;
		bad-header-crc) add_refused "vec-add: idx.vec: header checksum mismatch (index is damaged)" ;;
		truncated) add_refused "vec-add: idx.vec: truncated index (section 'NORM' needs 192+20 bytes, file is 206)" ;;
		future-version) add_refused "vec-add: idx.vec: format version 2 is newer than this tool (1)" ;;
		esac
	done
}

@test "vec-add refuses an index whose write version is newer (read-only to it)" {
	cp "$FIX/future-write.vec" idx.vec
	cp idx.vec before.vec
	run --separate-stderr vec_add idx.vec "$FIX/small.fvecs"
	add_refused "vec-add: idx.vec: format write version 2 is newer than this tool (1): read-only"
	# reading it is fine
	run --separate-stderr vec_query -k 1 idx.vec "$FIX/small.fvecs"
	expect_ok
}

@test "vec-add does not re-seal an index whose vectors fail their checksum" {
	cp "$FIX/vecs-damaged.vec" idx.vec
	cp idx.vec before.vec
	run --separate-stderr vec_add idx.vec "$FIX/small.fvecs"
	# Either refused (index unchanged), or the damage must stay detectable.
	if [ "$status" -eq 0 ]; then
		run --separate-stderr vec_stat --verify idx.vec
		if [ "$status" -eq 0 ]; then
			echo "vec-add rewrote a damaged index with fresh checksums: the damage is now undetectable"
			false
		fi
	else
		expect_err_has 1 "vec-add: idx.vec: section 'VECS' checksum mismatch"
		assert_same idx.vec before.vec
	fi
}

@test "vec-add of keyed rows to an index without keys: old vectors get empty keys" {
	vec_build -o idx.vec "$FIX/small.fvecs"
	[ "$(section_ids idx.vec)" = "VECS NORM" ]
	printf 'p,9,9,9\nq,8,8,8\n' >k.csv
	run --separate-stderr vec_add idx.vec k.csv
	expect_ok
	section idx.vec KEYS | perl -e 'binmode STDIN; local $/; my $b = <STDIN>;
		my @o = unpack("Q<8", $b); my $blob = substr($b, 64);
		print "[", substr($blob, $o[$_], $o[$_ + 1] - $o[$_] - 1), "]" for 0 .. 6' >keys.txt
	assert_eq "$(cat keys.txt)" "[][][][][][p][q]"
	run --separate-stderr vec_query -k 1 idx.vec < <(printf '9,9,9\n1,0,0\n')
	expect_ok
	assert_eq "$output" "$(printf '0\t1\t5\t0\tp\n1\t1\t0\t0\t')"
}

@test "vec-add of unkeyed vectors to a keyed index: the new vectors get empty keys" {
	printf 'a,1,0\nb,0,1\n' >k.csv
	vec_build -o idx.vec k.csv
	fvec 5 5 >n.fvecs
	vec_add idx.vec n.fvecs
	run --separate-stderr vec_query -F jsonl -k 3 idx.vec < <(printf '5,5\n')
	expect_ok
	assert_eq "${lines[0]}" '{"query":0,"rank":1,"id":2,"score":0,"key":null}'
	[[ "${lines[1]}" == *'"key":"a"}' || "${lines[1]}" == *'"key":"b"}' ]]
}

@test "vec-add to a cos index stores unit vectors and refuses zero vectors" {
	vec_build -m cos -o idx.vec "$FIX/small.fvecs"
	cp idx.vec before.vec
	{ fvec 3 4 0; fvec 0 0 0; } >z.fvecs
	run --separate-stderr vec_add idx.vec z.fvecs
	add_refused "vec-add: z.fvecs: vector 2: zero vector has no direction (metric cos)"
	fvec 3 4 0 >v.fvecs
	vec_add idx.vec v.fvecs
	section idx.vec VECS | tail -c 12 | od -An -t f4 >last.txt
	assert_eq "$(awk '{ printf "%.6f %.6f %.6f", $1, $2, $3 }' last.txt)" "0.600000 0.800000 0.000000"
}

@test "the replaced index gets 0666 less the umask, not the old file's mode" {
	vec_build -o idx.vec "$FIX/small.fvecs"
	chmod 600 idx.vec
	umask 022
	vec_add idx.vec "$FIX/small.fvecs"
	assert_eq "$(stat -c %a idx.vec)" 644
}

@test "concurrent vec-adds take turns: none loses the other's vectors" {
	vec_build -o idx.vec "$DATA/iris/base.fvecs"
	for i in 1 2 3 4 5 6; do
		fvec "$((100 * i))" 0 0 0 >"new$i.fvecs"
	done
	pids=()
	for i in 1 2 3 4 5 6; do
		vec_add idx.vec "new$i.fvecs" & pids+=($!)
	done
	for p in "${pids[@]}"; do
		wait "$p"
	done
	assert_eq "$(le_uint idx.vec 32 8)" 141
	cat new?.fvecs >all-new.fvecs
	run --separate-stderr vec_query -k 1 idx.vec all-new.fvecs
	expect_ok
	# every new vector is there (distance 0) under a distinct id >= 135
	assert_eq "$(cut -f4 <<<"$output" | sort -u)" 0
	assert_eq "$(cut -f3 <<<"$output" | sort -n | tr '\n' ' ')" "135 136 137 138 139 140 "
	run --separate-stderr vec_stat --verify -q idx.vec
	expect_ok
	assert_no_temp .
}
