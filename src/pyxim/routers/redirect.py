"""The redirect router: its option table (Exim 4.96 names, types and defaults)."""

from __future__ import annotations

from typing import Any

from pyxim.config.drivers import register
from pyxim.config.model import DriverInstance
from pyxim.config.options import OptionDef, opt
from pyxim.errors import ConfigError
from pyxim.expand import ExpansionContext

OPTIONS: list[OptionDef] = [
    opt("allow_defer", "bool", False),
    opt("allow_fail", "bool", False),
    opt("allow_filter", "bool", False),
    opt("allow_freeze", "bool", False),
    opt("check_ancestor", "bool", False),
    opt("check_group", "bool", False),
    opt("check_owner", "bool", False),
    opt("data"),
    opt("directory_transport"),
    opt("file"),
    opt("file_transport"),
    opt("filter_prepend_home", "bool", True),
    opt("forbid_blackhole", "bool", False),
    opt("forbid_exim_filter", "bool", False),
    opt("forbid_file", "bool", False),
    opt("forbid_filter_dlfunc", "bool", False),
    opt("forbid_filter_existstest", "bool", False),
    opt("forbid_filter_logwrite", "bool", False),
    opt("forbid_filter_lookup", "bool", False),
    opt("forbid_filter_perl", "bool", False),
    opt("forbid_filter_readfile", "bool", False),
    opt("forbid_filter_readsocket", "bool", False),
    opt("forbid_filter_reply", "bool", False),
    opt("forbid_filter_run", "bool", False),
    opt("forbid_include", "bool", False),
    opt("forbid_pipe", "bool", False),
    opt("forbid_sieve_filter", "bool", False),
    opt("forbid_smtp_code", "bool", False),
    opt("hide_child_in_errmsg", "bool", False),
    opt("ignore_eacces", "bool", False),
    opt("ignore_enotdir", "bool", False),
    opt("include_directory"),
    opt("modemask", "octint", 18),
    opt("one_time", "bool", False),
    opt("owners", "uidlist"),
    opt("owngroups", "gidlist"),
    opt("pipe_transport"),
    opt("qualify_domain"),
    opt("qualify_preserve_domain", "bool", False),
    opt("repeat_use", "bool", True),
    opt("reply_transport"),
    opt("rewrite", "bool", True),
    opt("sieve_enotify_mailto_owner"),
    opt("sieve_subaddress"),
    opt("sieve_useraddress"),
    opt("sieve_vacation_directory"),
    opt("skip_syntax_errors", "bool", False),
    opt("syntax_errors_text"),
    opt("syntax_errors_to"),
]


def init(options: dict[str, object], explicit: set[str]) -> None:
    """one_time redirection cannot be undone for pipes, files and replies: Exim forbids them."""
    if options.get("one_time"):
        options["forbid_pipe"] = options["forbid_file"] = options["forbid_filter_reply"] = True


register("router", "redirect", OPTIONS, init=init)


class RouterConfigError(ConfigError):
    """Exim's wording for a router whose options do not go together ("… error for NAME router:")."""

    def __str__(self) -> str:
        return f"Exim configuration error for {self.message}"


def check_instance(inst: DriverInstance) -> None:
    """Checks Exim's redirect router makes when it is initialised."""
    if (
        inst.options.get("allow_filter")
        and inst.options.get("user") is None
        and not inst.options.get("check_local_user")
    ):
        # a filter runs commands and writes files: Exim wants to know as whom
        raise RouterConfigError(
            f'{inst.name} router:\n  "user" or "check_local_user" must be set with "allow_filter"'
        )
    if inst.options.get("one_time") and inst.options.get("unseen") not in (None, False):
        raise RouterConfigError(f'{inst.name} router:\n  "unseen" may not be used with "one_time"')


def run_filter(
    inst: DriverInstance, ctx: ExpansionContext, data: str, kind: str, address: str, delivering: bool = False
) -> Any:
    """Redirection data that is an Exim or Sieve filter: an exim_filter.FilterResult (what the
    filter set up, and whether that was a significant delivery: if not, the address goes on to
    the next routers too). Refused, with Exim's words, unless allow_filter (and not
    forbid_<kind>_filter). `delivering`: a real delivery (logwrite writes), not -bt or -bv."""
    from pyxim.routers.engine import RouterDefer

    if not inst.options.get("allow_filter"):
        raise RouterDefer("error in filter data: filtering not enabled")
    if inst.options.get(f"forbid_{kind}_filter"):
        raise RouterDefer(
            f"error in filter data: {'Exim' if kind == 'exim' else 'Sieve'} filtering not enabled"
        )
    if kind == "sieve":
        return _run_sieve(inst, ctx, data)
    from pyxim.routers.exim_filter import interpret

    return interpret(inst, ctx, data, address, delivering)


def _run_sieve(inst: DriverInstance, ctx: ExpansionContext, data: str) -> Any:
    """A Sieve script: its result shaped like an Exim filter's, marked `sieve` so that its
    folders ("inbox", relative names) go to the file_transport as they are, for the transport
    to place (Exim does not prepend $home to them)."""
    from pyxim.routers.engine import _expand_option
    from pyxim.routers.sieve_filter import SieveOptions, interpret

    def option(name: str) -> str | None:
        value = _expand_option(inst, name, ctx)
        return None if value is None else str(value)

    local_part = str(ctx.variables.get("local_part") or "")
    useraddress = option("sieve_useraddress")
    options = SieveOptions(
        useraddress=local_part if useraddress is None else useraddress,
        subaddress=option("sieve_subaddress"),
        vacation_directory=option("sieve_vacation_directory"),
        enotify_mailto_owner=option("sieve_enotify_mailto_owner"),
    )
    result = interpret(data, ctx, options).result
    result.sieve = True  # type: ignore[attr-defined]
    return result


def report_syntax_errors(config: Any, spool: Any, message: Any, notices: list[Any], log: Any) -> list[str]:
    """What a skip_syntax_errors router skipped: one log line per item, and a message to
    syntax_errors_to (Exim's "error(s) in forwarding or filtering", from <>). Returns the ids
    of the messages spooled."""
    from pyxim.delivery.bounce import _new_report, _received, _references, _spool_report

    new_ids: list[str] = []
    for notice in notices:
        for error, item in notice.errors:
            log(f'{message.message_id} {notice.router} router: skipped error: {error} in "{item}"')
        if not notice.to:
            continue
        report = _new_report(config)
        body = [
            notice.text + "\n\n"
            if notice.text
            else f"The {notice.router} router encountered the following error(s):\n\n"
        ]
        body += [f'  {error} in the address\n  "{item}"\n\n' for error, item in notice.errors]
        if not notice.text:
            body.append("Other addresses were processed normally.\n")
        # Exim writes the References: line after the blank line that ends the headers, so it
        # arrives in the body; it is kept there, as Exim's recipients see it
        references = "".join(text for text, _ in _references(message))
        text = (references + "".join(body)).encode()
        headers = [
            (_received(config, report.host, report.new_id, notice.to, report.date), "P"),
            ("Auto-Submitted: auto-replied\n", " "),
            (f"From: Mail Delivery System <Mailer-Daemon@{report.host}>\n", "F"),
            (f"To: {notice.to}\n", "T"),
            ("Subject: error(s) in forwarding or filtering\n", " "),
            (f"Message-Id: <E{report.new_id}@{report.host}>\n", "I"),
            (f"Date: {report.date}\n", " "),
        ]
        new_ids.append(_spool_report(config, spool, message, report, notice.to, headers, text, log))
    return new_ids
