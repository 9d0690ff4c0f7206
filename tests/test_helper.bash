# test_helper.bash - shared by every tests/*.bats file (load test_helper).
#
# VEC_BIN names the directory of the vec-* binaries (make test sets it; the
# sanitizer build keeps them elsewhere).  Every command runs under timeout(1)
# so that a hang fails the test instead of freezing the suite.

VEC_BIN="${VEC_BIN:-$BATS_TEST_DIRNAME/../bin}"
VEC_TIMEOUT="${VEC_TIMEOUT:-120}"
DATA="$BATS_TEST_DIRNAME/../data"
FIX="$BATS_TEST_DIRNAME/fixtures"
export LC_ALL=C

_vec() {
	local prog=$1
	shift
	timeout --foreground -k 5 "$VEC_TIMEOUT" ${VEC_WRAP:-} "$VEC_BIN/$prog" "$@"
}

# Make the commands of this test subject to file permissions even when the
# suite runs as root (as in CI): drop the capabilities that override them.
unprivileged() {
	if [ "$(id -u)" = 0 ]; then
		command -v setpriv >/dev/null ||
			skip "running as root without setpriv to drop permission overrides"
		VEC_WRAP="setpriv --bounding-set -dac_override,-dac_read_search"
	fi
}
vec_build() { _vec vec-build "$@"; }
vec_add() { _vec vec-add "$@"; }
vec_query() { _vec vec-query "$@"; }
vec_stat() { _vec vec-stat "$@"; }

# Every test works in its own empty directory, so that messages carry short
# relative names and "no file was written" can be checked by listing it.
setup() {
	# (bats keeps its own files in BATS_TEST_TMPDIR: work in a subdirectory)
	mkdir -p "$BATS_TEST_TMPDIR/w" && cd "$BATS_TEST_TMPDIR/w" || return 1
	umask 022
}

# ---- writing inputs ---------------------------------------------------------

# One fvecs record of the given values (the dimension is their count).
fvec() { perl -e 'print pack("l<f<*", scalar(@ARGV), @ARGV)' -- "$@"; }
# One fvecs record with an explicit dimension field: fvec_hdr DIM VALUES...
fvec_hdr() { perl -e 'my $d = shift; print pack("l<f<*", $d, @ARGV)' -- "$@"; }
# One fvecs record whose components are given as 32-bit patterns (hex).
fvec_bits() { perl -e 'print pack("l<", scalar(@ARGV)), map { pack("L<", hex $_) } @ARGV' -- "$@"; }
# One bvecs / ivecs record.
bvec() { perl -e 'print pack("l<C*", scalar(@ARGV), @ARGV)' -- "$@"; }
ivec() { perl -e 'print pack("l<l<*", scalar(@ARGV), @ARGV)' -- "$@"; }
# CSV (one vector a line, no key) on stdin -> fvecs on stdout.
csv_to_fvecs() { perl -ne 'chomp; s/\r$//; my @f = split /,/; print pack("l<f<*", scalar(@f), @f)'; }
# fvecs on stdin -> raw little-endian float32 rows (no dimension fields).
fvecs_strip() { perl -e 'binmode STDIN; while (read(STDIN, my $h, 4) == 4) { my $d = unpack("l<", $h); read(STDIN, my $v, 4 * $d) == 4 * $d or die "short"; print $v }'; }

# An npy file on stdout: npy_header DESCR FORTRAN SHAPE, then the data is
# appended by the caller.  The header is padded with spaces and a newline so
# that magic + version + length + dict is a multiple of 64 bytes.
npy_header() {
	local dict="{'descr': '$1', 'fortran_order': $2, 'shape': $3, }"
	local total=$((10 + ${#dict} + 1))
	local pad=$(((64 - total % 64) % 64))
	local hlen=$((${#dict} + pad + 1))
	printf '\223NUMPY\001\000'
	perl -e 'print pack("v", $ARGV[0])' "$hlen"
	printf '%s%*s\n' "$dict" "$pad" ''
}

# ---- reading outputs --------------------------------------------------------

# The dimension field of the first record of a *vecs file.
vecs_dim() { od -An -v -t d4 -N4 "$1" | tr -d ' '; }
# A *vecs file as text, one record a line, the dimension field dropped.
fvecs_text() {
	local d
	d=$(vecs_dim "$1")
	od -An -v -t f4 -w$((4 * (d + 1))) "$1" | awk '{ $1 = ""; sub(/^ /, ""); print }'
}
ivecs_text() {
	local d
	d=$(vecs_dim "$1")
	od -An -v -t d4 -w$((4 * (d + 1))) "$1" | awk '{ $1 = ""; sub(/^ /, ""); print }'
}

# ---- index bytes ---------------------------------------------------------------

# Little-endian unsigned integer of n bytes at an offset: le_uint FILE OFF N.
le_uint() { od -An -v -t u"$3" -j "$2" -N "$3" "$1" | tr -d ' '; }
# Invert every bit of the byte at an offset: flip_byte FILE OFF.
flip_byte() {
	perl -e 'open(my $f, "+<", $ARGV[0]) or die "$ARGV[0]: $!"; binmode $f;
		seek($f, $ARGV[1], 0); read($f, my $b, 1) == 1 or die "short";
		seek($f, $ARGV[1], 0); print $f chr(ord($b) ^ 0xff); close($f) or die' "$1" "$2"
}
# Write bytes (given as \xNN escapes for printf) at an offset.
poke() { printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
# The CRC-32 (zlib's) of a file's bytes [off, off+len), as 8 hex digits;
# gzip's trailer holds exactly that CRC, little-endian.
crc32_hex() {
	tail -c +$(($2 + 1)) "$1" | head -c "$3" | gzip -c | tail -c 8 | head -c 4 |
		od -An -t x1 | awk '{ print $4 $3 $2 $1 }'
}
# Recompute the header CRC (bytes 60..63 = crc32 of bytes 0..59).
fix_header_crc() {
	local tmp="$1.crc.$$"
	head -c 60 "$1" | gzip -c | tail -c 8 | head -c 4 >"$tmp"
	dd if="$tmp" of="$1" bs=1 seek=60 conv=notrunc status=none
	rm -f "$tmp"
}

# Recompute every section CRC, the table CRC and the header CRC, so that a
# deliberate change (a broken link, a NaN) is found by the check meant for
# it, not by a checksum.
reseal() {
	perl -MCompress::Zlib -e '
		open(my $f, "+<", $ARGV[0]) or die; binmode $f; local $/; my $b = <$f>;
		my $toc = unpack("Q<", substr($b, 40, 8)); my $n = unpack("L<", substr($b, 48, 4));
		for my $i (0 .. $n - 1) {
			my $e = $toc + 32 * $i;
			my ($off, $len) = unpack("Q< Q<", substr($b, $e + 8, 16));
			substr($b, $e + 24, 4) = pack("L<", crc32(substr($b, $off, $len)));
		}
		substr($b, 52, 4) = pack("L<", crc32(substr($b, $toc, 32 * $n)));
		substr($b, 60, 4) = pack("L<", crc32(substr($b, 0, 60)));
		seek($f, 0, 0); print $f $b; close($f) or die' "$1"
}

# Hold the flock of a file (created if missing) in the background, in one
# process, so that killing it releases the lock: hold FILE; the pid is in
# $holder.  Returns once the lock is held.
hold() {
	perl -e 'open(my $f, ">>", $ARGV[0]) or die "$ARGV[0]: $!";
		flock($f, 2) or die "flock: $!"; open(my $r, ">", "$ARGV[0].held");
		close $r; sleep 60' "$1" </dev/null >/dev/null 2>&1 3>&- &
	holder=$!
	for _ in $(seq 100); do
		[ -e "$1.held" ] && break
		sleep 0.05
	done
	rm -f "$1.held"
}

# ---- recall (tie-aware, from *vecs score files) -----------------------------

# recall10 SCORES.fvecs GT_DIST.fvecs: l2 scores (Euclidean distances) of
# k=10 results against the squared true distances; prints the recall.
recall10() {
	paste <(od -An -v -t f4 -w44 "$1") <(od -An -v -t f4 -w404 "$2" | awk '{ print $11 }') |
		awk '{ for (i = 2; i <= 11; i++) { n++; if ($i * $i <= $12 * (1 + 1e-5) + 1e-6) ok++ } }
			END { printf "%.4f\n", ok / n }'
}

# recall_vs EXACT.fvecs APPROX.fvecs ORDER: against an exact flat answer
# (k=10 scores), for ip/cos (ORDER=desc: larger is better) or l2 (asc).
recall_vs() {
	paste <(od -An -v -t f4 -w44 "$1" | awk '{ print $11 }') <(od -An -v -t f4 -w44 "$2") |
		awk -v order="$3" '{ for (i = 3; i <= 12; i++) { n++;
			if (order == "desc" ? $i >= $1 - 1e-5 : $i <= $1 + 1e-5) ok++ } }
			END { printf "%.4f\n", ok / n }'
}

# recall10_ids IDS.ivecs GT.ivecs GT_DIST.fvecs: recall of k=10 result ids
# (for indexes whose scores are estimates), tie-aware through the exact top
# 100: an id counts when its true distance, looked up there, is no worse
# than the true 10th's.
recall10_ids() {
	paste -d' ' <(od -An -v -t d4 -w44 "$1") <(od -An -v -t d4 -w404 "$2") \
		<(od -An -v -t f4 -w404 "$3") |
		awk '{ for (j = 13; j <= 112; j++) d[$j] = $(j + 101); lim = $123 * (1 + 1e-5) + 1e-6
			for (i = 2; i <= 11; i++) { n++; if (($i in d) && d[$i] <= lim) ok++ }
			delete d }
			END { printf "%.4f\n", ok / n }'
}

at_least() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }

# ---- assertions (print what was seen when they fail) -------------------------

_show() {
	echo "status: $status"
	echo "stdout: ${output:-}"
	echo "stderr: ${stderr:-}"
}
# expect_err STATUS "whole stderr"
expect_err() {
	if [ "$status" -ne "$1" ] || [ "${stderr:-}" != "$2" ]; then
		echo "expected status $1 and stderr exactly:"
		echo "$2"
		_show
		return 1
	fi
}
# expect_err_has STATUS "part of stderr" ["another part" ...]
expect_err_has() {
	local want=$1 part
	shift
	if [ "$status" -ne "$want" ]; then
		echo "expected status $want"
		_show
		return 1
	fi
	for part in "$@"; do
		if [[ "${stderr:-}" != *"$part"* ]]; then
			echo "expected stderr to contain: $part"
			_show
			return 1
		fi
	done
}
# A usage error: the message, then the pointer to --help, exit 2.
expect_usage() {
	expect_err 2 "$1: $2
Try '$1 --help' for more information."
}
expect_ok() {
	if [ "$status" -ne 0 ]; then
		echo "expected success"
		_show
		return 1
	fi
}
# No file of this name, and no temporary ".NAME.tmp-*" in its directory.
assert_absent() {
	if [ -e "$1" ]; then
		echo "$1 exists but should not"
		return 1
	fi
	assert_no_temp "$(dirname "$1")"
}
assert_no_temp() {
	local left
	left=$(ls -A "${1:-.}" | grep '^\.' || :)
	if [ -n "$left" ]; then
		echo "files left behind in ${1:-.}: $left"
		return 1
	fi
}
# Two files are byte-identical.
assert_same() {
	if ! cmp "$1" "$2"; then
		echo "$1 and $2 differ"
		return 1
	fi
}
assert_eq() {
	if [ "$1" != "$2" ]; then
		echo "expected: $2"
		echo "got:      $1"
		return 1
	fi
}

# ---- index sections (layout: man/vec-index.5, lib/file.h) -------------------

# section IDX NAME: the bytes of section NAME on stdout (exit 3 if absent).
section() {
	perl -e 'open(my $f, "<", $ARGV[0]) or die "$ARGV[0]: $!"; binmode $f;
		local $/; my $b = <$f>;
		my $toc = unpack("Q<", substr($b, 40, 8));
		my $n = unpack("L<", substr($b, 48, 4));
		for my $i (0 .. $n - 1) {
			my ($id, $fl, $off, $len) = unpack("a4 L< Q< Q<", substr($b, $toc + 32 * $i, 32));
			if ($id eq $ARGV[1]) { print substr($b, $off, $len); exit 0 }
		}
		exit 3' "$1" "$2"
}
# section_ids IDX: the ids of the sections in table order, one line.
section_ids() {
	perl -e 'open(my $f, "<", $ARGV[0]) or die; binmode $f; local $/; my $b = <$f>;
		my $toc = unpack("Q<", substr($b, 40, 8)); my $n = unpack("L<", substr($b, 48, 4));
		print join(" ", map { substr($b, $toc + 32 * $_, 4) } 0 .. $n - 1), "\n"' "$1"
}
# section_entry IDX NAME: "offset length" from the section table.
section_entry() {
	perl -e 'open(my $f, "<", $ARGV[0]) or die; binmode $f; local $/; my $b = <$f>;
		my $toc = unpack("Q<", substr($b, 40, 8)); my $n = unpack("L<", substr($b, 48, 4));
		for my $i (0 .. $n - 1) {
			my ($id, $fl, $off, $len) = unpack("a4 L< Q< Q<", substr($b, $toc + 32 * $i, 32));
			if ($id eq $ARGV[1]) { print "$off $len\n"; exit 0 }
		}
		exit 3' "$1" "$2"
}
# The species name of an iris label.
iris_species() { awk '{ print ($1 == 0 ? "setosa" : $1 == 1 ? "versicolor" : "virginica") }'; }
