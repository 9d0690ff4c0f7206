#!/usr/bin/python3
"""Approximate k-NN search (HNSW): vecutils against hnswlib and FAISS.

Run through scripts/bench (BENCH_PART=hnsw or all), or directly:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        VEC_BIN=bin /usr/bin/python3 scripts/bench_hnsw.py DATA_DIR

Needs numpy and faiss (Debian: python3-numpy python3-faiss), g++ and the
hnswlib headers (libhnswlib-dev); optional: python3-hnswlib (the Python
side) and gnuplot (the plots).  Shares file reading, recall, the
frontier interpolation and the plots with the other parts
(scripts/benchlib.py).

Sides, all with k=10, M (16 by default), efConstruction=200, one search
thread, the same 1000 queries:
  vecutils         vec-build -t hnsw ...; vec-query --ef E -j 1 -F ivecs.
                   Timed: the wall time of the whole vec-query process
                   (spawn, read queries, mmap open, search, write ids), as
                   in the exact bench.  Build: the whole vec-build process.
  hnswlib native   scripts/hnswlib_bench.cpp, compiled here with
                   g++ -O3 -march=native over Debian's hnswlib headers: a
                   build for this CPU.  Timed: the searchKnn loop over the
                   queries, in process, index already loaded.  Build: the
                   insertion loop alone.
  hnswlib python   Debian's python3-hnswlib, a baseline x86-64 (SSE) build,
                   shown as a reference for a packaged build.  Timed:
                   knn_query(num_threads=1) in process.
  FAISS            IndexHNSWFlat, efSearch swept; OpenMP threads 1 while
                   searching.  Timed: index.search in process.
Cosine sets: the hnswlib sides use space 'ip' and FAISS L2 on unit vectors
(same ranking); base and queries are normalised before any clock starts,
except for vecutils, which normalises inside the process.

Environment:
  VEC_BIN            directory of vec-build / vec-query / vec-stat (bin/)
  BENCH_HNSW_SETS    data sets (default: BENCH_SETS, else
                     "glove-100 fashion-mnist mnist")
  BENCH_REPEAT       timed runs per point; the median is used (5)
  BENCH_CPU          the CPU every side's searches run on (default: the
                     first one allowed; "none": wherever the scheduler
                     puts them).  Builds are not pinned.
  BENCH_HNSW_M       M values, one configuration each (default "16";
                     "16 32" adds the second)
  BENCH_HNSW_EFC     efConstruction (200)
  BENCH_HNSW_EF      the ef sweep (default "10 16 24 32 48 64 96 128 192
                     256 384 512")
  BENCH_HNSW_BUILD_THREADS  thread counts for the vecutils and native
                     hnswlib builds (default "1 2"); the index searched is
                     the one built with the first
  BENCH_HNSW_OTHER_BUILD_THREADS  threads for the python hnswlib and FAISS
                     builds (default: the largest of the above)
  BENCH_HNSW_QUERIES queries used (1000)
  BENCH_HNSW_SIDES   sides to run (default "vecutils hnswlib python faiss")
  BENCH_HNSW_SEED    build seed for vecutils and hnswlib (1)
  BENCH_PLOT_DIR     where the PNG plots go (default bench-plots)
  BENCH_OUT          JSON results (default bench-results.json); with
                     BENCH_HNSW_MERGE=1 (set by scripts/bench for
                     BENCH_PART=all) the results are added under "hnsw" to
                     the file the exact part just wrote
  BENCH_VEC_TIME     process (default: the whole vec-query process) or
                     search (the search span vec-query --stats reports,
                     the same span the other sides time: of the second of
                     two passes over the queries in one process, so that
                     every side searches an index its process has touched;
                     the first pass, which pays the first touch of the
                     file's pages, is kept in the JSON as cold_s.
                     BENCH_VEC_WARM=0: one pass)
  BENCH_HNSW_CLOCK   wall (default) or cpu: which time the q/s, the
                     interpolation and the plots use.  Both are always
                     measured: cpu is the CPU time of the vec-query process
                     (user + system, from wait4), of the searching thread in
                     the native driver, of this process for python and FAISS;
                     it is less disturbed by other load on a shared machine.
                     The summary gives the vecutils/native ratio under both.
  BENCH_HNSW_CACHE   a directory to keep the python hnswlib and FAISS indexes
                     in between runs (FAISS builds are slow: minutes on
                     glove-100); a cached index reports the build time
                     measured when it was built.  Default: none.
  BENCH_CXX          C++ compiler (g++)
  BENCH_FAISS_ONLY=1 leave out the vecutils side (as in the exact part)
"""

import os
import re

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402  (read_vecs, recall_at_k, ...)
from benchlib import (  # noqa: E402
    BenchError, env_list, fmt_qps, normalise, qps_at, read_ivecs_ids, run,
    run_timed, write_f32)

# BENCH_VEC_TIME=search: time vecutils by the search span vec-query --stats
# reports (as the other sides are timed), instead of the whole process.
VEC_SEARCH_TIME = os.environ.get("BENCH_VEC_TIME", "process") == "search"
VEC_TIMING = ("search time reported by vec-query --stats (index open, queries "
              "read; as the other sides)" +
              ("; the second of two passes in one process" if bl.VEC_WARM else "")
              if VEC_SEARCH_TIME else
              "wall time of the whole vec-query process (spawn, read queries, "
              "mmap open, search, write ivecs to a file)")

K = 10
TARGETS = (0.90, 0.95, 0.99)
DEFAULT_EF = "10 16 24 32 48 64 96 128 192 256 384 512"
ALL_SIDES = ("vecutils", "hnswlib", "python", "faiss")
LABEL = {
    "vecutils": "vecutils",
    "hnswlib": "hnswlib native (-march=native)",
    "python": "hnswlib python (Debian, SSE baseline)",
    "faiss": "FAISS IndexHNSWFlat",
}
SHORT = {"vecutils": "vecutils", "hnswlib": "hnsw-nat", "python": "hnsw-py",
         "faiss": "faiss"}


def hint(msg):
    sys.stderr.write(msg.rstrip() + "\n")


# ------------------------------------------------------------- the sides --

class NativeServer:
    """The compiled driver, serving searches over a pipe."""

    def __init__(self, exe, space, dim, index, queries_f32):
        self.p = subprocess.Popen([exe, "serve", space, str(dim), index, queries_f32,
                                   str(K)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, universal_newlines=True,
                                  bufsize=1)
        line = self.p.stdout.readline().split()
        if not line or line[0] != "ready":
            self.close()
            raise BenchError("hnswlib_bench serve did not start")
        self.info = dict(kv.split("=") for kv in line[1:])

    def search(self, ef, out):
        self.p.stdin.write("search %d %s\n" % (ef, out))
        self.p.stdin.flush()
        line = self.p.stdout.readline().split()
        if len(line) != 3 or line[0] != "ok":
            raise BenchError("hnswlib_bench serve: no answer for ef %d" % ef)
        return float(line[1]), float(line[2])

    def close(self):
        try:
            if self.p.poll() is None:
                self.p.stdin.write("quit\n")
                self.p.stdin.close()
                self.p.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            self.p.kill()
            self.p.wait()


class HnswBench:
    def __init__(self, data_dir, vec_bin, tmp, opts):
        import faiss
        self.faiss = faiss
        self.data_dir = data_dir
        self.vec_bin = vec_bin
        self.tmp = tmp
        self.o = opts
        self.sides = list(opts["sides"])
        self.errors = []
        self.sets = []
        self.driver = None
        self.hnswlib_py = None

    def vec(self, name):
        return os.path.join(self.vec_bin, name)

    def note_error(self, msg):
        print("  ERROR: " + msg, flush=True)
        self.errors.append(msg)

    # -- prerequisites --------------------------------------------------
    def compile_driver(self):
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hnswlib_bench.cpp")
        exe = os.path.join(self.tmp, "hnswlib_bench")
        cxx = os.environ.get("BENCH_CXX", "g++")
        argv = [cxx, "-O3", "-march=native", "-std=c++11", "-pthread", "-o", exe, src]
        t0 = time.perf_counter()
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if p.returncode != 0:
            sys.stderr.write(p.stdout.decode(errors="replace")[-3000:])
            raise BenchError("compiling %s failed" % os.path.basename(src))
        print("native hnswlib driver: %s (%.1f s)" % (" ".join(
            [os.path.basename(a) if a in (src, exe) else a for a in argv]),
            time.perf_counter() - t0), flush=True)
        self.driver = exe

    # -- one data set ---------------------------------------------------
    def run_set(self, name):
        d_dir = os.path.join(self.data_dir, name)
        metric = bl.read_metric(d_dir)
        base_path = bl.find_base(d_dir)
        base = bl.read_vecs(base_path, np.float32)
        queries_all = bl.read_vecs(os.path.join(d_dir, "query.fvecs"), np.float32)
        gt_dist = bl.read_vecs(os.path.join(d_dir, "gt_dist.fvecs"), np.float32)
        nq = min(self.o["queries"], queries_all.shape[0], gt_dist.shape[0])
        queries = np.ascontiguousarray(queries_all[:nq])
        n, dim = base.shape
        print("\n== %s: %d x %d, metric %s, %d queries ==" % (name, n, dim, metric, nq),
              flush=True)

        # Inputs, prepared before any clock starts.  vecutils gets the
        # original vectors (uncompressed) and normalises cosine itself; the
        # others get unit vectors for cosine.
        sdir = os.path.join(self.tmp, name)
        os.makedirs(sdir, exist_ok=True)
        if base_path.endswith(".gz"):
            vec_base = os.path.join(sdir, "base.fvecs")
            bl.write_fvecs(vec_base, base)
        else:
            vec_base = base_path
        vec_queries = os.path.join(sdir, "query.fvecs")
        bl.write_fvecs(vec_queries, queries)
        if metric == "cos":
            xb, xq, space, faiss_metric = normalise(base), normalise(queries), "ip", "l2"
        else:
            xb, xq = base, queries
            space = "l2" if metric == "l2" else "ip"
            faiss_metric = metric
        base_f32 = os.path.join(sdir, "base.f32")
        q_f32 = os.path.join(sdir, "query.f32")
        write_f32(base_f32, xb)
        write_f32(q_f32, xq)
        env = dict(name=name, metric=metric, n=n, dim=dim, nq=nq, sdir=sdir,
                   vec_base=vec_base, vec_queries=vec_queries, base_f32=base_f32,
                   q_f32=q_f32, xb=xb, xq=xq, space=space, faiss_metric=faiss_metric,
                   base=base, queries=queries, gt_dist=gt_dist)
        for M in self.o["Ms"]:
            try:
                self.sets.append(self.run_config(env, M))
            except BenchError as e:
                self.note_error("%s M=%d: %s" % (name, M, e))

    def run_config(self, e, M):
        o = self.o
        efc = o["efc"]
        res = {"set": e["name"], "metric": e["metric"], "n": e["n"], "dim": e["dim"],
               "queries": e["nq"], "M": M, "ef_construction": efc, "k": K,
               "hnswlib_space": e["space"], "builds": {}, "bytes": {}, "sweep": {},
               "at_recall": {}}
        print("-- %s, M=%d, efConstruction=%d --" % (e["name"], M, efc), flush=True)
        sdir = e["sdir"]
        searchers = {}
        cleanup = []
        try:
            # ---- builds
            if "vecutils" in self.sides:
                self.build_vec(e, M, res, searchers)
            if "hnswlib" in self.sides:
                self.build_native(e, M, res, searchers, cleanup)
            if "python" in self.sides:
                self.build_python(e, M, res, searchers)
            if "faiss" in self.sides:
                self.build_faiss(e, M, res, searchers)
            # ---- the ef sweep, sides interleaved
            self.sweep(e, res, searchers)
        finally:
            for c in cleanup:
                c()
            for f in os.listdir(sdir):
                if f.startswith(("idx.", "out.")):
                    os.unlink(os.path.join(sdir, f))
        self.report_config(res)
        return res

    # -- builds ---------------------------------------------------------
    def build_vec(self, e, M, res, searchers):
        sdir = e["sdir"]
        search_idx = None
        for t in self.o["build_threads"]:
            idx = os.path.join(sdir, "idx.vec.t%d" % t)
            argv = [self.vec("vec-build"), "-t", "hnsw", "-m", e["metric"], "-M", str(M),
                    "--ef-construction", str(self.o["efc"]), "--seed", str(self.o["seed"]),
                    "-j", str(t), "-q", "-o", idx, e["vec_base"]]
            try:
                _, wall, cpu = run_timed(argv)
            except BenchError as err:
                self.note_error("%s M=%d vec-build -j %d: %s" % (e["name"], M, t, err))
                continue
            size = os.path.getsize(idx)
            res["builds"].setdefault("vecutils", {})[str(t)] = {
                "wall_s": wall, "cpu_s": cpu, "timing": "whole vec-build process"}
            print("  vecutils   build -j %d: %7.2f s (whole process; CPU %.2f s), "
                  "index %.1f MB" % (t, wall, cpu, size / 1e6), flush=True)
            if search_idx is None:
                search_idx = idx
                res["bytes"]["vecutils"] = size
                try:
                    st = run([self.vec("vec-stat"), "--json", idx])
                    res["vec_stat"] = json.loads(st.stdout.decode().splitlines()[0])
                except (BenchError, ValueError, IndexError) as err:
                    res["vec_stat_error"] = str(err)
            else:
                os.unlink(idx)
        if search_idx:
            out = os.path.join(sdir, "out.vec.ivecs")
            argv_base = [self.vec("vec-query"), "-k", str(K), "-j", "1", "-F", "ivecs",
                         "-q", "--stats"]

            errpath = os.path.join(sdir, "out.vec.err")

            # Search-span timing times the second of two passes in one
            # process (benchlib.VEC_WARM); the first is kept as "cold".
            passes = 2 if VEC_SEARCH_TIME and bl.VEC_WARM else 1
            cold = {}

            def search(ef, idx=search_idx, out=out):
                argv = argv_base[:3] + ["--ef", str(ef)] + argv_base[3:] + [
                    idx] + [e["vec_queries"]] * passes
                nq = e["nq"]
                with open(out, "wb") as f, open(errpath, "wb") as err:
                    t0 = time.perf_counter()
                    p = subprocess.Popen(argv, stdout=f, stderr=err)
                    _, status, ru = os.wait4(p.pid, 0)
                    s = time.perf_counter() - t0
                p.returncode = rc = os.waitstatus_to_exitcode(status)
                if rc != 0:
                    with open(errpath, "rb") as err:
                        lines = err.read().decode(errors="replace").strip().splitlines()
                    raise BenchError("vec-query --ef %d exited %d: %s" % (
                        ef, rc, lines[-1] if lines else "(no message)"))
                if VEC_SEARCH_TIME:
                    # The search alone, as vec-query --stats reports it: the
                    # same span the in-process sides time (index loaded,
                    # queries in memory).
                    with open(errpath, "rb") as err:
                        tm = bl.vec_query_timing(err.read(), passes)
                    if tm:
                        if tm[2] is not None:
                            cold.setdefault(ef, []).append(tm[2])
                        return tm[0], tm[0], lambda: read_ivecs_ids(out, K)[:nq]
                return s, ru.ru_utime + ru.ru_stime, \
                    lambda: read_ivecs_ids(out, K)[:nq]
            search.cold = cold
            searchers["vecutils"] = search
            # The fixed cost in each vec-query timing (spawn, open, exit):
            # one process answering a single query, for scale.
            q1 = os.path.join(sdir, "query1.fvecs")
            bl.write_fvecs(q1, e["queries"][:1])
            one = []
            argv1 = [self.vec("vec-query"), "-k", str(K), "--ef", str(K), "-j", "1",
                     "-F", "ivecs", "-q", search_idx, q1]
            try:
                for i in range(self.o["repeat"] + 1):
                    t0 = time.perf_counter()
                    run(argv1)
                    if i:
                        one.append(time.perf_counter() - t0)
                res["vec_one_query_s"] = statistics.median(one)
                print("  vecutils   one vec-query process answering 1 query: %.1f ms "
                      "(the fixed cost in each timing)" % (res["vec_one_query_s"] * 1e3),
                      flush=True)
            except BenchError as err:
                self.note_error("%s vec-query on one query: %s" % (e["name"], err))

    def build_native(self, e, M, res, searchers, cleanup):
        sdir = e["sdir"]
        search_idx = None
        for t in self.o["build_threads"]:
            idx = os.path.join(sdir, "idx.hnswlib.t%d" % t)
            argv = [self.driver, "build", e["space"], str(e["dim"]), str(M),
                    str(self.o["efc"]), str(self.o["seed"]), str(t), e["base_f32"], idx]
            try:
                stdout, wall, cpu = run_timed(argv)
            except BenchError as err:
                self.note_error("%s M=%d native hnswlib build %d threads: %s"
                                % (e["name"], M, t, err))
                continue
            kv = dict(x.split("=") for x in stdout.decode().split())
            size = os.path.getsize(idx)
            res["builds"].setdefault("hnswlib", {})[str(t)] = {
                "build_s": float(kv["build_s"]), "save_s": float(kv["save_s"]),
                "process_wall_s": wall, "process_cpu_s": cpu,
                "timing": "insertion loop in process"}
            print("  hnswlib    build %d thr: %7.2f s (insertion; process %.2f s, "
                  "CPU %.2f s), saved %.1f MB" % (t, float(kv["build_s"]), wall, cpu,
                                                  size / 1e6), flush=True)
            if search_idx is None:
                search_idx = idx
                res["bytes"]["hnswlib"] = size
            else:
                os.unlink(idx)
        if search_idx:
            srv = NativeServer(self.driver, e["space"], e["dim"], search_idx, e["q_f32"])
            cleanup.append(srv.close)
            res["hnswlib_load_s"] = float(srv.info.get("load_s", "nan"))
            out = os.path.join(sdir, "out.hnswlib.ivecs")

            def search(ef, srv=srv, out=out):
                s, cpu = srv.search(ef, out)
                return s, cpu, lambda: read_ivecs_ids(out, K)
            searchers["hnswlib"] = search

    def cached(self, kind, e, M, t):
        """(index path, its build record or None) in BENCH_HNSW_CACHE, or
        (None, None) when there is no cache directory."""
        d = self.o["cache"]
        if not d:
            return None, None
        os.makedirs(d, exist_ok=True)
        ver = {"faiss": getattr(self.faiss, "__version__", "?"),
               "python": getattr(self.hnswlib_py, "__version__", "?")}[kind]
        name = "%s-%s-%s-%s-n%d-d%d-M%d-efc%d-seed%d-t%d" % (
            kind, ver, e["name"], e["metric"], e["n"], e["dim"], M, self.o["efc"],
            self.o["seed"], t)
        path = os.path.join(d, name + ".index")
        try:
            with open(path + ".json") as f:
                rec = json.load(f)
            if os.path.exists(path):
                return path, rec
        except (OSError, ValueError):
            pass
        return path, None

    @staticmethod
    def save_record(path, rec):
        if path:
            with open(path + ".json", "w") as f:
                json.dump(rec, f)

    def build_python(self, e, M, res, searchers):
        if self.hnswlib_py is None:
            return
        hl = self.hnswlib_py
        t = self.o["other_threads"]
        idx = hl.Index(space=e["space"], dim=e["dim"])
        cpath, rec = self.cached("python", e, M, t)
        if rec:
            idx.load_index(cpath, max_elements=e["n"])
            path = cpath
        else:
            idx.init_index(max_elements=e["n"], ef_construction=self.o["efc"], M=M,
                           random_seed=self.o["seed"])
            labels = np.arange(e["n"])
            t0 = time.perf_counter()
            idx.add_items(e["xb"], labels, num_threads=t)
            rec = {"build_s": time.perf_counter() - t0,
                   "timing": "add_items in process"}
            path = cpath or os.path.join(e["sdir"], "idx.python")
            idx.save_index(path)
            self.save_record(cpath, rec)
            rec = dict(rec, cached=False)
        size = os.path.getsize(path)
        res["builds"]["python"] = {str(t): rec}
        res["bytes"]["python"] = size
        print("  hnswlib-py build %d thr: %7.2f s (add_items%s), saved %.1f MB"
              % (t, rec["build_s"], "; cached from an earlier run"
                 if rec.get("cached", True) else "", size / 1e6), flush=True)
        xq = e["xq"]

        def search(ef, idx=idx):
            idx.set_ef(ef)
            c0 = time.process_time()
            t0 = time.perf_counter()
            ids, _ = idx.knn_query(xq, k=K, num_threads=1)
            s = time.perf_counter() - t0
            return s, time.process_time() - c0, lambda: ids.astype(np.int64)
        searchers["python"] = search

    def build_faiss(self, e, M, res, searchers):
        faiss = self.faiss
        t = self.o["other_threads"]
        cpath, rec = self.cached("faiss", e, M, t)
        if rec:
            index = faiss.read_index(cpath)
            path = cpath
        else:
            if e["faiss_metric"] == "ip":
                index = faiss.IndexHNSWFlat(e["dim"], M, faiss.METRIC_INNER_PRODUCT)
            else:
                index = faiss.IndexHNSWFlat(e["dim"], M)
            index.hnsw.efConstruction = self.o["efc"]
            faiss.omp_set_num_threads(t)
            t0 = time.perf_counter()
            index.add(e["xb"])
            rec = {"build_s": time.perf_counter() - t0, "timing": "index.add in process"}
            path = cpath or os.path.join(e["sdir"], "idx.faiss")
            faiss.write_index(index, path)
            self.save_record(cpath, rec)
            rec = dict(rec, cached=False)
        faiss.omp_set_num_threads(1)
        size = os.path.getsize(path)
        res["builds"]["faiss"] = {str(t): rec}
        res["bytes"]["faiss"] = size
        print("  faiss      build %d thr: %7.2f s (index.add%s), written %.1f MB"
              % (t, rec["build_s"], "; cached from an earlier run"
                 if rec.get("cached", True) else "", size / 1e6), flush=True)
        xq = e["xq"]

        def search(ef, index=index):
            faiss.omp_set_num_threads(1)
            index.hnsw.efSearch = ef
            c0 = time.process_time()
            t0 = time.perf_counter()
            _, ids = index.search(xq, K)
            s = time.perf_counter() - t0
            return s, time.process_time() - c0, lambda: ids
        searchers["faiss"] = search

    # -- the sweep ------------------------------------------------------
    def sweep(self, e, res, searchers):
        """sweep_here, every side on one CPU (BENCH_CPU)."""
        with bl.pinned(self.o["cpu"]):
            return self.sweep_here(e, res, searchers)

    def sweep_here(self, e, res, searchers):
        """For each ef, every side once per round (order rotated each
        round, so background load falls on all alike); round 0 is an
        untimed warm-up.  The ids of the last round give the recall."""
        sides = [s for s in ALL_SIDES if s in searchers]
        nq = e["nq"]
        rep = self.o["repeat"]
        for s in sides:
            res["sweep"][s] = []
        print("  sweep: ef %s; %d timed runs each, median" % (
            " ".join(map(str, self.o["ef"])), rep), flush=True)
        print("  %5s" % "ef" + "".join("  %10s %6s" % (SHORT[s] + " q/s", "rec")
                                      for s in sides), flush=True)
        failed = set()
        for ef in self.o["ef"]:
            times = {s: [] for s in sides}
            cpus = {s: [] for s in sides}
            last = {}
            for rnd in range(rep + 1):
                k = rnd % len(sides)
                order = sides[k:] + sides[:k]
                for s in order:
                    if s in failed:
                        continue
                    try:
                        sec, cpu, get_ids = searchers[s](ef)
                    except BenchError as err:
                        failed.add(s)
                        self.note_error("%s M=%d %s ef %d: %s" % (
                            e["name"], res["M"], s, ef, err))
                        continue
                    if rnd > 0:
                        times[s].append(sec)
                        cpus[s].append(cpu)
                    last[s] = get_ids
            cells = []
            for s in sides:
                if s in failed or not times[s]:
                    cells.append("  %10s %6s" % ("ERR", "-"))
                    continue
                ids = last[s]()
                if ids.shape[0] != nq:
                    failed.add(s)
                    self.note_error("%s M=%d %s ef %d: %d answers for %d queries" % (
                        e["name"], res["M"], s, ef, ids.shape[0], nq))
                    cells.append("  %10s %6s" % ("ERR", "-"))
                    continue
                med = statistics.median(times[s])
                cmed = statistics.median(cpus[s])
                rec = bl.recall_at_k(e["base"], e["queries"], ids, e["gt_dist"],
                                     e["metric"], K)
                pt = {"ef": ef, "s": med, "s_all": times[s], "cpu_s": cmed,
                      "cpu_s_all": cpus[s], "qps_wall": nq / med,
                      "qps_cpu": nq / cmed if cmed > 0 else None, "recall": rec}
                pt["qps"] = pt["qps_" + self.o["clock"]] or pt["qps_wall"]
                cold = getattr(searchers[s], "cold", {}).get(ef)
                if cold:  # the first pass of vec-query (VEC_WARM)
                    pt["cold_s"] = statistics.median(cold[1:] or cold)
                    pt["cold_qps"] = nq / pt["cold_s"]
                res["sweep"][s].append(pt)
                cells.append("  %10.0f %6.4f" % (pt["qps"], rec))
            print("  %5d" % ef + "".join(cells), flush=True)
        other = "cpu" if self.o["clock"] == "wall" else "wall"
        res["clock"] = self.o["clock"]
        res["at_recall_" + other] = {}
        for s in sides:
            for key, field in (("at_recall", "qps"), ("at_recall_" + other, "qps_" + other)):
                pts = [(p["recall"], p[field]) for p in res["sweep"][s] if p[field]]
                res[key][s] = {}
                for r in TARGETS:
                    v, how = qps_at(pts, r)
                    res[key][s]["%.2f" % r] = {"qps": v, "how": how}
        res["ratio_vec_native_" + other] = {}
        for r in TARGETS:
            key = "%.2f" % r
            a = res["at_recall_" + other].get("vecutils", {}).get(key, {})
            b = res["at_recall_" + other].get("hnswlib", {}).get(key, {})
            res["ratio_vec_native_" + other][key] = (
                a["qps"] / b["qps"] if a.get("qps") and b.get("qps") else None)
        res["ratio_vec_native"] = {}
        res["ratio_vec_native_how"] = {}
        for r in TARGETS:
            key = "%.2f" % r
            a = res["at_recall"].get("vecutils", {}).get(key, {})
            b = res["at_recall"].get("hnswlib", {}).get(key, {})
            ratio, how = None, None
            if a.get("qps") and b.get("qps"):
                ratio = a["qps"] / b["qps"]
                how = "=" if a["how"] == "=" and b["how"] == "=" else "bound"
            res["ratio_vec_native"][key] = ratio
            res["ratio_vec_native_how"][key] = how

    # -- output ---------------------------------------------------------
    def report_config(self, res):
        print("  q/s at recall@%d (log-linear between sweep points on the "
              "recall/speed frontier; '>' = already above at the smallest ef):"
              % K)
        print("  %-40s" % "" + "".join("%12s" % ("r=%.2f" % r) for r in TARGETS))
        for s in ALL_SIDES:
            if s not in res["at_recall"]:
                continue
            row = res["at_recall"][s]
            print("  %-40s" % LABEL[s] + "".join(
                "%12s" % fmt_qps(row["%.2f" % r]["qps"], row["%.2f" % r]["how"])
                for r in TARGETS))
        if "vecutils" in res["at_recall"] and "hnswlib" in res["at_recall"]:
            print("  %-40s" % "vecutils / hnswlib native (target >= 2)" + "".join(
                "%12s" % fmt_ratio(res, "%.2f" % r) for r in TARGETS))
        cold = bl.report_first_pass(res["sweep"].get("vecutils", []),
                                    res["at_recall"].get("hnswlib"), TARGETS, 40,
                                    "vecutils, first pass",
                                    "vecutils first pass / hnswlib native")
        if cold:
            res["vec_cold_at_recall"] = cold
        sys.stdout.flush()

    def plot(self, res, plot_dir):
        if not shutil.which("gnuplot"):
            return None
        tag = "%s-M%d" % (res["set"], res["M"])
        png = os.path.join(plot_dir, "hnsw-%s.png" % tag)
        curves = [(LABEL[s], [(p["recall"], p["qps"], p["ef"])
                              for p in res["sweep"][s]])
                  for s in ALL_SIDES if res["sweep"].get(s)]
        if not curves:
            return None
        title = ("%s (%s, n=%d, d=%d): recall@%d vs queries/s, k=%d, M=%d, "
                 "efConstruction=%d, 1 thread" % (
                     res["set"], res["metric"], res["n"], res["dim"], K, K, res["M"],
                     res["ef_construction"]))
        note = "vecutils: %s; others: search call in process" % (
            ("search time (vec-query --stats%s)" %
             (", second pass" if bl.VEC_WARM else "")) if VEC_SEARCH_TIME else
            "whole vec-query process per 1000 queries")
        why = bl.plot_recall_qps(
            png, title, curves,
            "queries per second (%s time; log scale)" % self.o["clock"], note,
            self.tmp)
        if why:
            self.note_error("gnuplot for %s: %s" % (tag, why))
            return None
        return png


def fmt_ratio(res, key):
    v = res.get("ratio_vec_native", {}).get(key)
    if not v:
        return "n/a"
    return "%.2fx%s" % (v, "*" if res["ratio_vec_native_how"][key] != "=" else "")


def summary(sets, clock):
    other = "cpu" if clock == "wall" else "wall"
    print("\n==== HNSW summary: k=%d, 1 search thread ====" % K)
    print("q/s (%s time) at recall@%d ('>' = above the target already at the "
          "smallest ef, the q/s there; n/a = never reached;" % (clock, K))
    print("vec/native with '*': a side's value is such a bound, not an "
          "interpolation; last column: the same ratio in %s time)" % other)
    cols = [s for s in ALL_SIDES if any(s in r["at_recall"] for r in sets)]
    head = "%-14s %3s %5s" % ("set", "M", "rec") + "".join(
        "%11s" % SHORT[s] for s in cols) + "  vec/native  (%s)" % other
    print(head)
    for r in sets:
        for t in TARGETS:
            key = "%.2f" % t
            cells = []
            for s in cols:
                a = r["at_recall"].get(s, {}).get(key)
                cells.append("%11s" % (fmt_qps(a["qps"], a["how"]) if a else "-"))
            alt = r.get("ratio_vec_native_" + other, {}).get(key)
            print("%-14s %3d %5s" % (r["set"], r["M"], key) + "".join(cells) +
                  "  %10s" % fmt_ratio(r, key) +
                  "  %7s" % ("%.2fx" % alt if alt else "n/a"))
    fixed = [(r["set"], r["M"], r["vec_one_query_s"]) for r in sets
             if r.get("vec_one_query_s")]
    if fixed:
        print("vecutils fixed cost per vec-query process (1 query): " + ", ".join(
            "%s M=%d %.1f ms" % (a, m, v * 1e3) for a, m, v in fixed))
    print("\nBuild time, seconds (vecutils: whole vec-build process; hnswlib "
          "native: insertion loop; python/FAISS: add call;")
    print("CPU = user+system time of the whole process, all threads: a "
          "1-thread build's CPU time is little disturbed by other load)")
    print("%-14s %3s  %-10s %s" % ("set", "M", "side", "threads: seconds"))
    for r in sets:
        for s in ALL_SIDES:
            b = r["builds"].get(s)
            if not b:
                continue
            print("%-14s %3d  %-10s %s" % (r["set"], r["M"], SHORT[s], "  ".join(
                "%s thr: %6.2f%s" % (t, v.get("wall_s", v.get("build_s")),
                                     " (CPU %6.2f)" % v.get("cpu_s", v.get("process_cpu_s"))
                                     if v.get("cpu_s", v.get("process_cpu_s")) else "")
                for t, v in sorted(b.items(), key=lambda kv: int(kv[0])))))
    print("\nIndex bytes on disk (vecutils index file; hnswlib saveIndex; "
          "FAISS write_index)")
    print("%-14s %3s" % ("set", "M") + "".join("%14s" % SHORT[s] for s in cols) +
          "  vec/native")
    for r in sets:
        b = r["bytes"]
        ratio = (b["vecutils"] / b["hnswlib"]) if b.get("vecutils") and b.get("hnswlib") \
            else None
        print("%-14s %3d" % (r["set"], r["M"]) + "".join(
            "%14s" % (b[s] if s in b else "-") for s in cols) +
            "  %10s" % ("%.3f" % ratio if ratio else "-"))
        vs = r.get("vec_stat")
        if vs and vs.get("sections"):
            print("%-18s vecutils sections: %s" % ("", ", ".join(
                "%s %d" % (x.get("id"), x.get("length", 0)) for x in vs["sections"])))


def main():
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        sys.stderr.write("usage: bench_hnsw.py DATA_DIR\n")
        return 2
    data_dir = sys.argv[1]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    vec_bin = os.environ.get("VEC_BIN") or os.path.join(repo, "bin")
    sets = env_list("BENCH_HNSW_SETS", os.environ.get("BENCH_SETS",
                                                      "glove-100 fashion-mnist mnist"))
    build_threads = [int(x) for x in env_list("BENCH_HNSW_BUILD_THREADS", "1 2")]
    try:
        cpu = bl.search_cpu()
    except bl.BenchError as err:
        sys.stderr.write("bench_hnsw.py: %s\n" % err)
        return 2
    opts = {
        "repeat": max(1, int(os.environ.get("BENCH_REPEAT", "5"))),
        "cpu": cpu,
        "Ms": [int(x) for x in env_list("BENCH_HNSW_M", "16")],
        "efc": int(os.environ.get("BENCH_HNSW_EFC", "200")),
        "ef": [int(x) for x in env_list("BENCH_HNSW_EF", DEFAULT_EF)],
        "build_threads": build_threads,
        "other_threads": int(os.environ.get("BENCH_HNSW_OTHER_BUILD_THREADS",
                                            str(max(build_threads)))),
        "queries": int(os.environ.get("BENCH_HNSW_QUERIES", "1000")),
        "seed": int(os.environ.get("BENCH_HNSW_SEED", "1")),
        "clock": os.environ.get("BENCH_HNSW_CLOCK", "wall"),
        "cache": os.environ.get("BENCH_HNSW_CACHE", ""),
        "sides": [s for s in env_list("BENCH_HNSW_SIDES", " ".join(ALL_SIDES))
                  if s in ALL_SIDES],
    }
    if opts["clock"] not in ("wall", "cpu"):
        sys.stderr.write("bench_hnsw: BENCH_HNSW_CLOCK must be wall or cpu\n")
        return 2
    plot_dir = os.environ.get("BENCH_PLOT_DIR", "bench-plots")
    out_path = os.environ.get("BENCH_OUT", "bench-results.json")
    merge = os.environ.get("BENCH_HNSW_MERGE", "0") not in ("", "0")

    import faiss
    notes = []
    hl = None
    if "python" in opts["sides"]:
        try:
            import hnswlib as hl
        except ImportError:
            hint("bench: python hnswlib is missing; the python side is skipped.\n"
                 "    apt-get install -y python3-hnswlib")
            opts["sides"].remove("python")
            notes.append("python3-hnswlib missing: python side skipped")
    bl.drop_vec_side(opts["sides"], vec_bin, "hnsw", notes)
    if not shutil.which("gnuplot"):
        hint("bench: gnuplot is missing; no plots.\n    apt-get install -y gnuplot-nox")
        notes.append("gnuplot missing: no plots")

    meta = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "loadavg_start": bl.loadavg(), "cpu": bl.cpu_model(), "cpus": bl.ncpus(),
        "numpy": np.__version__, "faiss": getattr(faiss, "__version__", "?"),
        "hnswlib_python": getattr(hl, "__version__", None) if hl else None,
        "k": K, "repeat": opts["repeat"], "statistic": "median",
        "search_cpu": opts["cpu"],
        "sides": opts["sides"], "labels": LABEL, "targets": list(TARGETS),
        "options": {k: v for k, v in opts.items() if k != "sides"},
        "native_build": "g++ -O3 -march=native -std=c++11 -pthread scripts/hnswlib_bench.cpp",
        "vec_timing": VEC_TIMING,
        "hnswlib_timing": "searchKnn loop over the queries in process, index loaded",
        "python_timing": "knn_query(num_threads=1) in process",
        "faiss_timing": "index.search in process, omp threads 1",
        "interpolation": "log-linear q/s between the two recall/speed frontier "
                         "points around the target recall",
        "notes": notes,
    }
    print("HNSW: vecutils vs hnswlib (native and Debian python) vs FAISS %s; "
          "k=%d, M %s, efConstruction %d, 1 search thread, median of %d runs"
          % (meta["faiss"], K, " ".join(map(str, opts["Ms"])), opts["efc"],
             opts["repeat"]))
    print("CPU: %s, %d threads available; load average %.2f; searches on %s" % (
        meta["cpu"], meta["cpus"], meta["loadavg_start"] or 0,
        "CPU %d (BENCH_CPU)" % opts["cpu"] if opts["cpu"] is not None
        else "any CPU"))
    print("vecutils time = %s;" % VEC_TIMING)
    print("others = the search call in process on a loaded index (queries already "
          "normalised for cosine).")
    print("q/s from %s time (BENCH_HNSW_CLOCK); the other clock is in the JSON "
          "and the summary's last column." % opts["clock"])

    def on_term(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)

    plots = []
    with tempfile.TemporaryDirectory(prefix="vecbench-hnsw.") as tmp:
        b = HnswBench(data_dir, vec_bin, tmp, opts)
        b.hnswlib_py = hl
        b.sides = opts["sides"]
        if "hnswlib" in b.sides:
            try:
                b.compile_driver()
            except (BenchError, OSError) as e:
                b.note_error(str(e))
                b.sides.remove("hnswlib")
        for s in sets:
            if not os.path.isdir(os.path.join(data_dir, s)):
                print("\n%s: not found in %s, skipped" % (s, data_dir))
                b.errors.append("%s: data set not found" % s)
                continue
            try:
                b.run_set(s)
            except (BenchError, ValueError, OSError) as e:
                b.note_error("%s: %s" % (s, e))
            for r in b.sets:
                if r["set"] == s and "plot" not in r:
                    r["plot"] = b.plot(r, plot_dir)
                    if r["plot"]:
                        plots.append(r["plot"])
                        print("  plot: %s" % r["plot"], flush=True)
        summary(b.sets, opts["clock"])
        meta["loadavg_end"] = bl.loadavg()
        print("load average (1 min): %.2f at start, %.2f at end (sides are timed "
              "alternately, so background load falls on all)" % (
                  meta["loadavg_start"] or 0, meta["loadavg_end"] or 0))
        if plots:
            print("plots: " + " ".join(plots))
        result = {"meta": meta, "sets": b.sets, "errors": b.errors, "plots": plots}
        bl.write_results(out_path, "hnsw", result, merge)
        print("results written to %s%s" % (out_path, " (key \"hnsw\")" if merge else ""))
        if b.errors:
            print("errors:\n  " + "\n  ".join(b.errors))
        return 1 if b.errors else 0


if __name__ == "__main__":
    sys.exit(main())
