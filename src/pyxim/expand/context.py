"""What an expansion can see: the configuration, variables, the message, DNS, the clock.

One ExpansionContext is built per use (a -be session, an SMTP session's ACL
run, a delivery) and passed to expand_string(). Time comes through `now` so
tests control it; nothing here is global.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.config.model import Config
    from pyxim.dns import Resolver
    from pyxim.expand.message import Message


@dataclass(slots=True)
class ExpansionContext:
    # The loaded configuration (main options, named lists, macros); None in bare unit tests.
    config: Config | None = None
    # Values of Exim variables set by the caller: $sender_address, $domain,
    # $local_part, $sender_host_address… Missing known variables expand empty.
    variables: dict[str, str] = field(default_factory=dict)
    # ACL variables $acl_c*, $acl_m* (shared with the ACL engine, which sets them).
    acl_vars: dict[str, str] = field(default_factory=dict)
    # The message being handled (for $h_…, $message_body…); None when there is none.
    message: Message | None = None
    # The DNS facade (dnsdb lookups, host lists, @mx_*); None means "build one on demand".
    resolver: Resolver | None = None
    # Wall clock, seconds since the epoch; tests replace it.
    now: Callable[[], float] = time.time
    # Open lookup files and their parsed contents, reused within this context.
    lookup_cache: dict[Any, Any] = field(default_factory=dict)
    # Whether ${run}, ${readsocket}, ${readfile}… are allowed (Exim's expand_forbid bits);
    # a set of item names that are locked out here.
    forbidden: frozenset[str] = frozenset()
    # True while a queue runner is active ($queue_running / queue_running condition).
    queue_running: bool = False
    # True for a message's first delivery attempt (first_delivery condition).
    first_delivery: bool = False
    # Filled by the ACL engine when it exists: runs a named ACL for ${acl}/acl condition.
    acl_runner: Callable[..., Any] | None = None
    # -bh only: an acl.engine.AclTracer that prints Exim's ">>> " ACL debug lines; None otherwise.
    acl_trace: Any = None

    def get_resolver(self) -> Resolver:
        if self.resolver is None:
            from pyxim.dns import Resolver

            # the main dns_* options (servers, dns_retrans/dns_retry …) shape every lookup
            self.resolver = Resolver.from_config(self.config.main) if self.config is not None else Resolver()
        return self.resolver
