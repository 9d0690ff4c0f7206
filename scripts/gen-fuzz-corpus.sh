#!/bin/sh
# gen-fuzz-corpus.sh - write the seed inputs of the fuzz targets into
# tests/fuzz/corpus/NAME/seed-* from the commands and the shipped data.
# Each input starts with the target's mode byte (see tests/fuzz/fuzz_*.c).
# Run from the top of the tree after make; the corpus the fuzzers grew is
# merged in separately (scripts/fuzz.sh says how).
set -eu
B=${VEC_BIN:-bin}
C=tests/fuzz/corpus
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p "$C/index" "$C/fvecs" "$C/csv" "$C/npy" "$C/gzip"

# seed NAME MODE FILE: the mode byte (octal escape), then the file.
seed() { { printf "$2"; cat "$3"; } >"$C/$1/seed-$4"; }

# Small indexes of every type and metric, with and without keys.
head -c $((12 * 20)) data/iris/base.fvecs >"$T/iris20.fvecs"
head -n 12 data/iris/base.csv | awk -F, '{ print "k" NR "," $0 }' >"$T/keys.csv"
for m in l2 ip cos; do
	"$B/vec-build" -q -t flat -m $m -o "$T/flat-$m.vec" "$T/iris20.fvecs"
	"$B/vec-build" -q -t hnsw -M 4 --seed 1 -j 1 -m $m -o "$T/hnsw-$m.vec" "$T/iris20.fvecs"
	seed index '\001' "$T/flat-$m.vec" "flat-$m"
	seed index '\025' "$T/hnsw-$m.vec" "hnsw-$m"
done
"$B/vec-build" -q -t flat --keys -o "$T/flat-keys.vec" "$T/keys.csv"
"$B/vec-build" -q -t hnsw -M 4 --seed 2 -j 1 --keys -o "$T/hnsw-keys.vec" "$T/keys.csv"
seed index '\047' "$T/flat-keys.vec" flat-keys
seed index '\067' "$T/hnsw-keys.vec" hnsw-keys
seed index '\000' "$T/hnsw-l2.vec" hnsw-raw
for m in l2 ip cos; do
	"$B/vec-build" -q -t ivf --nlist 4 --seed 1 -j 1 -m $m -o "$T/ivf-$m.vec" "$T/iris20.fvecs"
	seed index '\025' "$T/ivf-$m.vec" "ivf-$m"
done
# The coded types (4-bit codes, which need 16 training vectors; 8-bit
# ones need 256, too big for a seed).
head -c $((20 * 20)) data/iris/base.fvecs >"$T/iris-20v.fvecs"
for m in l2 ip cos; do
	"$B/vec-build" -q -t ivfpq --nlist 2 --pq 2 --pq-bits 4 --seed 1 -j 1 -m $m -o "$T/ivfpq-$m.vec" "$T/iris-20v.fvecs"
	"$B/vec-build" -q -t ivfsq8 --nlist 2 --seed 1 -j 1 -m $m -o "$T/ivfsq8-$m.vec" "$T/iris-20v.fvecs"
	seed index '\025' "$T/ivfpq-$m.vec" "ivfpq-$m"
	seed index '\025' "$T/ivfsq8-$m.vec" "ivfsq8-$m"
done
"$B/vec-build" -q -t pq --pq 4 --pq-bits 4 --refine 2 --seed 1 -j 1 -o "$T/pq-refine.vec" "$T/iris-20v.fvecs"
"$B/vec-build" -q -t sq8 --refine 3 --seed 1 -j 1 --keys -o "$T/sq8-keys.vec" "$T/keys.csv"
seed index '\025' "$T/pq-refine.vec" pq-refine
seed index '\067' "$T/sq8-keys.vec" sq8-keys
# Stored ids: a shard, and ids of one's own beside keys.
"$B/vec-build" -q -t flat --shard 1/2 -o "$T/flat-shard.vec" "$T/iris20.fvecs"
"$B/vec-build" -q -t hnsw -M 4 --seed 3 -j 1 --id-start 1000 --keys -o "$T/hnsw-ids.vec" "$T/keys.csv"
seed index '\025' "$T/flat-shard.vec" flat-shard
seed index '\067' "$T/hnsw-ids.vec" hnsw-ids

# Record streams.
head -c $((68 * 3)) data/digits/base.fvecs >"$T/d3.fvecs"
seed fvecs '\000' "$T/iris20.fvecs" iris
seed fvecs '\000' "$T/d3.fvecs" digits
perl -e 'print pack("l<C4", 4, 1, 2, 3, 250) x 3' >"$T/b.bvecs"
perl -e 'print pack("l<l<4", 4, 1, -2, 3, 7) x 3' >"$T/i.ivecs"
seed fvecs '\001' "$T/b.bvecs" bvecs
seed fvecs '\002' "$T/i.ivecs" ivecs
seed fvecs '\003' "$T/iris20.fvecs" sniffed

# Text.
head -n 5 data/iris/base.csv >"$T/plain.csv"
{ echo "id,a,b,c,d"; head -n 5 "$T/keys.csv"; } >"$T/header.csv"
tr ',' '\t' <"$T/header.csv" >"$T/header.tsv"
printf '1e3,-2.5E-2,.5,+4\n"x",1,2,3,4\n' >"$T/odd.csv"
seed csv '\000' "$T/plain.csv" plain
seed csv '\052' "$T/header.csv" header-keys
seed csv '\003' "$T/header.tsv" tsv
seed csv '\012' "$T/odd.csv" odd

# npy: f4, f2 and u1 payloads, header versions 1 and 2.
npy() { # VERSION DESCR ROWS COLS PACK VALUES...
	ver=$1 descr=$2 rows=$3 cols=$4 pk=$5
	shift 5
	perl -e '
		my ($ver, $descr, $rows, $cols, $pk, @v) = @ARGV;
		my $h = "{\x27descr\x27: \x27$descr\x27, \x27fortran_order\x27: False, \x27shape\x27: ($rows, $cols), }";
		my $pre = $ver == 1 ? 10 : 12;
		$h .= " " x ((64 - ($pre + length($h) + 1) % 64) % 64) . "\n";
		print "\x93NUMPY", chr($ver), "\0";
		print $ver == 1 ? pack("v", length $h) : pack("V", length $h);
		print $h, pack("$pk*", @v);
	' "$ver" "$descr" "$rows" "$cols" "$pk" "$@"
}
npy 1 '<f4' 2 3 'f<' 1 2 3 4 5 6 >"$T/a.npy"
npy 2 '<f4' 1 4 'f<' 0.5 -1 2 8 >"$T/b.npy"
npy 1 '|u1' 2 2 'C' 1 2 3 255 >"$T/c.npy"
npy 1 '<f2' 1 2 'v' 15360 16384 >"$T/d.npy"
seed npy '\000' "$T/a.npy" f4
seed npy '\001' "$T/b.npy" v2
seed npy '\000' "$T/c.npy" u1
seed npy '\000' "$T/d.npy" f2

# gzip: one member, two members, each payload kind.
gzip -n -c "$T/iris20.fvecs" >"$T/1.gz"
{ gzip -n -c "$T/d3.fvecs"; gzip -n -c "$T/d3.fvecs"; } >"$T/2.gz"
gzip -n -c "$T/plain.csv" >"$T/3.gz"
gzip -n -c "$T/a.npy" >"$T/4.gz"
seed gzip '\000' "$T/1.gz" fvecs
seed gzip '\001' "$T/2.gz" members
seed gzip '\002' "$T/3.gz" csv
seed gzip '\003' "$T/4.gz" npy
