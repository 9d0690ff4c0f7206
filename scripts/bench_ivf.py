#!/usr/bin/python3
"""Inverted-file indexes (IVF): vecutils against FAISS at equal parameters.

Run through scripts/bench (BENCH_PART=ivf or all), or directly:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        VEC_BIN=bin /usr/bin/python3 scripts/bench_ivf.py DATA_DIR

Needs numpy and faiss (Debian: python3-numpy python3-faiss); optional:
gnuplot (the plots).  Shares loading, recall, the frontier interpolation and
the plots with the other parts (scripts/benchlib.py).

Methods, each a vecutils index against the FAISS index it matches, with the
same nlist, the same code bytes per vector and the same number of training
vectors; k=10, one search thread on both sides, nprobe swept:
  flat   vec-build -t ivf                          FAISS IndexIVFFlat
  pq8    vec-build -t ivfpq --pq M --pq-bits 8     FAISS IndexIVFPQ, M x 8 bits
  pq4    vec-build -t ivfpq --pq 2M --pq-bits 4    FAISS IndexIVFPQFastScan,
                                                     2M x 4 bits (M bytes)
  pq4r   vec-build -t ivfpq --pq 2M --pq-bits 4    the same in an
           --refine R                                IndexRefineFlat, k_factor R
  sq8    vec-build -t ivfsq8                       FAISS IndexIVFScalarQuantizer
                                                     QT_8bit
Every build also gets -m, --nlist N, --train-size T, --seed and -j.  The
queries of the coded methods without re-ranking pass --refine 0 to
vec-query, pq4r passes --refine R.  Where vec-build or vec-query refuses a
method's options (exit status 2), or vec-build says it has no such payload
(a vecutils without that index type), that vecutils method is skipped with
a one-line note; where vec-query refuses only "--refine 0", the query is
retried without it.
Cosine sets: FAISS gets L2-normalised base and queries (normalised before any
clock starts) and METRIC_INNER_PRODUCT, vecutils -m cos; l2 sets: METRIC_L2
and -m l2.  Both sides train on the same vectors: vec-build given --nlist
trains on the first --train-size vectors, and FAISS is given those; each
keeps its own k-means settings (FAISS: 25 iterations).  FAISS codes residuals
(its default) for pq8, pq4 and sq8.

What is timed:
  vecutils  the search span vec-query --stats reports ("... s searching": the
            index open and the queries read, as on the FAISS side; cosine
            queries are normalised inside it), of the second of two passes
            over the queries in one process (the query file given twice),
            so that both sides search an index whose pages their process
            has touched: FAISS builds its index in process, while vec-query
            maps the file and pays the first touch of each page it reads
            inside its first pass (on some virtual machines about 1 us per
            4 KiB page).  The first pass is reported too ("vec 1st pass"),
            and kept in the JSON as cold_s; BENCH_VEC_WARM=0 times a single
            pass.  The process wall time is kept in the JSON.  Build: the whole vec-build process (wall and
            CPU), its peak RSS (wait4's ru_maxrss, the figure /usr/bin/time
            -v prints as "Maximum resident set size") against the raw data,
            n x d x 4 bytes.
  FAISS     index.search() in this process on a built index, OpenMP and
            OpenBLAS threads 1.  Build: index.train() + index.add() in
            process, on vectors already in memory.
Medians over BENCH_REPEAT timed runs after one untimed warm-up; the two sides
of a method alternate, so background load falls on both.

Reported per method and nprobe: recall@10 (tie-aware, against gt_dist) and
q/s; then q/s at recall 0.90 and 0.95, interpolated log-linearly on the
recall/speed frontier, and the ratio vecutils/FAISS; the q/s ratio at equal
nprobe (the IVF-Flat one is the like-for-like scan comparison); build times;
index bytes (the vecutils file against faiss.write_index's); for the 4-bit
scans the code bytes streamed per second (vectors scanned x code bytes /
search time) against 30 GB/s: FAISS counts the vectors scanned in
faiss.cvar.indexIVF_stats.ndis, vecutils when vec-query --stats reports
"scanned N" (else "-").  One recall/q/s plot per data set.

Environment:
  VEC_BIN               directory of vec-build / vec-query / vec-stat (bin/)
  BENCH_IVF_SETS        data sets (default: BENCH_SETS, else
                        "glove-100 fashion-mnist")
  BENCH_IVF_METHODS     methods to run (default "flat pq8 pq4 pq4r sq8")
  BENCH_IVF_SIDES       "vecutils faiss" (default) or one of them
  BENCH_IVF_NLIST       lists: N for every set, or SET=N words (default
                        glove-100=1265 fashion-mnist=980; other sets
                        4 sqrt(n), as vec-build)
  BENCH_IVF_PQ          M, the 8-bit sub-quantisers (bytes per code); the
                        4-bit methods use 2M.  N or SET=N words (default
                        glove-100=25 fashion-mnist=98; other sets a divisor
                        of d/2 near d/4)
  BENCH_IVF_TRAIN       training vectors: N or SET=N words (default
                        BENCH_IVF_TRAIN_PER_LIST x nlist, at most n)
  BENCH_IVF_TRAIN_PER_LIST  (64)
  BENCH_IVF_REFINE      R: pq4r re-ranks R x k candidates (10)
  BENCH_IVF_NPROBE      the sweep (default "1 2 4 8 16 32 64 128 256";
                        values above nlist are dropped)
  BENCH_IVF_QUERIES     queries used (1000)
  BENCH_IVF_BUILD_THREADS  thread counts for the builds of both sides
                        (default "1 C", C the CPUs available); the index
                        searched is the one built with the first
  BENCH_IVF_SEED        vec-build --seed (42)
  BENCH_IVF_STOP_RECALL  stop a method's sweep once both sides reach this
                        recall (default 1.01: never)
  BENCH_IVF_MAX_SECONDS  stop a method's sweep after a point whose median
                        search took longer than this (default: no limit)
  BENCH_IVF_SCAN_ALL    the 4-bit methods also search every list (nprobe =
                        nlist) once the sweep ends, for the scan rate: the
                        per-query work spread over every code (default 1;
                        0: not)
  BENCH_REPEAT          timed runs per point; the median is used (5)
  BENCH_CPU             the CPU both sides' searches run on (default: the
                        first one allowed; "none": wherever the scheduler
                        puts them).  Builds are not pinned.
  BENCH_PLOT_DIR        where the PNG plots go (bench-plots/ivf-SET.png)
  BENCH_OUT             JSON results file (default bench-results.json); the
                        results go under the key "ivf", added to the file
                        when BENCH_IVF_MERGE=1 (scripts/bench sets it for
                        BENCH_PART=all)
  BENCH_FAISS_ONLY=1    leave out the vecutils side
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import math  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
from benchlib import K, BW_BOUND, BenchError, fmt_qps, qps_at  # noqa: E402

TARGETS = (0.90, 0.95)
METHODS = ("flat", "pq8", "pq4", "pq4r", "sq8")
SIDES = ("vecutils", "faiss")
DEFAULT_NPROBE = "1 2 4 8 16 32 64 128 256"
DEFAULT_NLIST = {"glove-100": 1265, "fashion-mnist": 980}
DEFAULT_PQ = {"glove-100": 25, "fashion-mnist": 98}
NAME = {"flat": "IVF-Flat", "pq8": "IVF-PQ 8-bit", "pq4": "IVF-PQ 4-bit",
        "pq4r": "IVF-PQ 4-bit + refine", "sq8": "IVF-SQ8"}
FAISS_NAME = {"flat": "IndexIVFFlat", "pq8": "IndexIVFPQ",
              "pq4": "IndexIVFPQFastScan", "pq4r": "IVFPQFastScan+RefineFlat",
              "sq8": "IndexIVFScalarQuantizer"}
COLOUR = {"flat": 1, "pq8": 2, "pq4": 3, "pq4r": 4, "sq8": 7}


def hint(msg):
    sys.stderr.write(msg.rstrip() + "\n")


def per_set(name, setting, default):
    """The value of a per-set setting: "N" for all sets or "SET=N" words;
    default (an int or None) when the set is not named."""
    words = os.environ.get(setting, "").split()
    for w in words:
        if "=" in w:
            k, v = w.split("=", 1)
            if k == name:
                return int(v)
        else:
            return int(w)
    return default


def pick_pq(dim):
    """A default M for sets without one: the divisor of dim / 2 nearest
    dim / 4 (so that 2M, the 4-bit count, divides dim too)."""
    if dim % 2:
        return None
    divs = [m for m in range(1, dim // 2 + 1) if (dim // 2) % m == 0]
    return min(divs, key=lambda m: (abs(m - dim / 4.0), -m))


class Skip(Exception):
    """vecutils refused a method's options: skip that side of the method."""


class IvfBench:
    def __init__(self, data_dir, vec_bin, tmp, opts):
        import faiss
        self.faiss = faiss
        self.data_dir = data_dir
        self.vec_bin = vec_bin
        self.tmp = tmp
        self.o = opts
        self.errors = []
        self.notes = []
        self.sets = []
        self.blas = bl.openblas_info().get("handle")

    def vec(self, name):
        return os.path.join(self.vec_bin, name)

    def note_error(self, msg):
        print("  ERROR: " + msg, flush=True)
        self.errors.append(msg)

    def note(self, msg):
        print("  note: " + msg, flush=True)
        self.notes.append(msg)

    def set_threads(self, t):
        """FAISS threads: its OpenMP loops and the OpenBLAS pool under them
        (k-means and the coarse quantiser's batch search use BLAS)."""
        self.faiss.omp_set_num_threads(t)
        if self.blas is not None:
            self.blas.openblas_set_num_threads(t)

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
        if metric == "ip":
            raise BenchError("%s: metric ip is not benchmarked here" % name)
        nlist = min(n, per_set(name, "BENCH_IVF_NLIST", DEFAULT_NLIST.get(name)) or
                    max(1, int(round(4 * math.sqrt(n)))))
        m8 = per_set(name, "BENCH_IVF_PQ", DEFAULT_PQ.get(name)) or pick_pq(dim)
        train = per_set(name, "BENCH_IVF_TRAIN", None) or \
            self.o["train_per_list"] * nlist
        train = max(1, min(n, train))
        R = self.o["refine"]
        nprobes = [p for p in self.o["nprobe"] if p <= nlist]
        print("\n== %s: %d x %d, metric %s, %d queries; nlist %d, train %d, "
              "PQ %d x 8 bits / %d x 4 bits (%d code bytes), refine %d ==" % (
                  name, n, dim, metric, nq, nlist, train, m8 or 0, 2 * (m8 or 0),
                  m8 or 0, R), flush=True)

        sdir = os.path.join(self.tmp, name)
        os.makedirs(sdir, exist_ok=True)
        # vecutils reads an uncompressed base (no gunzip in its build time)
        # and the original, unnormalised vectors.
        if base_path.endswith(".gz"):
            vec_base = os.path.join(sdir, "base.fvecs")
            bl.write_fvecs(vec_base, base)
        else:
            vec_base = base_path
        vec_queries = os.path.join(sdir, "query.fvecs")
        bl.write_fvecs(vec_queries, queries)
        if metric == "cos":
            xb, xq = bl.normalise(base), bl.normalise(queries)
        else:
            xb, xq = base, queries
        # vec-build given --nlist trains on the first --train-size vectors:
        # FAISS gets the same ones.
        xt = np.ascontiguousarray(xb[:train])
        e = dict(name=name, metric=metric, n=n, dim=dim, nq=nq, nlist=nlist,
                 m8=m8, train=train, R=R, sdir=sdir, vec_base=vec_base,
                 vec_queries=vec_queries, xb=xb, xq=xq, xt=xt, base=base,
                 queries=queries, gt_dist=gt_dist, nprobes=nprobes)
        res = {"set": name, "metric": metric, "n": n, "dim": dim, "queries": nq,
               "k": K, "nlist": nlist, "pq_m_8bit": m8, "pq_m_4bit": 2 * m8 if m8 else None,
               "train": train, "refine": R, "nprobe": nprobes,
               "raw_bytes": n * dim * 4, "methods": {}}
        self.sets.append(res)
        for m in self.o["methods"]:
            if m in ("pq8", "pq4", "pq4r") and (not m8 or dim % (2 * m8 if m != "pq8"
                                                                 else m8)):
                self.note("%s: M=%s does not divide d=%d: %s skipped"
                          % (name, m8, dim, NAME[m]))
                continue
            try:
                res["methods"][m] = self.run_method(e, m)
            except BenchError as err:
                self.note_error("%s %s: %s" % (name, NAME[m], err))
        return res

    # -- one method: both builds, then the sweep -------------------------
    def run_method(self, e, m):
        code = {"flat": 4 * e["dim"], "pq8": e["m8"], "pq4": e["m8"],
                "pq4r": e["m8"], "sq8": e["dim"]}[m]
        mres = {"method": m, "faiss_index": FAISS_NAME[m], "code_bytes": code,
                "builds": {}, "bytes": {}, "sweep": {}, "at_recall": {},
                "ratio_at_recall": {}, "ratio_equal_nprobe": []}
        print("-- %s %s: vecutils vs FAISS %s, %d code bytes per vector --" % (
            e["name"], NAME[m], FAISS_NAME[m], code), flush=True)
        searchers = {}
        if "vecutils" in self.o["sides"]:
            try:
                searchers["vecutils"] = self.build_vec(e, m, mres)
            except Skip as why:
                self.note("%s: vecutils %s skipped (%s)" % (e["name"], NAME[m], why))
                mres["vec_skipped"] = str(why)
            except BenchError as err:
                self.note_error("%s %s: vecutils: %s" % (e["name"], NAME[m], err))
                mres["vec_error"] = str(err)
        if "faiss" in self.o["sides"]:
            try:
                searchers["faiss"] = self.build_faiss(e, m, mres)
            except RuntimeError as err:  # faiss's C++ exceptions
                self.note_error("%s %s: FAISS: %s" % (e["name"], NAME[m],
                                                      str(err).splitlines()[-1]))
                mres["faiss_error"] = str(err)
        if not searchers:
            return mres
        self.sweep(e, m, mres, searchers)
        self.finish(mres)
        self.report_method(mres)
        for f in os.listdir(e["sdir"]):
            if f.startswith(("idx.", "out.")):
                os.unlink(os.path.join(e["sdir"], f))
        return mres

    # -- vecutils ---------------------------------------------------------
    def vec_build_argv(self, e, m, t, out):
        argv = [self.vec("vec-build")]
        argv += {"flat": ["-t", "ivf"],
                 "pq8": ["-t", "ivfpq", "--pq", str(e["m8"]), "--pq-bits", "8"],
                 "pq4": ["-t", "ivfpq", "--pq", str(2 * e["m8"]), "--pq-bits", "4"],
                 "pq4r": ["-t", "ivfpq", "--pq", str(2 * e["m8"]), "--pq-bits", "4",
                          "--refine", str(e["R"])],
                 "sq8": ["-t", "ivfsq8"]}[m]
        argv[3:3] = ["--nlist", str(e["nlist"])]
        return argv + ["-m", e["metric"], "--train-size", str(e["train"]),
                       "--seed", str(self.o["seed"]), "-j", str(t), "-q", "-o", out,
                       e["vec_base"]]

    @staticmethod
    def options(argv):
        """The options of a command line, for a note: argv without the
        program, the files and the settings every build has."""
        skip_next = {"-o", "-m", "--seed", "-j", "--train-size"}
        out, it = [], iter(argv[1:-1])
        for a in it:
            if a in skip_next:
                next(it, None)
            elif a != "-q":
                out.append(a)
        return " ".join(out)

    def build_vec(self, e, m, mres):
        """Build with each thread count; returns the search callable for the
        index built with the first.  Raises Skip when vec-build refuses the
        method's options (exit status 2, a usage error)."""
        search_idx = None
        for t in self.o["build_threads"]:
            idx = os.path.join(e["sdir"], "idx.vec.%s.t%d" % (m, t))
            argv = self.vec_build_argv(e, m, t, idx)
            r = bl.run_measured(argv, rss=True)
            # Refused: a usage error (exit 2: an unknown type or option), or
            # a build of vecutils without that payload compiled in.
            if r.rc == 2 or (r.rc == 1 and re.search(
                    rb"has no \S+ payload|not supported|unsupported", r.stderr)):
                raise Skip("vec-build refuses '%s': %s" % (self.options(argv),
                                                           bl.first_line(r.stderr)))
            if r.rc != 0:
                raise BenchError("vec-build -j %d exited %d: %s" % (
                    t, r.rc, bl.last_line(r.stderr)))
            size = os.path.getsize(idx)
            rec = {"wall_s": r.wall, "cpu_s": r.cpu, "peak_rss": r.maxrss,
                   "peak_rss_over_raw": r.maxrss / (e["n"] * e["dim"] * 4.0)
                   if r.maxrss else None,
                   "argv": self.options(argv), "timing": "whole vec-build process"}
            mres["builds"].setdefault("vecutils", {})[str(t)] = rec
            print("  vecutils build -j %d: %7.2f s (whole process; CPU %.2f s), peak "
                  "RSS %s, index %.1f MB" % (
                      t, r.wall, r.cpu, "%.0f MB = %.2fx the raw vectors" % (
                          r.maxrss / 1e6, rec["peak_rss_over_raw"])
                      if r.maxrss else "not measured (no /usr/bin/time)",
                      size / 1e6), flush=True)
            if search_idx is None:
                search_idx = idx
                mres["bytes"]["vecutils"] = size
                mres["vec_argv"] = self.options(argv)
                try:
                    st = bl.run([self.vec("vec-stat"), idx])
                    mres["vec_stat"] = st.stdout.decode(errors="replace")
                except BenchError as err:
                    mres["vec_stat_error"] = str(err)
            else:
                os.unlink(idx)
        return self.vec_searcher(e, m, search_idx)

    def vec_searcher(self, e, m, idx):
        out = os.path.join(e["sdir"], "out.vec.ivecs")
        refine = {"pq4r": ["--refine", str(e["R"])], "flat": []}.get(m, ["--refine", "0"])
        state = {"refine": refine}

        passes = 2 if bl.VEC_WARM else 1

        def search(nprobe):
            argv = [self.vec("vec-query"), "-k", str(K), "-j", "1", "-F", "ivecs", "-q",
                    "--stats", "--nprobe", str(nprobe)] + state["refine"] + \
                [idx] + [e["vec_queries"]] * passes
            r = bl.run_measured(argv, out)
            if r.rc == 2 and state["refine"] == ["--refine", "0"] and \
                    b"refine" in r.stderr:
                self.note("%s: vec-query refuses --refine 0 (%s); %s queried with "
                          "the index's default" % (e["name"], bl.first_line(r.stderr),
                                                   NAME[m]))
                state["refine"] = []
                return search(nprobe)
            if r.rc == 2:
                raise Skip("vec-query refuses '%s': %s" % (
                    " ".join(argv[8:-2]), bl.first_line(r.stderr)))
            if r.rc != 0:
                raise BenchError("vec-query --nprobe %d exited %d: %s" % (
                    nprobe, r.rc, bl.last_line(r.stderr)))
            tm = bl.vec_query_timing(r.stderr, passes)
            info = {"process_s": r.wall, "process_cpu_s": r.cpu,
                    "scanned": tm[1] if tm else None}
            if tm:
                s = tm[0]
                info["timing"] = "search, second pass" if tm[2] is not None \
                    else "search"
                if tm[2] is not None:
                    info["cold_s"] = tm[2]
            else:
                s = r.wall
                info["timing"] = "process"
            nq = e["nq"]
            return s, info, lambda: bl.read_ivecs_ids(out, K)[:nq]
        return search

    # -- FAISS ------------------------------------------------------------
    def faiss_index(self, e, m):
        faiss = self.faiss
        d = e["dim"]
        ip = e["metric"] == "cos"
        fm = faiss.METRIC_INNER_PRODUCT if ip else faiss.METRIC_L2
        q = faiss.IndexFlatIP(d) if ip else faiss.IndexFlatL2(d)
        nl = e["nlist"]
        if m == "flat":
            idx = faiss.IndexIVFFlat(q, d, nl, fm)
        elif m == "pq8":
            idx = faiss.IndexIVFPQ(q, d, nl, e["m8"], 8, fm)
        elif m in ("pq4", "pq4r"):
            idx = faiss.IndexIVFPQFastScan(q, d, nl, 2 * e["m8"], 4, fm)
        else:
            idx = faiss.IndexIVFScalarQuantizer(q, d, nl, faiss.ScalarQuantizer.QT_8bit,
                                                fm)
        return idx  # (faiss's Python constructors keep q referenced)

    def build_faiss(self, e, m, mres):
        faiss = self.faiss
        keep = None
        for t in self.o["build_threads"]:
            self.set_threads(t)
            ivf = self.faiss_index(e, m)
            c0 = time.process_time()
            t0 = time.perf_counter()
            ivf.train(e["xt"])
            t1 = time.perf_counter()
            top = ivf
            if m == "pq4r":
                top = faiss.IndexRefineFlat(ivf)
                top.k_factor = float(e["R"])
            top.add(e["xb"])
            t2 = time.perf_counter()
            rec = {"build_s": t2 - t0, "train_s": t1 - t0, "add_s": t2 - t1,
                   "cpu_s": time.process_time() - c0,
                   "timing": "index.train + index.add in process"}
            mres["builds"].setdefault("faiss", {})[str(t)] = rec
            print("  faiss    build %d thr: %7.2f s (train %.2f + add %.2f; CPU %.2f s)"
                  % (t, rec["build_s"], rec["train_s"], rec["add_s"], rec["cpu_s"]),
                  flush=True)
            if keep is None:
                keep = (ivf, top)
                path = os.path.join(e["sdir"], "idx.faiss")
                faiss.write_index(top, path)
                mres["bytes"]["faiss"] = os.path.getsize(path)
                os.unlink(path)
            else:
                del ivf, top
        self.set_threads(1)
        ivf, top = keep
        xq = e["xq"]

        def search(nprobe):
            self.set_threads(1)
            ivf.nprobe = nprobe
            st = faiss.cvar.indexIVF_stats
            st.reset()
            t0 = time.perf_counter()
            _, ids = top.search(xq, K)
            s = time.perf_counter() - t0
            return s, {"scanned": int(st.ndis)}, lambda: ids
        return search

    # -- the sweep ------------------------------------------------------
    def sweep(self, e, m, mres, searchers):
        """The sweep, both sides on one CPU (BENCH_CPU)."""
        with bl.pinned(self.o["cpu"]):
            return self.sweep_here(e, m, mres, searchers)

    def sweep_here(self, e, m, mres, searchers):
        sides = [s for s in SIDES if s in searchers]
        nq = e["nq"]
        rep = self.o["repeat"]
        bw = m in ("pq4", "pq4r")
        for s in sides:
            mres["sweep"][s] = []
        head = "  %6s" % "nprobe" + "".join(
            "  %9s %6s" % ({"vecutils": "vec", "faiss": "faiss"}[s] + " q/s", "rec")
            for s in sides)
        if len(sides) == 2:
            head += "  %7s" % "vec/fs"
        if bw:
            head += "".join("  %8s" % ({"vecutils": "vec", "faiss": "faiss"}[s] + " GB/s")
                            for s in sides)
        print(head, flush=True)
        failed = set()
        skipped = set()
        for nprobe in e["nprobes"]:
            pts = self.point(e, m, mres, searchers, sides, nprobe, failed, skipped)
            if pts and all(p["recall"] >= self.o["stop_recall"] for p in pts.values()) \
                    and len(pts) == len(sides):
                print("  (every side at recall >= %g: larger nprobe left out)"
                      % self.o["stop_recall"], flush=True)
                break
            if any(p["s"] > self.o["max_seconds"] for p in pts.values()):
                print("  (a search took over %g s: larger nprobe left out; "
                      "BENCH_IVF_MAX_SECONDS)" % self.o["max_seconds"], flush=True)
                break
        if bw and self.o["scan_all"] and e["nlist"] not in e["nprobes"]:
            # Every list: the 4-bit scan's streaming rate with the
            # per-query work (ranking, re-ranking) spread over all codes.
            print("  (every list, for the scan rate; not in the recall curves)",
                  flush=True)
            self.point(e, m, mres, searchers, sides, e["nlist"], failed, skipped,
                       into="scan_all")

    def point(self, e, m, mres, searchers, sides, nprobe, failed, skipped,
              into=None):
        """One nprobe, both sides alternately: its line printed, its points
        added to the sweep (or, with into, to mres[into][side]); returns
        them by side."""
        nq = e["nq"]
        rep = self.o["repeat"]
        bw = m in ("pq4", "pq4r")
        times = {s: [] for s in sides}
        infos = {s: [] for s in sides}
        last = {}
        for rnd in range(rep + 1):
            order = sides if rnd % 2 == 0 else sides[::-1]
            for s in order:
                if s in failed:
                    continue
                try:
                    sec, info, get_ids = searchers[s](nprobe)
                except Skip as why:
                    self.note("%s: vecutils %s skipped (%s)" % (
                        e["name"], NAME[m], why))
                    mres["vec_skipped"] = str(why)
                    failed.add(s)
                    skipped.add(s)
                    continue
                except BenchError as err:
                    failed.add(s)
                    self.note_error("%s %s %s nprobe %d: %s" % (
                        e["name"], NAME[m], s, nprobe, err))
                    continue
                if rnd > 0:
                    times[s].append(sec)
                    infos[s].append(info)
                last[s] = get_ids
        for s in skipped:
            mres["sweep"].pop(s, None)
            mres.get(into or "sweep", {}).pop(s, None)
        cells = []
        pts = {}
        for s in sides:
            if s in skipped:
                cells.append("  %9s %6s" % ("skipped", "-"))
                continue
            if s in failed or not times[s]:
                cells.append("  %9s %6s" % ("ERR", "-"))
                continue
            ids = last[s]()
            if ids.shape[0] != nq:
                failed.add(s)
                self.note_error("%s %s %s nprobe %d: %d answers for %d queries" % (
                    e["name"], NAME[m], s, nprobe, ids.shape[0], nq))
                cells.append("  %9s %6s" % ("ERR", "-"))
                continue
            med = statistics.median(times[s])
            rec = bl.recall_at_k(e["base"], e["queries"], ids, e["gt_dist"],
                                 e["metric"], K)
            scanned = infos[s][-1].get("scanned")
            pt = {"nprobe": nprobe, "s": med, "s_all": times[s], "qps": nq / med,
                  "recall": rec, "scanned": scanned}
            if s == "vecutils":
                pt["timing"] = infos[s][-1].get("timing")
                pt["process_s"] = statistics.median(i["process_s"] for i in infos[s])
                cold = [i["cold_s"] for i in infos[s] if "cold_s" in i]
                if cold:
                    pt["cold_s"] = statistics.median(cold)
                    pt["cold_qps"] = nq / pt["cold_s"]
            if scanned:
                pt["code_Bps"] = scanned * mres["code_bytes"] / med
                pt["code_bw_frac"] = pt["code_Bps"] / BW_BOUND
            if into:
                mres.setdefault(into, {})[s] = pt
            else:
                mres["sweep"][s].append(pt)
            pts[s] = pt
            cells.append("  %9.0f %6.4f" % (pt["qps"], rec))
        line = "  %6d" % nprobe + "".join(cells)
        if len(sides) == 2:
            ratio = pts["vecutils"]["qps"] / pts["faiss"]["qps"] \
                if len(pts) == 2 else None
            line += "  %7s" % ("%.2fx" % ratio if ratio else "-")
            if ratio and not into:
                mres["ratio_equal_nprobe"].append({
                    "nprobe": nprobe, "ratio": ratio,
                    "recall_vec": pts["vecutils"]["recall"],
                    "recall_faiss": pts["faiss"]["recall"]})
        if bw:
            line += "".join("  %8s" % (
                "%.1f" % (pts[s]["code_Bps"] / 1e9)
                if s in pts and pts[s].get("code_Bps") else "-") for s in sides)
        print(line, flush=True)
        return pts

    def finish(self, mres):
        for s, pts in mres["sweep"].items():
            mres["at_recall"][s] = {}
            for r in TARGETS:
                v, how = qps_at([(p["recall"], p["qps"]) for p in pts], r)
                mres["at_recall"][s]["%.2f" % r] = {"qps": v, "how": how}
        for r in TARGETS:
            key = "%.2f" % r
            a = mres["at_recall"].get("vecutils", {}).get(key, {})
            b = mres["at_recall"].get("faiss", {}).get(key, {})
            ratio, how = None, None
            if a.get("qps") and b.get("qps"):
                ratio = a["qps"] / b["qps"]
                how = "=" if a["how"] == "=" and b["how"] == "=" else "bound"
            mres["ratio_at_recall"][key] = {"ratio": ratio, "how": how}
        for s, pts in mres["sweep"].items():
            pts = pts + ([mres["scan_all"][s]] if s in mres.get("scan_all", {}) else [])
            bws = [(p["code_Bps"], p["nprobe"]) for p in pts if p.get("code_Bps")]
            if bws and mres["method"] in ("pq4", "pq4r"):
                mres.setdefault("code_Bps_max", {})[s] = max(bws)[0]
                mres.setdefault("code_Bps_max_nprobe", {})[s] = max(bws)[1]

    # -- output ---------------------------------------------------------
    def report_method(self, mres):
        print("  q/s at recall@%d (log-linear on the recall/speed frontier; '>' = "
              "above already at the smallest nprobe):" % K)
        print("  %-12s" % "" + "".join("%12s" % ("r=%.2f" % r) for r in TARGETS))
        for s in SIDES:
            if s not in mres["at_recall"]:
                continue
            row = mres["at_recall"][s]
            print("  %-12s" % s + "".join(
                "%12s" % fmt_qps(row["%.2f" % r]["qps"], row["%.2f" % r]["how"])
                for r in TARGETS))
        if len(mres["at_recall"]) == 2:
            print("  %-12s" % "vec/faiss" + "".join(
                "%12s" % fmt_ratio(mres, "%.2f" % r) for r in TARGETS))
        cold = bl.report_first_pass(mres["sweep"].get("vecutils", []),
                                    mres["at_recall"].get("faiss"), TARGETS, 12,
                                    "vec 1st pass", "1st/faiss")
        if cold:
            mres["cold_at_recall"] = cold
        sys.stdout.flush()

    def plot(self, res, plot_dir):
        curves = []
        for m in METHODS:
            mres = res["methods"].get(m)
            if not mres:
                continue
            for s in SIDES:
                pts = mres["sweep"].get(s)
                if not pts:
                    continue
                label = ("vecutils %s" % NAME[m]) if s == "vecutils" else \
                    ("FAISS %s" % FAISS_NAME[m])
                style = "lc %d lw 2 dt 1 pt 7 ps 0.8" % COLOUR[m] if s == "vecutils" \
                    else "lc %d lw 1 dt 2 pt 6 ps 0.8" % COLOUR[m]
                curves.append((label, [(p["recall"], p["qps"], p["nprobe"])
                                       for p in pts], style))
        if not curves:
            return None
        png = os.path.join(plot_dir, "ivf-%s.png" % res["set"])
        title = ("%s (%s, n=%d, d=%d): recall@%d vs q/s, nlist %d, PQ %d code "
                 "bytes, refine %d, 1 thread" % (
                     res["set"], res["metric"], res["n"], res["dim"], K,
                     res["nlist"], res["pq_m_8bit"] or 0, res["refine"]))
        note = ("vecutils (solid): search time (vec-query --stats%s); FAISS (dashed): "
                "index.search in process" % (", second pass" if bl.VEC_WARM else ""))
        why = bl.plot_recall_qps(png, title, curves,
                                 "queries per second (wall time; log scale)", note,
                                 self.tmp)
        if why:
            if why != "gnuplot missing":
                self.note_error("gnuplot for %s: %s" % (res["set"], why))
            return None
        return png


def fmt_ratio(mres, key):
    v = mres["ratio_at_recall"].get(key, {})
    if not v.get("ratio"):
        return "n/a"
    return "%.2fx%s" % (v["ratio"], "*" if v["how"] != "=" else "")


def summary(sets):
    rows = [(r, m, r["methods"][m]) for r in sets for m in METHODS if m in r["methods"]]
    print("\n==== IVF summary: k=%d, 1 search thread, vecutils vs FAISS at equal "
          "nlist and code bytes ====" % K)
    print("q/s at recall@%d ('>' = above the target already at the smallest nprobe, "
          "the q/s there; n/a = never reached;" % K)
    print("vec/faiss with '*': a side's value is such a bound, not an interpolation;")
    print("best rec: the highest recall of the sweep, vecutils / FAISS)")
    print("%-14s %-22s %5s %10s %10s %9s  %s" % ("set", "method", "rec", "vecutils",
                                                 "faiss", "vec/faiss", "best rec"))
    for r, m, mr in rows:
        best = "/".join("%.3f" % max(p["recall"] for p in mr["sweep"][s])
                        if mr["sweep"].get(s) else "-" for s in SIDES)
        for i, t in enumerate(TARGETS):
            key = "%.2f" % t
            cells = []
            for s in SIDES:
                a = mr["at_recall"].get(s, {}).get(key)
                cells.append("%10s" % (fmt_qps(a["qps"], a["how"]) if a else "-"))
            print(("%-14s %-22s %5s %s %9s  %s" % (
                r["set"], NAME[m], key, " ".join(cells), fmt_ratio(mr, key),
                best if i == 0 else "")).rstrip())
    flat = [(r, r["methods"]["flat"]) for r in sets if "flat" in r["methods"] and
            r["methods"]["flat"]["ratio_equal_nprobe"]]
    if flat:
        print("\nIVF-Flat at equal nprobe: q/s vecutils / FAISS IndexIVFFlat "
              "(recall vecutils / FAISS)")
        for r, mr in flat:
            print("%-14s " % r["set"] + "  ".join(
                "%d: %.2fx (%.3f/%.3f)" % (x["nprobe"], x["ratio"], x["recall_vec"],
                                          x["recall_faiss"])
                for x in mr["ratio_equal_nprobe"]))
    print("\nBuild, seconds, wall (CPU: user + system, all threads; less "
          "disturbed by other load) per thread count;")
    print("vecutils: whole vec-build process, reading the file included; FAISS: "
          "train + add in process.  vec-build's peak RSS")
    print("against the raw vectors (n x d x 4 bytes), for the first thread count")
    print("%-14s %-22s %-28s %-28s %s" % ("set", "method", "vecutils thr: s",
                                           "faiss thr: s", "vec peak RSS"))
    for r, m, mr in rows:
        v = mr["builds"].get("vecutils", {})
        f = mr["builds"].get("faiss", {})
        first = v.get(str(min((int(x) for x in v), default=0)))
        print("%-14s %-22s %-28s %-28s %s" % (
            r["set"], NAME[m],
            "  ".join("%s: %.1f (%.1f)" % (t, x["wall_s"], x["cpu_s"]) for t, x in
                      sorted(v.items(), key=lambda kv: int(kv[0]))) or "-",
            "  ".join("%s: %.1f (%.1f)" % (t, x["build_s"], x.get("cpu_s", 0))
                      for t, x in sorted(f.items(), key=lambda kv: int(kv[0]))) or "-",
            "%.0f MB = %.2fx raw" % (first["peak_rss"] / 1e6, first["peak_rss_over_raw"])
            if first and first["peak_rss"] else "-"))
    print("\nIndex bytes (vecutils index file; FAISS write_index) and code bytes "
          "per vector")
    print("%-14s %-22s %5s %14s %14s %8s %10s" % ("set", "method", "code", "vecutils",
                                                   "faiss", "vec/fs", "raw"))
    for r, m, mr in rows:
        b = mr["bytes"]
        ratio = b["vecutils"] / b["faiss"] if b.get("vecutils") and b.get("faiss") \
            else None
        print("%-14s %-22s %5d %14s %14s %8s %10d" % (
            r["set"], NAME[m], mr["code_bytes"], b.get("vecutils", "-"),
            b.get("faiss", "-"), "%.3f" % ratio if ratio else "-", r["raw_bytes"]))
    bw = [(r, m, mr) for r, m, mr in rows if m in ("pq4", "pq4r")]
    if bw:
        print("\n4-bit scan: code bytes streamed per second (vectors scanned x code "
              "bytes / search time), the best over nprobe")
        print("(the sweep's and every list's), against %.0f GB/s (vecutils: '-' when "
              "vec-query --stats does not report 'scanned N')" % (BW_BOUND / 1e9))
        for r, m, mr in bw:
            mx = mr.get("code_Bps_max", {})
            at = mr.get("code_Bps_max_nprobe", {})
            print("%-14s %-22s " % (r["set"], NAME[m]) + "  ".join(
                "%s %s" % (s, "%.1f GB/s (%.2f of the bound, nprobe %d)" % (
                    mx[s] / 1e9, mx[s] / BW_BOUND, at[s]) if s in mx else "-")
                for s in SIDES if s in mr["sweep"]))


def main():
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        sys.stderr.write("usage: bench_ivf.py DATA_DIR\n")
        return 2
    data_dir = sys.argv[1]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    vec_bin = os.environ.get("VEC_BIN") or os.path.join(repo, "bin")
    sets = bl.env_list("BENCH_IVF_SETS", os.environ.get("BENCH_SETS",
                                                        "glove-100 fashion-mnist"))
    bt = os.environ.get("BENCH_IVF_BUILD_THREADS")
    build_threads = [int(x) for x in bt.split()] if bt else sorted({1, bl.ncpus()})
    try:
        cpu = bl.search_cpu()
    except bl.BenchError as err:
        sys.stderr.write("bench_ivf.py: %s\n" % err)
        return 2
    opts = {
        "repeat": max(1, int(os.environ.get("BENCH_REPEAT", "5"))),
        "cpu": cpu,
        "methods": [m for m in bl.env_list("BENCH_IVF_METHODS", " ".join(METHODS))
                    if m in METHODS],
        "sides": [s for s in bl.env_list("BENCH_IVF_SIDES", " ".join(SIDES))
                  if s in SIDES],
        "nprobe": [int(x) for x in bl.env_list("BENCH_IVF_NPROBE", DEFAULT_NPROBE)],
        "refine": int(os.environ.get("BENCH_IVF_REFINE", "10")),
        "train_per_list": int(os.environ.get("BENCH_IVF_TRAIN_PER_LIST", "64")),
        "queries": int(os.environ.get("BENCH_IVF_QUERIES", "1000")),
        "build_threads": build_threads,
        "seed": int(os.environ.get("BENCH_IVF_SEED", "42")),
        "stop_recall": float(os.environ.get("BENCH_IVF_STOP_RECALL", "1.01")),
        "max_seconds": float(os.environ.get("BENCH_IVF_MAX_SECONDS", "1e9")),
        "scan_all": os.environ.get("BENCH_IVF_SCAN_ALL", "1") not in ("", "0"),
    }
    plot_dir = os.environ.get("BENCH_PLOT_DIR", "bench-plots")
    out_path = os.environ.get("BENCH_OUT", "bench-results.json")
    merge = os.environ.get("BENCH_IVF_MERGE", "0") not in ("", "0")

    import faiss
    notes = []
    bl.drop_vec_side(opts["sides"], vec_bin, "ivf", notes)
    if not shutil.which("gnuplot"):
        hint("bench: gnuplot is missing; no plots.\n    apt-get install -y gnuplot-nox")
        notes.append("gnuplot missing: no plots")

    blas = bl.openblas_info()
    try:
        faiss_opts = faiss.get_compile_options()
    except AttributeError:
        faiss_opts = "?"
    meta = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "loadavg_start": bl.loadavg(), "cpu": bl.cpu_model(), "cpus": bl.ncpus(),
        "numpy": np.__version__, "faiss": getattr(faiss, "__version__", "?"),
        "faiss_compile_options": faiss_opts,
        "openblas": {k: v for k, v in blas.items() if k != "handle"},
        "k": K, "repeat": opts["repeat"], "statistic": "median",
        "search_cpu": opts["cpu"],
        "targets": list(TARGETS), "options": opts,
        "bandwidth_bound_Bps": BW_BOUND,
        "vec_timing": "search time reported by vec-query --stats (index open, "
                      "queries read); process wall time kept per point",
        "faiss_timing": "index.search in process, OpenMP and OpenBLAS threads 1",
        "vec_build_timing": "whole vec-build process; peak RSS from wait4 ru_maxrss",
        "faiss_build_timing": "index.train + index.add in process",
        "interpolation": "log-linear q/s between the two recall/speed frontier "
                         "points around the target recall",
        "notes": notes,
    }
    print("IVF: vecutils vs FAISS %s at equal nlist, code bytes and training "
          "count; k=%d, 1 search thread, median of %d runs" % (
              meta["faiss"], K, opts["repeat"]))
    print("CPU: %s, %d threads available; load average %.2f; searches on %s" % (
        meta["cpu"], meta["cpus"], meta["loadavg_start"] or 0,
        "CPU %d (BENCH_CPU)" % opts["cpu"] if opts["cpu"] is not None
        else "any CPU"))
    print("vecutils time = search span from vec-query --stats; FAISS time = "
          "index.search in process (queries already normalised for cosine).")
    if "AVX2" not in faiss_opts and "AVX512" not in faiss_opts:
        msg = ("this FAISS is built '%s', without its AVX2 kernels: "
               "IndexIVFPQFastScan's 4-bit scan runs on emulated SIMD, so the "
               "4-bit ratios flatter vecutils against an AVX2 FAISS" % faiss_opts)
        print("note: " + msg)
        notes.append(msg)
    print("methods: %s; nprobe %s; builds with %s thread(s)" % (
        " ".join(opts["methods"]), " ".join(map(str, opts["nprobe"])),
        " and ".join(map(str, build_threads))))

    def on_term(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)

    plots = []
    with tempfile.TemporaryDirectory(prefix="vecbench-ivf.") as tmp:
        b = IvfBench(data_dir, vec_bin, tmp, opts)
        b.notes = notes
        for s in sets:
            if not os.path.isdir(os.path.join(data_dir, s)):
                print("\n%s: not found in %s, skipped" % (s, data_dir))
                b.errors.append("%s: data set not found" % s)
                continue
            try:
                res = b.run_set(s)
            except (BenchError, ValueError, OSError) as e:
                b.note_error("%s: %s" % (s, e))
                continue
            png = b.plot(res, plot_dir)
            res["plot"] = png
            if png:
                plots.append(png)
                print("  plot: %s" % png, flush=True)
        summary(b.sets)
        meta["loadavg_end"] = bl.loadavg()
        print("load average (1 min): %.2f at start, %.2f at end (the two sides of "
              "a method are timed alternately)" % (
                  meta["loadavg_start"] or 0, meta["loadavg_end"] or 0))
        if plots:
            print("plots: " + " ".join(plots))
        if b.notes:
            print("notes:\n  " + "\n  ".join(b.notes))
        result = {"meta": meta, "sets": b.sets, "errors": b.errors, "plots": plots}
        bl.write_results(out_path, "ivf", result, merge)
        print("results written to %s (key \"ivf\")" % out_path)
        if b.errors:
            print("errors:\n  " + "\n  ".join(b.errors))
        return 1 if b.errors else 0


if __name__ == "__main__":
    sys.exit(main())
