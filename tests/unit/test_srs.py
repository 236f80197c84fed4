"""SRS beyond what exim4 can be compared with: upper-case addresses and the SRS1 form.

The SRS0 output itself is compared byte for byte with exim4 in tests/interop/expansions/srs.txt.
"""

from __future__ import annotations

from pyxim.config.model import Config
from pyxim.expand import ExpansionContext, expand_string


def x(text: str, **main: object) -> str:
    return expand_string(text, ExpansionContext(config=Config(main=dict(main))))


def decode(local_part: str, secret: str = "secret") -> str:
    return x(f"${{if inbound_srs {{{local_part}}}{{{secret}}} {{yes:$srs_recipient}}{{no}}}}")


def test_upper_case_srs0_is_accepted() -> None:
    srs0 = x("${local_part:${srs_encode {secret}{user@example.org}{fwd.example}}}")
    assert decode(srs0.upper()) == "yes:USER@EXAMPLE.ORG"
    assert decode(srs0.lower()) == "yes:user@example.org"
    assert decode(srs0, secret="other") == "no"


def test_srs0_is_wrapped_again_as_srs0_by_default_as_exim_does() -> None:
    srs0 = x("${srs_encode {s1}{user@example.org}{fwd1.example}}")
    again = x(f"${{srs_encode {{s2}}{{{srs0}}}{{fwd2.example}}}}")
    assert again.startswith("SRS0=") and again.endswith("@fwd2.example")


def test_srs1_wraps_an_srs0_address_and_decodes_to_the_first_forwarder() -> None:
    srs0 = x("${srs_encode {s1}{user@example.org}{fwd1.example}}")
    srs1 = x(f"${{srs_encode {{s2}}{{{srs0}}}{{fwd2.example}}}}", srs_use_srs1=True)
    hash0, stamp = srs0.split("=")[1:3]
    assert srs1.startswith("SRS1=")
    assert srs1.endswith(f"=fwd1.example=={hash0}={stamp}=example.org=user@fwd2.example")
    local = srs1.rsplit("@", 1)[0]
    assert decode(local, "s2") == f"yes:{srs0}"
    assert decode(local.upper(), "s2") == f"yes:{srs0.upper()}"
    assert decode(local, "wrong") == "no"
    # a third forwarder keeps the first forwarder's domain; only the hash changes
    srs1b = x(f"${{srs_encode {{s3}}{{{srs1}}}{{fwd3.example}}}}", srs_use_srs1=True)
    assert srs1b.split("=", 2)[2] == srs1.split("=", 2)[2].replace("@fwd2.example", "@fwd3.example")
    assert decode(srs1b.rsplit("@", 1)[0], "s3") == f"yes:{srs0}"


def test_malformed_srs_addresses_are_not_srs() -> None:
    for local in ("SRS0=", "SRS0=abcd", "SRS0=abcd=!!=example.org=user", "SRS1=abcd=", "SRS1==x==y", "srs"):
        assert decode(local) == "no"
