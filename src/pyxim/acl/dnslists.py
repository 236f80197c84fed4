"""The `dnslists` ACL condition: DNS black and white lists.

    dnslists = bl.example.net : wl.example.org=127.0.0.2,127.0.0.3 : combined.test&0.0.0.4
    dnslists = dbl.example.test/$sender_address_domain

For each list item, the client's address (reversed) or the key after "/"
is looked up as an A record under the list's domain. The first list that
answers (with an acceptable address, if "=" or "&" narrow it) makes the
condition true and sets $dnslist_domain, $dnslist_matched, $dnslist_value and
$dnslist_text (the TXT record of the same name). A lookup that cannot be
done counts as "not listed" (Exim's default, +exclude_unknown);
+include_unknown makes it "listed", +defer_unknown makes the ACL defer.
"""

from __future__ import annotations

import ipaddress

from pyxim.acl.engine import AclRun, acl_condition
from pyxim.errors import LookupDefer
from pyxim.expand.taint import Tainted
from pyxim.lists import iterate_list


def _reverse(address: str) -> str:
    ip = ipaddress.ip_address(address)
    if ip.version == 4:
        return ".".join(reversed(str(ip).split(".")))
    return ".".join(reversed(f"{int(ip):032x}"))


def _acceptable(values: list[str], spec: str) -> bool:
    """=a,b (any of them), ==a,b (all of them), &mask, !… negations."""
    if not spec:
        return bool(values)
    negate = spec.startswith("!")
    if negate:
        spec = spec[1:]
    if spec.startswith("&"):
        want_all = spec.startswith("&&")
        masks = [int(ipaddress.ip_address(m.strip())) for m in spec.lstrip("&").split(",")]
        hits = [any(int(ipaddress.ip_address(v)) & m == m for m in masks) for v in values]
    else:
        want_all = spec.startswith("==")
        wanted = {w.strip() for w in spec.lstrip("=").split(",")}
        hits = [v in wanted for v in values]
    result = all(hits) if want_all else any(hits)
    return result != negate


@acl_condition("dnslists")
def dnslists(run: AclRun, value: str) -> bool:
    text = run.expand(value)
    resolver = run.ctx.get_resolver()
    client = run.ctx.variables.get("sender_host_address", "")
    unknown = "exclude"
    for item in iterate_list(text):
        if item.startswith("+") and item.endswith("_unknown"):
            unknown = item[1:-len("_unknown")]
            continue
        domain, slash, key = item.partition("/")
        spec = ""
        for marker in ("!=", "==", "=", "!&", "&"):
            if marker in domain:
                domain, _, rest = domain.partition(marker)
                spec = marker + rest
                break
        if slash:
            keys = [k for k in (key.split(",") if key else []) if k]
        else:
            keys = [client] if client else []
        for k in keys:
            try:
                name = f"{_reverse(k)}.{domain}"
            except ValueError:
                name = f"{k}.{domain}"
            try:
                answer = resolver.query(name, "A")
            except LookupDefer:
                if unknown == "include":
                    return True
                if unknown == "defer":
                    raise
                continue
            values = [r.address for r in answer.records]
            if not _acceptable(values, spec):
                continue
            try:
                txt = resolver.query(name, "TXT")
                text_value = " ".join(b"".join(r.strings).decode("utf-8", "replace") for r in txt.records)
            except LookupDefer:
                text_value = ""
            run.ctx.variables.update(
                {
                    "dnslist_domain": domain,
                    "dnslist_matched": Tainted(k),
                    "dnslist_value": Tainted(",".join(values)),
                    "dnslist_text": Tainted(text_value),
                }
            )
            return True
    return False
