"""The `ratelimit` ACL condition: true when the client's smoothed rate exceeds the limit.

    ratelimit = 100 / 1h / per_rcpt / strict / $authenticated_id

Exim's algorithm: an exponentially weighted moving average kept per key in
the ratelimit hints database. With `leaky` (the default) the stored rate is
not increased while the client is over the limit, so it recovers by waiting;
with `strict` every event counts. `readonly`/`noupdate` only look. The key
defaults to the client's IP address. $sender_rate, $sender_rate_limit and
$sender_rate_period show the result.
"""

from __future__ import annotations

import math

from pyxim.acl.engine import AclConditionError, AclRun, acl_condition
from pyxim.config.options import read_time

_PER = ("per_conn", "per_mail", "per_rcpt", "per_byte", "per_cmd", "per_addr")


@acl_condition("ratelimit")
def ratelimit(run: AclRun, value: str) -> bool:
    from pyxim.queue.hints import HintsDb

    parts = [p.strip() for p in run.expand(value).split("/")]
    if len(parts) < 2:
        raise AclConditionError(f'ratelimit requires at least two arguments: "{value}"')
    try:
        limit = float(parts[0])
    except ValueError:
        raise AclConditionError(f'unparseable ratelimit limit "{parts[0]}"') from None
    period = read_time(parts[1])
    if not period:
        raise AclConditionError(f'unparseable ratelimit period "{parts[1]}"')
    mode, per, update, count = "leaky", "per_mail", True, 1.0
    key_parts: list[str] = []
    for opt in parts[2:]:
        if opt in ("leaky", "strict"):
            mode = opt
        elif opt in _PER:
            per = opt
        elif opt in ("readonly", "noupdate"):
            update = False
        elif opt.startswith("count="):
            count = float(opt[6:])
        elif opt:
            key_parts.append(opt)
    if per == "per_byte":
        count = float(run.ctx.variables.get("message_size") or 0)
    key = "/".join(key_parts) or run.ctx.variables.get("sender_host_address", "")
    db_key = f"{parts[1]}/{per}/{mode}/{key}"
    config = run.config
    db = HintsDb(str(config.main["spool_directory"]), "ratelimit")
    now = run.ctx.now()
    record = db.get(db_key)
    if record is None:
        rate = count
    else:
        interval = max(now - record["time"], 1e-9)
        i_over_p = interval / period
        a = math.exp(-i_over_p)
        rate = count * (1 - a) / i_over_p + a * record["rate"]
    over = rate > limit
    if update:
        stored = rate
        if over and mode == "leaky" and record is not None:
            # leaky: the bucket does not fill further while the client is over the limit
            interval = max(now - record["time"], 1e-9)
            stored = math.exp(-interval / period) * record["rate"]
        db.put(db_key, {"time": now, "rate": stored})
    run.ctx.variables["sender_rate"] = f"{rate:.1f}"
    run.ctx.variables["sender_rate_limit"] = parts[0]
    run.ctx.variables["sender_rate_period"] = parts[1]
    return over
