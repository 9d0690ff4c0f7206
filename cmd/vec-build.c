/* vec-build - build an index file from vectors. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

static const char usage_text[] =
	"Usage: vec-build [OPTION]... -o INDEX [INPUT]...\n"
	"Build the index file INDEX from the vectors in each INPUT (fvecs, bvecs,\n"
	"ivecs, CSV/TSV or npy, plain or gzip-compressed).  With no INPUT, or when\n"
	"INPUT is -, read standard input.  INDEX is replaced atomically: a failed\n"
	"build leaves no file behind and an existing INDEX untouched.\n"
	"\n"
	"  -o, --output=INDEX      the index file to write (required)\n"
	"  -t, --type=TYPE         index type: flat (exact search), hnsw (graph,\n"
	"                          approximate, fast), ivf (inverted lists over\n"
	"                          k-means centroids, approximate), ivfpq and pq\n"
	"                          (product-quantiser codes, with and without\n"
	"                          lists), ivfsq8 and sq8 (8-bit scalar codes),\n"
	"                          or auto (the default: hnsw from 20000 vectors\n"
	"                          on, flat below)\n"
	"  -m, --metric=METRIC     l2 (Euclidean, the default), ip (inner product)\n"
	"                          or cos (cosine; vectors are stored normalised)\n"
	"  -M, --links=M           hnsw: links per node (2..256, default 16)\n"
	"      --ef-construction=N hnsw: search list size while building\n"
	"                          (default 200)\n"
	"      --sq-bits=B         hnsw: bits per component of the quantised\n"
	"                          copy that steers the search, 4 or 8 (default:\n"
	"                          4 from 256 dimensions on, 8 below)\n"
	"      --seed=N            hnsw: seed of the level draws; ivf: seed of the\n"
	"                          k-means sampling and seeding (default 42)\n"
	"      --nlist=N           ivf types: number of lists (default: 4\n"
	"                          sqrt(count), rounded, after reading all input;\n"
	"                          at most the number of vectors trained on)\n"
	"      --train-size=N      ivf types: vectors to train on (default:\n"
	"                          64 x nlist, at least 65536); given --nlist, or\n"
	"                          for pq and sq8, the first N vectors train the\n"
	"                          index and the rest are encoded as they arrive\n"
	"      --pq=M              pq types: sub-quantisers, dividing the\n"
	"                          dimension (default: about dim/4 code bytes)\n"
	"      --pq-bits=B         pq types: 8 (the default) or 4 bits per\n"
	"                          sub-quantiser (4: the SIMD fast scan)\n"
	"      --refine=R          coded types: keep the full vectors too, and\n"
	"                          re-rank R x k candidates on them (vec-query\n"
	"                          --refine changes R per query)\n"
	CMD_INPUT_HELP
	CMD_ID_HELP
	"  -j, --threads=N         worker threads (default: all cores)\n"
	"  -q, --quiet             no progress line\n"
	"  -h, --help              display this help and exit\n"
	"  -V, --version           output version information and exit\n"
	"\n"
	"Without --ids, --id-column or --id-start, a vector's id is its place in\n"
	"the input (from 0), and the index stores no ids.  With them, or with\n"
	"--shard (ids then count from --id-start, default 0), the index stores\n"
	"the ids, answers queries with them, and refuses an id given twice.\n"
	"\n"
	"Exit status: 0 success, 1 bad input or I/O error, 2 usage error.\n"
	"Example: vec-build -m cos -o words.vec glove.fvecs\n"
	"         vec-build --shard 1/4 -o part1.vec glove.fvecs\n";

enum { OPT_EFC = OPT_CMD_LAST, OPT_SEED, OPT_NLIST, OPT_TRAIN, OPT_PQ,
       OPT_PQ_BITS, OPT_REFINE, OPT_SQ_BITS };

/* vec-build -t auto: a graph pays off from about this many vectors on. */
#define AUTO_HNSW_MIN 20000

static const struct option long_options[] = {
	{ "output", required_argument, NULL, 'o' },
	{ "links", required_argument, NULL, 'M' },
	{ "ef-construction", required_argument, NULL, OPT_EFC },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "nlist", required_argument, NULL, OPT_NLIST },
	{ "train-size", required_argument, NULL, OPT_TRAIN },
	{ "pq", required_argument, NULL, OPT_PQ },
	{ "pq-bits", required_argument, NULL, OPT_PQ_BITS },
	{ "refine", required_argument, NULL, OPT_REFINE },
	{ "sq-bits", required_argument, NULL, OPT_SQ_BITS },
	{ "type", required_argument, NULL, 't' },
	{ "metric", required_argument, NULL, 'm' },
	{ "threads", required_argument, NULL, 'j' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	CMD_INPUT_LONG_OPTIONS,
	CMD_ID_LONG_OPTIONS,
	{ NULL, 0, NULL, 0 },
};

int main(int argc, char **argv)
{
	struct vec_reader_opts ro = VEC_READER_OPTS_INIT;
	struct vec_errbuf eb = { 0 };
	struct vec_index *idx = NULL;
	struct vec_index_params p = VEC_INDEX_PARAMS_INIT;
	struct vec_index_info info;
	struct cmd_ids ids = { 0 };
	const char *output = NULL;
	int type = 0, metric = VEC_METRIC_L2, opt, graph_opts = 0, seed_opt = 0;
	int list_opts = 0, nlist_opt = 0, pq_opts = 0;
	unsigned sq_bits = 0;

	cmd_init("vec-build");
	while ((opt = getopt_long(argc, argv, "o:t:m:M:f:j:qhV", long_options, NULL)) != -1) {
		if (cmd_input_option(opt, optarg, &ro) ||
		    cmd_id_option(opt, optarg, &ids))
			continue;
		switch (opt) {
		case 'o': output = optarg; break;
		case 't':
			type = strcmp(optarg, "auto") ? vec_type_parse(optarg) : 0;
			if (type < 0)
				cmd_usage_error("unknown index type '%s' (expected flat, hnsw, ivf, ivfpq, pq, ivfsq8, sq8 or auto)",
						optarg);
			break;
		case 'M':
			p.M = (uint32_t)cmd_number("-M", optarg, 2, 256);
			graph_opts = 1;
			break;
		case OPT_EFC:
			p.ef_construction = (uint32_t)cmd_number("--ef-construction",
								 optarg, 1, 100000);
			graph_opts = 1;
			break;
		case OPT_SQ_BITS:
			sq_bits = (unsigned)cmd_number("--sq-bits", optarg, 4, 8);
			if (sq_bits != 4 && sq_bits != 8)
				cmd_usage_error("--sq-bits must be 4 or 8, not %u", sq_bits);
			graph_opts = 1;
			break;
		case OPT_SEED:
			p.seed = cmd_number("--seed", optarg, 1, UINT64_MAX);
			seed_opt = 1;
			break;
		case OPT_NLIST:
			p.nlist = (uint32_t)cmd_number("--nlist", optarg, 1, 1u << 24);
			list_opts = nlist_opt = 1;
			break;
		case OPT_PQ:
			p.pq_m = (uint32_t)cmd_number("--pq", optarg, 1, 65536);
			pq_opts |= 1;
			break;
		case OPT_PQ_BITS:
			p.pq_bits = (unsigned)cmd_number("--pq-bits", optarg, 4, 8);
			if (p.pq_bits != 4 && p.pq_bits != 8)
				cmd_usage_error("--pq-bits must be 4 or 8, not %u", p.pq_bits);
			pq_opts |= 1;
			break;
		case OPT_REFINE:
			p.refine = (uint32_t)cmd_number("--refine", optarg, 1, 1000);
			pq_opts |= 2;
			break;
		case OPT_TRAIN:
			p.train_size = cmd_number("--train-size", optarg, 1, UINT64_MAX);
			list_opts = 1;
			break;
		case 'm':
			metric = vec_metric_parse(optarg);
			if (metric < 0)
				cmd_usage_error("unknown metric '%s' (expected l2, ip or cos)", optarg);
			break;
		case 'j': p.threads = cmd_threads(optarg); break;
		case 'q': cmd_quiet = 1; break;
		case 'h': fputs(usage_text, stdout); return cmd_finish(EXIT_OK);
		case 'V': cmd_version();
		default: cmd_usage_error("invalid usage");
		}
	}
	if (!output)
		cmd_usage_error("no output index given (use -o INDEX)");
	cmd_id_check(&ids, &ro);
	if (!*output || !strcmp(output, "-"))
		cmd_usage_error("the index must be a file, not '%s'", output);
	if (type != VEC_TYPE_HNSW && type != 0 && graph_opts)
		cmd_usage_error("-M, --ef-construction and --sq-bits apply to -t hnsw only");
	if (type == VEC_TYPE_FLAT && seed_opt)
		cmd_usage_error("--seed applies to -t hnsw and the ivf types only");
	if (!vec_type_is_ivf(type) && list_opts)
		cmd_usage_error("--nlist and --train-size apply to the ivf types only");
	if ((type == VEC_TYPE_PQ || type == VEC_TYPE_SQ8) && nlist_opt)
		cmd_usage_error("-t %s has one list: use -t ivf%s for --nlist",
				vec_type_name(type), vec_type_name(type));
	if ((pq_opts & 1) && type != VEC_TYPE_PQ && type != VEC_TYPE_IVFPQ)
		cmd_usage_error("--pq and --pq-bits apply to -t pq and -t ivfpq only");
	if ((pq_opts & 2) && !vec_type_is_coded(type))
		cmd_usage_error("--refine applies to the coded types only (pq, ivfpq, sq8, ivfsq8)");
	if (p.nlist && p.train_size && p.train_size < p.nlist)
		cmd_usage_error("--train-size %llu is smaller than --nlist %u",
				(unsigned long long)p.train_size, p.nlist);

	p.metric = metric;
	if (vec_type_is_ivf(type)) {
		/* The index collects a sample, trains on it, then encodes
		 * what follows as it arrives (without --nlist: the whole
		 * input, since the default nlist depends on the count). */
		p.type = type;
		if (cmd_read_into_index(&idx, &p, argv + optind, argc - optind, &ro,
					&ids)) {
			vec_index_close(idx);
			return cmd_finish(EXIT_RUNTIME);
		}
		vec_index_info(idx, &info);
		if (p.nlist > info.count) {
			/* Known only now: it depends on the input. */
			cmd_error("--nlist %u is larger than the number of input vectors (%llu)",
				  p.nlist, (unsigned long long)info.count);
			vec_index_close(idx);
			return cmd_finish(EXIT_RUNTIME);
		}
		if (vec_index_train(idx, &eb)) {
			cmd_error("%s", eb.msg);
			vec_index_close(idx);
			return cmd_finish(EXIT_RUNTIME);
		}
		goto save;
	}
	/* Read everything first; then the graph (if any) is built over all
	 * vectors at once, which threads well and lets -t auto decide. */
	p.type = VEC_TYPE_FLAT;
	if (cmd_read_into_index(&idx, &p, argv + optind, argc - optind, &ro,
					&ids)) {
		vec_index_close(idx);
		return cmd_finish(EXIT_RUNTIME);
	}
	vec_index_info(idx, &info);
	if (type == 0)
		type = info.count >= AUTO_HNSW_MIN ? VEC_TYPE_HNSW : VEC_TYPE_FLAT;
	p.type = type;
	p.metric = metric;
	p.dim = info.dim;
	if (type == VEC_TYPE_HNSW)
		p.sq_bits = sq_bits;
	if (type != VEC_TYPE_FLAT && vec_index_convert(idx, &p, &eb)) {
		cmd_error("%s", eb.msg);
		vec_index_close(idx);
		return cmd_finish(EXIT_RUNTIME);
	}
save:
	if (vec_index_save(idx, output, &eb)) {
		cmd_error("%s", eb.msg);
		vec_index_close(idx);
		return cmd_finish(EXIT_RUNTIME);
	}
	vec_index_close(idx);
	return cmd_finish(EXIT_OK);
}
