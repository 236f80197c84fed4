"""bench/auth: messages per second through ACLs that check SPF and verify DKIM, pyxim against Exim 4.96
in the same run, over real SMTP.

    python3 bench/auth/run.py [--messages 400] [--sessions 1,10,50]

The whole run happens inside a private network namespace (unshare; needs root) whose port 53 is the
tests' own DNS server (tests/support/dnsserver.py, zones from tests/fixtures/zones/) and whose
/etc/resolv.conf names it, so both daemons ask the same DNS. Clients connect from 10.53.0.2 (an address
added to the namespace's loopback, so SPF does not take the localhost short cut) with Postfix's
smtp-source, sending one message signed with the r2048 key of dkim.test (rsa-sha256, relaxed) from
a@bench.dkim.test, whose SPF record needs an MX and an include lookup. Each daemon's ACLs: MAIL runs
`spf`, the DKIM ACL runs `dkim_status` for each signer, DATA accepts; messages are queued only. A third
daemon, pyxim alone (Debian's Exim 4.96 is built without DMARC and ARC), adds `dmarc_status` and
`verify = arc` to the DATA ACL. A warm-up pass of the same size runs first and is not timed. Neither
daemon reuses DNS answers across connections (Exim is a process per connection; pyxim builds a resolver,
and so a cache, per SMTP session), so "warm" here means the DNS server on loopback answering from memory.
Both daemons get the same configuration. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "receive"))
sys.path.insert(0, str(ROOT))

from run import CACHE, EXIM, proc_cpu, proc_rss_kb, smtp_source  # noqa: E402

CLIENT = "10.53.0.2"  # where the daemons listen and the clients come from, inside the namespace

CONF = """\
primary_hostname = bench.example.org
qualify_domain = example.org
spool_directory = {root}/spool
log_file_path = {root}/log/%slog
queue_only = true
tls_advertise_hosts =
smtp_accept_max = 500
smtp_accept_queue_per_connection = 0
smtp_accept_max_per_connection = 100000
message_size_limit = 0
smtp_connect_backlog = 500
exim_user = Debian-exim
exim_group = Debian-exim
acl_smtp_mail = mail
acl_smtp_rcpt = accept
acl_smtp_dkim = dkim
acl_smtp_data = data
begin acl
mail:
  deny    spf = fail
  accept
dkim:
  warn    dkim_status = pass
          set acl_m_dkim = pass
  accept
data:
  deny    condition = ${{if eq{{$spf_result}}{{pass}}{{no}}{{yes}}}}
{extra}  accept
"""

# pyxim alone (Debian's Exim 4.96 is built without DMARC and ARC): the same, plus DMARC and ARC in DATA
EXTRA = """\
  deny    dmarc_status = reject : quarantine
  warn    verify = arc/none:pass:fail
"""


def message() -> bytes:
    """The benchmark's message: 2 kB of body, one DKIM signature made by pyxim's signer."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from pyxim.transports.dkim_sign import _Key, _signature

    body = b"".join(b"line %04d of the benchmark message, some words to hash\r\n" % i for i in range(36))
    text = (
        b"From: a@bench.dkim.test\r\nTo: rcpt@example.org\r\nSubject: auth bench\r\n"
        b"Message-ID: <bench@bench.dkim.test>\r\nDate: Wed, 02 Dec 2026 10:00:00 +0000\r\n\r\n" + body
    )
    key = load_pem_private_key((ROOT / "tests" / "fixtures" / "dkim" / "rsa2048.key").read_bytes(), None)
    return (
        _signature(
            text, "dkim.test", "r2048", _Key("rsa", key), "sha256", "relaxed/relaxed", None, None, None
        )
        + text
    )


def prepare(kind: str) -> Path:
    root = Path(tempfile.mkdtemp(prefix=f"pyxim-auth-{kind}-"))
    for sub in ("spool", "log"):
        (root / sub).mkdir()
        os.chmod(root / sub, 0o777)
    (root / "exim.conf").write_text(CONF.format(root=root, extra=EXTRA if kind == "pyxim+dmarc+arc" else ""))
    os.chmod(root / "exim.conf", 0o644)
    os.chmod(root, 0o755)
    return root


def wait_port(port: int) -> None:
    import socket

    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection((CLIENT, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {CLIENT} port {port}")


def start(kind: str, root: Path, port: int) -> subprocess.Popen:
    conf = root / "exim.conf"
    if kind == "exim":
        cmd = [EXIM, "-C", str(conf), "-bdf", "-oP", str(root / "exim.pid")]
        env = None
    else:
        cmd = [sys.executable, "-m", "pyxim", "-C", str(conf), "-bdf", "-oX", f"{CLIENT}.{port}"]
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    cmd += ["-oX", f"<; {CLIENT}.{port}"] if kind == "exim" else []
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    wait_port(port)
    return proc


def send(source: list[str], port: int, sessions: int, messages: int, msgfile: Path) -> float:
    env = dict(os.environ, LD_LIBRARY_PATH=str(CACHE / "root" / "usr" / "lib" / "postfix"))
    t0 = time.perf_counter()
    subprocess.run(
        source
        + [
            "-s",
            str(sessions),
            "-m",
            str(messages),
            "-F",
            str(msgfile),
            "-f",
            "a@bench.dkim.test",
            "-t",
            "rcpt@example.org",
            f"{CLIENT}:{port}",
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=900,
    )
    return time.perf_counter() - t0


def queued(root: Path) -> int:
    return len(list((root / "spool" / "input").rglob("*-H")))


def inner(args: argparse.Namespace) -> int:
    source = smtp_source()
    msgfile = Path(tempfile.mkstemp(prefix="pyxim-auth-", suffix=".eml")[1])
    msgfile.write_bytes(message().replace(b"\r\n", b"\n"))
    os.chmod(msgfile, 0o644)
    rows = []
    port = 2525
    for sessions in (int(s) for s in args.sessions.split(",")):
        results = {}
        for kind in ("exim", "pyxim", "pyxim+dmarc+arc"):
            root = prepare(kind)
            port += 1
            proc = start(kind, root, port)
            try:
                send(source, port, sessions, args.messages, msgfile)  # warm-up, not timed
                cpu0 = proc_cpu(proc.pid)
                before = queued(root)
                wall = send(source, port, sessions, args.messages, msgfile)
                cpu = proc_cpu(proc.pid) - cpu0
                accepted = queued(root) - before
                log = (root / "log" / "mainlog").read_text(errors="replace")
                dkim_ok = log.count(" DKIM=dkim.test")
                results[kind] = (accepted / wall, cpu, proc_rss_kb(proc.pid), accepted, dkim_ok)
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                shutil.rmtree(root, ignore_errors=True)
        e, p, full = results["exim"], results["pyxim"], results["pyxim+dmarc+arc"]
        rows.append(
            f"| {sessions} | {e[0]:,.0f} | {p[0]:,.0f} | {p[0] / max(e[0], 1e-9):.2f} | "
            f"{e[1]:.1f} / {p[1]:.1f} | {e[2] / 1024:.0f} / {p[2] / 1024:.0f} | "
            f"{e[3]}/{args.messages} · {p[3]}/{args.messages} | {e[4]} · {p[4]} | "
            f"{full[0]:,.0f} ({full[3]}/{args.messages}) | {full[0] / max(e[0], 1e-9):.2f} |"
        )
    msgfile.unlink()
    print(f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, Python {sys.version.split()[0]}\n")
    print(
        "| sessions | Exim msg/s | pyxim msg/s | ratio | CPU s Exim / pyxim | peak RSS MiB Exim / pyxim | "
        "accepted | DKIM= lines (warm-up + timed) | pyxim + DMARC + ARC msg/s (accepted) | its ratio to Exim |"
    )
    print("|---:|---:|---:|---:|---:|---:|---|---|---:|---:|")
    print("\n".join(rows))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=400)
    ap.add_argument("--sessions", default="1,10,50")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if EXIM is None:
        print("exim4 is not installed", file=sys.stderr)
        return 1
    if args.inner:
        return inner(args)
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        print("needs root and unshare (a private network namespace for the DNS server)", file=sys.stderr)
        return 1
    # Re-run inside a private network namespace: the tests' DNS server on port 53, resolv.conf naming it
    with tempfile.NamedTemporaryFile("w", prefix="pyxim-auth-resolv-", delete=False) as resolv:
        resolv.write(f"nameserver {CLIENT}\n")
    os.chmod(resolv.name, 0o644)
    me = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--inner",
        "--messages",
        str(args.messages),
        "--sessions",
        args.sessions,
    ]
    script = (
        f"ip link set lo up && ip addr add {CLIENT}/32 dev lo && mount --bind {resolv.name} /etc/resolv.conf"
        f" && exec {sys.executable} -m tests.support.dnsserver --host {CLIENT} --port 53 -- " + " ".join(me)
    )
    try:
        return subprocess.run(["unshare", "--mount", "--net", "--", "sh", "-c", script], cwd=ROOT).returncode
    finally:
        os.unlink(resolv.name)


if __name__ == "__main__":
    raise SystemExit(main())
