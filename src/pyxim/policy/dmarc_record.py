"""DMARC policy records (RFC 7489 section 6.3) and the organizational domain (section 3.2).

A record is a list of tag=value pairs that starts with v=DMARC1. Parsing is
strict about the tags DMARC defines (a bad p= or adkim= is an error the
caller can act on) and ignores tags it does not know, as the RFC asks.

The organizational-domain step is pluggable: RFC 7489 finds it with the
Public Suffix List, the newer DMARC documents (RFC 9989-9991) with a walk up
the DNS tree. `register_org_domain_finder` swaps the method; the default reads
a Public Suffix List file (dmarc_tld_file, or the list bundled with the
publicsuffixlist package).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

POLICIES = ("none", "quarantine", "reject")

# OpenDMARC's numbers for the record's letters, as its history file (and so opendmarc-import) wants them
POLICY_CODES = {"": 0, "none": ord("n"), "quarantine": ord("q"), "reject": ord("r")}
ALIGNMENT_CODES = {"": 0, "r": ord("r"), "s": ord("s")}


class RecordError(ValueError):
    """A record that starts with v=DMARC1 but cannot be used as written."""


@dataclass(slots=True)
class ReportAddress:
    uri: str  # as written (mailto:…), without the size limit
    address: str  # the mail address for a mailto: URI, "" for any other scheme
    limit: str = ""  # the "!size" suffix, when given


@dataclass(slots=True)
class DmarcRecord:
    text: str
    p: str = ""  # none, quarantine, reject
    sp: str = ""  # "" when the record has no sp= (p applies to subdomains too)
    adkim: str = ""  # "", r or s as written ("" means relaxed)
    aspf: str = ""
    pct: int = 100
    fo: list[str] = field(default_factory=lambda: ["0"])
    rua: list[ReportAddress] = field(default_factory=list)
    ruf: list[ReportAddress] = field(default_factory=list)
    ri: int = 86400
    # RFC 7489 6.6.3: a record without a usable p= but with a usable rua= is taken as p=none
    p_assumed: bool = False

    @property
    def dkim_strict(self) -> bool:
        return self.adkim == "s"

    @property
    def spf_strict(self) -> bool:
        return self.aspf == "s"


def is_dmarc_record(text: str) -> bool:
    """RFC 7489 6.6.3 step 3: records that do not start with v=DMARC1 are discarded (case matters)."""
    return re.match(r"v\s*=\s*DMARC1\s*(;|$)", text) is not None


_TAG = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)\s*=\s*(.*)$", re.S)


def _uris(value: str, tag: str) -> list[ReportAddress]:
    out = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        uri, _, limit = item.partition("!")
        if limit and not re.fullmatch(r"\d+[kmgt]?", limit, re.I):
            raise RecordError(f"bad size limit in {tag}=")
        scheme, colon, rest = uri.partition(":")
        if not colon or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
            raise RecordError(f"bad URI in {tag}=")
        address = ""
        if scheme.lower() == "mailto":
            # a mailto: URI may carry ?headers; only the address part is used
            address = rest.split("?", 1)[0]
            from urllib.parse import unquote

            address = unquote(address)
            if "@" not in address or any(c in address for c in " <>\r\n,;"):
                raise RecordError(f"bad mailto address in {tag}=")
        out.append(ReportAddress(uri, address, limit))
    return out


def parse_record(text: str) -> DmarcRecord:
    """Parse one DMARC record (the TXT strings joined). Raises RecordError."""
    if not is_dmarc_record(text):
        raise RecordError("not a DMARC record")
    record = DmarcRecord(text)
    seen: set[str] = set()
    p_error = ""
    rua_ok = False
    for part in text.split(";")[1:]:
        part = part.strip()
        if not part:
            continue
        m = _TAG.match(part)
        if m is None:
            raise RecordError(f"bad tag {part[:40]!r}")
        tag, value = m.group(1).lower(), m.group(2).strip()
        if tag in seen:
            raise RecordError(f"tag {tag}= given twice")
        seen.add(tag)
        if tag in ("p", "sp"):
            if value.lower() not in POLICIES:
                if tag == "p":
                    p_error = f"bad value for p= ({value[:40]})"
                    continue
                raise RecordError(f"bad value for sp= ({value[:40]})")
            setattr(record, tag, value.lower())
        elif tag in ("adkim", "aspf"):
            if value.lower() not in ("r", "s"):
                raise RecordError(f"bad value for {tag}=")
            setattr(record, tag, value.lower())
        elif tag == "pct":
            if not value.isdigit() or int(value) > 100:
                raise RecordError("bad value for pct=")
            record.pct = int(value)
        elif tag == "fo":
            options = [o.strip().lower() for o in value.split(":")]
            if not options or any(o not in ("0", "1", "d", "s") for o in options):
                raise RecordError("bad value for fo=")
            record.fo = options
        elif tag in ("rua", "ruf"):
            try:
                uris = _uris(value, tag)
            except RecordError:
                if tag == "ruf":
                    raise
                uris = []
            setattr(record, tag, uris)
            rua_ok = rua_ok or (tag == "rua" and bool(uris))
        elif tag == "ri":
            if not value.isdigit():
                raise RecordError("bad value for ri=")
            record.ri = int(value)
        # rf= and tags DMARC does not define are ignored (RFC 7489 6.3)
    if not record.p:
        # RFC 7489 6.6.3 step 6: a record with no valid p= counts as p=none when rua= is usable
        if not rua_ok:
            raise RecordError(p_error or "no p= tag")
        record.p, record.p_assumed = "none", True
    return record


# -- the organizational domain ------------------------------------------------------------

OrgDomainFinder = Callable[[str], str]


class PublicSuffixOrgDomain:
    """RFC 7489 3.2: the public suffix that matches the most labels, plus one label more."""

    def __init__(self, tld_file: str | None) -> None:
        from publicsuffixlist import PublicSuffixList

        if tld_file:
            with open(tld_file, "rb") as f:
                self._psl = PublicSuffixList(source=f)
        else:
            self._psl = PublicSuffixList()

    def __call__(self, domain: str) -> str:
        domain = domain.lower().rstrip(".")
        # a domain that is itself a public suffix is its own organizational domain
        return self._psl.privatesuffix(domain) or domain


_finders: dict[str, OrgDomainFinder] = {}
_finders_lock = threading.Lock()
_custom_finder: OrgDomainFinder | None = None


def register_org_domain_finder(finder: OrgDomainFinder | None) -> None:
    """Replace the organizational-domain method (None restores the Public Suffix List).
    A finder takes a domain and returns its organizational domain; it may raise
    LookupDefer when it needs DNS and DNS fails."""
    global _custom_finder
    _custom_finder = finder


def org_domain_finder(tld_file: str | None) -> OrgDomainFinder:
    """The finder in use: a registered one, else the Public Suffix List read from `tld_file`
    (None: the bundled list). The list is read once per file and kept: reading it costs
    far more than a message."""
    if _custom_finder is not None:
        return _custom_finder
    key = tld_file or ""
    with _finders_lock:
        finder = _finders.get(key)
        if finder is None:
            finder = _finders[key] = PublicSuffixOrgDomain(tld_file)
    return finder
