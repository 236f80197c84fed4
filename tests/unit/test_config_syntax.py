"""The configuration file's syntax: macros, conditionals, includes, continuations (Exim 4.96's rules, found by
trying them with exim4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyxim.config import load_config
from pyxim.config.model import Config
from pyxim.config.syntax import Macros
from pyxim.errors import ConfigError


def load(tmp_path: Path, text: str, macros: dict[str, str] | None = None, name: str = "exim.conf") -> Config:
    path = tmp_path / name
    path.write_text(text)
    return load_config(str(path), macros)


def error(tmp_path: Path, text: str, macros: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, macros)
    return info.value


# -- macros ------------------------------------------------------------------


def test_macros_replace_anywhere_even_inside_words(tmp_path: Path) -> None:
    c = load(tmp_path, "AB = zz\nprimary_hostname = xABy\n")
    assert c.main["primary_hostname"] == "xzzy"


def test_earlier_macros_win_and_later_ones_see_replaced_text(tmp_path: Path) -> None:
    # ABC is defined first, so "ABC" is not taken as AB followed by C
    c = load(tmp_path, "ABC = q\nAB = zz\nprimary_hostname = ABC AB\n")
    assert c.main["primary_hostname"] == "q zz"
    # a value is replaced when it is defined, and again by macros defined after it
    c = load(tmp_path, "A = xBx\nB = 1\nprimary_hostname = A\n")
    assert c.main["primary_hostname"] == "x1x"


def test_a_macro_may_not_contain_an_earlier_one(tmp_path: Path) -> None:
    exc = error(tmp_path, "AB = zz\nABC = q\n")
    assert (
        exc.message
        == '"ABC" cannot be defined as a macro because previously defined macro "AB" is a substring'
    )
    assert exc.line == 2


def test_redefinition_rules(tmp_path: Path) -> None:
    assert error(tmp_path, "AB = 1\nAB = 2\n").message == (
        'macro "AB" is already defined (use "==" if you want to redefine it)'
    )
    assert error(tmp_path, "AB == 2\n").message == 'can\'t redefine an undefined macro "AB"'
    c = load(tmp_path, "AB = 1\nprimary_hostname = AB\nAB == 2\nqualify_domain = AB\n")
    assert (c.main["primary_hostname"], c.main["qualify_domain"]) == ("1", "2")


def test_command_line_macros_win_over_the_file(tmp_path: Path) -> None:
    c = load(tmp_path, "NAME = file\nNAME == again\nprimary_hostname = NAME.example\n", {"NAME": "cli"})
    assert c.main["primary_hostname"] == "cli.example"
    assert list(c.macros) == ["NAME"] and c.macros["NAME"] == "cli"


def test_upper_case_lines_are_macro_definitions(tmp_path: Path) -> None:
    exc = error(tmp_path, "primary_hostname = x\nA-B = 1\n")
    assert (exc.message, exc.line) == ("malformed macro definition", 2)
    exc = error(tmp_path, "M" * 64 + " = 1\n")
    assert exc.message == "macro name too long (maximum is 63 characters)"


def test_macros_in_driver_and_acl_sections(tmp_path: Path) -> None:
    c = load(
        tmp_path,
        "begin acl\nA1 = accept\na:\n  A1\nbegin routers\nTR = t\nr:\n  driver = accept\n  transport = TR\n"
        "begin transports\nt:\n  driver = pipe\n",
    )
    assert c.acls["a"].statements[0].verb == "accept"
    assert c.routers[0].options["transport"] == "t"
    # a definition ends the driver or ACL being read, as in Exim
    assert (
        error(tmp_path, "begin acl\na:\n  accept\nB = 2\n  deny\n").message == "missing or malformed ACL name"
    )
    exc = error(tmp_path, "begin routers\nr:\n  driver = redirect\nX = 1\n  data = a\n")
    assert exc.message == "router name missing"


def test_substitution_api() -> None:
    m = Macros({"CLI": "c"})
    m.define("LONGER", "l", redefine=False)
    assert m.substitute_line("a CLI LONGER") == "a c l"
    assert m.substitute_line("NEW = CLI") == "NEW = c"  # the name being defined stays
    assert m.substitute("no macros here") == ("no macros here", False)


def test_builtin_macros(tmp_path: Path) -> None:
    c = load(
        tmp_path, ".ifdef _HAVE_TLS\nprimary_hostname = tls\n.endif\n.ifdef _OPT_MAIN_NOSUCH\nx\n.endif\n"
    )
    assert c.main["primary_hostname"] == "tls"
    names = [name for name, _ in c.macro_table.all_items()]
    assert "_OPT_MAIN_SMTP_BANNER" in names and "_DRIVER_ROUTER_ACCEPT" in names
    assert "_OPT_TRANSPORT_SMTP_HOSTS_TRY_PRDR" in names and "_ACL_COND_VERIFY" in names


def test_be_macro_lines() -> None:
    c = Config()
    c.define_macro_from_line("MAC = value one")
    c.define_macro_from_line("MAC == two")  # -be may redefine
    assert c.macros["MAC"] == "two"
    assert c.substitute_macros("x MAC y") == "x two y"
    with pytest.raises(ConfigError, match="malformed macro definition"):
        c.define_macro_from_line("Not a definition")


# -- conditionals ------------------------------------------------------------


@pytest.mark.parametrize(
    ("defined", "expected"),
    [({"A": "1"}, "a"), ({"B": "1"}, "b"), ({}, "none")],
)
def test_ifdef_elifdef_else(tmp_path: Path, defined: dict[str, str], expected: str) -> None:
    c = load(
        tmp_path,
        ".ifdef A\nprimary_hostname = a\n.elifdef B\nprimary_hostname = b\n.else\nprimary_hostname = none\n.endif\n",
        defined,
    )
    assert c.main["primary_hostname"] == expected


def test_ifdef_is_true_when_anything_on_the_line_was_replaced(tmp_path: Path) -> None:
    c = load(tmp_path, "XY = 1\n.ifdef prefixXYsuffix\nprimary_hostname = yes\n.endif\n")
    assert c.main["primary_hostname"] == "yes"
    c = load(
        tmp_path,
        ".ifndef NOPE\n.ifdef NOPE\nqualify_domain = no\n.elifndef NOPE\nqualify_domain = yes\n"
        ".endif\n.endif\n",
    )
    assert c.main["qualify_domain"] == "yes"


def test_conditional_errors(tmp_path: Path) -> None:
    exc = error(tmp_path, "primary_hostname = x\n.endif\n")
    assert (exc.message, exc.line) == (".endif without matching .ifdef", 2)
    assert error(tmp_path, ".else\n").message == ".else without matching .ifdef"
    exc = error(tmp_path, ".ifdef X\nprimary_hostname = x\n")
    assert (exc.message, exc.line) == ("Unexpected end of configuration file: .endif missing", 2)
    exc = error(tmp_path, ".ifdef A\n" * 11)
    assert exc.message == ".ifdef nested too deeply"


# -- lines -------------------------------------------------------------------


def test_continuations_and_comments(tmp_path: Path) -> None:
    c = load(tmp_path, "# comment\n\n   primary_hostname = a\\\n   .example\\\n# inner comment\n   .org   \n")
    assert c.main["primary_hostname"] == "a.example.org"
    # an empty line ends a continued line
    c = load(tmp_path, "primary_hostname = a\\\n\nqualify_domain = q\n")
    assert (c.main["primary_hostname"], c.main["qualify_domain"]) == ("a", "q")


def test_errors_name_the_last_line_of_a_continued_line(tmp_path: Path) -> None:
    exc = error(tmp_path, "primary_hostname = x\nbogus = a \\\n  b\n")
    assert (exc.line, exc.message) == (3, 'main option "bogus" unknown')


def test_lines_that_are_not_options(tmp_path: Path) -> None:
    assert error(tmp_path, ".foo bar\n").message == "option setting expected: .foo bar"
    assert error(tmp_path, "1abc = 2\n").message == "option setting expected: 1abc = 2"


# -- includes ----------------------------------------------------------------


def test_includes(tmp_path: Path) -> None:
    (tmp_path / "inc.conf").write_text("qualify_domain = included.example\nINC = yes\n")
    (tmp_path / "quoted.conf").write_text("smtp_banner = from quoted\n")
    c = load(
        tmp_path,
        "primary_hostname = x\n.include inc.conf\n.include_if_exists /nonexistent/pyxim.conf\n"
        f'.include "{tmp_path}/quoted.conf"\nsmtp_active_hostname = INC\n',
    )
    assert c.main["qualify_domain"] == "included.example"  # relative: from the main file's directory
    assert c.main["smtp_banner"] == "from quoted"
    assert c.main["smtp_active_hostname"] == "yes"


def test_errors_in_included_files_name_that_file(tmp_path: Path) -> None:
    (tmp_path / "inc.conf").write_text("\nbogus = 1\n")
    exc = error(tmp_path, f"primary_hostname = x\n.include {tmp_path}/inc.conf\n")
    assert (exc.file, exc.line) == (f"{tmp_path}/inc.conf", 2)
    exc = error(tmp_path, ".include /nonexistent/pyxim.conf\n")
    assert exc.message == "failed to open included configuration file /nonexistent/pyxim.conf"
    assert exc.line == 1


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path / "none.conf"))
    assert info.value.message.startswith(f"failed to open configuration file {tmp_path}/none.conf")


# -- sections ----------------------------------------------------------------


def test_section_names(tmp_path: Path) -> None:
    # "begin" is caseless and the plural "s" may be left off
    c = load(tmp_path, "BEGIN router\nr:\n  driver = redirect\n  data = x\nBegin ACLs\na:\n  accept\n")
    assert c.routers[0].name == "r" and "a" in c.acls
    exc = error(tmp_path, "primary_hostname = x\nbegin foo\n")
    assert (exc.message, exc.line) == ('"foo" is not a known configuration section name', 2)
    exc = error(tmp_path, "begin acl\nbegin acl\n")
    assert exc.message == '"acl" section is repeated in the configuration file'
