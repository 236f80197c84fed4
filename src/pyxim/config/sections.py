"""What the logical lines mean: the main section, named lists, drivers, ACLs, retry and rewrite rules.

Each reader follows the Exim 4.96 function that reads the same section
(readconf_main, readconf_driver_init, acl_read, readconf_retries,
readconf_rewrites), with its checks and its error messages. Errors carry the
file and line of the logical line; where Exim names no line (a driver without
`driver =`, two routers of one name) pyxim still names the instance's line.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable

from pyxim.config.model import Acl, AclStatement, Config, DriverInstance, NamedList, RetryRule, RewriteRule
from pyxim.config.options import BOOL_KINDS, OptionDef, extra_chars, parse_bool, parse_value, read_string
from pyxim.config.syntax import Line
from pyxim.errors import ConfigError

SECTIONS = ("acls", "authenticators", "local_scans", "retrys", "rewrites", "routers", "transports")
LIST_KINDS = (  # (keyword, kind, words in messages)
    ("domainlist", "domain", "domain list"),
    ("hostlist", "host", "host list"),
    ("addresslist", "address", "address list"),
    ("localpartlist", "localpart", "local part list"),
)
ACL_VERBS = ("accept", "defer", "deny", "discard", "drop", "require", "warn")
# Names the ACL section accepts; a module adding a condition or modifier calls register_acl_name().
ACL_CONDITIONS = set(
    {
        "acl",
        "authenticated",
        "condition",
        "dcc",
        "decode",
        "dkim_signers",
        "dkim_status",
        "dmarc_status",
        "dnslists",
        "domains",
        "encrypted",
        "hosts",
        "local_parts",
        "malware",
        "mime_regex",
        "ratelimit",
        "recipients",
        "regex",
        "seen",
        "sender_domains",
        "senders",
        "spam",
        "spf",
        "spf_guess",
        "verify",
    }
)
ACL_MODIFIERS = set(
    {
        "add_header",
        "bmi_optin",
        "continue",
        "control",
        "debug",
        "delay",
        "endpass",
        "log_message",
        "log_reject_target",
        "logwrite",
        "message",
        "queue",
        "remove_header",
        "set",
        "udpsend",
    }
)


def register_acl_name(name: str, modifier: bool = False) -> None:
    """Make `name = ...` known in ACL statements (pyxim additions beyond Exim 4.96)."""
    (ACL_MODIFIERS if modifier else ACL_CONDITIONS).add(name)


_NAME = re.compile(r"\s*([A-Za-z][A-Za-z0-9_]*)?\s*")


def read_name(text: str) -> tuple[str, str]:
    """Exim's readconf_readname: a name starting with a letter, and the rest after white space."""
    m = _NAME.match(text)
    assert m is not None
    return m.group(1) or "", text[m.end() :]


def is_macro_definition(text: str) -> bool:
    name, rest = read_name(text)
    return bool(name) and name[0].isupper() and rest.startswith("=")


def suggestion(name: str, candidates: list[str]) -> str:
    """pyxim's second line for an unknown name: the closest known one."""
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.75)
    return f'\n  (did you mean "{close[0]}"?)' if close else ""


def _located(exc: ConfigError, line: Line, prefix: str = "") -> ConfigError:
    return ConfigError(prefix + exc.message, line.file, line.number)


# -- options -----------------------------------------------------------------


class OptionSetter:
    """Applies `name = value` lines to one option store (the main options, or one driver's)."""

    def __init__(
        self,
        table: dict[str, OptionDef],
        store: dict[str, object],
        config: Config,
        hidden: set[str] | None = None,
    ) -> None:
        self.table = table
        self.store = store
        self.config = config
        self.hidden = hidden if hidden is not None else set()
        self.seen: set[str] = set()

    def known(self, text: str) -> bool:
        name, _ = read_name(text)
        if name == "hide":
            name, _ = read_name(_)
        for prefix in ("no_", "not_"):
            if name.startswith(prefix) and name[len(prefix) :] in self.table:
                return True
        return name in self.table

    def apply(self, text: str, line: Line, unknown: Callable[[str], str]) -> str:
        """Set one option; returns its (table) name. unknown(name) words the error for an unknown name."""
        try:
            return self._apply(text, line, unknown)
        except ConfigError as exc:
            if exc.file is not None:
                raise
            raise _located(exc, line) from None

    def _apply(self, text: str, line: Line, unknown: Callable[[str], str]) -> str:
        stripped = text.lstrip()
        if not stripped[:1].isalpha():
            raise ConfigError(f"option setting expected: {stripped}")
        secure = False
        name, rest = read_name(stripped)
        if name == "hide":
            secure = True
            name, rest = read_name(rest)
        offset = 0
        if name.startswith("no_"):
            offset = 3
        if name.startswith("not_"):
            offset = 4
        opt = self.table.get(name[offset:])
        if opt is None:
            raise ConfigError(
                unknown(name) + suggestion(name, [n for n, o in self.table.items() if not o.hidden])
            )
        if name[offset:] in self.seen and opt.repeat is None:
            raise ConfigError(f'"{name}" option set for the second time')
        self.seen.add(name[offset:])
        value: str | None = None
        if opt.kind not in BOOL_KINDS:
            if offset:
                raise ConfigError("negation prefix applied to a non-boolean option")
            if not rest:
                raise ConfigError(f"unexpected end of line (data missing) after {name}")
            if not rest.startswith("="):
                raise ConfigError(f'missing "=" after {name}')
            value = rest[1:].lstrip()
        elif rest:
            if offset or not rest.startswith("="):
                raise extra_chars(rest, f"boolean option {name}")
            value = rest[1:].lstrip()
        if opt.kind in BOOL_KINDS and value is not None and not (opt.kind == "expand_bool" and "$" in value):
            result: object = parse_bool(name, value)
        else:
            result = parse_value(opt, value, negated=bool(offset))
        target = opt.alias_of or opt.name
        if opt.deprecated:
            current = opt.alias_of or "event_action"
            self.config.deprecations.append(
                f'{line.file}:{line.number}: option "{opt.name}" is deprecated; use "{current}"'
            )
        if opt.repeat is not None and isinstance(result, str) and self.store.get(target):
            old = str(self.store[target])
            if opt.repeat == "con":
                result = "${if and{{bool_lax{" + old + "}}{bool_lax{" + result + "}}}}"
            else:
                result = old + opt.repeat + result
        self.store[target] = result
        if opt.kind in ("uid", "expand_uid") and isinstance(result, int) and target.endswith("user"):
            self._group_from_user(target, value or "", result)
        if opt.kind == "bool_verify":
            for suffix in ("_sender", "_recipient"):
                if opt.name + suffix in self.table:
                    self.store[opt.name + suffix] = result
        if secure:
            self.hidden.add(target)
        return target

    def _group_from_user(self, target: str, value: str, uid: int) -> None:
        """A user given by name also sets the matching group option, unless that is set (Exim's rule)."""
        import pwd

        group = target[: -len("user")] + "group"
        if group not in self.table or group in self.seen or value.strip().isdigit():
            return
        try:
            self.store[group] = pwd.getpwuid(uid).pw_gid
        except KeyError:
            pass


# -- main section ------------------------------------------------------------


def read_main(lines: list[Line], config: Config, table: dict[str, OptionDef]) -> None:
    setter = OptionSetter(table, config.main, config, config.hidden)
    for line in lines:
        text = line.text
        if line.is_macro:
            continue
        for keyword, kind, words in LIST_KINDS:
            if text.startswith(keyword):
                _read_named_list(config, line, text[len(keyword) :], kind, words)
                break
        else:
            setter.apply(text, line, lambda name: f'main option "{name}" unknown')


def _read_named_list(config: Config, line: Line, rest: str, kind: str, words: str) -> None:
    cached = rest.startswith("_cache")
    if cached:
        rest = rest[len("_cache") :]
    if not rest[:1].isspace():
        raise ConfigError("unrecognized configuration line", line.file, line.number)
    m = re.match(r"\s*([A-Za-z0-9_]*)\s*", rest)
    assert m is not None
    name, rest = m.group(1), rest[m.end() :]
    if name in config.named_lists:
        raise ConfigError(f'duplicate name "{name}" for a named {words}', line.file, line.number)
    if not rest.startswith("="):
        raise ConfigError(f"missing '=' after \"{name}\"", line.file, line.number)
    try:
        value = read_string(name, rest[1:].lstrip())
    except ConfigError as exc:
        raise _located(exc, line) from None
    config.named_lists[name] = NamedList(kind, name, value, cached, line.file, line.number)


# -- drivers -----------------------------------------------------------------


def read_drivers(lines: list[Line], kind: str, config: Config) -> list[DriverInstance]:
    """Routers, transports or authenticators, in order, with their options set."""
    from pyxim.config.drivers import drivers_of, generic_options, options_for

    generic = generic_options(kind)
    instances: list[DriverInstance] = []
    current: DriverInstance | None = None
    setter: OptionSetter | None = None

    def finish() -> None:
        if current is not None and not current.driver:
            raise ConfigError(f'no driver defined for {kind} "{current.name}"', current.file, current.line)

    for line in lines:
        name, rest = read_name(line.text)
        if line.is_macro:  # a macro definition ends the driver being read
            finish()
            current = None
            continue
        if rest.startswith(":"):
            finish()
            if any(inst.name == name for inst in instances):
                raise ConfigError(f'there are two {kind}s called "{name}"', line.file, line.number)
            current = DriverInstance(kind, name, "", {}, line.file, line.number)
            instances.append(current)
            setter = OptionSetter(generic, current.options, config, current.hidden)
            setter.seen = current.explicit
            extra = rest[1:].strip()
            if extra:
                raise _located(extra_chars(extra, f"driver name {name}"), line)
            continue
        if current is None or setter is None:
            raise ConfigError(f"{kind} name missing", line.file, line.number)
        opt_name, opt_rest = read_name(line.text)
        if opt_name == "driver":
            if current.driver:
                raise ConfigError('"driver" option set for the second time', line.file, line.number)
            if not opt_rest.startswith("="):
                setter.apply(line.text, line, lambda n: f'option "{n}" unknown')  # Exim's own complaint
            try:
                driver = read_string("driver", opt_rest[1:].strip())
            except ConfigError as exc:
                raise _located(exc, line) from None
            table = options_for(kind, driver)
            if table is None:
                raise ConfigError(
                    f'{kind} {current.name}: cannot find {kind} driver "{driver}"'
                    + suggestion(driver, drivers_of(kind)),
                    line.file,
                    line.number,
                )
            current.driver = driver
            for oname, opt in table.items():  # defaults for what the section has not set yet
                if oname not in current.options and not opt.alias_of:
                    current.options[oname] = opt.default
            setter = OptionSetter(table, current.options, config, current.hidden)
            setter.seen = current.explicit
            continue
        if not current.driver and not setter.known(line.text):
            label = opt_name or line.text
            raise ConfigError(
                f'option "{label}" unknown ("driver" must be specified before any private options)',
                line.file,
                line.number,
            )
        setter.apply(line.text, line, lambda n: f'option "{n}" unknown')
    finish()
    for inst in instances:
        _driver_defaults(inst)
    return instances


_LOCAL_PART_DEPENDENT = (
    "condition",
    "local_parts",
    "local_part_prefix",
    "local_part_suffix",
    "senders",
    "require_files",
)


def _driver_defaults(inst: DriverInstance) -> None:
    """Values Exim settles when it initialises a driver."""
    from pyxim.config.drivers import init_instance

    init_instance(inst.kind, inst.driver, inst.options, inst.explicit)
    if inst.kind == "router" and inst.options.get("retry_use_local_part") is None:
        # true when routing can depend on the local part (found by trying Exim 4.96)
        inst.options["retry_use_local_part"] = bool(inst.options.get("check_local_user")) or any(
            inst.options.get(name) for name in _LOCAL_PART_DEPENDENT
        )


# Routers that need a transport, and those that must not have one (Exim's ri_yestransport/ri_notransport).
ROUTERS_NEEDING_TRANSPORT = frozenset({"accept", "dnslookup", "ipliteral", "manualroute"})
ROUTERS_WITHOUT_TRANSPORT = frozenset({"iplookup", "redirect"})


def check_routers(config: Config) -> None:
    """route_init's checks, worded as Exim words them (the instance's line added)."""
    names = [r.name for r in config.routers]
    for index, r in enumerate(config.routers):
        transport = r.options.get("transport")
        if r.driver in ROUTERS_NEEDING_TRANSPORT and not transport and not r.options.get("verify_only"):
            raise ConfigError(f"{r.name} router:\n  a transport is required for this router", r.file, r.line)
        if r.driver in ROUTERS_WITHOUT_TRANSPORT and transport:
            raise ConfigError(
                f"{r.name} router:\n  a transport must not be defined for this router", r.file, r.line
            )
        self_value = str(r.options.get("self") or "")
        if self_value not in ("freeze", "defer", "send", "pass", "fail") and not self_value.startswith(
            "reroute:"
        ):
            raise ConfigError(
                f"{r.name} router:\n  {self_value} is not valid for the self option", r.file, r.line
            )
        if r.driver == "redirect":
            from pyxim.routers.redirect import check_instance

            check_instance(r)  # one_time with unseen …
        for option, must_follow in (("redirect_router", False), ("pass_router", True)):
            target = r.options.get(option)
            if not target:
                continue
            if target not in names:
                raise ConfigError(f'new_router "{target}" not found for "{r.name}" router', r.file, r.line)
            if must_follow and names.index(str(target)) <= index:
                raise ConfigError(f'new_router "{target}" does not follow "{r.name}" router', r.file, r.line)


REMOTE_TRANSPORTS = frozenset({"smtp"})  # shadow transports are for local ones only


def check_transports(config: Config) -> None:
    """transport_init's checks (the instance's line added)."""
    for t in config.transports:
        if t.driver in REMOTE_TRANSPORTS and t.options.get("shadow_transport"):
            raise ConfigError(f"shadow transport not allowed on non-local transport {t.name}", t.file, t.line)
        if t.options.get("body_only") and t.options.get("headers_only"):
            raise ConfigError(
                f"{t.name} transport: body_only and headers_only are mutually exclusive", t.file, t.line
            )


def check_authenticators(config: Config) -> None:
    auths = config.authenticators
    for a in auths:
        if not a.options.get("public_name"):
            a.options["public_name"] = a.name  # Exim 4.96 falls back to the instance name
    for i, a in enumerate(auths):
        for b in auths[i + 1 :]:
            if str(a.options["public_name"]).lower() != str(b.options["public_name"]).lower():
                continue
            for side in ("server", "client"):
                if _auth_side(a, side) and _auth_side(b, side):
                    raise ConfigError(
                        f"two {side} authenticators ({a.name} and {b.name}) have the same public name "
                        f"({a.options['public_name']})",
                        b.file,
                        b.line,
                    )


def _auth_side(inst: DriverInstance, side: str) -> bool:
    """Whether an authenticator has a server (or client) side configured, roughly as its driver decides."""
    keys = [k for k, v in inst.options.items() if v not in (None, False, "") and k.startswith(side + "_")]
    if side == "server":
        keys = [
            k
            for k in keys
            if k
            not in (
                "server_advertise_condition",
                "server_debug_print",
                "server_mail_auth_condition",
                "server_set_id",
                "server_tls",
            )
        ]
    else:
        keys = [k for k in keys if k not in ("client_condition", "client_set_id")]
    return bool(keys)


# -- ACLs --------------------------------------------------------------------


def read_acls(lines: list[Line], config: Config) -> None:
    acl: Acl | None = None
    statement: AclStatement | None = None
    for line in lines:
        text = line.text
        name, rest = read_name(text)
        if line.is_macro:  # a macro definition ends the ACL being read
            acl, statement = None, None
            continue
        if rest.startswith(":"):
            if not name:
                raise ConfigError("missing or malformed ACL name", line.file, line.number)
            if name in config.acls:
                raise ConfigError(f'there are two ACLs called "{name}"', line.file, line.number)
            acl = Acl(name, [], line.file, line.number)
            config.acls[name] = acl
            statement = None
            continue
        if acl is None:
            raise ConfigError("missing or malformed ACL name", line.file, line.number)
        try:
            statement = _acl_line(acl, statement, text, line, text)
        except ConfigError as exc:
            raise _located(exc, line, "error in ACL: ") from None


def _acl_line(acl: Acl, statement: AclStatement | None, text: str, line: Line, whole: str) -> AclStatement:
    name, rest = read_name(text)
    if name in ACL_VERBS:
        statement = AclStatement(name, [], line.number)
        acl.statements.append(statement)
        if not rest:
            return statement
        text = rest
    elif statement is None:
        raise ConfigError(f'unknown ACL verb "{name}" in "{text}"')
    negated = False
    body = text.lstrip()
    if body.startswith("!"):
        negated = True
        body = body[1:]
    cname, rest = read_name(body)
    if cname not in ACL_CONDITIONS and cname not in ACL_MODIFIERS:
        raise ConfigError(f'unknown ACL condition/modifier in "{whole}"')
    if negated and cname in ACL_MODIFIERS:
        raise ConfigError(f'ACL error: negation is not allowed with "{cname}"')
    if cname == "endpass":
        if statement.verb not in ("accept", "discard"):
            raise ConfigError(f'ACL error: "endpass" is not allowed with "{statement.verb}"')
        statement.items.append(("endpass", "", line.number))
        return statement
    if cname == "set":
        if not re.match(r"acl_[cm]", rest):
            raise ConfigError(
                f'invalid variable name after "set" in ACL modifier "set {rest}" (must start "acl_c" or "acl_m")'
            )
        if "=" not in rest:
            raise ConfigError('"=" missing after ACL "set" modifier')
        statement.items.append(("set", rest.strip(), line.number))
        return statement
    if not rest.startswith("="):
        word = "modifier" if cname in ACL_MODIFIERS else "condition"
        raise ConfigError(f'"=" missing after ACL "{cname}" {word}')
    statement.items.append((("!" if negated else "") + cname, rest[1:].strip(), line.number))
    return statement


# -- retry rules -------------------------------------------------------------


def _dequote(text: str) -> tuple[str, str]:
    """Exim's string_dequote: a quoted string with escapes, or a run of non-space; then the rest."""
    text = text.lstrip()
    if text.startswith('"'):
        from pyxim.expand.parser import interpret_escape

        out: list[str] = []
        i = 1
        while i < len(text) and text[i] != '"':
            if text[i] == "\\" and i + 1 < len(text):
                ch, i = interpret_escape(text, i)
                out.append(ch)
            else:
                out.append(text[i])
                i += 1
        return "".join(out), text[i + 1 :]
    m = re.match(r"\S*", text)
    assert m is not None
    return m.group(0), text[m.end() :]


def check_retry_error(error: str) -> str | None:
    """Exim's readconf_retry_error: None when the error name is understood, else the complaint."""
    base, _, extra = error.partition("_")
    low = base.lower()
    if low == "quota":
        from pyxim.config.options import read_time

        if extra and read_time(extra) is None:
            return "bad time value"
        return None
    if low == "refused":
        if extra and extra.lower() not in ("mx", "a"):
            return 'A or MX expected after "refused"'
        return None
    if low == "timeout":
        if extra and extra.lower() not in ("a", "mx", "connect", "connect_a", "connect_mx", "dns"):
            return '"A", "MX", or "connect" expected after "timeout"'
        return None
    if error[:6].lower() in ("mail_4", "rcpt_4", "data_4"):
        code = error[6:]
        if not re.fullmatch(r"xx|\d[\dx]", code):
            return f"{error[:4]}_4 must be followed by xx, dx, or dd, where x is literal and d is any digit"
        return None
    if low == "auth" and extra.lower() == "failed":
        return None
    if error.lower() in ("lost_connection", "tls_required", "lookup", "*"):
        return None
    return f'unknown or malformed retry error "{error}"'


def read_retry(lines: list[Line], config: Config) -> None:
    for line in lines:
        try:
            config.retry_rules.append(parse_retry_rule(line))
        except ConfigError as exc:
            raise _located(exc, line) from None


def parse_retry_rule(line: Line) -> RetryRule:
    pattern, rest = _dequote(line.text)
    rest = rest.lstrip()
    m = re.match(r"[!-~]*", rest)
    assert m is not None
    error, rest = m.group(0), rest[m.end() :]
    if not error:
        raise ConfigError("missing error type in retry rule")
    problem = check_retry_error(error)
    if problem:
        raise ConfigError(problem)
    rest = rest.lstrip()
    senders = None
    if rest.startswith("senders"):
        rest = rest[len("senders") :].lstrip()
        if not rest.startswith("="):
            raise ConfigError('"=" expected after "senders" in retry rule')
        senders, rest = _dequote(rest[1:])
    rules_text = rest.strip()
    items: list[tuple[str, int, int, int]] = []
    p = rules_text
    while p:
        letter = p[0].upper()
        p = p[1:]
        timeout, p = _retry_arg(p, fixed=False)
        p1 = p2 = 0
        if letter == "F":
            p1, p = _retry_arg(p, fixed=False)
        elif letter in ("G", "H"):
            p1, p = _retry_arg(p, fixed=False)
            p2, p = _retry_arg(p, fixed=True)
        else:
            raise ConfigError("unknown retry rule letter")
        if timeout <= 0 or p1 <= 0 or (letter != "F" and p2 < 1000):
            raise ConfigError("bad parameters for retry rule")
        items.append((letter, timeout, p1, p2))
        p = p.lstrip()
        if p.startswith(";"):
            p = p[1:].lstrip()
        elif p:
            raise ConfigError("semicolon expected")
    return RetryRule(pattern, error, rules_text, line.number, senders, items, line.file)


def _retry_arg(p: str, fixed: bool) -> tuple[int, str]:
    from pyxim.config.options import read_time

    if not p.startswith(","):
        raise ConfigError("comma expected")
    p = p[1:].lstrip()
    m = re.match(r"[A-Za-z0-9.]*" if fixed else r"[A-Za-z0-9]*", p)
    assert m is not None
    word, p = m.group(0), p[m.end() :]
    if p and not p[0].isspace() and p[0] not in ",;":
        raise ConfigError("comma or semicolon expected")
    if fixed:
        fm = re.fullmatch(r"(\d+)(?:\.(\d*))?", word)
        if not fm:
            return -1, p
        value = int(fm.group(1)) * 1000
        scale = 100
        for ch in fm.group(2) or "":
            value += int(ch) * scale
            scale //= 10
        return value, p
    seconds = read_time(word)
    return (-1 if seconds is None else seconds), p


# -- rewrite rules -----------------------------------------------------------

_REWRITE_FLAGS = set("qwhsftcbrEFTQRS")


def parse_rewrite_rule(text: str, line_number: int = 0, file: str = "") -> RewriteRule:
    pattern, rest = _dequote(text)
    if not rest.strip():
        raise ConfigError("missing rewrite replacement string")
    replacement, rest = _dequote(rest)
    flags = ""
    for ch in rest:
        if ch in " \t":
            continue
        if ch not in _REWRITE_FLAGS:
            raise ConfigError(
                f"unknown rewrite flag character '{ch}' (could be missing quotes round replacement item)"
            )
        if ch == "S" and not (pattern.startswith("^") or pattern.startswith("\\N^")):
            raise ConfigError("rewrite rule has the S flag but is not a regular expression")
        flags += ch
    return RewriteRule(pattern, replacement, flags, line_number, file)


def read_rewrite(lines: list[Line], config: Config) -> None:
    for line in lines:
        try:
            config.rewrite_rules.append(parse_rewrite_rule(line.text, line.number, line.file))
        except ConfigError as exc:
            raise _located(exc, line) from None


def check_header_rewrite(text: str) -> None:
    """A transport's headers_rewrite: a list of rules, none of which may touch the envelope."""
    from pyxim.config.options import split_list

    for item in split_list(text):
        rule = parse_rewrite_rule(item)
        if set(rule.flags) & set("EFTS"):
            raise ConfigError("rewrite rule specifies a non-header rewrite - not allowed at transport time -")


# -- the whole file ----------------------------------------------------------


def read_sections(lines: list[Line], config: Config, main_table: dict[str, OptionDef]) -> None:
    """Split the logical lines at `begin NAME` and read each section."""
    starts = [i for i, line in enumerate(lines) if line.text[:6].lower() == "begin "]
    read_main(lines[: starts[0] if starts else len(lines)], config, main_table)
    had: set[str] = set()
    for n, start in enumerate(starts):
        head = lines[start]
        word = head.text[6:].strip()
        key = word.lower() if word.lower().endswith("s") else word.lower() + "s"
        if key not in SECTIONS:
            raise ConfigError(f'"{word}" is not a known configuration section name', head.file, head.number)
        if key in had:
            raise ConfigError(
                f'"{word}" section is repeated in the configuration file', head.file, head.number
            )
        had.add(key)
        body = lines[start + 1 : starts[n + 1] if n + 1 < len(starts) else len(lines)]
        if key == "acls":
            read_acls(body, config)
        elif key == "routers":
            config.routers = read_drivers(body, "router", config)
            check_routers(config)
        elif key == "transports":
            config.transports = read_drivers(body, "transport", config)
            check_transports(config)
        elif key == "authenticators":
            config.authenticators = read_drivers(body, "authenticator", config)
            check_authenticators(config)
        elif key == "retrys":
            read_retry(body, config)
        elif key == "rewrites":
            read_rewrite(body, config)
        else:
            raise ConfigError(
                "local_scan() options not supported: (LOCAL_SCAN_HAS_OPTIONS not defined in Local/Makefile)",
                head.file,
                head.number,
            )
