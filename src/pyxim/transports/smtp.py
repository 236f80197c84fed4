"""The smtp transport: its option table (Exim 4.96 names, types and defaults) and its registration."""

from __future__ import annotations

from pyxim.config.drivers import register
from pyxim.config.options import OptionDef, opt

OPTIONS: list[OptionDef] = [
    opt("address_retry_include_sender", "bool", True),
    opt("allow_localhost", "bool", False),
    opt("authenticated_sender"),
    opt("authenticated_sender_force", "bool", False),
    opt("command_timeout", "time", 300),
    opt("connect_timeout", "time", 300),
    opt("connection_max_messages", "int", 500),
    opt("dane_require_tls_ciphers"),
    opt("data_timeout", "time", 300),
    opt("delay_after_cutoff", "bool", True),
    opt("dkim_canon"),
    opt("dkim_domain"),
    opt("dkim_hash", "string", "sha256"),
    opt("dkim_identity"),
    opt("dkim_private_key"),
    opt("dkim_selector"),
    opt("dkim_sign_headers"),
    opt("dkim_strict"),
    opt("dkim_timestamps"),
    opt("dns_qualify_single", "bool", True),
    opt("dns_search_parents", "bool", False),
    opt("dnssec_request_domains", "string", "*"),
    opt("dnssec_require_domains"),
    opt("dscp"),
    opt("fallback_hosts"),
    opt("final_timeout", "time", 600),
    opt("gethostbyname", "bool", False),
    opt("helo_data", "string", "$primary_hostname"),
    opt(
        "host_name_extract",
        "string",
        "${if and {{match{$host}{.outlook.com\\$}} {match{$item}{\\N^250-([\\w.]+)\\s\\N}}} {$1}}",
    ),
    opt("hosts"),
    opt("hosts_avoid_esmtp"),
    opt("hosts_avoid_pipelining"),
    opt("hosts_avoid_tls"),
    opt("hosts_max_try", "int", 5),
    opt("hosts_max_try_hardlimit", "int", 50),
    opt("hosts_nopass_tls"),
    opt("hosts_noproxy_tls"),
    opt("hosts_override", "bool", False),
    opt("hosts_pipe_connect"),
    opt("hosts_randomize", "bool", False),
    opt("hosts_request_ocsp", "string", "*"),
    opt("hosts_require_alpn"),
    opt("hosts_require_auth"),
    opt("hosts_require_dane"),
    opt("hosts_require_ocsp"),
    opt("hosts_require_tls"),
    opt("hosts_try_auth"),
    opt("hosts_try_chunking", "string", "*"),
    opt("hosts_try_dane", "string", "*"),
    opt("hosts_try_fastopen", "string", "*"),
    opt("hosts_try_prdr", "string", "*"),
    opt("hosts_verify_avoid_tls"),
    opt("interface"),
    opt("keepalive", "bool", True),
    opt("lmtp_ignore_quota", "bool", False),
    opt("max_rcpt", "int", 100),
    opt("message_linelength_limit", "int", 998),
    opt("multi_domain", "expand_bool", True),
    opt("port", "string", "smtp"),
    opt("protocol", "string", "smtp"),
    opt("retry_include_ip_address", "bool", True),
    opt("serialize_hosts"),
    opt("size_addition", "int", 1024),
    opt("socks_proxy"),
    opt("tls_alpn"),
    opt("tls_certificate"),
    opt("tls_crl"),
    opt("tls_dh_min_bits", "int", 1024),
    opt("tls_privatekey"),
    opt("tls_require_ciphers"),
    opt("tls_resumption_hosts"),
    opt("tls_sni"),
    opt("tls_tempfail_tryclear", "bool", True),
    opt("tls_try_verify_hosts", "string", "*"),
    opt("tls_verify_cert_hostnames", "string", "*"),
    opt("tls_verify_certificates", "string", "system"),
    opt("tls_verify_hosts"),
    opt("utf8_downconvert", "string", "-1"),
    # pyxim: ARC signing (Exim's experimental ARC), and older names (SPEC-NOTES.md)
    opt("arc_sign"),
    opt("tls_verify_cert_hostname", hidden=True, alias_of="tls_verify_cert_hostnames", deprecated=True),
    opt("tpda_host_defer_action", hidden=True, deprecated=True),
]

register("transport", "smtp", OPTIONS, generic_defaults={"retry_use_local_part": False})


# the delivery function lives in smtp_delivery.py (a thin socket adapter around smtp/client.py)
from pyxim.delivery import transport  # noqa: E402
from pyxim.transports.smtp_delivery import deliver  # noqa: E402

transport("smtp")(deliver)
