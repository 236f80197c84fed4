"""SPF (RFC 7208): the `spf` and `spf_guess` ACL conditions and the $spf_* variables.

The check itself is pyspf's; its DNS questions go through pyxim's resolver
(dns_nameservers and the shared cache), so tests and admins see one DNS.
As in Exim, the check runs once per message (client address, HELO name and
envelope sender) and the condition is true when the result is in its list:
pass, fail, softfail, none, neutral, permerror, temperror — and the older
names err_perm and err_temp. `spf_guess` uses the `spf_guess` main option as
the record when the domain publishes none.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from pyxim.acl.engine import AclConditionError, acl_condition
from pyxim.errors import LookupDefer

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.acl.engine import AclRun
    from pyxim.dns import Resolver

# "invalid" is a libspf2 result name Exim accepts; pyxim, with RFC 7208, never gives it
RESULTS = ("pass", "fail", "softfail", "none", "neutral", "permerror", "temperror", "invalid")
OLD_NAMES = {"err_perm": "permerror", "err_temp": "temperror"}

_current = threading.local()


def _lookup(name: str, qtype: str, tcpfallback: bool = True, timeout: int = 30) -> list[tuple[Any, Any]]:
    """pyspf's DNS hook, answered by pyxim's resolver for the check running in this thread."""
    import spf

    resolver: Resolver = _current.resolver
    try:
        answer = resolver.query(name, qtype)
    except LookupDefer as exc:
        if qtype in ("A", "AAAA") and exc.message.startswith("CNAME loop"):
            # a broken name, not a failed server: no address (RFC 7208 5.5 skips such names in ptr)
            return []
        raise spf.TempError(f"DNS {exc.message}") from None
    out: list[tuple[Any, Any]] = []
    for rdata in answer.records:
        if qtype in ("A", "AAAA"):
            out.append(((name, qtype), rdata.address))
        elif qtype == "MX":
            out.append(((name, qtype), (rdata.preference, rdata.exchange)))
        elif qtype == "PTR":
            out.append(((name, qtype), rdata.target.to_text(True)))
        elif qtype in ("TXT", "SPF"):
            out.append(((name, qtype), rdata.strings))
    return out


def _is_loopback(ip: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def check(run: AclRun, guess: bool) -> dict[str, str]:
    """Run the SPF check for this message (once) and return the $spf_* values."""
    import spf

    variables = run.ctx.variables
    ip = str(variables.get("sender_host_address") or "")
    helo = str(variables.get("sender_helo_name") or "")
    sender = str(variables.get("sender_address") or "")
    key = ("pyxim:spf", ip, helo, sender, guess)
    cached = run.ctx.lookup_cache.get(key)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    if not ip:
        raise AclConditionError("spf: no client address (SPF needs an SMTP connection)")
    _current.resolver = run.ctx.get_resolver()
    spf.DNSLookup = _lookup
    host = str(run.config.main.get("primary_hostname") or "") or "unknown"
    query = spf.query(ip, sender, helo, receiver=host, timeout=20)
    guessed = False
    if _is_loopback(ip):
        # Exim's SPF library lets the local host through whatever the domain publishes
        result, explanation = "pass", ""
        comment = f"{host}: localhost is always allowed."
    else:
        result, _code, explanation = query.check()
        if guess and result == "none":
            guess_record = str(run.config.main.get("spf_guess") or "v=spf1 a/24 mx/24 ptr ?all")
            result, _code, explanation = query.check(spf=guess_record)
            guessed = True
        try:
            comment = query.get_header_comment(result)
        except AttributeError:  # pyspf words no comment for some early results
            comment = ""
    values = {
        "spf_result": result,
        "spf_result_guessed": "yes" if guessed else "no",
        "spf_used_domain": query.d or "",
        "spf_header_comment": comment,
        "spf_smtp_comment": explanation if result == "fail" else "",
        "spf_received": f"Received-SPF: {result} ({comment}) client-ip={ip}; envelope-from={sender}; helo={helo};",
    }
    run.ctx.lookup_cache[key] = values
    return values


def _condition(run: AclRun, value: str, guess: bool) -> bool:
    from pyxim.lists import iterate_list

    wanted = []
    for item in iterate_list(run.expand(value)):
        negated = item.startswith("!")
        name = item.lstrip("!").strip()
        word = OLD_NAMES.get(name, name)
        if word != name:
            # SPEC-NOTES: the older name works, with a line in the main log
            run.state.log_lines.append((False, f'spf result name "{name}" is deprecated; use "{word}"'))
        if word not in RESULTS:
            raise AclConditionError(f'invalid spf result name "{item}"')
        wanted.append((negated, word))
    values = check(run, guess)
    run.ctx.variables.update(values)
    result = values["spf_result"]
    return any((result == word) != negated for negated, word in wanted)


@acl_condition("spf")
def cond_spf(run: AclRun, value: str) -> bool:
    return _condition(run, value, guess=False)


@acl_condition("spf_guess")
def cond_spf_guess(run: AclRun, value: str) -> bool:
    return _condition(run, value, guess=True)


def _authres(ev) -> list[str]:  # type: ignore[no-untyped-def]
    """The spf clause of ${authresults} (RFC 8601), once an spf condition has run."""
    result = str(ev.ctx.variables.get("spf_result") or "")
    if not result:
        return []
    sender = str(ev.ctx.variables.get("sender_address") or "")
    if sender:
        return [f"spf={result} smtp.mailfrom={sender.rpartition('@')[2]}"]
    return [f"spf={result} smtp.helo={ev.ctx.variables.get('sender_helo_name') or ''}"]


from pyxim.expand.authres import contributor  # noqa: E402

contributor(20)(_authres)
