"""The MIME ACL: acl_smtp_mime runs once per MIME part, before the DATA ACL.

Parts are taken in order, containers included (part 0 of a multipart message
is the message itself); for each one the $mime_* variables describe it and
the `mime_regex` condition matches its decoded content.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable, Iterator
from email.message import Message as EmailMessage

from pyxim.acl.engine import AclResult, AclRun, acl_condition, record_regex_match
from pyxim.expand.context import ExpansionContext
from pyxim.expand.taint import Tainted

MIME_VARIABLES = (
    "mime_part_count", "mime_content_type", "mime_charset", "mime_filename", "mime_content_disposition",
    "mime_content_transfer_encoding", "mime_is_multipart", "mime_is_rfc822", "mime_is_coverletter",
    "mime_boundary", "mime_content_description", "mime_content_id", "mime_content_size",
)


def is_mime(headers: list[str]) -> bool:
    names = {h.split(":", 1)[0].strip().lower() for h in headers}
    return "content-type" in names or "mime-version" in names


def parts(data: bytes) -> Iterator[tuple[int, EmailMessage, bool]]:
    """(index, part, is_coverletter) in Exim's order."""
    message = email.message_from_bytes(data, policy=email.policy.compat32)
    cover = True
    for index, part in enumerate(message.walk()):
        ctype = part.get_content_type()
        disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
        if not (ctype.startswith("text/") or ctype.startswith("multipart/")) or disposition == "attachment":
            cover = False
        yield index, part, cover


def describe(index: int, part: EmailMessage, cover: bool) -> dict[str, str]:
    ctype = part.get_content_type() if part.get("Content-Type") else ""
    disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
    payload = part.get_payload(decode=True) if not part.is_multipart() else b""
    return {
        "mime_part_count": str(index),
        "mime_content_type": ctype,
        "mime_charset": part.get_content_charset() or "",
        "mime_filename": part.get_filename() or "",
        "mime_content_disposition": disposition,
        "mime_content_transfer_encoding": (part.get("Content-Transfer-Encoding") or "").strip().lower(),
        "mime_is_multipart": "1" if part.is_multipart() else "0",
        "mime_is_rfc822": "1" if ctype == "message/rfc822" else "0",
        "mime_is_coverletter": "1" if cover else "0",
        "mime_boundary": part.get_boundary() or "",
        # Exim removes the white space from the description
        "mime_content_description": "".join((part.get("Content-Description") or "").split()),
        "mime_content_id": (part.get("Content-ID") or "").strip(),
        "mime_content_size": str(len(payload or b"") // 1024),
    }


def run_mime_acl(ctx: ExpansionContext, run_acl: Callable[[], AclResult], data: bytes) -> AclResult | None:
    """Run the MIME ACL for every part; the first refusal ends it. None: all accepted."""
    try:
        for index, part, cover in parts(data):
            for name, value in describe(index, part, cover).items():
                ctx.variables[name] = Tainted(value) if value else value
            payload = part.get_payload(decode=True) if not part.is_multipart() else b""
            ctx.lookup_cache[_PART_KEY] = payload or b""
            result = run_acl()
            if result.verdict not in ("accept", "discard"):
                return result
        return None
    finally:
        ctx.lookup_cache.pop(_PART_KEY, None)
        for name in MIME_VARIABLES:
            ctx.variables.pop(name, None)


# where the decoded content of the part being checked waits for mime_regex
_PART_KEY = ("mime", "current part")


@acl_condition("mime_regex")
def mime_regex(run: AclRun, value: str) -> bool:
    from pyxim.expand.regex import compile_pcre
    from pyxim.lists import iterate_list

    content = run.ctx.lookup_cache.get(_PART_KEY, b"")
    text = content.decode("utf-8", "surrogateescape")
    for pattern in iterate_list(run.expand(value)):
        m = compile_pcre(pattern).search(text)
        if m:
            record_regex_match(run, m)
            return True
    return False
