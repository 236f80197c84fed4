"""appendfile (mbox, maildir, one file per message) and pipe deliveries on the real file system.

Each test builds a TransportCall as the delivery engine does (routing variables
in the expansion context) and calls the registered transport function. The
expected texts are Exim 4.96's, taken from deliveries by /usr/sbin/exim4 with
the same options; one test compares bytes with a live exim4 when it is there.
"""

from __future__ import annotations

import os
import pwd
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

import pyxim.transports  # noqa: F401  (registers the delivery functions)
from pyxim.config import load_config
from pyxim.delivery import TRANSPORTS, DeliveryResult, TransportCall
from pyxim.expand.context import ExpansionContext
from pyxim.expand.taint import Tainted
from pyxim.spool.format import Recipient, SpoolHeader, SpoolMessage

HEADERS = [
    "Received: from root by oracle.example with local (Exim 4.96)\n\tid 1xYnKZ-0006nO-1k;\n"
    "\tWed, 02 Dec 2026 16:37:19 +0000\n",
    "From: A <a@x.example>\n",
    "To: user@local.example\n",
    "Subject: hi\n",
    "Message-Id: <abc@x.example>\n",
]
BODY = b"From the start\nline two\n\nFrom again\nend\n"
IS_ROOT = os.geteuid() == 0


@pytest.fixture
def open_dir():  # type: ignore[no-untyped-def]
    """A 0777 directory under /tmp that the delivery user can reach (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="pyxim-local-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def nobody() -> tuple[int, int]:
    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid


def make_call(
    tmp_path: Path,
    transport_text: str,
    *,
    local_part: str = "user",
    sender: str = "sender@x.example",
    variables: dict[str, str] | None = None,
    uid: int | None = None,
    gid: int | None = None,
    body: bytes = BODY,
) -> TransportCall:
    conf = tmp_path / "exim.conf"
    conf.write_text(
        f"primary_hostname = oracle.example\nqualify_domain = local.example\nbegin transports\nt:\n{transport_text}"
    )
    config = load_config(str(conf))
    tp = config.transports[0]
    address = f"{local_part}@local.example"
    message = SpoolMessage(
        "1xYnKZ-0006nO-1k", sender, [Recipient(address)], [SpoolHeader.of(h) for h in HEADERS], time.time()
    )
    values: dict[str, str] = {
        "local_part": Tainted(local_part),
        "domain": Tainted("local.example"),
        "local_part_data": local_part,
        "domain_data": "local.example",
        "return_path": Tainted(sender),
        "sender_address": Tainted(sender),
        "message_exim_id": "1xYnKZ-0006nO-1k",
        "message_id": "1xYnKZ-0006nO-1k",
        "original_local_part": Tainted(local_part),
        "original_domain": Tainted("local.example"),
    }
    values.update(variables or {})
    ctx = ExpansionContext(config=config, variables=values)
    return TransportCall(config, tp, message, body, address, address, ctx, uid=uid, gid=gid)


def deliver(call: TransportCall) -> DeliveryResult:
    return TRANSPORTS[call.transport.driver](call)


def mbox(path: Path, extra: str = "") -> str:
    return f"  driver = appendfile\n  file = {path}\n  lock_interval = 0s\n{extra}"


def messages_in(data: bytes) -> list[bytes]:
    return [m for m in re.split(rb"(?m)^(?=From \S+ \w{3} \w{3} [ \d]\d )", data) if m]


# -- mbox ------------------------------------------------------------------------


def test_mbox_first_and_second_delivery(tmp_path: Path) -> None:
    box = tmp_path / "mail" / "user"
    call = make_call(tmp_path, mbox(box, "  return_path_add\n  envelope_to_add\n"))
    assert deliver(call).status == "ok"
    assert oct(box.stat().st_mode & 0o777) == "0o600"
    assert deliver(make_call(tmp_path, mbox(box, "  return_path_add\n"), sender="")).status == "ok"
    data = box.read_bytes()
    first, second = messages_in(data)
    assert re.match(rb"From sender@x\.example \w{3} \w{3} \d\d \d\d:\d\d:\d\d \d{4}\n", first)
    assert first.split(b"\n")[1:3] == [b"Return-path: <sender@x.example>", b"Envelope-to: user@local.example"]
    assert b"\n\n>From the start\nline two\n\n>From again\nend\n\n" in first
    assert first.endswith(b"end\n\n")
    assert second.startswith(b"From MAILER-DAEMON ") and b"\nReturn-path: <>\n" in second
    assert not (tmp_path / "mail" / "user.lock").exists()


def test_tainted_file_name_is_refused(tmp_path: Path) -> None:
    result = deliver(make_call(tmp_path, mbox(Path(f"{tmp_path}/$local_part"))))
    assert result.status == "defer"
    assert (
        result.message == f"Tainted '{tmp_path}/user' (file or directory name for t transport) not permitted"
    )
    assert not (tmp_path / "user").exists()
    # $local_part_data (from a lookup or a local_parts match) is not tainted
    assert deliver(make_call(tmp_path, mbox(Path(f"{tmp_path}/$local_part_data")))).status == "ok"


def test_relative_file_name_is_refused(tmp_path: Path) -> None:
    result = deliver(make_call(tmp_path, mbox(Path("mail/box"))))
    assert result.status == "defer"
    assert result.message == 'appendfile: file or directory name "mail/box" is not absolute'


def test_file_must_exist(tmp_path: Path) -> None:
    box = tmp_path / "must"
    result = deliver(make_call(tmp_path, mbox(box, "  file_must_exist\n")))
    assert (result.status, result.message) == (
        "defer",
        f"No such file or directory: mailbox {box} does not exist, but file_must_exist is set",
    )
    assert getattr(result, "errno", None) == 2


def test_no_directory_creation(tmp_path: Path) -> None:
    box = tmp_path / "nodir" / "sub" / "x"
    result = deliver(make_call(tmp_path, mbox(box, "  create_directory = false\n")))
    assert result.status == "defer"
    assert result.message.startswith(
        f"No such file or directory: creating lock file hitching post {box}.lock.oracle.example."
    )


def test_symlink_refused_unless_allowed(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"")
    target.chmod(0o600)
    link = tmp_path / "sym"
    link.symlink_to(target)
    result = deliver(make_call(tmp_path, mbox(link)))
    assert (result.status, result.message) == ("defer", f"mailbox {link} is not a regular file")
    assert target.read_bytes() == b""
    assert deliver(make_call(tmp_path, mbox(link, "  allow_symlink\n"))).status == "ok"
    assert target.read_bytes().startswith(b"From sender@x.example ")


@pytest.mark.skipif(not IS_ROOT, reason="needs root to give the mailbox away")
def test_wrong_owner(tmp_path: Path) -> None:
    box = tmp_path / "owned"
    box.write_bytes(b"")
    box.chmod(0o600)
    uid, _ = nobody()
    os.chown(box, uid, -1)
    result = deliver(make_call(tmp_path, mbox(box)))
    assert (result.status, result.message) == ("defer", f"mailbox {box} has wrong uid ({uid} != 0)")
    assert deliver(make_call(tmp_path, mbox(box, "  check_owner = false\n"))).status == "ok"


def test_mode_wider_is_reduced_narrower_fails(tmp_path: Path) -> None:
    box = tmp_path / "box"
    box.write_bytes(b"")
    box.chmod(0o644)
    assert deliver(make_call(tmp_path, mbox(box))).status == "ok"
    assert box.stat().st_mode & 0o777 == 0o600
    box.chmod(0o400)
    result = deliver(make_call(tmp_path, mbox(box)))
    assert (result.status, result.message) == (
        "defer",
        f"mailbox {box} has the wrong mode 400 (600 expected)",
    )


def test_quota(tmp_path: Path) -> None:
    box = tmp_path / "quota"
    result = deliver(make_call(tmp_path, mbox(box, "  quota = 100\n")))
    assert (result.status, result.message) == (
        "defer",
        f"mailbox is full (MTA-imposed quota exceeded while writing to {box})",
    )
    assert getattr(result, "errno", None) == -22
    assert deliver(make_call(tmp_path, mbox(box, "  quota = 10K\n"))).status == "ok"


def test_lock_file_held_defers_and_stale_lock_is_broken(tmp_path: Path) -> None:
    box = tmp_path / "box"
    lock = tmp_path / "box.lock"
    lock.write_bytes(b"")
    result = deliver(make_call(tmp_path, mbox(box, "  lock_retries = 2\n")))
    assert (result.status, result.message) == ("defer", f"failed to lock mailbox {box} (lock file)")
    assert lock.exists() and not box.exists()
    old = time.time() - 600
    os.utime(lock, (old, old))
    assert (
        deliver(make_call(tmp_path, mbox(box, "  lock_retries = 2\n  lockfile_timeout = 5m\n"))).status
        == "ok"
    )
    assert not lock.exists()


def test_fcntl_lock_held_by_another_process(tmp_path: Path) -> None:
    box = tmp_path / "box"
    box.write_bytes(b"")
    box.chmod(0o600)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl,sys,time\n"
            f"f=open({str(box)!r},'ab'); fcntl.lockf(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        result = deliver(make_call(tmp_path, mbox(box, "  lock_retries = 2\n")))
        assert (result.status, result.message) == ("defer", f"failed to lock mailbox {box} (fcntl/flock)")
        assert not (tmp_path / "box.lock").exists()
    finally:
        holder.kill()
        holder.wait()
    assert deliver(make_call(tmp_path, mbox(box))).status == "ok"


def test_concurrent_deliveries_are_serialised(tmp_path: Path) -> None:
    box = tmp_path / "box"
    results: list[str] = []
    big = b"".join(b"line %d of a long body\n" % i for i in range(3000))

    def one(call: TransportCall) -> None:
        r = deliver(call)
        results.append(r.status if r.status == "ok" else r.message)

    calls = []
    for n in range(8):
        (tmp_path / f"c{n}").mkdir()
        calls.append(make_call(tmp_path / f"c{n}", mbox(box, "  lock_retries = 500\n"), body=big))
    threads = [threading.Thread(target=one, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["ok"] * 8
    found = messages_in(box.read_bytes())
    assert len(found) == 8
    for m in found:
        assert m.endswith(big + b"\n")


def test_write_failure_restores_the_mailbox_size(tmp_path: Path) -> None:
    box = tmp_path / "box"
    assert deliver(make_call(tmp_path, mbox(box))).status == "ok"
    before = box.read_bytes()
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: a file size limit makes the write fail half-way
        try:
            os.close(rfd)
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) + 50, len(before) + 50))
            result = deliver(make_call(tmp_path, mbox(box)))
            os.write(wfd, f"{result.status}|{result.message}".encode())
        finally:
            os._exit(0)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as f:
        status, _, message = f.read().decode().partition("|")
    os.waitpid(pid, 0)
    assert status == "defer"
    assert message == f"File too large: error while writing to {box}"
    assert box.read_bytes() == before


@pytest.mark.skipif(not IS_ROOT, reason="needs root to change user")
def test_delivery_as_another_user(open_dir: Path) -> None:
    tmp_path = open_dir
    uid, gid = nobody()
    box = tmp_path / "box"
    assert deliver(make_call(tmp_path, mbox(box), uid=uid, gid=gid)).status == "ok"
    st = box.stat()
    assert (st.st_uid, st.st_gid) == (uid, gid)
    sub = tmp_path / "private"
    sub.mkdir(mode=0o700)
    result = deliver(make_call(tmp_path, mbox(sub / "box"), uid=uid, gid=gid))
    assert result.status == "defer"
    assert result.message.startswith(f"Permission denied: creating lock file hitching post {sub}/box.lock.")


# -- maildir and directory -----------------------------------------------------------


def test_maildir_delivery(tmp_path: Path) -> None:
    md = tmp_path / "Maildir"
    text = f"  driver = appendfile\n  directory = {md}\n  maildir_format\n  return_path_add\n"
    assert deliver(make_call(tmp_path, text)).status == "ok"
    assert deliver(make_call(tmp_path, text)).status == "ok"
    for sub in ("cur", "new", "tmp"):
        assert (md / sub).stat().st_mode & 0o777 == 0o700
    names = sorted(os.listdir(md / "new"))
    assert len(names) == 2 and names[0] != names[1]
    for name in names:
        assert re.fullmatch(r"\d+\.M\d+P\d+\.oracle\.example", name), name
        data = (md / "new" / name).read_bytes()
        assert data.startswith(b"Return-path: <sender@x.example>\nReceived: ")
        assert data.endswith(
            b"\n\nFrom the start\nline two\n\nFrom again\nend\n"
        )  # no From line, no escaping
        assert (md / "new" / name).stat().st_mode & 0o777 == 0o600
    assert os.listdir(md / "tmp") == []


def test_maildir_tag_and_quota(tmp_path: Path) -> None:
    md = tmp_path / "md"
    text = f"  driver = appendfile\n  directory = {md}\n  maildir_format\n  maildir_tag = ,S=$message_size\n"
    assert deliver(make_call(tmp_path, text)).status == "ok"
    (name,) = os.listdir(md / "new")
    size = (md / "new" / name).stat().st_size
    assert name.endswith(f",S={size}")
    result = deliver(make_call(tmp_path, text + f"  quota = {size + 10}\n"))
    assert result.status == "defer"
    assert re.fullmatch(
        r"mailbox is full \(MTA-imposed quota exceeded while writing to tmp/\d+\.M\d+P\d+\.oracle\.example\)",
        result.message,
    )
    assert os.listdir(md / "tmp") == [] and len(os.listdir(md / "new")) == 1


def test_directory_one_file_per_message(tmp_path: Path) -> None:
    d = tmp_path / "files"
    text = f"  driver = appendfile\n  directory = {d}\n"
    assert deliver(make_call(tmp_path, text)).status == "ok"
    (name,) = os.listdir(d)
    assert re.fullmatch(r"q[0-9A-Za-z]+-\d+", name), name
    assert int(name.split("-")[1]) == (d / name).stat().st_ino
    assert (d / name).read_bytes().startswith(b"Received: ")


# -- pipe ------------------------------------------------------------------------


def pipe(command: str, extra: str = "") -> str:
    return f"  driver = pipe\n  command = {command}\n{extra}"


ARGS_SCRIPT = "import sys; print(repr(sys.argv[1:])); sys.stdin.read()"


@pytest.mark.parametrize("hostile", ["x;rm -rf /", "$(id)", "a b 'c' \"d\"", "`id`|cat"])
def test_pipe_hostile_value_is_one_literal_argument(tmp_path: Path, hostile: str) -> None:
    call = make_call(
        tmp_path,
        pipe(f"{sys.executable} -c '{ARGS_SCRIPT}' $local_part_data end", "  return_output\n"),
        variables={"local_part_data": hostile},
    )
    result = deliver(call)
    assert result.status == "fail" and result.message == "return message generated"
    assert getattr(result, "output", b"").decode().strip() == repr([hostile, "end"])


def test_pipe_refuses_a_tainted_argument(tmp_path: Path) -> None:
    result = deliver(make_call(tmp_path, pipe("/bin/echo hello $local_part"), local_part="x;rm -rf /"))
    assert (result.status, result.message) == ("fail", "Tainted arg 2 for t transport command: 'x;rm -rf /'")


def test_pipe_refuses_a_tainted_command(tmp_path: Path) -> None:
    call = make_call(tmp_path, pipe("/bin/cat"))
    call.address = Tainted("|/bin/cat")
    result = deliver(call)
    assert (result.status, result.message) == (
        "defer",
        "Tainted '/bin/cat' (command for t transport) not permitted",
    )


def test_pipe_stdin_and_environment(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = tmp_path / "env"
    call = make_call(
        tmp_path,
        pipe(f'/bin/sh -c "cat > {out}; env > {env}"', "  environment = EXTRA=1 : MORE=two\n"),
        variables={"home": str(tmp_path)},
    )
    assert deliver(call).status == "ok"
    data = out.read_bytes()
    assert (
        data.startswith(b"From sender@x.example ")
        and b"\nFrom the start\n" in data
        and data.endswith(b"end\n\n")
    )
    lines = set(env.read_text().splitlines())
    for want in (
        "LOCAL_PART=user",
        "LOGNAME=user",
        "USER=user",
        "LOCAL_PART_PREFIX=",
        "LOCAL_PART_SUFFIX=",
        "DOMAIN=local.example",
        f"HOME={tmp_path}",
        "MESSAGE_ID=1xYnKZ-0006nO-1k",
        "PATH=/bin:/usr/bin",
        "RECIPIENT=user@local.example",
        "QUALIFY_DOMAIN=local.example",
        "SENDER=sender@x.example",
        "SHELL=/bin/sh",
        "EXTRA=1",
        "MORE=two",
        f"PWD={tmp_path}",
    ):
        assert want in lines, want


@pytest.mark.parametrize(
    ("code", "status", "message"),
    [
        (0, "ok", ""),
        (3, "fail", "Child process of t transport returned 3 from command: /bin/sh"),
        (
            75,
            "defer",
            "Child process of t transport returned 75 (could mean temporary error) from command: /bin/sh",
        ),
        (
            73,
            "defer",
            "Child process of t transport returned 73 (could mean can't create output file) from command: /bin/sh",
        ),
        (
            64,
            "fail",
            "Child process of t transport returned 64 (could mean usage or syntax error) from command: /bin/sh",
        ),
        (
            137,
            "fail",
            "Child process of t transport returned 137 (could mean shell command ended by signal 9 (Killed)) "
            "from command: /bin/sh",
        ),
    ],
)
def test_pipe_exit_codes(tmp_path: Path, code: int, status: str, message: str) -> None:
    result = deliver(make_call(tmp_path, pipe(f'/bin/sh -c "cat >/dev/null; exit {code}"')))
    assert (result.status, result.message) == (status, message)


def test_pipe_temp_errors_and_ignore_status(tmp_path: Path) -> None:
    cmd = '/bin/sh -c "exit 3"'
    assert deliver(make_call(tmp_path, pipe(cmd, "  temp_errors = 3:4\n"))).status == "defer"
    assert deliver(make_call(tmp_path, pipe(cmd, "  temp_errors = *\n"))).status == "defer"
    assert deliver(make_call(tmp_path, pipe(cmd, "  ignore_status\n"))).status == "ok"


def test_pipe_command_not_runnable(tmp_path: Path) -> None:
    result = deliver(make_call(tmp_path, pipe("/nonexistent/cmd arg")))
    assert (result.status, result.message) == (
        "fail",
        "Child process of t transport returned 127 (could mean unable to exec or command does not exist) "
        "from command: /nonexistent/cmd",
    )
    result = deliver(make_call(tmp_path, pipe('nosuchcmd "a b"')))
    assert (result.status, result.message) == ("fail", '"nosuchcmd" command not found for t transport')
    assert deliver(make_call(tmp_path, pipe("true"))).status == "ok"  # found on the path


def test_pipe_killed_by_a_signal(tmp_path: Path) -> None:
    cmd = '/bin/sh -c "kill -9 \\\\$\\\\$"'
    result = deliver(make_call(tmp_path, pipe(cmd)))
    assert (result.status, result.message) == (
        "fail",
        f'Child process of t transport (running command "{cmd}") was terminated by signal 9 (Killed)',
    )


def test_pipe_expansion_failure(tmp_path: Path) -> None:
    result = deliver(make_call(tmp_path, pipe('/bin/sh -c "kill -9 \\$\\$"')))
    assert result.status == "defer"
    assert result.message.startswith(
        'Expansion of "kill -9 $$" from command "/bin/sh -c "kill -9 \\$\\$"" in t transport failed: '
    )


def test_pipe_timeout_kills_the_process_group(tmp_path: Path) -> None:
    marker = tmp_path / "late"
    start = time.monotonic()
    result = deliver(make_call(tmp_path, pipe(f'/bin/sh -c "sleep 5; touch {marker}"', "  timeout = 1s\n")))
    assert time.monotonic() - start < 4
    assert (result.status, result.message) == ("fail", "pipe delivery process timed out")
    result = deliver(make_call(tmp_path, pipe("/bin/sleep 5", "  timeout = 1s\n  timeout_defer\n")))
    assert result.status == "defer"
    time.sleep(4.5)
    assert not marker.exists()  # the shell's child was killed too


def test_pipe_return_output_log_output_and_max_output(tmp_path: Path) -> None:
    result = deliver(
        make_call(
            tmp_path, pipe('/bin/echo hello "$local_part_data" world', "  return_output\n  log_output\n")
        )
    )
    assert (result.status, result.message) == ("fail", "return message generated")
    assert result.log == ["<user@local.example>: t transport output: hello user world"]
    assert getattr(result, "output", b"") == b"hello user world\n"
    # no output: success
    assert deliver(make_call(tmp_path, pipe("/bin/true", "  return_output\n"))).status == "ok"
    # a bounce has nobody to return output to
    assert deliver(make_call(tmp_path, pipe("/bin/echo x", "  return_output\n"), sender="")).status == "ok"
    # return_fail_output: output only matters when the command failed
    assert deliver(make_call(tmp_path, pipe("/bin/echo x", "  return_fail_output\n"))).status == "ok"
    failed = deliver(make_call(tmp_path, pipe('/bin/sh -c "echo oops; exit 1"', "  return_fail_output\n")))
    assert failed.status == "fail" and getattr(failed, "output", b"") == b"oops\n"
    assert failed.message == "Child process of t transport returned 1 from command: /bin/sh"
    # max_output: the command is killed and the output marked
    big = deliver(make_call(tmp_path, pipe("/usr/bin/yes", "  max_output = 1k\n  return_fail_output\n")))
    assert big.status == "fail" and "terminated by signal 9 (Killed)" in big.message
    assert getattr(big, "output", b"").endswith(b"\n\n*** Too much output - remainder discarded ***\n")


def test_pipe_use_shell(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # Exim 4.96 lets tainted data into a use_shell command (only a tainted command text is refused)
    call = make_call(tmp_path, pipe(f"echo $local_part > {out}; cat >/dev/null", "  use_shell\n"))
    assert deliver(call).status == "ok"
    assert out.read_text() == "user\n"


def test_pipe_use_crlf_and_no_prefix(tmp_path: Path) -> None:
    out = tmp_path / "out"
    call = make_call(
        tmp_path, pipe(f'/bin/sh -c "cat > {out}"', "  use_crlf\n  message_prefix =\n  message_suffix =\n")
    )
    assert deliver(call).status == "ok"
    data = out.read_bytes()
    assert (
        data.startswith(b"Received: ")
        and data.endswith(b"\r\nend\r\n")
        and b"\n" not in data.replace(b"\r\n", b"")
    )


def test_pipe_allow_commands_and_restrict_to_path(tmp_path: Path) -> None:
    result = deliver(make_call(tmp_path, pipe("/bin/echo x", "  allow_commands = /bin/cat\n")))
    assert (result.status, result.message) == ("fail", '"/bin/echo" command not permitted by t transport')
    result = deliver(make_call(tmp_path, pipe("/bin/true x", "  restrict_to_path\n")))
    assert (result.status, result.message) == (
        "fail",
        '"/" found in "/bin/true x" (command for t transport) - failed for security reasons',
    )
    assert deliver(make_call(tmp_path, pipe("true x", "  restrict_to_path\n"))).status == "ok"


@pytest.mark.skipif(not IS_ROOT, reason="needs root to change user")
def test_pipe_runs_as_the_delivery_user(tmp_path: Path) -> None:
    uid, gid = nobody()
    result = deliver(make_call(tmp_path, pipe("/usr/bin/id -u", "  return_output\n"), uid=uid, gid=gid))
    assert getattr(result, "output", b"") == f"{uid}\n".encode()


# -- compared with a live Exim ------------------------------------------------------------

EXIM = shutil.which("exim4") or ("/usr/sbin/exim4" if os.path.exists("/usr/sbin/exim4") else None)


def _exim_user() -> tuple[str, int, int] | None:
    for name in ("Debian-exim", "exim"):
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        return name, pw.pw_uid, pw.pw_gid
    return None


@pytest.mark.skipif(EXIM is None or not IS_ROOT or _exim_user() is None, reason="needs exim4 and root")
def test_same_mbox_bytes_as_exim(open_dir: Path) -> None:
    tmp_path = open_dir
    user = _exim_user()
    assert user is not None and EXIM is not None
    name, uid, gid = user
    (tmp_path / "spool").mkdir(mode=0o777)
    (tmp_path / "spool").chmod(0o777)
    opts = (
        "  return_path_add\n  envelope_to_add\n  delivery_date_add\n"
        "  headers_add = X-Added: yes $local_part\\nX-Second: two\n  headers_remove = X-Rem*:Subject\n"
    )
    conf = tmp_path / "exim-oracle.conf"
    conf.write_text(
        f"primary_hostname = oracle.example\nqualify_domain = local.example\n"
        f"spool_directory = {tmp_path}/spool\nlog_file_path = {tmp_path}/spool/%slog\n"
        f"begin routers\nr:\n  driver = accept\n  transport = t\n"
        f"begin transports\nt:\n  driver = appendfile\n  file = {tmp_path}/exim.mbox\n  user = {name}\n{opts}"
    )
    text = (
        b"From: A <a@x.example>\nTo: user@local.example\nSubject: hi\nX-Remove-Me: 1\nX-Keep: 2\n"
        b"Message-Id: <abc@x.example>\nDate: Wed, 02 Dec 2026 16:37:19 +0000\n\n" + BODY + b".\n>From x\n"
    )
    run = subprocess.run(
        [EXIM, "-C", str(conf), "-odi", "-oi", "-f", "sender@x.example", "user@local.example"],
        input=text,
        capture_output=True,
        timeout=30,
    )
    produced = tmp_path / "exim.mbox"
    if run.returncode != 0 or not produced.exists():
        pytest.skip(f"exim4 did not deliver: {run.stderr.decode(errors='replace')}")
    theirs = produced.read_bytes()
    # rebuild the message as spooled from what Exim wrote: its Received header and the original headers
    head, _, _ = theirs.partition(b"\n\n")
    lines = head.decode().split("\n")
    received = "\n".join(lines[4:9]) + "\n"
    assert received.startswith("Received: ")
    spooled = [received] + [h + "\n" for h in text.decode().split("\n\n")[0].split("\n")]
    call = make_call(tmp_path, mbox(tmp_path / "ours.mbox", opts), body=text.split(b"\n\n", 1)[1])
    call.message.headers = [SpoolHeader.of(h) for h in spooled]
    call.uid, call.gid = uid, gid
    assert deliver(call).status == "ok"
    ours = (tmp_path / "ours.mbox").read_bytes()

    def mask(data: bytes) -> bytes:
        data = re.sub(rb"(?m)^(From \S+) .*$", rb"\1 DATE", data)
        return re.sub(rb"(?m)^Delivery-date: .*$", b"Delivery-date: DATE", data)

    assert mask(ours) == mask(theirs)
    assert (tmp_path / "ours.mbox").stat().st_mode & 0o777 == produced.stat().st_mode & 0o777
