"""Operators and items whose results Exim 4.96 cannot be compared with (time, randomness, newer operators)."""

from __future__ import annotations

from pyxim.expand import ExpansionContext, expand_string


def x(text: str, now: float = 1_795_536_185.0) -> str:
    return expand_string(text, ExpansionContext(now=lambda: now))


def test_randint_stays_in_range() -> None:
    values = {int(x("${randint:10}")) for _ in range(200)}
    assert values <= set(range(10)) and len(values) > 3
    assert x("${randint:1}") == "0"  # as exim4 -be prints it


def test_newer_operators() -> None:
    assert x("${xtextd:a+2Bb+3D}") == "a+b="
    wrapped = x("${headerwrap_20:one two three four five six seven}")
    assert all(len(line) <= 20 for line in wrapped.split("\n"))
    assert wrapped.replace("\n\t", " ") == "one two three four five six seven"


def test_prvs_roundtrip_with_controlled_clock() -> None:
    signed = x("${prvs{user@example.org}{secret}{3}}")
    assert signed.startswith("prvs=3") and signed.endswith("=user@example.org")
    assert x(f"${{prvscheck{{{signed}}}{{secret}}}}") == "user@example.org"
    assert x(f"${{prvscheck{{{signed}}}{{secret}}{{$prvscheck_result}}}}") == "1"
    assert x(f"${{prvscheck{{{signed}}}{{wrong}}{{[$prvscheck_result]}}}}") == "[]"
    # thirty days later the signature has expired
    assert x(f"${{prvscheck{{{signed}}}{{secret}}{{[$prvscheck_result]}}}}", now=1_795_536_185.0 + 30 * 86400) == "[]"


def test_readsocket_to_a_real_unix_server(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import socket
    import threading

    path = str(tmp_path / "sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            data = conn.recv(100)
            conn.sendall(b"got " + data + b"\nline2\n")

    t = threading.Thread(target=serve)
    t.start()
    try:
        assert x(f"${{readsocket{{{path}}}{{hello}}{{2s}}{{|}}}}") == "got hello|line2|"
    finally:
        t.join(5)
        server.close()


def test_run_does_not_use_a_shell() -> None:
    assert x("${run{/bin/echo \\$(id) ;ls}}") == "$(id) ;ls\n"
