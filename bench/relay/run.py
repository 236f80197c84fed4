"""bench/relay: end-to-end messages per second, pyxim against Exim 4.96 in the same run.

    python3 bench/relay/run.py [--messages 200] [--sessions 1,10,50]

Postfix's smtp-source sends N messages to each daemon; each daemon delivers at
once (no queue_only) either to Postfix's smtp-sink over SMTP ("remote") or into
a maildir ("local"). The clock runs from the first message sent until the
daemon's queue is empty again (every message delivered and its spool files
gone). CPU seconds (children included) and peak RSS come from /proc. Both
daemons get the same configuration. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "receive"))

from run import CACHE, EXIM, free_port, proc_cpu, proc_rss_kb, smtp_source, wait_port  # noqa: E402

CONF = """\
primary_hostname = bench.example.org
qualify_domain = example.org
spool_directory = {root}/spool
log_file_path = {root}/log/%slog
acl_smtp_rcpt = accept
tls_advertise_hosts =
smtp_accept_max = 500
smtp_accept_max_per_connection = 100000
message_size_limit = 0
smtp_connect_backlog = 500
remote_max_parallel = 8
exim_user = Debian-exim
exim_group = Debian-exim
begin routers
local:
  driver = accept
  domains = local.example
  transport = maildir
remote:
  driver = manualroute
  route_list = * 127.0.0.1::{sink}
  self = send
  transport = smtp
begin transports
maildir:
  driver = appendfile
  directory = {root}/maildir
  maildir_format
  user = Debian-exim
smtp:
  driver = smtp
  allow_localhost
  hosts_avoid_tls = *
"""


def prepare(kind: str, sink: int) -> Path:
    import tempfile

    root = Path(tempfile.mkdtemp(prefix=f"pyxim-relay-{kind}-"))
    for sub in ("spool", "log", "maildir"):
        (root / sub).mkdir()
        os.chmod(root / sub, 0o777)
    (root / "exim.conf").write_text(CONF.format(root=root, sink=sink))
    os.chmod(root / "exim.conf", 0o644)
    os.chmod(root, 0o755)
    return root


def start(kind: str, root: Path, port: int) -> subprocess.Popen:
    conf = root / "exim.conf"
    if kind == "exim":
        cmd = [EXIM, "-C", str(conf), "-bdf", "-oX", str(port)]
    else:
        cmd = [sys.executable, "-m", "pyxim", "-C", str(conf), "-bdf", "-oX", f"127.0.0.1.{port}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc


def queue_empty(root: Path) -> bool:
    return not any((root / "spool" / "input").rglob("*-H"))


def run_case(source: list[str], port: int, root: Path, sessions: int, messages: int, rcpt: str) -> tuple[float, int]:
    env = dict(os.environ, LD_LIBRARY_PATH=str(CACHE / "root" / "usr" / "lib" / "postfix"))
    t0 = time.perf_counter()
    subprocess.run(source + ["-s", str(sessions), "-m", str(messages), "-l", "2048", "-f", "bench@example.org",
                             "-t", rcpt, f"127.0.0.1:{port}"], env=env, check=True, capture_output=True, timeout=900)
    deadline = time.time() + 600
    while not queue_empty(root) and time.time() < deadline:
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    log = (root / "log" / "mainlog").read_text(errors="replace") if (root / "log" / "mainlog").exists() else ""
    return wall, log.count(" => ")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=200)
    ap.add_argument("--sessions", default="1,10,50")
    args = ap.parse_args()
    if EXIM is None:
        print("exim4 is not installed", file=sys.stderr)
        return 1
    source = smtp_source()
    sink_binary = CACHE / "root" / "usr" / "sbin" / "smtp-sink"
    env = dict(os.environ, LD_LIBRARY_PATH=str(CACHE / "root" / "usr" / "lib" / "postfix"))
    rows = []
    for target, rcpt in (("remote", "rcpt@remote.example"), ("local", "rcpt@local.example")):
        for sessions in (int(s) for s in args.sessions.split(",")):
            results = {}
            for kind in ("exim", "pyxim"):
                sink_port = free_port()
                sink = subprocess.Popen([str(sink_binary), "-u", "nobody", "-c", f"127.0.0.1:{sink_port}", "500"], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                root = prepare(kind, sink_port)
                port = free_port()
                proc = start(kind, root, port)
                try:
                    wait_port(sink_port)
                    cpu0 = proc_cpu(proc.pid)
                    wall, delivered = run_case(source, port, root, sessions, args.messages, rcpt)
                    cpu = proc_cpu(proc.pid) - cpu0
                    results[kind] = (delivered / wall, cpu, proc_rss_kb(proc.pid), delivered)
                finally:
                    for p in (proc, sink):
                        p.send_signal(signal.SIGTERM)
                        try:
                            p.wait(30)
                        except subprocess.TimeoutExpired:
                            p.kill()
                    shutil.rmtree(root, ignore_errors=True)
            e, p = results["exim"], results["pyxim"]
            rows.append(f"| {target} | {sessions} | {e[0]:,.0f} | {p[0]:,.0f} | {p[0] / max(e[0], 1e-9):.2f} | "
                        f"{e[1]:.1f} / {p[1]:.1f} | {e[2] / 1024:.0f} / {p[2] / 1024:.0f} | "
                        f"{e[3]}/{args.messages} · {p[3]}/{args.messages} |")
    print(f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, Python {sys.version.split()[0]}\n")
    print("| delivery | sessions | Exim msg/s | pyxim msg/s | ratio | CPU s Exim / pyxim | "
          "peak RSS MiB Exim / pyxim | delivered |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
