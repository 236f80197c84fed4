"""log_selector: which optional parts Exim-format log lines carry.

Written as in Exim: `log_selector = +subject -tls_cipher +all`. The defaults
are Exim's; unknown names are a configuration error with the list of known ones.
"""

from __future__ import annotations

from pyxim.errors import ConfigError

DEFAULT_ON = frozenset({
    "acl_warn_skipped", "dnslist_defer", "etrn", "host_lookup_failed", "lost_incoming_connection", "msg_id",
    "queue_run", "rejected_header", "retry_defer", "sender_verify_fail", "size_reject", "skip_delivery",
    "smtp_confirmation", "tls_certificate_verified", "tls_cipher",
})
OTHERS = frozenset({
    "8bitmime", "address_rewrite", "all_parents", "arguments", "connection_reject", "deliver_time",
    "delivery_size", "dkim", "dkim_verbose", "dnssec", "ident_timeout", "incoming_interface", "incoming_port",
    "millisec", "msg_id_created", "outgoing_interface", "outgoing_port", "pid", "pipelining", "protocol_detail",
    "proxy", "queue_time", "queue_time_exclusive", "queue_time_overall", "receive_time", "received_recipients",
    "received_sender", "return_path_on_delivery", "sender_on_delivery", "smtp_connection",
    "smtp_incomplete_transaction", "smtp_mailauth", "smtp_no_mail", "smtp_protocol_error", "smtp_syntax_error",
    "subject", "tls_peerdn", "tls_resumption", "tls_sni", "unknown_in_list",
})
KNOWN = DEFAULT_ON | OTHERS


def parse(text: str | None) -> frozenset[str]:
    enabled = set(DEFAULT_ON)
    for word in (text or "").split():
        sign, name = word[0], word[1:]
        if sign not in "+-" or (name not in KNOWN and name != "all"):
            raise ConfigError(f'unknown log_selector setting: {word}')
        names = KNOWN if name == "all" else {name}
        if sign == "+":
            enabled |= names
        else:
            enabled -= names
    return frozenset(enabled)


def quote_subject(text: str) -> str:
    """T="…" as Exim writes it: quotes and backslashes escaped, bytes above 0x7E in octal."""
    out = []
    for b in text.encode("utf-8", "surrogateescape"):
        if b in (0x22, 0x5C):
            out.append("\\" + chr(b))
        elif 0x20 <= b <= 0x7E:
            out.append(chr(b))
        elif b == 0x0A:
            out.append("\\n")
        else:
            out.append(f"\\{b:03o}")
    return '"' + "".join(out) + '"'
