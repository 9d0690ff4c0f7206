"""Shared code of the bench scripts (bench_faiss.py, bench_hnsw.py,
bench_ivf.py): reading the data sets, tie-aware recall, timing, running the
vec-* programs, the recall/speed frontier, the gnuplot plots and the JSON
results file.

Nothing here prints; every function either returns or raises BenchError
(VecError is the same class, under the name bench_faiss.py has used).
"""

import contextlib
import ctypes
import ctypes.util
import gzip
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import tempfile
import time

import numpy as np

K = 10                   # neighbours per query in every part
BW_BOUND = 30e9          # bytes/s: the memory-bandwidth bound the parts quote
RECALL_REL_EPS = 1e-5    # tie-aware recall: relative slack on the k-th distance


def search_cpu():
    """The CPU the one-thread search sweeps run on (BENCH_CPU): a number, or
    "none" to leave them to the scheduler.  Default: the first CPU this
    process may use.  Both sides of a comparison then run on the same core:
    on a virtual machine two vCPUs can differ by a third in speed, and a
    sweep that lands on either at random mixes that into its ratios."""
    v = os.environ.get("BENCH_CPU", "").strip()
    if not hasattr(os, "sched_setaffinity") or v == "none":
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if not v:
        return allowed[0]
    try:
        cpu = int(v)
    except ValueError:
        raise BenchError("BENCH_CPU=%r: not a CPU number or 'none'" % v)
    if cpu not in allowed:
        raise BenchError("BENCH_CPU=%d: not one of this process's CPUs %s"
                         % (cpu, " ".join(map(str, allowed))))
    return cpu


@contextlib.contextmanager
def pinned(cpu):
    """Run the block (and the processes it starts) on CPU cpu alone; None:
    as before."""
    if cpu is None:
        yield
        return
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, old)


class BenchError(RuntimeError):
    pass


VecError = BenchError


# ---------------------------------------------------------------- file io --

def read_vecs(path, dtype):
    """Read an fvecs/ivecs file (optionally gzip-compressed) into (n, d)."""
    with open(path, "rb") as f:
        magic = f.read(2)
    opener = gzip.open if magic == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if not raw:
        return np.zeros((0, 0), dtype=dtype)
    d = int(np.frombuffer(raw[:4], dtype="<i4")[0])
    rec = 4 * (d + 1)
    if d <= 0 or len(raw) % rec:
        raise ValueError("%s: not a %s file of dimension %d" % (path, dtype, d))
    a = np.frombuffer(raw, dtype="<i4").reshape(-1, d + 1)
    if not (a[:, 0] == d).all():
        raise ValueError("%s: mixed dimensions" % path)
    return np.ascontiguousarray(a[:, 1:]).view(dtype)


def write_fvecs(path, x):
    x = np.ascontiguousarray(x, dtype="<f4")
    n, d = x.shape
    out = np.empty((n, d + 1), dtype="<i4")
    out[:, 0] = d
    out[:, 1:] = x.view("<i4")
    out.tofile(path)


def write_f32(path, x):
    """Raw float32, row after row (no per-vector header)."""
    np.ascontiguousarray(x, dtype="<f4").tofile(path)


def fvecs_records(x):
    """One bytes object per vector, in fvecs layout."""
    n, d = x.shape
    out = np.empty((n, d + 1), dtype="<i4")
    out[:, 0] = d
    out[:, 1:] = np.ascontiguousarray(x, dtype="<f4").view("<i4")
    return [out[i].tobytes() for i in range(n)]


def parse_ivecs_ids(raw, k):
    a = np.frombuffer(raw, dtype="<i4")
    if a.size % (k + 1):
        raise ValueError("vec-query output is not ivecs of dimension %d" % k)
    a = a.reshape(-1, k + 1)
    if a.size and not (a[:, 0] == k).all():
        raise ValueError("vec-query output: records not of dimension %d" % k)
    return a[:, 1:].astype(np.int64)


def read_ivecs_ids(path, k):
    with open(path, "rb") as f:
        return parse_ivecs_ids(f.read(), k)


def read_metric(set_dir):
    """The metric named on the first line of a data set's README.md:
    'cos', 'l2' or 'ip'."""
    with open(os.path.join(set_dir, "README.md"), encoding="utf-8") as f:
        first = f.readline().strip()
    if not first.startswith("metric:"):
        raise ValueError("%s/README.md: first line is not 'metric: ...'" % set_dir)
    word = first.split(":", 1)[1].split()[0].lower()
    if word in ("cos", "cosine", "angular"):
        return "cos"
    if word in ("l2", "euclidean"):
        return "l2"
    if word in ("ip", "dot"):
        return "ip"
    raise ValueError("%s: unknown metric %r" % (set_dir, word))


def find_base(set_dir):
    """The set's base.fvecs, or base.fvecs.gz when only that exists."""
    for cand in ("base.fvecs", "base.fvecs.gz"):
        p = os.path.join(set_dir, cand)
        if os.path.exists(p):
            return p
    raise BenchError("%s: no base.fvecs[.gz]" % set_dir)


def normalise(x):
    """A float32 copy of x with each row scaled to unit L2 norm (zero rows
    stay zero)."""
    x = np.array(x, dtype=np.float32, copy=True)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    x /= np.where(n > 0, n, 1.0)
    return x


# ---------------------------------------------------------------- recall --

def true_distances(base, queries, ids, metric):
    """Exact distance (float64) of each returned id to its query, in the
    ground truth's convention: squared L2, or 1 - cos.  Invalid ids -> inf."""
    nq, k = ids.shape
    valid = (ids >= 0) & (ids < base.shape[0])
    safe = np.where(valid, ids, 0)
    b = base[safe.ravel()].astype(np.float64).reshape(nq, k, -1)
    q = queries.astype(np.float64)[:, None, :]
    if metric == "l2":
        dist = ((b - q) ** 2).sum(axis=2)
    elif metric == "cos":
        num = (b * q).sum(axis=2)
        den = np.linalg.norm(b, axis=2) * np.linalg.norm(q, axis=2)
        dist = 1.0 - num / np.where(den > 0, den, 1.0)
    else:  # ip: larger is better; use the negated product as a distance
        dist = -(b * q).sum(axis=2)
    return np.where(valid, dist, np.inf)


def recall_at_k(base, queries, ids, gt_dist, metric, k=K):
    """Tie-aware recall@k: a returned id counts when its true distance is no
    worse than the true k-th neighbour's (gt_dist[:, k-1]), with a relative
    epsilon.  Repeated ids count once.  Returns the mean over queries."""
    ids = np.asarray(ids, dtype=np.int64)[:, :k]
    nq = ids.shape[0]
    dist = true_distances(base, queries, ids, metric)
    thr = gt_dist[:nq, k - 1].astype(np.float64)
    thr = thr + RECALL_REL_EPS * np.abs(thr) + 1e-12
    ok = dist <= thr[:, None]
    hits = 0
    for i in range(nq):
        hits += len(set(ids[i][ok[i]].tolist()))
    return hits / float(nq * k)


# ------------------------------------------------- the recall/speed frontier --

def pareto(points):
    """Points (recall, qps) on the upper-right frontier, by recall ascending:
    those that no other point beats on both recall and speed."""
    pts = sorted(points, key=lambda p: (-p[0], -p[1]))
    out, best = [], -1.0
    for r, q in pts:
        if q > best:
            out.append((r, q))
            best = q
    return out[::-1]


def qps_at(points, target):
    """Queries/s at recall `target`, interpolated log-linearly in q/s between
    the two frontier points around it.  ("n/a", None) when no point reaches
    the target; (">=", q) when even the fastest point is above it (the
    value is then that point's q/s, a lower bound)."""
    fr = pareto(points)
    if not fr or fr[-1][0] < target:
        return None, "n/a"
    if fr[0][0] >= target:
        return fr[0][1], ">="
    for (r0, q0), (r1, q1) in zip(fr, fr[1:]):
        if r0 <= target <= r1:
            if r1 == r0:
                return max(q0, q1), "="
            t = (target - r0) / (r1 - r0)
            return math.exp(math.log(q0) + t * (math.log(q1) - math.log(q0))), "="
    return None, "n/a"


def report_first_pass(sweep, other, targets, width, label, ratio_label):
    """vec-query's first pass over the queries (VEC_WARM: the points'
    cold_qps), which pays the first touch of the index file's pages: a row
    of q/s at each target recall, and its ratio to the other side's
    at-recall row (other: {"0.90": {"qps": ...}, ...}, or None).  Returns
    the at-recall figures for the JSON, or None without such points."""
    cold = [(p["recall"], p["cold_qps"]) for p in sweep if p.get("cold_qps")]
    if not cold:
        return None
    row = [qps_at(cold, r) for r in targets]
    print("  %-*s" % (width, label) + "".join("%12s" % fmt_qps(v, h) for v, h in row))
    if other:
        print("  %-*s" % (width, ratio_label) + "".join(
            "%12s" % ("%.2fx" % (v / other["%.2f" % r]["qps"])
                      if v and other.get("%.2f" % r, {}).get("qps") else "-")
            for r, (v, h) in zip(targets, row)))
    return {"%.2f" % r: {"qps": v, "how": h} for r, (v, h) in zip(targets, row)}


def fmt_qps(v, how):
    if v is None:
        return "n/a"
    return (">" if how == ">=" else "") + "%.0f" % v


def fmt(x, spec="%.0f"):
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    return spec % x


# ------------------------------------------------------------- the machine --

def median_time(fn, repeat, warmup=1):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), ts


def ncpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def loadavg():
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def openblas_info():
    """Config string and detected core of the OpenBLAS this process loaded."""
    path = None
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                name = os.path.basename(line.split()[-1])
                if name.startswith("libopenblas") and ".so" in name:
                    path = line.split()[-1]
                    break
    except OSError:
        pass
    if path is None:
        path = ctypes.util.find_library("openblas")
    info = {"library": path, "config": None, "corename": None, "threads": None}
    if not path:
        return info
    try:
        lib = ctypes.CDLL(path)
        lib.openblas_get_config.restype = ctypes.c_char_p
        lib.openblas_get_corename.restype = ctypes.c_char_p
        info["config"] = lib.openblas_get_config().decode()
        info["corename"] = lib.openblas_get_corename().decode()
        info["threads"] = int(lib.openblas_get_num_threads())
        info["handle"] = lib
    except (OSError, AttributeError) as e:
        info["error"] = str(e)
    return info


def env_list(name, default):
    return os.environ.get(name, default).split()


# ------------------------------------------------------- running programs --

def last_line(raw):
    lines = raw.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else "(no message)"


def first_line(raw):
    """The first line of a program's error output: after a usage error the
    message, before the "Try '... --help'" line."""
    lines = raw.decode(errors="replace").strip().splitlines()
    return lines[0] if lines else "(no message)"


# BENCH_VEC_WARM=1 (the default): vec-query answers the query set twice in
# one process (the file given twice) and the second pass is timed, so that
# every side is timed on an index whose pages its process has touched: the
# in-process sides load or build theirs before the clock starts, while
# vec-query maps its file and pays the first touch of each page inside its
# first pass.  That first pass is kept as the "cold" time.  0: one pass.
VEC_WARM = os.environ.get("BENCH_VEC_WARM", "1") != "0"

_STATS_RE = re.compile(rb"^vec-query: (?:(.*): )?([0-9]+) queries, "
                       rb"([0-9.]+(?:e[-+]?[0-9]+)?) s searching"
                       rb"(?:.*scanned ([0-9]+))?", re.M)


def vec_query_stats(err):
    """vec-query --stats lines from its error output: a list of
    (input name or None for the total, queries, seconds, scanned or None),
    in order; the per-input lines come first when it read several."""
    return [(m.group(1).decode(errors="replace") if m.group(1) else None,
             int(m.group(2)), float(m.group(3)),
             int(m.group(4)) if m.group(4) else None)
            for m in _STATS_RE.finditer(err)]


def vec_query_timing(err, passes):
    """(seconds, scanned, cold seconds or None) of the timed pass: with
    passes == 2 the second input's line (cold: the first's), else the
    total; None when vec-query printed no such line."""
    st = vec_query_stats(err)
    per = [x for x in st if x[0] is not None]
    tot = [x for x in st if x[0] is None]
    if passes == 2 and len(per) >= 2:
        return per[1][2], per[1][3], per[0][2]
    if tot:
        return tot[-1][2], tot[-1][3], None
    return None


def run_vec(argv, stdout=subprocess.DEVNULL, stdin=None):
    """Run argv; on failure, BenchError naming the whole command line."""
    p = subprocess.run(argv, stdout=stdout, stdin=stdin, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise BenchError("%s exited %d: %s" % (
            " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(argv)),
            p.returncode, last_line(p.stderr)))
    return p


def run(argv, **kw):
    """Run argv capturing both outputs; on failure, BenchError naming the
    program only."""
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    if p.returncode != 0:
        raise BenchError("%s exited %d: %s" % (os.path.basename(argv[0]),
                                               p.returncode, last_line(p.stderr)))
    return p


class ProcResult:
    """What run_measured() saw: exit status, wall and CPU seconds (user +
    system over all threads, from wait4), peak RSS in bytes (None when not
    measured), stderr."""

    def __init__(self, rc, wall, cpu, maxrss, stderr):
        self.rc, self.wall, self.cpu, self.maxrss, self.stderr = \
            rc, wall, cpu, maxrss, stderr


TIME_PROG = "/usr/bin/time"


def run_measured(argv, stdout_path=None, rss=False):
    """Run argv with its standard output into stdout_path (or discarded) and
    return a ProcResult, whatever the exit status.  With rss, the program
    runs under /usr/bin/time (when there is one) for its peak RSS, the
    "Maximum resident set size" of time -v: wait4's own ru_maxrss would
    count the pages of this (large) process, which the child has before its
    exec."""
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile() as tf:
        pre = []
        if rss and os.access(TIME_PROG, os.X_OK):
            pre = [TIME_PROG, "-f", "%M", "-o", tf.name]
        out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
        try:
            t0 = time.perf_counter()
            p = subprocess.Popen(pre + argv, stdout=out, stderr=err)
            _, status, ru = os.wait4(p.pid, 0)
            wall = time.perf_counter() - t0
        finally:
            if stdout_path:
                out.close()
        p.returncode = rc = os.waitstatus_to_exitcode(status)
        err.seek(0)
        maxrss = None
        if pre:
            try:
                with open(tf.name) as f:
                    words = f.read().split()
                maxrss = int(words[-1]) * 1024
            except (OSError, ValueError, IndexError):
                maxrss = None
        return ProcResult(rc, wall, ru.ru_utime + ru.ru_stime, maxrss, err.read())


def run_timed(argv):
    """Run argv; (its standard output, wall seconds, CPU seconds of the
    process: user + system over all its threads, from wait4)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdout=out, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = rc = os.waitstatus_to_exitcode(status)
        if rc != 0:
            err.seek(0)
            raise BenchError("%s exited %d: %s" % (os.path.basename(argv[0]), rc,
                                                   last_line(err.read())))
        out.seek(0)
        return out.read(), wall, ru.ru_utime + ru.ru_stime


# ------------------------------------------------------------------ plots --

def plot_recall_qps(png, title, curves, ylabel, note, tmp, k=K):
    """Draw recall@k (x) against queries/s (y, log scale) with gnuplot into
    png.  curves: (label, [(recall, qps, parameter), ...]) per curve, or
    (label, points, style) with a gnuplot style added to 'with linespoints'
    (e.g. "lc 1 dt 2").  Returns None when drawn, else why not ("gnuplot missing", or gnuplot's
    last words)."""
    gp = shutil.which("gnuplot")
    if not gp:
        return "gnuplot missing"
    os.makedirs(os.path.dirname(png) or ".", exist_ok=True)
    plots = []
    lo = 1.0
    base = os.path.splitext(os.path.basename(png))[0]
    for i, curve in enumerate(curves):
        label, pts = curve[0], curve[1]
        style = (" " + curve[2]) if len(curve) > 2 and curve[2] else ""
        if not pts:
            continue
        path = os.path.join(tmp, "plot-%s-%d.dat" % (base, i))
        with open(path, "w") as f:
            for r, q, param in pts:
                f.write("%.6f %.3f %d\n" % (r, q, param))
        lo = min([lo] + [p[0] for p in pts])
        plots.append("'%s' using 1:2 with linespoints%s title '%s'" % (
            path, style, label.replace("'", "")))
    if not plots:
        return "nothing to plot"
    script = "\n".join([
        "set terminal pngcairo size 1000,700 enhanced font ',11'",
        "set output '%s'" % png,
        "set title '%s' noenhanced" % title.replace("'", ""),
        "set xlabel 'recall@%d (tie-aware)' noenhanced" % k,
        "set ylabel '%s'" % ylabel,
        "set logscale y",
        "set grid xtics ytics mytics",
        "set key bottom left",
        "set xrange [%.3f:1.0]" % max(0.0, min(lo, 0.9) - 0.01),
        "set label 1 '%s' at graph 0.01, graph 0.97 font ',9' noenhanced"
        % note.replace("'", ""),
        "plot " + ", \\\n     ".join(plots),
        ""])
    p = subprocess.run([gp], input=script.encode(), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    if p.returncode != 0:
        return p.stderr.decode(errors="replace").strip()[-300:]
    return None


# ----------------------------------------------------------- results file --

def write_results(path, key, result, merge):
    """Put result under key in the JSON file at path: added to what the file
    holds when merge is true (the parts of BENCH_PART=all share one file),
    else the file is replaced."""
    doc = {}
    if merge and os.path.exists(path):
        try:
            with open(path) as f:
                doc = json.load(f)
        except (OSError, ValueError):
            doc = {}
    doc[key] = result
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


def drop_vec_side(sides, vec_bin, index_type, notes):
    """Take "vecutils" out of sides (noting why in notes) when
    BENCH_FAISS_ONLY is set or vec-build has no index_type."""
    if "vecutils" not in sides:
        return
    if os.environ.get("BENCH_FAISS_ONLY", "0") not in ("", "0"):
        sides.remove("vecutils")
        notes.append("BENCH_FAISS_ONLY: vecutils side not run")
        return
    try:
        h = subprocess.run([os.path.join(vec_bin, "vec-build"), "--help"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        has = index_type.encode() in h.stdout.lower()
    except OSError:
        has = False
    if not has:
        print("note: %s/vec-build has no %s index type; the vecutils side is "
              "skipped" % (vec_bin, index_type))
        sides.remove("vecutils")
        notes.append("vec-build without %s: vecutils side skipped" % index_type)
