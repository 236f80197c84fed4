"""DMARC (RFC 7489) through a real daemon: full SMTP sessions on a loopback port, the
tests' own DNS server (tests/fixtures/zones/dmarc.test.zone), DKIM signatures made
with dkimpy, the spec's example DATA ACL, the history file and forensic reports.

Debian's exim4 is built without DMARC, so there is no oracle: the expectations
come from RFC 7489 and the wording of Exim's specification. Clients are given
their addresses with the PROXY protocol (hosts_proxy), so SPF sees 192.0.2.10
(permitted by every test domain) or 192.0.2.99 (permitted by none), not loopback.
"""

from __future__ import annotations

import email
import email.policy
import re
import shutil
import smtplib
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_daemon import start_daemon, stop_daemon
from tests.support.dnsserver import DnsServer, free_port

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GOOD_IP, BAD_IP = "192.0.2.10", "192.0.2.99"

CONF = """\
primary_hostname = mx.example.org
qualify_domain = example.org
spool_directory = {root}/spool
log_file_path = {root}/log/%slog
pid_file_path = {root}/pyxim.pid
smtp_receive_timeout = 30s
queue_only
tls_advertise_hosts =
hosts_proxy = 127.0.0.1
dns_nameservers = {dns}
dns_retrans = 1s
dns_retry = 1
dmarc_tld_file = {root}/psl.dat
dmarc_history_file = {root}/dmarc.history
dmarc_forensic_sender = ${{lc:DMARC-Forensic}}@example.org
domainlist local_domains = example.org
acl_smtp_rcpt = rcpt
acl_smtp_data = data
begin acl
rcpt:
  warn    local_parts = nodmarc
          control = dmarc_disable_verify
  warn    local_parts = olddisable
          control = dmarc_verify_disable
  warn    !local_parts = noforensic
          control = dmarc_enable_forensic
  warn    local_parts = list
          set acl_m_mailing_list = 1
  accept  domains = +local_domains
  deny    message = relay not permitted
data:
  warn    dmarc_status = accept : none : off
          !authenticated = *
          log_message = DMARC DEBUG: $dmarc_status $dmarc_used_domain
  warn    dmarc_status = !accept
          !authenticated = *
          log_message = DMARC DEBUG: '$dmarc_status' for $dmarc_used_domain
  warn    dmarc_status = quarantine
          !authenticated = *
          set acl_m_quarantine = 1
  deny    condition = ${{if eq{{$dmarc_domain_policy}}{{reject}}}}
          condition = ${{if eq{{$acl_m_mailing_list}}{{1}}}}
          message = Messages from $dmarc_used_domain break mailing lists
  deny    dmarc_status = reject
          !authenticated = *
          message = Message from $dmarc_used_domain failed sender's DMARC policy, REJECT
  # the spec adds the authresults item with add_header = :at_start:…; pyxim's add_header does not yet
  # keep a folded header together, so the tests read the clauses from the log instead
  warn    logwrite = AR: ${{authresults {{$primary_hostname}}}}
  warn    add_header = X-DMARC: status=$dmarc_status text=<$dmarc_status_text> used=<$dmarc_used_domain> \\
                       policy=<$dmarc_domain_policy> quarantine=<$acl_m_quarantine>
  warn    add_header = X-DMARC-AR: $dmarc_ar_header
  accept
"""


class ProxySMTP(smtplib.SMTP):
    """smtplib with a PROXY v1 header in front, so the daemon sees `client_ip` as the client."""

    def __init__(self, client_ip: str, port: int) -> None:
        self.client_ip = client_ip
        super().__init__("127.0.0.1", port, timeout=20)

    def _get_socket(self, host, port, timeout):  # type: ignore[no-untyped-def]
        sock = socket.create_connection((host, port), timeout)
        sock.sendall(f"PROXY TCP4 {self.client_ip} 127.0.0.1 40000 25\r\n".encode())
        return sock


@pytest.fixture(scope="module")
def dmarc_dns() -> Iterator[DnsServer]:
    # a server of this module's own: tests here make names misbehave
    with DnsServer() as server:
        yield server


@pytest.fixture(scope="module")
def site(dmarc_dns: DnsServer) -> Iterator[tuple[int, Path]]:
    root = Path(tempfile.mkdtemp(prefix="pyxim-dmarc-"))
    root.chmod(0o755)
    # the tests' Public Suffix List: every <name>.dmarc.test is an organization of its own
    (root / "psl.dat").write_text("// test suffixes\ntest\ndmarc.test\n")
    (root / "exim.conf").write_text(CONF.format(root=root, dns=dmarc_dns.option))
    port = free_port()
    proc = start_daemon(root, port)
    yield port, root
    stop_daemon(proc)
    shutil.rmtree(root, ignore_errors=True)


def sign(message: bytes, domain: str, selector: str = "sel") -> bytes:
    import dkim

    key = (FIXTURES / "dkim-test.key").read_bytes()
    signature = dkim.sign(
        message, selector.encode(), domain.encode(), key, include_headers=[b"from", b"subject", b"to"]
    )
    return signature + message


def message(from_header: str | None, subject: str = "dmarc test", extra: str = "") -> bytes:
    lines = [f"From: {from_header}"] if from_header is not None else []
    lines += ["To: someone@example.org", f"Subject: {subject}", "Message-ID: <x@client.test>"]
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\nHello DMARC.\r\n").encode("utf-8", "surrogateescape")


def send(
    port: int,
    client_ip: str,
    mail_from: str,
    data: bytes,
    rcpt: str = "user@example.org",
    helo: str = "client.test",
) -> tuple[int, str]:
    with ProxySMTP(client_ip, port) as smtp:
        smtp.ehlo(helo)
        code, text = smtp.mail(mail_from)
        assert code == 250, text
        code, text = smtp.rcpt(rcpt)
        assert code == 250, text
        code, text = smtp.data(data)
        return code, text.decode()


def spooled_headers(root: Path, reply: str) -> str:
    m = re.search(r"id=(\S+)", reply)
    assert m, reply
    return (root / "spool" / "input" / f"{m.group(1)}-H").read_bytes().decode("utf-8", "surrogateescape")


def x_dmarc(root: Path, reply: str) -> str:
    header = spooled_headers(root, reply)
    m = re.search(r"X-DMARC: (.*)\n", header)
    assert m, header
    return m.group(1)


def ar_line(root: Path, reply: str) -> str:
    """The ${authresults} the DATA ACL logged for this message (newlines written as \\n)."""
    job = reply.split("id=")[-1].strip()
    return next(line for line in mainlog(root).splitlines() if f"{job} AR: " in line)


def mainlog(root: Path) -> str:
    return (root / "log" / "mainlog").read_bytes().decode("utf-8", "surrogateescape")


# -- each status value, through the spec's ACL ---------------------------------------------------


def test_accept_by_aligned_spf(site) -> None:  # type: ignore[no-untyped-def]
    port, root = site
    code, reply = send(port, GOOD_IP, "bounce@bounces.reject.dmarc.test", message("a@reject.dmarc.test"))
    assert code == 250, reply
    assert x_dmarc(root, reply) == (
        "status=accept text=<Accept> used=<reject.dmarc.test> policy=<reject> quarantine=<>"
    )
    header = spooled_headers(root, reply)
    # ${authresults}: spf, then dmarc (Exim's order and wording)
    assert (
        "AR: Authentication-Results: mx.example.org;\\n\tspf=pass smtp.mailfrom=bounces.reject.dmarc.test;"
        "\\n\tdmarc=pass header.from=reject.dmarc.test"
    ) in ar_line(root, reply)
    assert (
        "X-DMARC-AR: Authentication-Results: mx.example.org; dmarc=pass header.from=reject.dmarc.test"
        in header
    )
    log = mainlog(root)
    assert (
        "DMARC results: spf_domain=bounces.reject.dmarc.test dmarc_domain=reject.dmarc.test "
        "spf_align=yes dkim_align=no enforcement='Accept'"
    ) in log
    assert "DMARC DEBUG: accept reject.dmarc.test" in log


def test_accept_by_aligned_dkim(site) -> None:  # type: ignore[no-untyped-def]
    port, root = site
    data = sign(message("Alice <alice@reject.dmarc.test>"), "reject.dmarc.test")
    # the envelope domain has SPF pass but belongs to another organization: only DKIM aligns
    code, reply = send(port, GOOD_IP, "x@norec.dmarc.test", data)
    assert code == 250, reply
    assert x_dmarc(root, reply).startswith("status=accept ")
    ar = ar_line(root, reply)
    assert (
        "dkim=pass header.d=reject.dmarc.test header.i=@reject.dmarc.test header.s=sel header.a=rsa-sha256;"
        in ar
    )
    assert ar.endswith("dmarc=pass header.from=reject.dmarc.test")
    assert (
        "spf_domain=norec.dmarc.test dmarc_domain=reject.dmarc.test spf_align=no dkim_align=yes"
        in mainlog(root)
    )


def test_reject(site) -> None:  # type: ignore[no-untyped-def]
    port, root = site
    code, reply = send(port, BAD_IP, "x@norec.dmarc.test", message("a@reject.dmarc.test"))
    assert code == 550
    assert reply == "Message from reject.dmarc.test failed sender's DMARC policy, REJECT"
    log = mainlog(root)
    assert "enforcement='Reject'" in log
    assert "DMARC DEBUG: 'reject' for reject.dmarc.test" in log


def test_modified_dkim_signed_message_is_not_aligned(site) -> None:  # type: ignore[no-untyped-def]
    port, _ = site
    data = sign(message("a@reject.dmarc.test"), "reject.dmarc.test").replace(b"Hello DMARC.", b"Hello DMARC!")
    code, reply = send(port, BAD_IP, "x@norec.dmarc.test", data)
    assert code == 550, reply


def test_quarantine(site) -> None:  # type: ignore[no-untyped-def]
    port, root = site
    code, reply = send(port, BAD_IP, "x@norec.dmarc.test", message("a@quarantine.dmarc.test"))
    assert code == 250, reply
    assert x_dmarc(root, reply) == (
        "status=quarantine text=<Quarantine> used=<quarantine.dmarc.test> policy=<quarantine> quarantine=<1>"
    )
    assert "dmarc=fail header.from=quarantine.dmarc.test" in ar_line(root, reply)


def test_none_policy(site) -> None:  # type: ignore[no-untyped-def]
    port, root = site
    code, reply = send(port, BAD_IP, "x@norec.dmarc.test", message("a@none.dmarc.test"))
    assert code == 250, reply
    assert (
        x_dmarc(root, reply)
        == "status=none text=<None, Accept> used=<none.dmarc.test> policy=<none> quarantine=<>"
    )


def test_norecord(site) -> None:  # type: ignore[no-untyped-def]
    port, root = site
    code, reply = send(port, BAD_IP, "x@norec.dmarc.test", message("a@norec.dmarc.test"))
    assert code == 250, reply
    assert (
        x_dmarc(root, reply)
        == "status=norecord text=<No DMARC record> used=<norec.dmarc.test> policy=<> quarantine=<>"
    )
    assert "dmarc=none header.from=norec.dmarc.test" in ar_line(root, reply)


@pytest.mark.parametrize(
    "from_header",
    [
        None,
        "<<<@>>>",
        "undisclosed-recipients:;",
        "a@",
        "@@@",
        "a@one.dmarc.test, b@two.dmarc.test",
        "\udcffa@\udcfe",
    ],
)
def test_nofrom(site, from_header) -> None:  # type: ignore[no-untyped-def]
    port, root = site
    # (raw 8-bit bytes where the From: text has lone surrogates)
    data = message(None).replace(b"To:", f"From: {from_header}\r\nTo:".encode("utf-8", "surrogateescape"), 1)
    if from_header is None:
        data = message(None)
    code, reply = send(port, GOOD_IP, "x@reject.dmarc.test", data)
    assert code == 250, reply
    assert x_dmarc(root, reply).startswith("status=nofrom ")


def test_two_from_headers_are_nofrom(site) -> None:  # type: ignore[no-untyped-def]
    port, root = site
    code, reply = send(
        port,
        BAD_IP,
        "x@norec.dmarc.test",
        message("a@reject.dmarc.test", extra="From: b@reject.dmarc.test\r\n"),
    )
    assert code == 250, reply
    assert x_dmarc(root, reply).startswith("status=nofrom text=<Multiple From: domains>")
    assert "dmarc=permerror" in ar_line(root, reply)


def test_temperror_on_dns_timeout(site, dmarc_dns) -> None:  # type: ignore[no-untyped-def]
    port, root = site
    with dmarc_dns.behaviour(silent=["_dmarc.slow.dmarc.test"]):
        code, reply = send(port, BAD_IP, "x@norec.dmarc.test", message("a@slow.dmarc.test"))
    assert code == 250, reply
    assert x_dmarc(root, reply).startswith("status=temperror ")
    assert "dmarc=temperror header.from=slow.dmarc.test" in ar_line(root, reply)


def test_off_by_control(site) -> None:  # type: ignore[no-untyped-def]
    port, root = site
    code, reply = send(
        port, BAD_IP, "x@norec.dmarc.test", message("a@reject.dmarc.test"), rcpt="nodmarc@example.org"
    )
    assert code == 250, reply
    assert x_dmarc(root, reply).startswith("status=off ")
    assert ar_line(root, reply).endswith("dmarc=skipped")


def test_old_control_name_works_and_is_logged(site) -> None:  # type: ignore[no-untyped-def]
    port, root = site
    code, reply = send(
        port, BAD_IP, "x@norec.dmarc.test", message("a@reject.dmarc.test"), rcpt="olddisable@example.org"
    )
    assert code == 250, reply
    assert x_dmarc(root, reply).startswith("status=off ")
    assert 'control "dmarc_verify_disable" is deprecated; use "dmarc_disable_verify"' in mainlog(root)


# -- the spec's examples and record features ---------------------------------------------------------


def test_mailing_list_example(site) -> None:  # type: ignore[no-untyped-def]
    port, root = site
    # a p=reject domain breaks lists even when this message passes
    code, reply = send(
        port, GOOD_IP, "b@bounces.reject.dmarc.test", message("a@reject.dmarc.test"), rcpt="list@example.org"
    )
    assert (code, reply) == (550, "Messages from reject.dmarc.test break mailing lists")
    code, reply = send(
        port, GOOD_IP, "x@none.dmarc.test", message("a@none.dmarc.test"), rcpt="list@example.org"
    )
    assert code == 250, reply


def test_subdomain_policy_from_organizational_domain(site) -> None:  # type: ignore[no-untyped-def]
    port, root = site
    code, reply = send(port, BAD_IP, "x@norec.dmarc.test", message("a@mail.orgp.dmarc.test"))
    assert code == 250, reply
    assert x_dmarc(root, reply).startswith(
        "status=quarantine text=<Quarantine> used=<orgp.dmarc.test> policy=<quarantine>"
    )


def test_strict_alignment(site) -> None:  # type: ignore[no-untyped-def]
    port, root = site
    # SPF passes for a subdomain: relaxed alignment would do, aspf=s does not
    code, reply = send(port, GOOD_IP, "b@bounces.strict.dmarc.test", message("a@strict.dmarc.test"))
    assert code == 550, reply
    signed = sign(message("a@strict.dmarc.test"), "strict.dmarc.test")
    code, reply = send(port, GOOD_IP, "b@bounces.strict.dmarc.test", signed)
    assert code == 250, reply
    assert x_dmarc(root, reply).startswith("status=accept ")


def test_pct_zero_applies_the_next_policy_down(site) -> None:  # type: ignore[no-untyped-def]
    port, root = site
    code, reply = send(port, BAD_IP, "x@norec.dmarc.test", message("a@pct0.dmarc.test"))
    assert code == 250, reply
    assert x_dmarc(root, reply).startswith("status=quarantine ")


def test_null_sender_uses_helo(site) -> None:  # type: ignore[no-untyped-def]
    port, root = site
    code, reply = send(port, GOOD_IP, "", message("a@reject.dmarc.test"), helo="bounces.reject.dmarc.test")
    assert code == 250, reply
    assert x_dmarc(root, reply).startswith("status=accept ")
    assert "DMARC using synthesized SPF sender domain = bounces.reject.dmarc.test" in mainlog(root)


@pytest.mark.parametrize(
    ("domain", "status"),
    [
        ("dup", "norecord"),  # two DMARC records: no policy (RFC 7489 6.6.3 step 5)
        ("bad", "norecord"),  # p=bogus and no rua=
        ("badrua", "none"),  # p=bogus with a usable rua=: taken as p=none (step 6)
        ("notdmarc", "norecord"),  # TXT records that are not DMARC records are discarded
        ("huge", "reject"),  # a 3 kB record (over TCP) with many unknown tags: p=reject holds
        ("garbled", "norecord"),  # bad adkim= and binary junk
    ],
)
def test_hostile_records(site, domain, status) -> None:  # type: ignore[no-untyped-def]
    port, root = site
    code, reply = send(port, BAD_IP, "x@norec.dmarc.test", message(f"a@{domain}.dmarc.test"))
    if status == "reject":
        assert (code, reply) == (
            550,
            f"Message from {domain}.dmarc.test failed sender's DMARC policy, REJECT",
        )
        return
    assert code == 250, reply
    assert x_dmarc(root, reply).startswith(f"status={status} ")


# -- history file and forensic reports -------------------------------------------------------------


def _history_blocks(root: Path) -> list[dict[str, list[str]]]:
    blocks: list[dict[str, list[str]]] = []
    for line in (root / "dmarc.history").read_text().splitlines():
        key, _, value = line.partition(" ")
        if key == "job":
            blocks.append({})
        blocks[-1].setdefault(key, []).append(value)
    return blocks


def test_history_file(site) -> None:  # type: ignore[no-untyped-def]
    port, root = site
    data = sign(message("a@reject.dmarc.test"), "reject.dmarc.test")
    code, reply = send(port, GOOD_IP, "x@norec.dmarc.test", data, rcpt="noforensic@example.org")
    assert code == 250, reply
    job = re.search(r"id=(\S+)", reply).group(1)  # type: ignore[union-attr]
    block = next(b for b in _history_blocks(root) if b["job"] == [job])
    assert block["reporter"] == ["mx.example.org"]
    assert block["ipaddr"] == [GOOD_IP]
    assert block["from"] == ["reject.dmarc.test"]
    assert block["mfrom"] == ["norec.dmarc.test"]
    assert block["spf"] == ["0"]  # pass
    assert block["dkim"] == ["reject.dmarc.test sel 0"]
    assert block["pdomain"] == ["reject.dmarc.test"]
    assert block["policy"] == ["15"]  # DMARC_POLICY_PASS
    assert block["rua"] == ["mailto:agg@reject.dmarc.test"]
    assert block["pct"] == ["100"]
    assert block["p"] == [str(ord("r"))] and block["sp"] == ["0"]
    assert block["adkim"] == ["0"] and block["aspf"] == ["0"]
    assert block["align_dkim"] == ["4"] and block["align_spf"] == ["5"]
    assert block["action"] == ["2"]  # accept
    assert int(block["received"][0]) > 1_600_000_000
    # every block has the keys opendmarc-import needs for a row in its messages table
    for b in _history_blocks(root):
        assert {
            "job",
            "reporter",
            "received",
            "ipaddr",
            "from",
            "mfrom",
            "pdomain",
            "policy",
            "action",
            "align_dkim",
            "align_spf",
            "spf",
            "arc",
            "arc_policy",
        } <= set(b), b


def test_forensic_report(site) -> None:  # type: ignore[no-untyped-def]
    port, root = site
    before = set((root / "spool" / "input").iterdir())
    code, reply = send(port, BAD_IP, "x@norec.dmarc.test", message("Mallory <a@reject.dmarc.test>", "forged"))
    assert code == 550
    new = sorted(p for p in set((root / "spool" / "input").iterdir()) - before if p.name.endswith("-H"))
    # ruf@reject (same organization) and ruf@rcv (agrees through its _report._dmarc record); not noauth
    recipients = []
    for path in new:
        header_file = path.read_text()
        assert "\n<>\n" in header_file  # from the null sender, as Exim's own messages
        data_file = path.with_name(path.name[:-2] + "-D").read_bytes()
        headers = "".join(re.findall(r"^\d{3}[A-Z* ] (.*(?:\n[ \t].*)*\n)", header_file, re.M))
        parsed = email.message_from_bytes(
            headers.encode() + b"\n" + data_file.split(b"\n", 1)[1], policy=email.policy.default
        )
        recipients.append(parsed["To"])
        assert parsed["From"] == "dmarc-forensic@example.org"
        assert parsed["Subject"] == f"DMARC Forensic Report for reject.dmarc.test from IP {BAD_IP}"
        assert parsed.get_content_type() == "multipart/report"
        assert parsed.get_param("report-type") == "feedback-report"
        parts = list(parsed.iter_parts())
        assert [p.get_content_type() for p in parts] == [
            "text/plain",
            "message/feedback-report",
            "text/rfc822-headers",
        ]
        feedback = parts[1].get_payload()
        feedback_text = feedback[0].as_string() if isinstance(feedback, list) else str(feedback)
        fields = email.message_from_string(feedback_text)
        assert fields["Feedback-Type"] == "auth-failure"
        assert fields["Auth-Failure"] == "dmarc"
        assert fields["Source-IP"] == BAD_IP
        assert fields["Reported-Domain"] == "reject.dmarc.test"
        assert fields["Identity-Alignment"] == "none"
        assert fields["Delivery-Result"] == "reject"
        results = " ".join(fields["Authentication-Results"].split())
        assert results == (
            "mx.example.org; dmarc=fail header.from=reject.dmarc.test; "
            "spf=fail smtp.mailfrom=norec.dmarc.test"
        )
        assert "Subject: forged" in parts[2].get_content()
    assert sorted(recipients) == ["ruf@rcv.dmarc.test", "ruf@reject.dmarc.test"]
    log = mainlog(root)
    assert (
        "DMARC forensic report to ruf@noauth.dmarc.test not authorized by noauth.dmarc.test: not sent" in log
    )
    assert re.search(r"\S+ <= <> U=\S+ P=local S=\d+", log)


def test_forensic_reports_are_capped(site) -> None:  # type: ignore[no-untyped-def]
    port, root = site
    before = set((root / "spool" / "input").iterdir())
    code, _ = send(port, BAD_IP, "x@norec.dmarc.test", message("a@flood.dmarc.test"))
    assert code == 550
    new = [p for p in set((root / "spool" / "input").iterdir()) - before if p.name.endswith("-H")]
    # twenty ruf= addresses, five reports
    assert len(new) == 5


def test_each_message_of_a_session_is_checked_anew(site) -> None:  # type: ignore[no-untyped-def]
    port, root = site
    replies = []
    with ProxySMTP(BAD_IP, port) as smtp:
        smtp.ehlo("client.test")
        for from_domain in ("none.dmarc.test", "quarantine.dmarc.test", "norec.dmarc.test"):
            smtp.mail("x@norec.dmarc.test")
            smtp.rcpt("user@example.org")
            replies.append(smtp.data(message(f"a@{from_domain}"))[1].decode())
    assert [x_dmarc(root, r).split(" ")[0] for r in replies] == [
        "status=none",
        "status=quarantine",
        "status=norecord",
    ]
