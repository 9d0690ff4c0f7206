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
	"                          k-means centroids, approximate), or auto (the\n"
	"                          default: hnsw from 20000 vectors on, flat below)\n"
	"  -m, --metric=METRIC     l2 (Euclidean, the default), ip (inner product)\n"
	"                          or cos (cosine; vectors are stored normalised)\n"
	"  -M, --links=M           hnsw: links per node (2..256, default 16)\n"
	"      --ef-construction=N hnsw: search list size while building\n"
	"                          (default 200)\n"
	"      --seed=N            hnsw: seed of the level draws; ivf: seed of the\n"
	"                          k-means sampling and seeding (default 42)\n"
	"      --nlist=N           ivf: number of lists (default: 4 sqrt(count),\n"
	"                          rounded; at most the number of vectors)\n"
	"      --train-size=N      ivf: vectors k-means trains on (default:\n"
	"                          64 x nlist, at least 10000, at most all)\n"
	CMD_INPUT_HELP
	"  -j, --threads=N         worker threads (default: all cores)\n"
	"  -q, --quiet             no progress line\n"
	"  -h, --help              display this help and exit\n"
	"  -V, --version           output version information and exit\n"
	"\n"
	"Exit status: 0 success, 1 bad input or I/O error, 2 usage error.\n"
	"Example: vec-build -m cos -o words.vec glove.fvecs\n";

enum { OPT_EFC = OPT_CMD_LAST, OPT_SEED, OPT_NLIST, OPT_TRAIN };

/* vec-build -t auto: a graph pays off from about this many vectors on. */
#define AUTO_HNSW_MIN 20000

static const struct option long_options[] = {
	{ "output", required_argument, NULL, 'o' },
	{ "links", required_argument, NULL, 'M' },
	{ "ef-construction", required_argument, NULL, OPT_EFC },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "nlist", required_argument, NULL, OPT_NLIST },
	{ "train-size", required_argument, NULL, OPT_TRAIN },
	{ "type", required_argument, NULL, 't' },
	{ "metric", required_argument, NULL, 'm' },
	{ "threads", required_argument, NULL, 'j' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	CMD_INPUT_LONG_OPTIONS,
	{ NULL, 0, NULL, 0 },
};

int main(int argc, char **argv)
{
	struct vec_reader_opts ro = VEC_READER_OPTS_INIT;
	struct vec_errbuf eb = { 0 };
	struct vec_index *idx = NULL;
	struct vec_index_params p = VEC_INDEX_PARAMS_INIT;
	struct vec_index_info info;
	const char *output = NULL;
	int type = 0, metric = VEC_METRIC_L2, opt, graph_opts = 0, seed_opt = 0;
	int list_opts = 0;

	cmd_init("vec-build");
	while ((opt = getopt_long(argc, argv, "o:t:m:M:f:j:qhV", long_options, NULL)) != -1) {
		if (cmd_input_option(opt, optarg, &ro))
			continue;
		switch (opt) {
		case 'o': output = optarg; break;
		case 't':
			type = strcmp(optarg, "auto") ? vec_type_parse(optarg) : 0;
			if (type < 0)
				cmd_usage_error("unknown index type '%s' (expected flat, hnsw, ivf or auto)",
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
		case OPT_SEED:
			p.seed = cmd_number("--seed", optarg, 1, UINT64_MAX);
			seed_opt = 1;
			break;
		case OPT_NLIST:
			p.nlist = (uint32_t)cmd_number("--nlist", optarg, 1, 1u << 24);
			list_opts = 1;
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
	if (!*output || !strcmp(output, "-"))
		cmd_usage_error("the index must be a file, not '%s'", output);
	if (type != VEC_TYPE_HNSW && type != 0 && graph_opts)
		cmd_usage_error("-M and --ef-construction apply to -t hnsw only");
	if (type == VEC_TYPE_FLAT && seed_opt)
		cmd_usage_error("--seed applies to -t hnsw and -t ivf only");
	if (type != VEC_TYPE_IVF && list_opts)
		cmd_usage_error("--nlist and --train-size apply to -t ivf only");
	if (p.nlist && p.train_size && p.train_size < p.nlist)
		cmd_usage_error("--train-size %llu is smaller than --nlist %u",
				(unsigned long long)p.train_size, p.nlist);

	/* Read everything first; then the graph (if any) is built over all
	 * vectors at once, which threads well and lets -t auto decide. */
	if (cmd_read_into_index(&idx, VEC_TYPE_FLAT, metric, argv + optind,
				argc - optind, &ro)) {
		vec_index_close(idx);
		return cmd_finish(EXIT_RUNTIME);
	}
	vec_index_info(idx, &info);
	if (type == 0)
		type = info.count >= AUTO_HNSW_MIN ? VEC_TYPE_HNSW : VEC_TYPE_FLAT;
	p.type = type;
	p.metric = metric;
	p.dim = info.dim;
	if (type == VEC_TYPE_IVF && p.nlist > info.count) {
		/* Known only now: it depends on the input. */
		cmd_error("--nlist %u is larger than the number of input vectors (%llu)",
			  p.nlist, (unsigned long long)info.count);
		vec_index_close(idx);
		return cmd_finish(EXIT_RUNTIME);
	}
	if (type != VEC_TYPE_FLAT && vec_index_convert(idx, &p, &eb)) {
		cmd_error("%s", eb.msg);
		vec_index_close(idx);
		return cmd_finish(EXIT_RUNTIME);
	}
	if (vec_index_save(idx, output, &eb)) {
		cmd_error("%s", eb.msg);
		vec_index_close(idx);
		return cmd_finish(EXIT_RUNTIME);
	}
	vec_index_close(idx);
	return cmd_finish(EXIT_OK);
}
