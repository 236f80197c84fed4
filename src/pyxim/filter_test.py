"""Exim's filter test mode: -bf FILE (a user's filter or .forward file) and -bF FILE (a system
filter), with -bfd/-bfl/-bfp/-bfs for the recipient's domain, local part, prefix and suffix.

The message comes on standard input and is read as -bem reads its file; nothing is delivered:
what the filter would do is printed, in Exim's words, on standard output.
"""

from __future__ import annotations

import os
import pwd
import tempfile
from collections.abc import Sequence
from typing import BinaryIO, TextIO

# the options of this mode and what each sets
FILTER_TEST_OPTIONS = {"-bf": "user", "-bF": "system", "-bfd": "domain", "-bfl": "local_part",
                       "-bfp": "prefix", "-bfs": "suffix"}


def split_filter_options(argv: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """The -bf… options and their values, and the rest of the command line."""
    found: dict[str, str] = {}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        if arg in FILTER_TEST_OPTIONS:
            if i + 1 >= len(argv):
                raise ValueError(f"string expected after {arg}")
            found[FILTER_TEST_OPTIONS[arg]] = argv[i + 1]
            i += 2
            continue
        rest.append(arg)
        i += 1
    return found, rest


def run_filter_test(config, wanted: dict[str, str], sender: str | None, inp: BinaryIO, out: TextIO) -> int:  # type: ignore[no-untyped-def]
    from pyxim.expand import ExpansionContext
    from pyxim.expand import variables as V
    from pyxim.expand.message import load_bem_message
    from pyxim.routers.engine import _filter_kind
    from pyxim.routers.exim_filter import FilterError, FilterOptions, parse, printing, run

    system = "system" in wanted
    path = wanted.get("system") or wanted.get("user") or ""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except OSError as exc:
        raise OSError(f"failed to open {path}: {exc.strerror}") from None

    ctx = ExpansionContext(config=config)
    data = inp.read()
    # the -bem reader wants a file: the message goes through a private temporary one
    with tempfile.NamedTemporaryFile(prefix="pyxim-bf-") as tmp:
        tmp.write(data)
        tmp.flush()
        notices = load_bem_message(tmp.name, ctx, sender=sender)
    message = ctx.message
    login = V.caller_login()
    qualify_domain = V.resolve_variable(V.bare_evaluation(ctx), "qualify_recipient")
    sender_address = str(ctx.variables.get("sender_address") or f"{login}@{qualify_domain}")
    if sender is not None and sender in ("<>", ""):
        sender_address = ""
    ctx.variables["sender_address"] = sender_address
    return_path = sender_address
    lines = list(notices)
    rp_header = next((h for h in message.visible_headers if h.is_named("Return-path")), None) if message else None
    if rp_header is not None:
        from pyxim.address import parse_address

        parsed = parse_address(rp_header.value.strip(), allow_null=True)
        return_path = getattr(parsed, "address", rp_header.value.strip())
        rp_header.type = "*"
        lines += ['Return-path taken from "Return-path:" header line', f"Return-path = {return_path}"]
    else:
        lines.append("Return-path copied from sender")
    ctx.variables["return_path"] = return_path
    local_part = wanted.get("local_part", login)
    domain = wanted.get("domain", qualify_domain)
    prefix, suffix = wanted.get("prefix", ""), wanted.get("suffix", "")
    try:
        home = pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        home = ""
    ctx.variables.update({
        "local_part": local_part, "domain": domain, "local_part_prefix": prefix,
        "local_part_suffix": suffix, "home": home, "original_local_part": local_part,
        "original_domain": domain,
    })
    lines.append(f"Sender      = {sender_address or '<>'}")
    lines.append(f"Recipient   = {prefix}{local_part}{suffix}@{domain}")
    if prefix:
        lines.append(f"Prefix    = {prefix}")
    if suffix:
        lines.append(f"Suffix    = {suffix}")
    kind = _filter_kind(text.strip())
    first_line = kind is not None
    if system:
        kind = "exim"  # a system filter is always an Exim filter
    label = {"exim": "Exim filter", "sieve": "Sieve filter"}.get(kind or "", "forward file")
    lines += [f'Testing {label} file "{path}"', ""]
    out.write("".join(line + "\n" for line in lines))
    if kind is None:
        return _forward_file(text, qualify_domain, out)
    if kind == "sieve":
        return _sieve_test(text.lstrip(), ctx, local_part, out)

    def show(line: str) -> None:
        out.write(line + "\n")

    options = FilterOptions(system=system, test_output=show, qualify_domain=qualify_domain,
                            caller_address=f"{local_part}@{domain}")
    try:
        result = run(parse(text.lstrip(), options, first_line), ctx, options)
    except FilterError as exc:
        out.write(f"Filter error: {printing(str(exc))}\n")
        return 1
    if result.fail is not None:
        out.write('Filtering ended by "fail".\n')
    elif result.freeze is not None:
        out.write('Filtering ended by "freeze".\n')
    elif result.significant:
        out.write("Filtering set up at least one significant delivery or other action.\n"
                  "No other deliveries will occur.\n")
    else:
        out.write("Filtering did not set up a significant delivery.\nNormal delivery will occur.\n")
    return 0


def _sieve_test(text: str, ctx, local_part: str, out: TextIO) -> int:  # type: ignore[no-untyped-def]
    """A Sieve script: Exim prints only how it ended (its actions show under -d alone), and a
    script error is reported but is no failure of the test."""
    from pyxim.routers.sieve_filter import SieveOptions, interpret

    outcome = interpret(text, ctx, SieveOptions(useraddress=local_part, test_mode=True))
    if outcome.error is not None:
        out.write(f"Sieve error: {outcome.error.message} in line {outcome.error.line}\n")
    else:
        out.write("Implicit keep\n" if outcome.keep else "No implicit keep\n")
    return 0


def _forward_file(text: str, qualify_domain: str, out: TextIO) -> int:
    """A plain .forward file: the items it generates, the last first, as Exim lists them."""
    from pyxim.address import ParsedAddress, parse_address
    from pyxim.routers.engine import _redirect_items

    generated: list[str] = []
    for item in _redirect_items(text.strip()):
        if item.startswith(("|", "/")):
            generated.append(item)
            continue
        parsed = parse_address(item)
        if not isinstance(parsed, ParsedAddress):
            out.write(f'exim: error in forward file: {parsed.message} in "{item}"\n')
            return 1
        address = parsed.address
        generated.append(address if "@" in address else f"{address}@{qualify_domain}")
    out.write("exim: forward file generated:\n" + "".join(f"  {g}\n" for g in reversed(generated)))
    return 0
