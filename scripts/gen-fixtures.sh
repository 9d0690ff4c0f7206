#!/bin/sh
# gen-fixtures.sh - write the small committed fixtures of the bats suite into
# tests/fixtures/.  Deterministic: the same binaries give the same bytes.
#
#   VEC_BIN=bin sh scripts/gen-fixtures.sh
#
# small.fvecs          5 vectors of dimension 3 (perl pack)
# small.vec            vec-build -o small.vec small.fvecs (metric l2)
# bad-magic.vec        small.vec with byte 1 of the magic changed
# bad-header-crc.vec   small.vec with the dimension byte (24) flipped
# truncated.vec        small.vec without its last 50 bytes
# vecs-damaged.vec     small.vec with the first byte of section VECS flipped
# future-version.vec   small.vec with read version 2 (header CRC fixed)
# future-write.vec     small.vec with write version 2 (header CRC fixed)
set -eu
cd "$(dirname "$0")/.."
VEC_BIN=${VEC_BIN:-bin}
out=tests/fixtures
mkdir -p "$out"

# Set one byte, given as an octal escape, at an offset.
poke() { printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
fix_header_crc() {
	head -c 60 "$1" | gzip -c | tail -c 8 | head -c 4 >"$1.crc"
	dd if="$1.crc" of="$1" bs=1 seek=60 conv=notrunc status=none
	rm -f "$1.crc"
}

perl -e 'print pack("l<f<*", 3, @$_) for
	[1, 0, 0], [0, 2, 0], [0, 0, 3], [1, 1, 1], [-1, 0.5, 2]' >"$out/small.fvecs"
rm -f "$out/small.vec"
"$VEC_BIN/vec-build" -q -o "$out/small.vec" "$out/small.fvecs"

cp "$out/small.vec" "$out/bad-magic.vec"
poke "$out/bad-magic.vec" 1 'X'

cp "$out/small.vec" "$out/bad-header-crc.vec"
perl -e 'open(my $f, "+<", $ARGV[0]) or die; binmode $f; seek($f, 24, 0);
	read($f, my $b, 1); seek($f, 24, 0); print $f chr(ord($b) ^ 0xff)' \
	"$out/bad-header-crc.vec"

size=$(wc -c <"$out/small.vec")
head -c $((size - 50)) "$out/small.vec" >"$out/truncated.vec"

# The first section table entry (at 64) is VECS; its offset is at 64 + 8.
cp "$out/small.vec" "$out/vecs-damaged.vec"
off=$(od -An -t u4 -j 72 -N 4 "$out/small.vec" | tr -d ' ')
perl -e 'open(my $f, "+<", $ARGV[0]) or die; binmode $f; seek($f, $ARGV[1], 0);
	read($f, my $b, 1); seek($f, $ARGV[1], 0); print $f chr(ord($b) ^ 0xff)' \
	"$out/vecs-damaged.vec" "$off"

cp "$out/small.vec" "$out/future-version.vec"
poke "$out/future-version.vec" 8 '\002'
fix_header_crc "$out/future-version.vec"

cp "$out/small.vec" "$out/future-write.vec"
poke "$out/future-write.vec" 10 '\002'
fix_header_crc "$out/future-write.vec"
