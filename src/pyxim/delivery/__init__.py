"""Delivery: what happens to a spooled message after reception.

The delivery engine (engine.py) reads a message from the spool, routes each
recipient not yet delivered, hands the routed addresses to their transports
and records the outcome in the spool and the logs, as Exim's deliver.c does.
A transport never reads the SMTP session; it gets a `TransportCall`: the
message as spooled, the address as routed and an expansion context in which
the routing variables ($local_part, $domain, $local_part_data, $home,
$address_data …) are set.

Transports register a delivery function for their driver name here.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from pyxim.config.model import Config, DriverInstance
    from pyxim.expand.context import ExpansionContext
    from pyxim.spool.format import SpoolMessage


@dataclass(slots=True)
class TransportCall:
    """One address handed to one transport."""

    config: Config
    transport: DriverInstance
    message: SpoolMessage
    body: bytes  # the -D file's data, without its first line (LF line ends, as spooled)
    address: str  # the address being delivered (after redirection)
    original: str  # the recipient as received (Exim's "<" parent in log lines)
    ctx: ExpansionContext  # routing variables set; expansions of transport options happen here
    uid: int | None = None  # run as this user (router/transport `user`, check_local_user); None: as we are
    gid: int | None = None
    # the recipients that led to this delivery, for Envelope-to: (several when duplicates merged)
    envelope_to: list[str] | None = None
    # remote transports: the hosts the router chose, in order (pyxim.routers.engine.Host: name, address, mx)
    hosts: list = field(default_factory=list)  # type: ignore[type-arg]
    router: str = ""  # the router's name (for log lines)
    headers_add: list[str] = field(default_factory=list)  # the router's headers_add / headers_remove
    headers_remove: list[str] = field(default_factory=list)
    spool_files: tuple[str, str] = ("", "")  # the message's -H and -D files (the queuefile transport copies them)
    # remote transports: more (address, recipient as received) pairs for the same hosts, delivered in one
    # transaction with `address`; the result then has `per_address` filled for each of them
    batch: list[tuple[str, str]] = field(default_factory=list)
    no_dsn: bool = False  # dsn_lasthop: do not pass DSN options (NOTIFY, ORCPT, RET, ENVID) on
    # remote transports keep per-host retry state: a forced delivery (-M, -qf) tries hosts whose retry
    # time has not come; `now` is the delivery's clock (tests control it)
    ignore_retry: bool = False
    now: float = 0.0


@dataclass(slots=True)
class DeliveryResult:
    """The outcome for one address, worded for the log lines.

    status: "ok" (=>), "defer" (==, tried again later) or "fail" (**, bounced).
    message: why (for == and ** lines and bounces); detail: extra fields for
    the => line (e.g. " C=\"250 OK\"" for SMTP)."""

    status: str
    message: str = ""
    detail: str = ""
    # what the transport wants logged besides the delivery line (log_output …)
    log: list[str] = field(default_factory=list)
    # messages the transport put on the spool (autoreply): delivered next, like bounces
    new_messages: list[str] = field(default_factory=list)
    per_address: dict[str, DeliveryResult] = field(default_factory=dict)  # for a batch (see TransportCall)
    bypassed: bool = False  # -N: taken as delivered without running the transport ("*>")
    log_address: str = ""  # the name the delivery line gives (a file item written where `file` says)
    # a remote delivery to a server that does not take DSN options: Exim reports success itself
    # (for NOTIFY=SUCCESS), naming that server
    relayed_to_non_dsn: str = ""
    # a remote failure: what the experimental DSN extra information reports (ip, port, greeting,
    # helo_response, diagnostic)
    dsn_info: dict[str, str] = field(default_factory=dict)
    # a deferral the transport has kept retry state for itself (Exim's host retry records "T:host:ip"):
    # the address gets no retry record of its own; retry_expired: every host is past its last cutoff,
    # so the address fails ("retry timeout exceeded")
    host_retry: bool = False
    retry_expired: bool = False


TransportFunc = Callable[[TransportCall], DeliveryResult]
TRANSPORTS: dict[str, TransportFunc] = {}

# A queue run that knows where its later messages go (the second pass of -qq) names those hosts'
# IP addresses here: a remote transport then keeps its connection to such a host open after a
# delivery, and the next message for it goes down the same connection (Exim's continued delivery,
# logged with "*" after the host). None elsewhere: connections are closed after each message.
CONTINUE_HOSTS: ContextVar[frozenset[str] | None] = ContextVar("continue_hosts", default=None)
# what closes the connections kept open when the queue run ends (registered by transports)
CONNECTION_CLOSERS: list[Callable[[], None]] = []
# -N: deliveries are gone through up to the transport, which is not run; logged "*>" (Exim's dont_deliver)
DONT_DELIVER: ContextVar[bool] = ContextVar("dont_deliver", default=False)


def transport(driver: str) -> Callable[[TransportFunc], TransportFunc]:
    """Register the delivery function of a transport driver (`driver = appendfile` …)."""

    def register(func: TransportFunc) -> TransportFunc:
        TRANSPORTS[driver] = func
        return func

    return register
