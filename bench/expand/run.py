"""bench/expand: expansions per second, pyxim against the real Exim, in the same run.

    python3 bench/expand/run.py [--lines 4000] [--repeat 3]

For each category the same input (N expansion lines) is fed to
`exim4 -be` and to `pyxim -be` with the same configuration. Start-up time is
measured with an empty input and subtracted; the median of R runs is kept.
The outputs of both are compared first, so both do the same work.

Categories:
  lsearch   a lookup in a 10,000-line lsearch file, keys cycling through the file
  nested_if three levels of ${if} with string and numeric comparisons
  sg        ${sg} with a capture-group replacement
  extract   keyed and numbered ${extract}
  hostlist  ${if match_ip{ip}{<1,000-entry list>}} with the address near the end

The expansion strings repeat with different data, as in a real server where
the same configuration strings are expanded for each message: both programs
may cache what they parsed. This is a benchmark, never a test assertion.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXIM = shutil.which("exim4") or shutil.which("exim")


def make_data(work: Path) -> dict[str, str]:
    keys = [f"user{i:05d}.example.org" for i in range(10_000)]
    (work / "big.lsearch").write_text("".join(f"{k}: data-for-{k}\n" for k in keys))
    hosts = [f"10.{i // 250}.{i % 250}.1" for i in range(1000)]
    (work / "exim.conf").write_text(
        "primary_hostname = bench.example.org\n"
        f"spool_directory = {work}/spool\n"
        f"log_file_path = {work}/log/%slog\n"
        f"hostlist big_hosts = {' : '.join(hosts)}\n"
    )
    for sub in ("spool", "log"):
        (work / sub).mkdir(exist_ok=True)
        os.chmod(work / sub, 0o777)
    for p in work.iterdir():
        os.chmod(p, 0o777 if p.is_dir() else 0o644)
    os.chmod(work, 0o755)
    return {"lsearch": str(work / "big.lsearch"), "hosts": hosts, "keys": keys}  # type: ignore[dict-item]


def inputs(data: dict, n: int) -> dict[str, list[str]]:
    keys, hosts, f = data["keys"], data["hosts"], data["lsearch"]
    out: dict[str, list[str]] = {}
    out["lsearch"] = [f"${{lookup{{{keys[(i * 7919) % len(keys)]}}}lsearch{{{f}}}}}" for i in range(n)]
    out["nested_if"] = [
        f"${{if eq{{a{i % 3}}}{{a1}}{{${{if >{{{i}}}{{100}}{{${{if match{{x{i}y}}{{^x(\\d+)y$}}{{m$1}}{{n}}}}}}{{small}}}}}}{{other}}}}"
        for i in range(n)
    ]
    out["sg"] = [f"${{sg{{user{i}@host{i % 17}.example.org}}{{(\\w+)@([^.]+)\\.}}{{$2/$1.}}}}" for i in range(n)]
    out["extract"] = [
        f"${{extract{{k{i % 5}}}{{k0=a k1=b{i} k2=\"c d\" k3=e k4=f}}}}:${{extract{{{i % 4 + 1}}}{{:}}{{w:x:y{i}:z}}}}"
        for i in range(n)
    ]
    out["hostlist"] = [f"${{if match_ip{{{hosts[-1 - (i % 20)]}}}{{+big_hosts}}{{in}}{{out}}}}" for i in range(n)]
    return out


def run(command: list[str], conf: Path, lines: list[str]) -> tuple[float, float, str]:
    feed = ("\n".join(lines) + "\n").encode() if lines else b""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(command + ["-C", str(conf), "-be"], input=feed, capture_output=True, timeout=600)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout.decode("utf-8", "replace")


def measure(command: list[str], conf: Path, lines: list[str], repeat: int) -> float:
    base = statistics.median(run(command, conf, [])[1] for _ in range(repeat))
    cpu = statistics.median(run(command, conf, lines)[1] for _ in range(repeat))
    return len(lines) / max(cpu - base, 1e-6)


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    exim_version = subprocess.run([EXIM, "-bV"], capture_output=True, text=True).stdout.split("\n")[0] if EXIM else "-"
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, {exim_version}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=4000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if EXIM is None:
        print("exim4 is not installed (scripts/install-test-deps)", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="pyxim-bench-"))
    try:
        data = make_data(work)
        conf = work / "exim.conf"
        pyxim = [sys.executable, "-m", "pyxim"]
        rows = []
        for name, lines in inputs(data, args.lines).items():
            e_out = run([EXIM], conf, lines[:200])[2]
            p_out = run(pyxim, conf, lines[:200])[2]
            if e_out != p_out:
                rows.append(f"| {name} | – | – | outputs differ: not comparable |")
                continue
            e_rate = measure([EXIM], conf, lines, args.repeat)
            p_rate = measure(pyxim, conf, lines, args.repeat)
            rows.append(f"| {name} | {e_rate:,.0f} | {p_rate:,.0f} | {p_rate / e_rate:.2f} |")
        print(f"Machine: {machine()}; {time.strftime('%Y-%m-%d')}; {args.lines} expansions per category, "
              f"median of {args.repeat}, CPU seconds net of start-up.\n")
        print("| category | Exim expansions/s | pyxim expansions/s | ratio pyxim/Exim |")
        print("|---|---:|---:|---:|")
        print("\n".join(rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
