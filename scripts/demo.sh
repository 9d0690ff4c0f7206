#!/bin/sh
# demo.sh - the README's first command (make demo): the classic iris
# example, then an fvecs pipeline on the digits data, all on data shipped in
# data/.  No network.  VEC_BIN names the directory of the vec-* binaries.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${VEC_BIN:-$here/bin}
data=$here/data
PATH=$bin:$PATH
work=$(mktemp -d "${TMPDIR:-/tmp}/vec-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
cd "$work"

say() { printf '\n== %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

say "1. iris: 135 flowers, 4 measurements each, the species as keys"
# Give each base flower its species name (labels_all.txt holds the label of
# every original row; base_source_rows.txt says which row each vector was).
awk -F, 'BEGIN { name[0] = "setosa"; name[1] = "versicolor"; name[2] = "virginica" }
	FILENAME ~ /labels/ { label[FNR - 1] = name[$1]; next }
	FILENAME ~ /rows/ { row[FNR] = $1; next }
	FNR == 1 { print "species,sepal_length,sepal_width,petal_length,petal_width" }
	{ print label[row[FNR]] "," $0 }' \
	"$data/iris/labels_all.txt" "$data/iris/base_source_rows.txt" \
	"$data/iris/base.csv" >"iris.csv"
run head -3 "iris.csv"
run vec-build -q -m l2 -o "iris.vec" "iris.csv"
run vec-stat "iris.vec"

say "2. the 5 nearest flowers of the first held-out flower ($(head -1 "$data/iris/query.csv"))"
echo "\$ vec-query -k 5 iris.vec query.csv >knn.tsv"
vec-query -k 5 iris.vec "$data/iris/query.csv" >knn.tsv
echo "query	rank	id	distance	species"
awk -F'\t' '$1 == 0' "knn.tsv"

say "3. a 5-nearest-neighbour vote of the species, in the shell"
# Majority of the 5 neighbours' species per query (ties: the nearer first).
awk -F'\t' '{ print $1 "\t" $5 }' "knn.tsv" | sort | uniq -c |
	sort -k2,2n -k1,1nr | awk '!seen[$2]++ { print $2 "\t" $3 }' >"vote.tsv"
awk 'BEGIN { name[0] = "setosa"; name[1] = "versicolor"; name[2] = "virginica" }
	FILENAME ~ /labels/ { label[FNR - 1] = name[$1]; next }
	{ print FNR - 1 "\t" label[$1] }' \
	"$data/iris/labels_all.txt" "$data/iris/query_source_rows.txt" >"truth.tsv"
echo "query	predicted	true"
awk -F'\t' 'NR == FNR { truth[$1] = $2; next } { print $1 "\t" $2 "\t" truth[$1] }' \
	"truth.tsv" "vote.tsv" | sort -n | tee "compare.tsv"
awk -F'\t' '{ n++; ok += ($2 == $3) }
	END { printf "kNN accuracy: %d of %d held-out flowers (%.1f%%)\n", ok, n, 100 * ok / n }' \
	"compare.tsv"

say "4. digits: build from 1,000 vectors, add the other 697, query, verify"
d=$data/digits
rec=$((4 + 64 * 4))   # one fvecs record of a 64-d vector
echo "\$ head -c $((1000 * rec)) base.fvecs >part1.fvecs   # 1,000 records of 260 bytes"
head -c $((1000 * rec)) "$d/base.fvecs" >"part1.fvecs"
echo "\$ tail -c +$((1000 * rec + 1)) base.fvecs >part2.fvecs"
tail -c +$((1000 * rec + 1)) "$d/base.fvecs" >"part2.fvecs"
run vec-build -q -o "digits.vec" "part1.fvecs"
run vec-add -q "digits.vec" "part2.fvecs"
run vec-stat --verify "digits.vec"
run vec-build -q -o "digits-once.vec" "$d/base.fvecs"
vec-query -k 10 "digits.vec" "$d/query.fvecs" >"a.tsv"
vec-query -k 10 "digits-once.vec" "$d/query.fvecs" >"b.tsv"
if cmp -s "a.tsv" "b.tsv"; then
	echo "build + add answers exactly as one build of all 1,697 vectors"
else
	echo "build + add differs from one build" >&2
	exit 1
fi

say "5. recall@10 against the published exact top-100 (tie-aware)"
echo "\$ vec-query -k 10 -F fvecs digits.vec query.fvecs >scores.fvecs"
vec-query -k 10 -F fvecs "digits.vec" "$d/query.fvecs" >"scores.fvecs"
# A result counts when its distance is no worse than the true 10th's.
od -An -v -t f4 -w44 "scores.fvecs" >"scores.txt"
od -An -v -t f4 -w404 "$d/gt_dist.fvecs" | awk '{ print $11 }' >"tenth.txt"
paste "scores.txt" "tenth.txt" | awk '{
	for (i = 2; i <= 11; i++) { n++; if ($i * $i <= $12 * (1 + 1e-5) + 1e-6) ok++ }
	} END { printf "recall@10: %.4f (%d of %d)\n", ok / n, ok, n }'
echo
echo "demo finished"
