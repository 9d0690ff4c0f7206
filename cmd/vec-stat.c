/* vec-stat - print what an index holds, and check that it is intact. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

static const char usage_text[] =
	"Usage: vec-stat [OPTION]... INDEX...\n"
	"Print what each index file holds: format version, type, metric,\n"
	"dimension, count, keys, ids, and bytes by section and per vector.\n"
	"\n"
	"      --verify            also check every checksum (header, section\n"
	"                          table, each section); exit 1 on damage,\n"
	"                          naming the section\n"
	"      --json              one JSON object per index, one per line\n"
	"  -q, --quiet             print nothing on standard output; the exit\n"
	"                          status and error messages tell\n"
	"  -h, --help              display this help and exit\n"
	"  -V, --version           output version information and exit\n"
	"\n"
	"Exit status: 0 success, 1 an index is missing, damaged or too new,\n"
	"2 usage error.\n"
	"Example: vec-stat --verify words.vec\n";

enum { OPT_VERIFY = OPT_CMD_LAST, OPT_JSON };

static const struct option long_options[] = {
	{ "verify", no_argument, NULL, OPT_VERIFY },
	{ "check", no_argument, NULL, OPT_VERIFY },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static void print_text(const char *path, const struct vec_index_info *in,
		       int keys, int verified)
{
	double per = in->count ? (double)in->file_bytes / (double)in->count : 0;

	printf("index:          %s\n", path);
	printf("format:         read version %u, write version %u\n",
	       in->read_version, in->write_version);
	printf("type:           %s\n", vec_type_name(in->type));
	printf("metric:         %s\n", vec_metric_name(in->metric));
	printf("dim:            %zu\n", in->dim);
	printf("count:          %llu\n", (unsigned long long)in->count);
	printf("keys:           %s\n", keys ? "yes" : "no");
	if (!in->has_ids)
		printf("ids:            positions (0 to count-1)\n");
	else if (in->count)
		printf("ids:            stored, %llu to %llu\n",
		       (unsigned long long)in->id_min, (unsigned long long)in->id_max);
	else
		printf("ids:            stored (none yet)\n");
	printf("bytes:          %llu (%.1f per vector)\n",
	       (unsigned long long)in->file_bytes, per);
	printf("sections:       %zu\n", in->n_sections);
	printf("  %-4s  %-8s  %12s  %12s  %8s\n", "id", "required", "offset",
	       "length", "crc32");
	for (size_t i = 0; i < in->n_sections; i++) {
		const struct vec_section_info *s = &in->sections[i];
		printf("  %-4s  %-8s  %12llu  %12llu  %08x\n", s->id,
		       s->required ? "yes" : "no",
		       (unsigned long long)s->offset,
		       (unsigned long long)s->length, s->crc32);
	}
	if (in->type == VEC_TYPE_HNSW) {
		printf("graph:          M %u, M0 %u, ef-construction %u, seed %llu\n",
		       in->hnsw.M, in->hnsw.M0, in->hnsw.ef_construction,
		       (unsigned long long)in->hnsw.seed);
		printf("levels:         %u (nodes per level:", in->hnsw.levels);
		for (unsigned l = 0; l < in->hnsw.levels && l < 32; l++)
			printf(" %llu", (unsigned long long)in->hnsw.nodes_per_level[l]);
		printf(")\n");
		printf("degree:         %.2f average, %u maximum (level 0)\n",
		       in->hnsw.avg_degree0, in->hnsw.max_degree0);
		printf("entry point:    %llu\n", (unsigned long long)in->hnsw.entry_point);
		printf("graph bytes:    %llu (%.1f per vector)\n",
		       (unsigned long long)in->hnsw.graph_bytes,
		       in->count ? (double)in->hnsw.graph_bytes / (double)in->count : 0.0);
		if (in->hnsw.extra_bytes)
			printf("quantised copy: %u bits per component, %llu bytes (%.1f per vector)\n",
			       in->hnsw.code_bits,
			       (unsigned long long)in->hnsw.extra_bytes,
			       in->count ? (double)in->hnsw.extra_bytes / (double)in->count : 0.0);
		printf("default ef:     %zu (for k = 10)\n", in->hnsw.default_ef);
	}
	if (vec_type_is_ivf(in->type)) {
		printf("lists:          nlist %u, length min %llu, median %llu, max %llu, %llu empty\n",
		       in->ivf.nlist, (unsigned long long)in->ivf.list_min,
		       (unsigned long long)in->ivf.list_median,
		       (unsigned long long)in->ivf.list_max,
		       (unsigned long long)in->ivf.empty_lists);
		printf("training:       k-means on %llu vectors, %u iterations (at most %u), seed %llu\n",
		       (unsigned long long)in->ivf.train_size, in->ivf.iterations,
		       in->ivf.max_iterations, (unsigned long long)in->ivf.seed);
		printf("list bytes:     %llu (%.1f per vector)\n",
		       (unsigned long long)in->ivf.list_bytes,
		       in->count ? (double)in->ivf.list_bytes / (double)in->count : 0.0);
		if (!strcmp(in->ivf.payload, "pq"))
			printf("codes:          pq, %u sub-quantisers of %u bits: %llu bytes per vector, codebook %llu bytes\n",
			       in->ivf.pq_m, in->ivf.pq_bits,
			       (unsigned long long)in->ivf.code_bytes,
			       (unsigned long long)in->ivf.codebook_bytes);
		else if (!strcmp(in->ivf.payload, "sq8"))
			printf("codes:          sq8, %llu bytes per vector (with padding), ranges %llu bytes\n",
			       (unsigned long long)in->ivf.code_bytes,
			       (unsigned long long)in->ivf.codebook_bytes);
		if (vec_type_is_coded(in->type)) {
			if (!in->ivf.refine)
				printf("refine:         none (full vectors not kept)\n");
			else
				printf("refine:         %u x k candidates re-ranked on the full vectors (kept)\n",
				       in->ivf.refine);
			if (in->ivf.refine && in->ivf.refine_code_bytes)
				printf("refine codes:   8-bit copy of the vectors read first, %llu bytes, exact for %llu vectors\n",
				       (unsigned long long)in->ivf.refine_code_bytes,
				       (unsigned long long)in->ivf.refine_exact);
		}
		printf("default nprobe: %zu\n", in->ivf.default_nprobe);
	}
	if (verified)
		printf("verify:         ok (all checksums match%s)\n",
		       in->type == VEC_TYPE_HNSW ? ", every link points to a node" :
		       in->type == VEC_TYPE_IVF ? ", every list entry matches its vector" :
		       vec_type_is_coded(in->type) && in->ivf.refine ?
		       ", every code matches its vector" : "");
}

static void print_json(const char *path, const struct vec_index_info *in,
		       int keys, int verified)
{
	fputs("{\"index\":", stdout);
	cmd_put_json_string(path);
	printf(",\"read_version\":%u,\"write_version\":%u",
	       in->read_version, in->write_version);
	printf(",\"type\":\"%s\",\"metric\":\"%s\",\"dim\":%zu,\"count\":%llu",
	       vec_type_name(in->type), vec_metric_name(in->metric), in->dim,
	       (unsigned long long)in->count);
	printf(",\"keys\":%s,\"ids\":\"%s\"", keys ? "true" : "false",
	       in->has_ids ? "stored" : "positions");
	if (in->count)
		printf(",\"id_min\":%llu,\"id_max\":%llu",
		       (unsigned long long)in->id_min, (unsigned long long)in->id_max);
	printf(",\"bytes\":%llu,\"bytes_per_vector\":%.2f",
	       (unsigned long long)in->file_bytes,
	       in->count ? (double)in->file_bytes / (double)in->count : 0.0);
	fputs(",\"sections\":[", stdout);
	for (size_t i = 0; i < in->n_sections; i++) {
		const struct vec_section_info *s = &in->sections[i];
		printf("%s{\"id\":\"%s\",\"required\":%s,\"offset\":%llu,\"length\":%llu,\"crc32\":\"%08x\"}",
		       i ? "," : "", s->id, s->required ? "true" : "false",
		       (unsigned long long)s->offset,
		       (unsigned long long)s->length, s->crc32);
	}
	printf("]");
	if (in->type == VEC_TYPE_HNSW) {
		printf(",\"hnsw\":{\"M\":%u,\"M0\":%u,\"ef_construction\":%u,\"seed\":%llu",
		       in->hnsw.M, in->hnsw.M0, in->hnsw.ef_construction,
		       (unsigned long long)in->hnsw.seed);
		printf(",\"levels\":%u,\"nodes_per_level\":[", in->hnsw.levels);
		for (unsigned l = 0; l < in->hnsw.levels && l < 32; l++)
			printf("%s%llu", l ? "," : "",
			       (unsigned long long)in->hnsw.nodes_per_level[l]);
		printf("],\"avg_degree0\":%.3f,\"max_degree0\":%u,\"entry_point\":%llu",
		       in->hnsw.avg_degree0, in->hnsw.max_degree0,
		       (unsigned long long)in->hnsw.entry_point);
		printf(",\"graph_bytes\":%llu,\"extra_bytes\":%llu,\"code_bits\":%u,\"default_ef\":%zu}",
		       (unsigned long long)in->hnsw.graph_bytes,
		       (unsigned long long)in->hnsw.extra_bytes, in->hnsw.code_bits,
		       in->hnsw.default_ef);
	}
	if (vec_type_is_ivf(in->type)) {
		printf(",\"ivf\":{\"nlist\":%u,\"list_min\":%llu,\"list_median\":%llu,\"list_max\":%llu,\"empty_lists\":%llu",
		       in->ivf.nlist, (unsigned long long)in->ivf.list_min,
		       (unsigned long long)in->ivf.list_median,
		       (unsigned long long)in->ivf.list_max,
		       (unsigned long long)in->ivf.empty_lists);
		printf(",\"train_size\":%llu,\"iterations\":%u,\"max_iterations\":%u,\"seed\":%llu",
		       (unsigned long long)in->ivf.train_size, in->ivf.iterations,
		       in->ivf.max_iterations, (unsigned long long)in->ivf.seed);
		printf(",\"list_bytes\":%llu,\"default_nprobe\":%zu",
		       (unsigned long long)in->ivf.list_bytes, in->ivf.default_nprobe);
		printf(",\"payload\":\"%s\",\"code_bytes\":%llu,\"codebook_bytes\":%llu,\"refine\":%u",
		       in->ivf.payload, (unsigned long long)in->ivf.code_bytes,
		       (unsigned long long)in->ivf.codebook_bytes, in->ivf.refine);
		printf(",\"refine_code_bytes\":%llu,\"refine_exact\":%llu",
		       (unsigned long long)in->ivf.refine_code_bytes,
		       (unsigned long long)in->ivf.refine_exact);
		if (!strcmp(in->ivf.payload, "pq"))
			printf(",\"pq_m\":%u,\"pq_bits\":%u", in->ivf.pq_m, in->ivf.pq_bits);
		putchar('}');
	}
	printf(",\"verified\":%s}\n", verified ? "true" : "false");
}

int main(int argc, char **argv)
{
	int opt, verify = 0, json = 0, status = EXIT_OK;

	cmd_init("vec-stat");
	while ((opt = getopt_long(argc, argv, "qhV", long_options, NULL)) != -1) {
		switch (opt) {
		case OPT_VERIFY: verify = 1; break;
		case OPT_JSON: json = 1; break;
		case 'q': cmd_quiet = 1; break;
		case 'h': fputs(usage_text, stdout); return cmd_finish(EXIT_OK);
		case 'V': cmd_version();
		default: cmd_usage_error("invalid usage");
		}
	}
	if (optind >= argc)
		cmd_usage_error("no index given");
	for (int i = optind; i < argc; i++) {
		struct vec_errbuf eb = { 0 };
		struct vec_index *idx;
		struct vec_index_info info;

		if (vec_index_open(&idx, argv[i], verify ? VEC_OPEN_VERIFY : 0, &eb)) {
			cmd_error("%s", eb.msg);
			status = EXIT_RUNTIME;
			continue;
		}
		vec_index_stats(idx, &info);
		if (!cmd_quiet) {
			if (json)
				print_json(argv[i], &info, vec_index_has_keys(idx), verify);
			else {
				if (i > optind)
					putchar('\n');
				print_text(argv[i], &info, vec_index_has_keys(idx), verify);
			}
		}
		vec_index_close(idx);
	}
	return cmd_finish(status);
}
