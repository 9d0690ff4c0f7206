/* vec-add - append vectors to an existing index, atomically. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

static const char usage_text[] =
	"Usage: vec-add [OPTION]... INDEX [INPUT]...\n"
	"Append the vectors of each INPUT to the index file INDEX; the vectors\n"
	"must have the index's dimension.  Without --ids, --id-column or\n"
	"--id-start, ids continue from the index's count, or from its largest id\n"
	"+ 1 when it stores ids; an id already in INDEX is refused.\n"
	"With no INPUT, or when INPUT is -, read standard input.  INDEX is\n"
	"replaced atomically, and concurrent writers take turns (flock): a\n"
	"failed vec-add leaves INDEX as it was.\n"
	"\n"
	CMD_INPUT_HELP
	CMD_ID_HELP
	"                          (with --shard, give the ids: --ids,\n"
	"                          --id-column or --id-start)\n"
	"  -j, --threads=N         worker threads (default: all cores)\n"
	"  -q, --quiet             no progress line\n"
	"  -h, --help              display this help and exit\n"
	"  -V, --version           output version information and exit\n"
	"\n"
	"Exit status: 0 success, 1 bad input, damaged index or I/O error, 2 usage\n"
	"error.\n"
	"Example: vec-add words.vec new-words.fvecs\n";

static const struct option long_options[] = {
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
	struct vec_index_info info;
	struct cmd_ids ids = { 0 };
	const char *path;
	int opt, threads = 0;

	cmd_init("vec-add");
	while ((opt = getopt_long(argc, argv, "f:j:qhV", long_options, NULL)) != -1) {
		if (cmd_input_option(opt, optarg, &ro) ||
		    cmd_id_option(opt, optarg, &ids))
			continue;
		switch (opt) {
		case 'j': threads = cmd_threads(optarg); break;
		case 'q': cmd_quiet = 1; break;
		case 'h': fputs(usage_text, stdout); return cmd_finish(EXIT_OK);
		case 'V': cmd_version();
		default: cmd_usage_error("invalid usage");
		}
	}
	if (optind >= argc)
		cmd_usage_error("no index given");
	cmd_id_check(&ids, &ro);
	/* A shard's own count means nothing to the other shards. */
	if (ids.nshards && !ids.file && !ids.column && !ids.have_start)
		cmd_usage_error("--shard needs the vectors' ids: --ids, --id-column or --id-start");
	path = argv[optind++];

	/* Hold the writer lock from reading the old index to renaming the
	 * new one, so that concurrent vec-adds each see the other's vectors. */
	/* Verify every checksum first: rewriting a damaged index would give
	 * the damage fresh checksums and hide it for good. */
	if (vec_index_open(&idx, path, VEC_OPEN_WRITE | VEC_OPEN_VERIFY, &eb)) {
		cmd_error("%s", eb.msg);
		return cmd_finish(EXIT_RUNTIME);
	}
	vec_index_info(idx, &info);
	vec_index_set_threads(idx, threads);
	if (cmd_read_into_index(&idx, NULL, argv + optind, argc - optind, &ro,
				&ids)) {
		vec_index_close(idx);
		return cmd_finish(EXIT_RUNTIME);
	}
	if (vec_index_save(idx, path, &eb)) {
		cmd_error("%s", eb.msg);
		vec_index_close(idx);
		return cmd_finish(EXIT_RUNTIME);
	}
	vec_index_close(idx);
	return cmd_finish(EXIT_OK);
}
