"""bench/expand: expansions per second, pyxim against the real Exim, in the same run.

    python3 bench/expand/run.py [--lines N] [--repeat R] [--per-line K] [--only CATS] [--mode MODES]
    python3 bench/expand/run.py --profile CATEGORY [--mode fresh|template]

Everything is generated into a temporary directory: a 10,000-line lsearch
file, and a configuration with a 1,000-entry named host list, a 1,000-entry
named domain list and a macro holding 1,000 names; then for each category
an input for `-be`. The same input and configuration go to
`exim4 -C conf -DSPOOL=... -DLOGDIR=... -be` and to `python3 -m pyxim` with
the same arguments. Exim runs as root here and drops privilege to its own
user for -C, so the directory and files are world-readable and the spool
and log directories world-writable. This is a benchmark, never a test
assertion: nothing here fails because something is slow.

Categories (one expansion of each; the number of expansions is --lines
times the category's factor in SCALE, so that cheap categories run long
enough for Exim's time to stand clear of its start-up and costly ones keep
the whole run near two minutes):

  lsearch       ${lookup{key}lsearch{file}{$value}{none}} in the 10,000-line file
                (shuffled); one key in ten is absent (a full scan)
  nested_if     three nested ${if} with ${eval}, a numeric comparison and a regex match
  sg            ${sg} with a two-group regex and a replacement using $1/$2
  extract       a keyed ${extract} from a key=value record and a numbered one from a list
  match_ip      ${if match_ip{addr}{+big_hosts}}: 1,000 IPv4 addresses, /24s and IPv6 /48s
                (addresses and networks only: a name would need DNS); one address in
                five matches nothing (a full scan)
  match_domain  ${if match_domain{dom}{+big_domains}}: 1,000 names and *.wildcards;
                one domain in five matches nothing
  inlist        ${if inlist{name}{BIG_NAMES}}: the macro's 1,000 names (a macro because
                Exim's -be reads at most 1,022 characters of an input line); one in five absent
  overhead      the -be loop itself: a plain word per line in "fresh" mode, ${map}
                handing out $item in "template" mode - a floor for reading the rest

Two modes - what the caches see:

  template  (the headline) The same expansion string is expanded with
            different data, as a server expands its configuration's strings
            for each message. Each input line is
                ${map{<; d1;d2;...;dK}{TEMPLATE}}
            so TEMPLATE is expanded up to K times (--per-line, fewer when the
            line would pass Exim's 1,022 characters) with $item set to new
            data. Exim re-reads TEMPLATE for each item, as it re-reads a
            configuration string for each message; pyxim parses the line once
            and evaluates the template K times, as it does with a string from
            its configuration (its parse cache). ${map}'s own cost per item is
            in every figure; the "overhead" row shows it.
  fresh     Every input line is a different string (the data written into
            the text), so both programs parse every line: parsing plus
            evaluation, what `-be` on new strings costs.

Lookup keys, addresses and domains do not repeat within a run (lsearch
keys would only beyond 10,000 lookups), so no per-value result cache
answers: a server starts each message with those empty (Exim's
search_tidyup), and repeated keys in one long -be session would turn
Exim's lsearch into a memory lookup and let pyxim answer a named list from
its per-subject cache. inlist's names do repeat (no program caches inlist);
in fresh mode a line that would repeat gets " #<line number>" appended, so
that it is still a new string. Caches of what does not depend on the data -
pyxim's parsed lsearch file (kept while the file's mtime and size stay the
same), its split lists and compiled regexes - are in play, as they are in a
running daemon.

Measurement: each program first runs R (at least 3) times with an empty
input: start-up, loading the configuration. Then for each category both
run R times, alternating; the first run's outputs are compared line by
line, so that every figure compares equal work: a category whose outputs
differ is reported (the first differing lines go to stderr) and not timed.
Wall time comes from time.perf_counter(), CPU time (user + system) from
os.wait4() on the child, peak RSS from GNU time (/usr/bin/time: a child's
ru_maxrss starts at its parent's peak, and this script's exceeds Exim's;
without GNU time the figure is an upper bound). The median start-up is
subtracted from the median run; rates are expansions per CPU second and
the ratio is pyxim's rate over Exim's (above 1: pyxim is faster); "ratio
(wall)" is the same from wall time. A category that fails (a crash, a
timeout) is reported in its row and the others go on.

--profile CATEGORY runs pyxim on that category's input under cProfile and
prints the top functions by own and by cumulative time (start-up included).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

EXIM = shutil.which("exim4") or shutil.which("exim") or "/usr/sbin/exim4"
PYXIM = [sys.executable, "-m", "pyxim"]
REPO = Path(__file__).resolve().parents[2]

LSEARCH_KEYS = 10_000
LIST_SIZE = 1_000
MAX_BE_LINE = 1022  # Exim's -be reads a line in a 1,024-byte buffer: a longer line is cut in pieces
TIME = "/usr/bin/time"  # GNU time, for the peak RSS of the program alone (see run_be)
RUN_TIMEOUT = 300.0  # seconds for one run of one program; a hung run is killed and reported

# Expansions per category for each --lines: the cheap ones get more, so that
# Exim's time stands well clear of its start-up, the costly ones fewer, so
# that a whole run stays near two minutes on two cores.
SCALE = {
    "lsearch": 2,
    "nested_if": 20,
    "sg": 20,
    "extract": 20,
    "match_ip": 1,
    "match_domain": 1,
    "inlist": 2,
    "overhead": 50,
}

# Each template uses $item for its datum; in "fresh" mode the datum is written
# in its place. The lsearch file's path is filled in by make_data().
TEMPLATES: dict[str, str] = {
    "lsearch": "${lookup{$item}lsearch{LSEARCH_FILE}{$value}{none}}",
    "nested_if": (
        "${if eq{${eval:$item%3}}{1}"
        "{${if >{$item}{20000}{${if match{x${item}y}{\\N^x(\\d+)y$\\N}{m$1}{n}}}{small}}}"
        "{other}}"
    ),
    "sg": "${sg{$item}{\\N(\\w+)@([^.]+)\\.\\N}{\\$2/\\$1.}}",
    "extract": '${extract{user}{id=$item user="u $item" host=h$item.example mode=r}}:${extract{3}{:}{a:b:$item:c}}',
    "match_ip": "${if match_ip{$item}{+big_hosts}{in}{out}}",
    "match_domain": "${if match_domain{$item}{+big_domains}{in}{out}}",
    "inlist": "${if inlist{$item}{BIG_NAMES}{in}{out}}",
}


# ----------------------------------------------------------------------------
# generated data


@dataclass
class Data:
    work: Path
    conf: Path
    macros: list[str]
    templates: dict[str, str]
    # category -> the data its template is expanded with, one item per expansion
    items: dict[str, list[str]] = field(default_factory=dict)


def distinct(gen, n: int) -> list[str]:  # type: ignore[no-untyped-def]
    """n different values from gen(): a value seen twice would let a per-value cache answer."""
    out: list[str] = []
    seen: set[str] = set()
    for _ in range(200 * n):
        if len(out) == n:
            break
        value = gen(len(out))
        if value not in seen:
            seen.add(value)
            out.append(value)
    return out


def _hosts(rng: random.Random) -> list[tuple[str, str]]:
    """The host list as (pattern, kind): IP addresses and networks only (a name would need DNS)."""
    entries: list[tuple[str, str]] = []
    for i in range(LIST_SIZE):
        if i % 10 == 7:
            entries.append((f"2001:db8:{i:x}::/48", "v6"))
        elif i % 10 in (1, 3, 5, 9):
            entries.append((f"172.{16 + i // 250}.{i % 250}.0/24", "net"))
        else:
            entries.append((f"10.{i // 250}.{i % 250}.{1 + i % 200}", "addr"))
    rng.shuffle(entries)
    return entries


def _host_items(entries: list[tuple[str, str]], n: int, rng: random.Random) -> list[str]:
    def gen(i: int) -> str:
        if i % 5 == 4:
            return f"192.0.{rng.randrange(256)}.{rng.randrange(256)}"  # matches nothing: a full scan
        pattern, kind = entries[rng.randrange(len(entries))]
        if kind == "addr":
            return pattern
        if kind == "net":
            return pattern.replace(".0/24", f".{rng.randrange(1, 255)}")
        return pattern.replace("::/48", f":{rng.randrange(1, 0xFFFF):x}::{rng.randrange(1, 0xFFFF):x}")

    return distinct(gen, n)


def _domains(rng: random.Random) -> list[str]:
    entries = [f"*.w{i}.example" if i % 10 in (2, 5, 8) else f"d{i}.example" for i in range(LIST_SIZE)]
    rng.shuffle(entries)
    return entries


def _domain_items(entries: list[str], n: int, rng: random.Random) -> list[str]:
    def gen(i: int) -> str:
        if i % 5 == 4:
            return f"m{i}.nomatch.test"
        pattern = entries[rng.randrange(len(entries))]
        return f"h{i}{pattern[1:]}" if pattern.startswith("*") else pattern

    return distinct(gen, n)


def make_data(work: Path, base: int, seed: int = 4096) -> Data:
    """Write the data and configuration into `work` (readable by Exim once it has dropped privilege)."""
    rng = random.Random(seed)
    # lsearch: 10,000 keys in a shuffled order, so the file is not sorted
    keys = [f"user{i:05d}.example.org" for i in range(LSEARCH_KEYS)]
    rng.shuffle(keys)
    lsearch = work / "big.lsearch"
    lsearch.write_text(
        "# generated by bench/expand/run.py\n" + "".join(f"{k}: data for {k} quota={len(k)}M\n" for k in keys)
    )

    host_entries = _hosts(rng)
    domain_entries = _domains(rng)
    names = [f"n{i:04d}" for i in range(LIST_SIZE)]
    rng.shuffle(names)

    conf = work / "bench.conf"
    conf.write_text(
        "# bench/expand: the same configuration for exim4 -be and pyxim -be.\n"
        "# SPOOL and LOGDIR come with -D on both command lines.\n"
        "primary_hostname = bench.example.org\n"
        "qualify_domain = example.org\n"
        "spool_directory = SPOOL\n"
        "log_file_path = LOGDIR/%slog\n"
        f"hostlist big_hosts = <; {' ; '.join(p for p, _ in host_entries)}\n"
        f"domainlist big_domains = {' : '.join(domain_entries)}\n"
        "# inlist's list: a macro, because Exim's -be reads at most 1,022 characters of a line\n"
        f"BIG_NAMES = {':'.join(names)}\n"
    )
    for sub in ("spool", "log"):
        (work / sub).mkdir(exist_ok=True)
        os.chmod(work / sub, 0o777)
    for p in (lsearch, conf):
        os.chmod(p, 0o644)
    os.chmod(work, 0o755)

    templates = dict(TEMPLATES)
    templates["lsearch"] = templates["lsearch"].replace("LSEARCH_FILE", str(lsearch))
    templates["overhead"] = "$item"

    # The data for each category (see the module docstring).
    n = {c: base * SCALE[c] for c in SCALE}
    present = list(keys)
    rng.shuffle(present)
    items = {
        "lsearch": [
            f"absent{i:05d}.example.org" if i % 10 == 9 else present[i % len(present)]
            for i in range(n["lsearch"])
        ],
        "nested_if": [str(3 * i + rng.randrange(3)) for i in range(n["nested_if"])],
        "sg": [f"user{i}@host{i % 17}.example.org" for i in range(n["sg"])],
        "extract": [str(i) for i in range(n["extract"])],
        "match_ip": _host_items(host_entries, n["match_ip"], rng),
        "match_domain": _domain_items(domain_entries, n["match_domain"], rng),
        "inlist": [f"x{i}" if i % 5 == 4 else names[rng.randrange(len(names))] for i in range(n["inlist"])],
        "overhead": [f"w{i}" for i in range(n["overhead"])],
    }
    macros = [f"-DSPOOL={work / 'spool'}", f"-DLOGDIR={work / 'log'}"]
    return Data(work, conf, macros, templates, items)


def fill(template: str, datum: str) -> str:
    return template.replace("${item}", datum).replace("$item", datum)


def build_input(data: Data, category: str, mode: str, per_line: int) -> tuple[list[str], int]:
    """The -be input lines for one category and the number of expansions they make."""
    template, items = data.templates[category], data.items[category]
    if mode == "fresh":
        if category == "overhead":
            return list(items), len(items)
        # A datum that comes back (only inlist's 1,000 names do) would repeat a
        # whole line; it gets the line's number as a literal tail instead, so
        # that every line is still a new string.
        lines, seen = [], set()
        for i, d in enumerate(items):
            line = fill(template, d)
            if line in seen:
                line += f" #{i}"
            seen.add(line)
            lines.append(line)
        return lines, len(items)
    lines: list[str] = []
    chunk: list[str] = []
    for d in items:
        if chunk and (len(chunk) == per_line or len(map_line(chunk + [d], template)) > MAX_BE_LINE):
            lines.append(map_line(chunk, template))
            chunk = []
        chunk.append(d)
    if chunk:
        lines.append(map_line(chunk, template))
    return lines, len(items)


def map_line(chunk: list[str], template: str) -> str:
    return "${map{<; " + ";".join(chunk) + "}{" + template + "}}"


# ----------------------------------------------------------------------------
# running


@dataclass
class Run:
    wall: float
    cpu: float
    maxrss_kib: int
    status: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False


def run_be(command: list[str], data: Data, input_file: Path) -> Run:
    """One run of `command -C conf -D... -be < input_file`; CPU time from wait4() on the child.

    A child's ru_maxrss starts at its parent's peak (the memory it shared
    until exec), and this script's own exceeds a small program's, so the
    peak RSS comes from GNU time, itself a small parent, when it is there.
    """
    argv = command + ["-C", str(data.conf), *data.macros, "-be"]
    rss_file = data.work / "rss.txt"
    if os.path.exists(TIME):
        argv = [TIME, "-f", "%M", "-o", str(rss_file), *argv]
    with (
        open(input_file, "rb") as fin,
        tempfile.TemporaryFile() as fout,
        tempfile.TemporaryFile() as ferr,
    ):
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=fin, stdout=fout, stderr=ferr, cwd=data.work)
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            proc.kill()

        timer = threading.Timer(RUN_TIMEOUT, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        fout.seek(0)
        ferr.seek(0)
        maxrss = usage.ru_maxrss
        if argv[0] == TIME:
            try:
                maxrss = int(rss_file.read_text().split()[-1])
            except (OSError, ValueError, IndexError):
                pass
        return Run(
            wall,
            usage.ru_utime + usage.ru_stime,
            maxrss,
            proc.returncode,
            fout.read(),
            ferr.read(),
            timed_out.is_set(),
        )


def failure(run: Run, who: str) -> str | None:
    if run.timed_out:
        return f"{who} timed out after {RUN_TIMEOUT:.0f} s"
    if run.status != 0:
        err = run.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"{who} exit status {run.status}" + (f": {err[-1][:120]}" if err else "")
    return None


def compare(e: bytes, p: bytes, lines: list[str]) -> list[str]:
    """Differences between the two outputs, as readable lines (empty when equal)."""
    if e == p:
        return []
    el, pl = e.decode("utf-8", "replace").split("\n"), p.decode("utf-8", "replace").split("\n")
    out = []
    if len(el) != len(pl):
        out.append(f"output lengths differ: Exim {len(el)} lines, pyxim {len(pl)} lines")
    for i, (a, b) in enumerate(zip(el, pl, strict=False)):
        if a != b:
            src = lines[i] if i < len(lines) else "(end)"
            out.append(f"line {i + 1}: {src[:200]}\n    exim:  {a[:300]}\n    pyxim: {b[:300]}")
    return out


@dataclass
class Result:
    category: str
    mode: str
    expansions: int
    exim: list[Run] = field(default_factory=list)
    pyxim: list[Run] = field(default_factory=list)
    problem: str | None = None


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def bench_category(data: Data, category: str, mode: str, per_line: int, repeat: int, verbose: bool) -> Result:
    lines, expansions = build_input(data, category, mode, per_line)
    res = Result(category, mode, expansions)
    input_file = data.work / f"in-{category}-{mode}.txt"
    input_file.write_text("\n".join(lines) + "\n")
    os.chmod(input_file, 0o644)
    if max(len(line) for line in lines) > MAX_BE_LINE:
        res.problem = f"an input line is longer than Exim's -be reads ({MAX_BE_LINE} characters)"
        return res

    # Check: the same output from both, so the timing compares equal work.
    e, p = run_be([EXIM], data, input_file), run_be(PYXIM, data, input_file)
    res.problem = failure(e, "exim4") or failure(p, "pyxim")
    if res.problem:
        return res
    diffs = compare(e.stdout, p.stdout, lines)
    if diffs:
        internal = [d for d in diffs if "internal error in pyxim" in d]
        res.problem = f"outputs differ on {len(diffs)} line(s)" + (
            " (pyxim internal error)" if internal else ""
        )
        print(f"\n[{category}/{mode}] {res.problem}; the first ones:", file=sys.stderr)
        for d in diffs[:3]:
            print("  " + d, file=sys.stderr)
        return res

    res.exim.append(e)
    res.pyxim.append(p)
    for _ in range(repeat - 1):
        for command, runs in (([EXIM], res.exim), (PYXIM, res.pyxim)):
            r = run_be(command, data, input_file)
            who = "exim4" if command == [EXIM] else "pyxim"
            res.problem = failure(r, who)
            if res.problem:
                return res
            runs.append(r)
    if verbose:
        print(
            f"  {category}/{mode}: exim cpu {[round(r.cpu, 3) for r in res.exim]} "
            f"pyxim cpu {[round(r.cpu, 3) for r in res.pyxim]}",
            file=sys.stderr,
        )
    return res


# ----------------------------------------------------------------------------
# report


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        exim_version = subprocess.run([EXIM, "-bV"], capture_output=True, text=True, timeout=30).stdout
        exim_version = exim_version.split("\n")[0].strip() or "Exim (version unknown)"
    except (OSError, subprocess.SubprocessError):
        exim_version = "Exim (version unknown)"
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    return (
        f"{model}, {os.cpu_count()} cores, Linux {platform.release()}, Python {platform.python_version()}, "
        f"{exim_version}" + (f", pyxim {rev}" if rev else "")
    )


def rate(expansions: int, runs: list[Run], base: list[Run], attr: str) -> float:
    net = median([getattr(r, attr) for r in runs]) - median([getattr(r, attr) for r in base])
    return expansions / net if net > 0 else float("inf")


def fmt_rate(x: float) -> str:
    return "∞" if x == float("inf") else f"{x:,.0f}"


def table(results: list[Result], base_e: list[Run], base_p: list[Run]) -> str:
    out = [
        "| category | expansions | Exim exp/s | pyxim exp/s | ratio pyxim/Exim | ratio (wall) | peak RSS MiB Exim / pyxim |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if r.problem:
            out.append(f"| {r.category} | {r.expansions:,} | – | – | {r.problem} | | |")
            continue
        e_cpu, p_cpu = rate(r.expansions, r.exim, base_e, "cpu"), rate(r.expansions, r.pyxim, base_p, "cpu")
        e_wall, p_wall = (
            rate(r.expansions, r.exim, base_e, "wall"),
            rate(r.expansions, r.pyxim, base_p, "wall"),
        )
        rss_e = max(x.maxrss_kib for x in r.exim) / 1024
        rss_p = max(x.maxrss_kib for x in r.pyxim) / 1024
        out.append(
            f"| {r.category} | {r.expansions:,} | {fmt_rate(e_cpu)} | {fmt_rate(p_cpu)} | "
            f"{p_cpu / e_cpu:.3g} | {p_wall / e_wall:.3g} | {rss_e:.0f} / {rss_p:.0f} |"
        )
    return "\n".join(out)


# ----------------------------------------------------------------------------


def profile(data: Data, category: str, mode: str, per_line: int) -> int:
    lines, _ = build_input(data, category, mode, per_line)
    input_file = data.work / f"in-{category}-{mode}.txt"
    input_file.write_text("\n".join(lines) + "\n")
    stats = data.work / "profile.out"
    argv = [sys.executable, "-m", "cProfile", "-o", str(stats), "-m", "pyxim"]
    argv += ["-C", str(data.conf), *data.macros, "-be"]
    with open(input_file, "rb") as fin:
        subprocess.run(argv, stdin=fin, stdout=subprocess.DEVNULL, check=False, cwd=data.work)
    import pstats

    print(f"pyxim -be, {category} ({mode}), {len(lines)} lines: top functions by own time\n")
    st = pstats.Stats(str(stats))
    st.sort_stats("tottime").print_stats(25)
    st.sort_stats("cumulative").print_stats(25)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--lines",
        type=int,
        default=1000,
        help="base number of expansions, scaled per category (default 1000)",
    )
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per program, median kept (default 3)")
    ap.add_argument("--per-line", type=int, default=20, help="expansions per ${map} line in template mode")
    ap.add_argument("--mode", default="template,fresh", help="template, fresh or both (default both)")
    ap.add_argument("--only", default="", help="comma-separated categories (default all)")
    ap.add_argument("--profile", metavar="CATEGORY", help="profile pyxim on one category instead")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    if not os.path.exists(EXIM) and not args.profile:
        print("exim4 is not installed (scripts/install-test-deps)", file=sys.stderr)
        return 1
    categories = [*TEMPLATES, "overhead"]
    if args.only:
        wanted = [c.strip() for c in args.only.split(",") if c.strip()]
        unknown = [c for c in wanted if c not in categories]
        if unknown:
            ap.error(f"unknown categories {unknown}; known: {', '.join(categories)}")
        categories = wanted
    if args.profile and args.profile not in categories:
        ap.error(f"unknown category {args.profile!r}; known: {', '.join(categories)}")
    modes = [m.strip() for m in args.mode.split(",") if m.strip()]
    if any(m not in ("template", "fresh") for m in modes):
        ap.error("--mode takes template, fresh or both")

    work = Path(tempfile.mkdtemp(prefix="pyxim-bench-expand-"))
    try:
        data = make_data(work, args.lines)
        if args.profile:
            return profile(data, args.profile, modes[0], args.per_line)
        t_start = time.perf_counter()
        empty = work / "empty.txt"
        empty.write_bytes(b"")
        os.chmod(empty, 0o644)
        base_e, base_p = [], []
        for _ in range(max(args.repeat, 3)):
            base_e.append(run_be([EXIM], data, empty))
            base_p.append(run_be(PYXIM, data, empty))
        problems = [f for f in (failure(base_e[0], "exim4"), failure(base_p[0], "pyxim")) if f]
        if problems:
            print("start-up failed: " + "; ".join(problems), file=sys.stderr)
            return 1

        sections = []
        for mode in modes:
            results = []
            for category in categories:
                print(f"{mode}: {category} ...", file=sys.stderr, flush=True)
                try:
                    results.append(
                        bench_category(data, category, mode, args.per_line, args.repeat, args.verbose)
                    )
                except Exception as exc:  # noqa: BLE001 — one broken category must not stop the others
                    n = args.lines * SCALE[category]
                    results.append(Result(category, mode, n, problem=f"bench error: {exc!r}"[:150]))
            sections.append((mode, results))

        print(f"Machine: {machine()}.")
        print(
            f"Run: {datetime.date.today().isoformat()}; --lines {args.lines:,} (expansions per category in the "
            f"table), up to {args.per_line} per line in template mode; median of {args.repeat} runs; "
            "start-up subtracted "
            f"(Exim {median([r.cpu for r in base_e]) * 1000:.0f} ms, pyxim {median([r.cpu for r in base_p]) * 1000:.0f} "
            f"ms CPU); rates per CPU second; whole run {time.perf_counter() - t_start:.0f} s.\n"
        )
        titles = {
            "template": "Same string, new data (${map} lines; pyxim parses each line once)",
            "fresh": "Every line a new string (parse + evaluate)",
        }
        for mode, results in sections:
            print(f"{titles[mode]}:\n")
            print(table(results, base_e, base_p))
            print()
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
