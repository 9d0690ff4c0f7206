#!/usr/bin/python3
"""Exact k-NN search: vecutils against FAISS IndexFlat, side by side.

Run through scripts/bench (which checks prerequisites and clears the
OpenBLAS tuning variables), or directly:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        VEC_BIN=bin /usr/bin/python3 scripts/bench_faiss.py DATA_DIR

Needs numpy and faiss (Debian: python3-numpy python3-faiss).

Environment:
  VEC_BIN         directory of vec-build / vec-query / vec-stat (default: bin/)
  BENCH_SETS      data sets to run (default "glove-100 fashion-mnist")
  BENCH_REPEAT    timed repetitions per measurement; medians are reported (5)
  BENCH_SINGLE_Q  queries used in the one-query-at-a-time mode (200)
  BENCH_OPEN      0 skips the large-index open test (default 1)
  BENCH_OPEN_GIB  approximate size of that index in GiB (default 1)
  BENCH_OUT       JSON results file (default bench-results.json)
  BENCH_FAISS_ONLY=1  run only the FAISS side (for when vec-* is not built)

What is timed:
  vecutils  the wall time of the whole vec-query process, from spawn to exit:
            reading the queries, opening the index (mmap), searching and
            writing the ids (ivecs) to a file.  In the one-at-a-time mode one
            vec-query --batch 1 process is fed the queries through a pipe, one
            at a time, and each answer is read back before the next query is
            sent (a round trip per query, like a request loop).
  FAISS     index.search() in this process, on an index already built in
            memory; for cosine the query normalisation is included.
"""

import os

# Before any OpenMP runtime loads: FAISS's OpenMP threads otherwise spin after
# each parallel region and take the cores from OpenBLAS's own threads, which
# halves FAISS's multi-threaded speed on a small machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import json
import platform
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (  # noqa: E402  (shared by the bench scripts)
    BW_BOUND, K, VecError, cpu_model, find_base, fmt, fvecs_records, loadavg,
    median_time, ncpus, openblas_info, parse_ivecs_ids, read_metric, read_vecs, recall_at_k,
    run_vec, write_fvecs)


# ------------------------------------------------------------ the bench --

class Bench:
    def __init__(self, data_dir, vec_bin, tmp, repeat, single_q, faiss_only):
        import faiss
        self.faiss = faiss
        self.data_dir = data_dir
        self.vec_bin = vec_bin
        self.tmp = tmp
        self.repeat = repeat
        self.single_q = single_q
        self.faiss_only = faiss_only
        self.threads = sorted({1, ncpus()})
        self.rows = []
        self.sets = []
        self.errors = []
        self.roundtrip_ok = None
        self.blas = openblas_info().get("handle")

    def set_threads(self, t):
        """FAISS threads: its OpenMP loops and the OpenBLAS pool under it."""
        self.faiss.omp_set_num_threads(t)
        if self.blas is not None:
            self.blas.openblas_set_num_threads(t)

    def vec(self, name):
        return os.path.join(self.vec_bin, name)

    # -- one data set --------------------------------------------------
    def run_set(self, name):
        faiss = self.faiss
        d_dir = os.path.join(self.data_dir, name)
        metric = read_metric(d_dir)
        base_path = find_base(d_dir)
        query_path = os.path.join(d_dir, "query.fvecs")
        base = read_vecs(base_path, np.float32)
        queries = read_vecs(query_path, np.float32)
        gt_dist = read_vecs(os.path.join(d_dir, "gt_dist.fvecs"), np.float32)
        n, dim = base.shape
        nq = queries.shape[0]
        base_bytes = n * dim * 4
        info = {"set": name, "metric": metric, "n": n, "dim": dim, "queries": nq,
                "base_bytes": base_bytes, "base_file": os.path.basename(base_path)}
        print("\n== %s: %d x %d, metric %s, %d queries, base %.1f MB ==" % (
            name, n, dim, metric, nq, base_bytes / 1e6), flush=True)

        # FAISS index
        t0 = time.perf_counter()
        if metric == "l2":
            index = faiss.IndexFlatL2(dim)
            index.add(base)
        else:
            index = faiss.IndexFlatIP(dim)
            xb = base.copy()
            if metric == "cos":
                faiss.normalize_L2(xb)
            index.add(xb)
            del xb
        info["faiss_add_s"] = time.perf_counter() - t0

        def faiss_prep(q):
            if metric == "cos":
                q = q.copy()
                faiss.normalize_L2(q)
            return q

        # vecutils index
        vec_index = None
        if not self.faiss_only:
            vec_index = os.path.join(self.tmp, name + ".vec")
            t0 = time.perf_counter()
            run_vec([self.vec("vec-build"), "-t", "flat", "-m", metric, "-q",
                     "-o", vec_index, base_path])
            info["vec_build_s"] = time.perf_counter() - t0
            info["vec_index_bytes"] = os.path.getsize(vec_index)
            print("  vec-build: %.2f s, index %.1f MB; faiss add: %.2f s" % (
                info["vec_build_s"], info["vec_index_bytes"] / 1e6,
                info["faiss_add_s"]), flush=True)
        self.sets.append(info)

        # (a) batched: all queries at once; (b) one query at a time
        ns = min(self.single_q, nq)
        qs = queries[:ns]
        bound_qps = BW_BOUND / base_bytes
        out = os.path.join(self.tmp, "out.ivecs")
        for mode in ("batch", "single"):
            for t in self.threads:
                if mode == "batch":
                    row = {"set": name, "mode": mode, "threads": t, "queries": nq}
                    q = queries

                    def fcall():
                        return index.search(faiss_prep(queries), K)[1]

                    def vcall(t=t):
                        with open(out, "wb") as f:
                            run_vec([self.vec("vec-query"), "-k", str(K), "-j", str(t),
                                     "--format", "ivecs", vec_index, query_path],
                                    stdout=f)
                        with open(out, "rb") as f:
                            return parse_ivecs_ids(f.read(), K)
                else:
                    row = {"set": name, "mode": mode, "threads": t, "queries": ns,
                           "bound_qps": bound_qps}
                    q = qs

                    def fcall():
                        ids = np.empty((ns, K), dtype=np.int64)
                        for i in range(ns):
                            ids[i] = index.search(faiss_prep(qs[i:i + 1]), K)[1][0]
                        return ids

                    vcall = None
                    if vec_index:
                        try:
                            vcall, row["vec_method"] = self.vec_single(vec_index, qs, t)
                        except VecError as e:
                            row["vec_error"] = str(e)
                            self.errors.append("%s %s -j %d: %s" % (name, mode, t, e))
                if not vec_index:
                    vcall = None
                row["k"] = K
                self.set_threads(t)
                res = self.timed_pair(fcall, vcall, row)
                nrow = row["queries"]
                row["faiss_qps"] = nrow / row["faiss_s"]
                row["faiss_recall"] = recall_at_k(base, q, res["faiss"], gt_dist, metric)
                if "vec_s" in row:
                    ids = res["vec"]
                    if ids.shape[0] != nrow:
                        row["vec_error"] = ("vec-query answered %d of %d queries"
                                            % (ids.shape[0], nrow))
                        self.errors.append("%s %s -j %d: %s" % (name, mode, t,
                                                                 row["vec_error"]))
                    else:
                        row["vec_qps"] = nrow / row["vec_s"]
                        row["vec_recall"] = recall_at_k(base, q, ids, gt_dist, metric)
                        row["ratio"] = row["vec_qps"] / row["faiss_qps"]
                if mode == "single":
                    row["faiss_bound_frac"] = row["faiss_qps"] / bound_qps
                    if "vec_qps" in row:
                        row["vec_bound_frac"] = row["vec_qps"] / bound_qps
                self.rows.append(row)
                self.print_row(row)
        self.set_threads(ncpus())

    def timed_pair(self, fcall, vcall, row):
        """Time FAISS and vecutils alternately (ABAB..., the order swapped
        each round) so that both see the same background load; one untimed
        warm-up each.  Medians go into row; returns the last results."""
        res = {}
        sides = [("faiss", fcall)] + ([("vec", vcall)] if vcall else [])
        times = {k: [] for k, _ in sides}
        failed = set()
        for rnd in range(self.repeat + 1):
            order = sides if rnd % 2 == 0 else sides[::-1]
            for key, fn in order:
                if key in failed:
                    continue
                t0 = time.perf_counter()
                try:
                    res[key] = fn()
                except (VecError, ValueError) as e:
                    failed.add(key)
                    row["vec_error"] = str(e)
                    self.errors.append("%s %s -j %d: %s" % (
                        row["set"], row["mode"], row["threads"], e))
                    continue
                if rnd > 0:
                    times[key].append(time.perf_counter() - t0)
        for key in times:
            if key not in failed and times[key]:
                row[key + "_s"] = statistics.median(times[key])
                row[key + "_s_all"] = times[key]
        return res

    # -- vecutils, one query at a time over a pipe -------------------------
    def vec_single(self, vec_index, qs, t):
        """Feed qs to one `vec-query --batch 1` process through a pipe.
        Preferred: round trip (send a query, read its answer, then the next);
        if vec-query does not answer a query before the next one arrives
        (output held in a buffer), fall back to writing all queries into the
        pipe and timing the whole process.  Returns (callable giving the ids,
        method name)."""
        recs = fvecs_records(qs)
        rec_out = 4 * (K + 1)
        argv = [self.vec("vec-query"), "-k", str(K), "-j", str(t), "--batch", "1",
                "--format", "ivecs", vec_index, "-"]
        errpath = os.path.join(self.tmp, "err.txt")

        def roundtrip(timeout):
            with open(errpath, "wb") as err:
                p = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=err, bufsize=0)
            fin, fout = p.stdin.fileno(), p.stdout.fileno()
            chunks = []
            try:
                for r in recs:
                    os.write(fin, r)
                    got = b""
                    while len(got) < rec_out:
                        ready, _, _ = select.select([fout], [], [], timeout)
                        if not ready:
                            return None
                        b = os.read(fout, rec_out - len(got))
                        if not b:
                            raise VecError("vec-query --batch 1 ended early: "
                                           + self.err_tail(errpath))
                        got += b
                    chunks.append(got)
                p.stdin.close()
                rest = p.stdout.read()
                rc = p.wait()
                if rc != 0:
                    raise VecError("vec-query --batch 1 exited %d: %s"
                                   % (rc, self.err_tail(errpath)))
                return b"".join(chunks) + rest
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
                for fobj in (p.stdin, p.stdout):
                    try:
                        fobj.close()
                    except (OSError, ValueError):
                        pass

        def piped():
            data = b"".join(recs)
            with open(errpath, "wb") as err:
                p = subprocess.run(argv, input=data, stdout=subprocess.PIPE,
                                   stderr=err)
            if p.returncode != 0:
                raise VecError("vec-query --batch 1 exited %d: %s"
                               % (p.returncode, self.err_tail(errpath)))
            return p.stdout

        # probe once: does it answer each query as it arrives?
        if self.roundtrip_ok is None:
            self.roundtrip_ok = roundtrip(timeout=10.0) is not None
            if not self.roundtrip_ok:
                print("  note: vec-query --batch 1 did not answer a query before "
                      "the next was sent; timing the whole piped stream instead",
                      flush=True)
        method = "roundtrip" if self.roundtrip_ok else "piped"

        def once():
            if method == "roundtrip":
                raw = roundtrip(timeout=120.0)
                if raw is None:
                    raise VecError("vec-query --batch 1 stopped answering")
            else:
                raw = piped()
            return parse_ivecs_ids(raw, K)
        return once, method

    @staticmethod
    def err_tail(path):
        try:
            with open(path, "rb") as f:
                lines = f.read().decode(errors="replace").strip().splitlines()
            return lines[-1] if lines else "(no message)"
        except OSError:
            return "(no message)"

    # -- (d) open time of a large index ----------------------------------
    def run_open(self, gib):
        name = "glove-100"
        d_dir = os.path.join(self.data_dir, name)
        src = os.path.join(d_dir, "base.fvecs")
        if not os.path.exists(src):
            # any set will do: take the first with an uncompressed base
            for s in sorted(os.listdir(self.data_dir)):
                p = os.path.join(self.data_dir, s, "base.fvecs")
                if os.path.exists(p) and os.path.getsize(p) > 1 << 20:
                    name, d_dir, src = s, os.path.join(self.data_dir, s), p
                    break
            else:
                print("  open test skipped: no base.fvecs of size found")
                return None
        src_bytes = os.path.getsize(src)
        copies = max(1, int(round(gib * (1 << 30) / src_bytes)))
        big = os.path.join(self.tmp, "big.vec")
        print("\n== open time: %s base x %d (%.2f GiB of vectors) ==" % (
            name, copies, copies * src_bytes / (1 << 30)), flush=True)
        t0 = time.perf_counter()
        run_vec([self.vec("vec-build"), "-t", "flat", "-m", "l2", "-q", "-o", big]
                + [src] * copies)
        build_s = time.perf_counter() - t0
        size = os.path.getsize(big)
        q1 = os.path.join(self.tmp, "q1.fvecs")
        write_fvecs(q1, read_vecs(os.path.join(d_dir, "query.fvecs"), np.float32)[:1])
        res = {"source_set": name, "copies": copies, "index_bytes": size,
               "build_s": build_s}

        def stat():
            run_vec([self.vec("vec-stat"), big])
        res["vec_stat_s"], res["vec_stat_s_all"] = median_time(stat, self.repeat)

        def query():
            run_vec([self.vec("vec-query"), "-k", "1", "--format", "ivecs", big, q1])
        res["vec_query_1_s"], res["vec_query_1_s_all"] = median_time(query, self.repeat)
        res["scan_bound_s"] = size / BW_BOUND
        # a baseline for "loading" the index instead of mapping it
        def readall():
            with open(big, "rb") as f:
                while f.read(1 << 24):
                    pass
        res["read_whole_file_s"], _ = median_time(readall, min(self.repeat, 3))
        os.unlink(big)
        print("  index %.2f GiB, built in %.1f s (warm page cache below)" % (
            size / (1 << 30), build_s))
        print("  vec-stat (open + header)        %8.1f ms" % (res["vec_stat_s"] * 1e3))
        print("  vec-query -k 1, one query       %8.1f ms  (open + one full scan; "
              "scan at 30 GB/s = %.1f ms)" % (res["vec_query_1_s"] * 1e3,
                                               res["scan_bound_s"] * 1e3))
        print("  read() of the whole file, for scale %5.1f ms" % (
            res["read_whole_file_s"] * 1e3), flush=True)
        return res

    # -- output --------------------------------------------------------
    HEAD = ("%-14s %-6s %3s %11s %11s %7s %8s %8s %7s %7s" % (
        "set", "mode", "thr", "vec q/s", "faiss q/s", "vec/fs", "rec vec",
        "rec fs", "bw vec", "bw fs"))

    def print_row(self, r):
        if not getattr(self, "_head", False):
            print(self.HEAD)
            self._head = True
        print("%-14s %-6s %3d %11s %11s %7s %8s %8s %7s %7s" % (
            r["set"], r["mode"], r["threads"],
            fmt(r.get("vec_qps", "ERR" if "vec_error" in r else None)),
            fmt(r.get("faiss_qps")),
            fmt(r.get("ratio"), "%.2f"),
            fmt(r.get("vec_recall"), "%.4f"), fmt(r.get("faiss_recall"), "%.4f"),
            fmt(r.get("vec_bound_frac"), "%.2f"), fmt(r.get("faiss_bound_frac"), "%.2f")),
            flush=True)
        if "vec_error" in r:
            print("    vecutils: " + r["vec_error"], flush=True)


def main():
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        sys.stderr.write("usage: bench_faiss.py DATA_DIR\n")
        return 2
    data_dir = sys.argv[1]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    vec_bin = os.environ.get("VEC_BIN") or os.path.join(repo, "bin")
    sets = os.environ.get("BENCH_SETS", "glove-100 fashion-mnist").split()
    repeat = max(1, int(os.environ.get("BENCH_REPEAT", "5")))
    single_q = max(1, int(os.environ.get("BENCH_SINGLE_Q", "200")))
    do_open = os.environ.get("BENCH_OPEN", "1") != "0"
    open_gib = float(os.environ.get("BENCH_OPEN_GIB", "1"))
    out_path = os.environ.get("BENCH_OUT", "bench-results.json")
    faiss_only = os.environ.get("BENCH_FAISS_ONLY", "0") not in ("", "0")

    import faiss  # noqa: F401  (loads OpenBLAS, so its info can be read)
    blas = openblas_info()
    meta = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "loadavg_start": loadavg(),
        "cpu": cpu_model(), "cpus": ncpus(), "python": platform.python_version(),
        "numpy": np.__version__, "faiss": getattr(faiss, "__version__", "?"),
        "openblas": {k: v for k, v in blas.items() if k != "handle"}, "k": K,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "repeat": repeat, "statistic": "median",
        "bandwidth_bound_Bps": BW_BOUND,
        "openblas_env_cleared": [v for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
                                 if v not in os.environ],
        "vec_timing": "wall time of the whole vec-query process (read queries, "
                      "mmap open, search, write ivecs)",
        "faiss_timing": "index.search in process on a built index "
                        "(cosine: query normalisation included)",
    }
    for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if v in os.environ:
            print("warning: %s=%s is set; FAISS/OpenBLAS runs with it "
                  "(scripts/bench clears it)" % (v, os.environ[v]))
    print("vecutils vs FAISS %s exact k-NN, k=%d, median of %d runs" % (
        meta["faiss"], K, repeat))
    print("CPU: %s, %d threads available" % (meta["cpu"], meta["cpus"]))
    print("OpenBLAS: %s; core: %s" % (blas.get("config"), blas.get("corename")))
    print("vecutils time = whole vec-query process (read queries, mmap open, "
          "search, write ivecs to a file);")
    print("FAISS time = index.search in process (cos: incl. query normalisation);")
    print("FAISS threads = OpenMP and OpenBLAS threads both set; OMP_WAIT_POLICY=%s."
          % meta["omp_wait_policy"])
    if faiss_only:
        print("BENCH_FAISS_ONLY: the vecutils side is not run.")

    def on_term(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)

    with tempfile.TemporaryDirectory(prefix="vecbench.") as tmp:
        b = Bench(data_dir, vec_bin, tmp, repeat, single_q, faiss_only)
        for s in sets:
            if not os.path.isdir(os.path.join(data_dir, s)):
                print("\n%s: not found in %s, skipped" % (s, data_dir))
                b.errors.append("%s: data set not found" % s)
                continue
            try:
                b.run_set(s)
            except (VecError, ValueError, OSError) as e:
                print("\n%s: failed: %s" % (s, e))
                b.errors.append("%s: %s" % (s, e))
        open_res = None
        if do_open and not faiss_only:
            try:
                open_res = b.run_open(open_gib)
            except (VecError, OSError) as e:
                print("open test failed: %s" % e)
                b.errors.append("open: %s" % e)

    # summary table
    print("\nSummary (q/s = queries per second, medians; vec/fs = vecutils q/s / "
          "FAISS q/s;")
    print("rec = tie-aware recall@%d; bw = fraction of the %.0f GB/s "
          "memory-bandwidth bound, single mode only)" % (K, BW_BOUND / 1e9))
    b._head = False
    for r in b.rows:
        b.print_row(r)
    if open_res:
        print("open: %.2f GiB index: vec-stat %.1f ms, vec-query -k 1 (1 query) "
              "%.1f ms" % (open_res["index_bytes"] / (1 << 30),
                           open_res["vec_stat_s"] * 1e3,
                           open_res["vec_query_1_s"] * 1e3))
    meta["loadavg_end"] = loadavg()
    print("load average (1 min): %.2f at start, %.2f at end (other processes "
          "share the CPUs; both sides are timed alternately)" % (
              meta["loadavg_start"] or 0, meta["loadavg_end"] or 0))
    result = {"meta": meta, "sets": b.sets, "results": b.rows, "open": open_res,
              "errors": b.errors}
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print("results written to %s" % out_path)
    return 1 if b.errors else 0


if __name__ == "__main__":
    sys.exit(main())
