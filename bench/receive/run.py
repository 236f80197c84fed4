"""bench/receive: messages per second accepted into the spool, pyxim against Exim 4.96, same run.

    python3 bench/receive/run.py [--messages 400] [--sessions 1,10,50,200]

Postfix's smtp-source drives both daemons (it comes from Debian's postfix
package, unpacked into a private folder: the package itself conflicts with an
installed Exim). Both daemons get the same configuration: accept every
recipient, queue only (no delivery), no TLS. For each number of concurrent
sessions and message size, N messages are sent and the wall time measured;
CPU seconds and peak RSS of each daemon are read from /proc. A benchmark,
not a test.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXIM = shutil.which("exim4") or shutil.which("exim")
CACHE = Path(tempfile.gettempdir()) / "pyxim-bench-postfix"

CONF = """\
primary_hostname = bench.example.org
qualify_domain = example.org
spool_directory = {root}/spool
log_file_path = {root}/log/%slog
queue_only = true
acl_smtp_rcpt = accept
tls_advertise_hosts =
smtp_accept_max = 500
smtp_accept_queue_per_connection = 0
smtp_accept_max_per_connection = 100000
message_size_limit = 0
smtp_connect_backlog = 500
exim_user = Debian-exim
exim_group = Debian-exim
"""


def smtp_source() -> list[str]:
    binary = CACHE / "root" / "usr" / "sbin" / "smtp-source"
    if not binary.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", "postfix"], cwd=CACHE, check=True, capture_output=True)
        deb = sorted(glob.glob(str(CACHE / "postfix_*.deb")))[-1]
        subprocess.run(["dpkg", "-x", deb, str(CACHE / "root")], check=True)
    return [str(binary)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int) -> None:
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on port {port}")


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
    return (utime + stime + cutime + cstime) / ticks


def proc_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def start(kind: str, root: Path, port: int) -> subprocess.Popen:
    conf = root / "exim.conf"
    if kind == "exim":
        cmd = [EXIM, "-C", str(conf), "-bdf", "-oX", str(port)]
    else:
        cmd = [sys.executable, "-m", "pyxim", "-C", str(conf), "-bdf", "-oX", f"127.0.0.1.{port}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc


def prepare(kind: str) -> Path:
    root = Path(tempfile.mkdtemp(prefix=f"pyxim-bench-{kind}-"))
    for sub in ("spool", "log"):
        (root / sub).mkdir()
        os.chmod(root / sub, 0o777)
    (root / "exim.conf").write_text(CONF.format(root=root))
    os.chmod(root / "exim.conf", 0o644)
    os.chmod(root, 0o755)
    return root


def run_case(source: list[str], port: int, sessions: int, size: int, messages: int) -> float:
    env = dict(os.environ, LD_LIBRARY_PATH=str(CACHE / "root" / "usr" / "lib" / "postfix"))
    t0 = time.perf_counter()
    subprocess.run(
        source + ["-s", str(sessions), "-m", str(messages), "-l", str(size), "-f", "bench@example.org",
                  "-t", "rcpt@example.org", f"127.0.0.1:{port}"],
        env=env, check=True, capture_output=True, timeout=900,
    )
    return time.perf_counter() - t0


def count_queued(root: Path) -> int:
    return len(list((root / "spool" / "input").rglob("*-H")))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=400)
    ap.add_argument("--sessions", default="1,10,50,200")
    ap.add_argument("--sizes", default="2048,102400")
    args = ap.parse_args()
    if EXIM is None:
        print("exim4 is not installed", file=sys.stderr)
        return 1
    source = smtp_source()
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        for sessions in (int(s) for s in args.sessions.split(",")):
            results = {}
            for kind in ("exim", "pyxim"):
                root = prepare(kind)
                port = free_port()
                proc = start(kind, root, port)
                try:
                    n = args.messages if size < 10000 else max(args.messages // 4, sessions)
                    cpu0 = proc_cpu(proc.pid)
                    wall = run_case(source, port, sessions, size, n)
                    time.sleep(0.5)
                    cpu = proc_cpu(proc.pid) - cpu0
                    rss = proc_rss_kb(proc.pid)
                    queued = count_queued(root)
                    results[kind] = (queued / wall, cpu, rss, queued, n)
                finally:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                    shutil.rmtree(root, ignore_errors=True)
            e, p = results["exim"], results["pyxim"]
            rows.append(
                f"| {size // 1024} KiB | {sessions} | {e[0]:,.0f} | {p[0]:,.0f} | {p[0] / e[0]:.2f} | "
                f"{e[1]:.1f} / {p[1]:.1f} | {e[2] / 1024:.0f} / {p[2] / 1024:.0f} | {e[3]}/{e[4]} · {p[3]}/{p[4]} |"
            )
    print(f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, Python {sys.version.split()[0]}\n")
    print("| size | sessions | Exim msg/s | pyxim msg/s | ratio | CPU s Exim / pyxim | peak RSS MiB Exim / pyxim | queued |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
