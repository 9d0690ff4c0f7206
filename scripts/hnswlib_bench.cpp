// hnswlib_bench - a small driver over the header-only hnswlib, for
// scripts/bench_hnsw.py.  The bench compiles it at run time:
//
//     g++ -O3 -march=native -std=c++11 -pthread -o hnswlib_bench hnswlib_bench.cpp
//
// Two commands:
//
//   hnswlib_bench build SPACE DIM M EFC SEED THREADS BASE.f32 INDEX
//       Read BASE.f32 (raw little-endian float32, row-major, DIM columns),
//       insert every row (label = row number) with THREADS threads, save
//       the index to INDEX.  Prints one line:
//           build_s=S save_s=S count=N
//       build_s is the insertion alone (not reading the file, not saving).
//
//   hnswlib_bench serve SPACE DIM INDEX QUERIES.f32 K
//       Load INDEX, read the queries, then answer commands from standard
//       input, one a line:
//           search EF OUT.ivecs   set ef, run searchKnn over every query in
//                                 this thread, timed; write the ids (ivecs,
//                                 K per query, best first, -1 padding) to
//                                 OUT.ivecs after the clock stops; reply
//                                 "ok WALL_SECONDS CPU_SECONDS" (CPU: this
//                                 thread's CPU time over the same span)
//           quit
//       On start it replies "ready load_s=S count=N".
//
// SPACE is l2 (squared Euclidean) or ip (1 - inner product; give it unit
// vectors for cosine).  Errors go to standard error, exit status 1.

#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <time.h>

namespace {

double now_s()
{
	using clk = std::chrono::steady_clock;
	return std::chrono::duration<double>(clk::now().time_since_epoch()).count();
}

double thread_cpu_s()
{
	struct timespec ts;
	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
		return 0.0;
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

[[noreturn]] void fail(const std::string &msg)
{
	std::fprintf(stderr, "hnswlib_bench: %s\n", msg.c_str());
	std::exit(1);
}

std::vector<float> read_f32(const std::string &path, size_t dim, size_t *rows)
{
	FILE *f = std::fopen(path.c_str(), "rb");
	if (!f)
		fail("cannot open " + path);
	std::fseek(f, 0, SEEK_END);
	long bytes = std::ftell(f);
	std::fseek(f, 0, SEEK_SET);
	size_t row_bytes = dim * sizeof(float);
	if (bytes < 0 || (size_t)bytes % row_bytes)
		fail(path + ": size is not a multiple of the row size");
	*rows = (size_t)bytes / row_bytes;
	std::vector<float> v(*rows * dim);
	if (*rows && std::fread(v.data(), row_bytes, *rows, f) != *rows)
		fail("short read on " + path);
	std::fclose(f);
	return v;
}

std::unique_ptr<hnswlib::SpaceInterface<float>> make_space(const std::string &name,
							    size_t dim)
{
	if (name == "l2")
		return std::unique_ptr<hnswlib::SpaceInterface<float>>(new hnswlib::L2Space(dim));
	if (name == "ip")
		return std::unique_ptr<hnswlib::SpaceInterface<float>>(
		    new hnswlib::InnerProductSpace(dim));
	fail("unknown space '" + name + "' (l2 or ip)");
}

size_t to_size(const char *s, const char *what)
{
	char *end;
	unsigned long long v = std::strtoull(s, &end, 10);
	if (*s == '\0' || *end != '\0')
		fail(std::string("bad ") + what + ": " + s);
	return (size_t)v;
}

int cmd_build(int argc, char **argv)
{
	if (argc != 10)
		fail("usage: build SPACE DIM M EFC SEED THREADS BASE.f32 INDEX");
	std::string space_name = argv[2];
	size_t dim = to_size(argv[3], "DIM");
	size_t M = to_size(argv[4], "M");
	size_t efc = to_size(argv[5], "EFC");
	size_t seed = to_size(argv[6], "SEED");
	size_t threads = std::max<size_t>(1, to_size(argv[7], "THREADS"));
	size_t n;
	std::vector<float> base = read_f32(argv[8], dim, &n);
	if (n == 0)
		fail("no vectors in " + std::string(argv[8]));
	auto space = make_space(space_name, dim);
	hnswlib::HierarchicalNSW<float> index(space.get(), n, M, efc, seed);

	double t0 = now_s();
	// Row 0 first, alone: it becomes the entry point whatever the thread
	// count, so that 1- and N-thread builds start alike.
	index.addPoint(base.data(), 0);
	std::atomic<size_t> next(1);
	std::exception_ptr err;
	std::atomic<bool> failed(false);
	auto work = [&]() {
		try {
			for (;;) {
				size_t i = next.fetch_add(1);
				if (i >= n || failed.load())
					break;
				index.addPoint(base.data() + i * dim, i);
			}
		} catch (...) {
			if (!failed.exchange(true))
				err = std::current_exception();
		}
	};
	if (threads == 1) {
		work();
	} else {
		std::vector<std::thread> pool;
		for (size_t t = 0; t < threads; t++)
			pool.emplace_back(work);
		for (auto &th : pool)
			th.join();
	}
	if (err)
		std::rethrow_exception(err);
	double build_s = now_s() - t0;

	t0 = now_s();
	index.saveIndex(argv[9]);
	double save_s = now_s() - t0;
	std::printf("build_s=%.6f save_s=%.6f count=%zu\n", build_s, save_s, n);
	return 0;
}

void write_ivecs(const std::string &path, const std::vector<int32_t> &ids, size_t k)
{
	FILE *f = std::fopen(path.c_str(), "wb");
	if (!f)
		fail("cannot create " + path);
	int32_t kk = (int32_t)k;
	for (size_t i = 0; i < ids.size(); i += k) {
		if (std::fwrite(&kk, sizeof kk, 1, f) != 1 ||
		    std::fwrite(ids.data() + i, sizeof(int32_t), k, f) != k)
			fail("write error on " + path);
	}
	if (std::fclose(f) != 0)
		fail("write error on " + path);
}

int cmd_serve(int argc, char **argv)
{
	if (argc != 7)
		fail("usage: serve SPACE DIM INDEX QUERIES.f32 K");
	std::string space_name = argv[2];
	size_t dim = to_size(argv[3], "DIM");
	size_t k = to_size(argv[6], "K");
	if (k == 0)
		fail("K must be at least 1");
	size_t nq;
	std::vector<float> queries = read_f32(argv[5], dim, &nq);
	auto space = make_space(space_name, dim);

	double t0 = now_s();
	hnswlib::HierarchicalNSW<float> index(space.get(), std::string(argv[4]));
	double load_s = now_s() - t0;
	std::printf("ready load_s=%.6f count=%zu\n", load_s, (size_t)index.cur_element_count);
	std::fflush(stdout);

	std::vector<int32_t> ids(nq * k);
	std::string line;
	while (std::getline(std::cin, line)) {
		char out[4096];
		size_t ef;
		if (line == "quit")
			break;
		if (std::sscanf(line.c_str(), "search %zu %4095s", &ef, out) != 2)
			fail("bad command: " + line);
		index.setEf(ef);
		std::fill(ids.begin(), ids.end(), -1);
		double c0 = thread_cpu_s();
		t0 = now_s();
		for (size_t q = 0; q < nq; q++) {
			auto res = index.searchKnn(queries.data() + q * dim, k);
			// a max-heap on distance: pop from the worst, fill backwards
			size_t r = res.size();
			while (!res.empty()) {
				ids[q * k + --r] = (int32_t)res.top().second;
				res.pop();
			}
		}
		double s = now_s() - t0;
		double c = thread_cpu_s() - c0;
		write_ivecs(out, ids, k);
		std::printf("ok %.9f %.9f\n", s, c);
		std::fflush(stdout);
	}
	return 0;
}

} // namespace

int main(int argc, char **argv)
{
	try {
		if (argc >= 2 && std::strcmp(argv[1], "build") == 0)
			return cmd_build(argc, argv);
		if (argc >= 2 && std::strcmp(argv[1], "serve") == 0)
			return cmd_serve(argc, argv);
		fail("usage: hnswlib_bench build|serve ...");
	} catch (const std::exception &e) {
		fail(std::string("error: ") + e.what());
	}
}
