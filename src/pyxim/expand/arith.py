"""Integer arithmetic the way Exim does it, C's 64-bit and 32-bit quirks included.

`evaluate()` is ${eval} and ${eval10}: precedence, loosest first,
| ^ & (<< >>) (+ -) (* / %) unary(+ - ~); parentheses; numbers may carry
K, M or G. ${eval} reads 0x… as hex and 0… as octal (sscanf's %lli),
${eval10} reads every number as decimal. Numbers that do not fit saturate
(as strtoll does), sums and differences hit Exim's own over-cautious
overflow check, and everything else wraps silently, as it does in Exim on
x86-64 (shift counts are taken modulo 64 there).

`string_integer()` is Exim's expanded_string_integer(), used where an
operator or condition wants a plain number (${randint}, numeric comparisons).

The small C helpers (`strtol`, `strtoul`, `wrap_int`) let the operators
mimic what Exim's calls to the C library do with odd input.
"""

from __future__ import annotations

from pyxim.errors import ExpansionError

INT64_MAX = (1 << 63) - 1
INT64_MIN = -(1 << 63)
_HALF = INT64_MAX // 2  # Exim's EXIM_ARITH_MAX/2, the threshold of its overflow check

C_SPACE = " \t\n\v\f\r"  # isspace() in the C locale
_DIGITS = "0123456789"
_HEX = "0123456789abcdefABCDEF"
_SUFFIX = {"k": 1024, "m": 1024 * 1024, "g": 1024 * 1024 * 1024}


def wrap_int(value: int, bits: int = 64) -> int:
    """Two's-complement wrap of `value` into a signed integer of `bits` bits."""
    mask = (1 << bits) - 1
    value &= mask
    return value - (1 << bits) if value >> (bits - 1) else value


def strtol(text: str, pos: int = 0, bits: int = 64) -> tuple[int, int, bool]:
    """C's strtol()/strtoll() in base 10: (value, index after the number, overflowed).

    Leading white space and one sign are accepted; the index is `pos` when no
    digits were read; out-of-range values saturate and set the overflow flag.
    """
    i = pos
    while i < len(text) and text[i] in C_SPACE:
        i += 1
    negative = False
    if i < len(text) and text[i] in "+-":
        negative = text[i] == "-"
        i += 1
    start = i
    while i < len(text) and text[i] in _DIGITS:
        i += 1
    if i == start:
        return 0, pos, False
    value = -int(text[start:i]) if negative else int(text[start:i])
    limit = 1 << (bits - 1)
    clamped = max(-limit, min(limit - 1, value))
    return clamped, i, clamped != value


def strtoul(text: str, pos: int = 0) -> tuple[int, int]:
    """C's strtoul() in base 10 on a 64-bit system: a minus sign negates modulo 2**64, overflow saturates."""
    i = pos
    while i < len(text) and text[i] in C_SPACE:
        i += 1
    negative = False
    if i < len(text) and text[i] in "+-":
        negative = text[i] == "-"
        i += 1
    start = i
    while i < len(text) and text[i] in _DIGITS:
        i += 1
    if i == start:
        return 0, pos
    value = int(text[start:i])
    if value >= 1 << 64:
        return (1 << 64) - 1, i
    return ((-value) & ((1 << 64) - 1) if negative else value), i


def string_integer(text: str, isplus: bool = False) -> int:
    """Exim's expanded_string_integer(): a decimal number, optional K/M/G, white space around it."""
    s = text
    if s[:1] and s[0] in C_SPACE:
        s = s.lstrip(C_SPACE)
        if not s:
            return 0  # all white space counts as zero, for compatibility with old Exims
    value, end, overflow = strtol(s)
    if end == 0:
        raise ExpansionError(f'integer expected but "{s}" found')
    if value < 0 and isplus:
        raise ExpansionError(f'non-negative integer expected but "{s}" found')
    factor = _SUFFIX.get(s[end : end + 1].lower()) if end < len(s) else None
    if factor is not None:
        if value > INT64_MAX // factor or value < INT64_MIN // factor:
            overflow = True
        else:
            value *= factor
        end += 1
    if overflow:
        raise ExpansionError(f'absolute value of integer "{s}" is too large (overflow)')
    if s[end:].strip(C_SPACE):
        raise ExpansionError(f'invalid integer "{s}"')
    return value


class _Evaluator:
    """Recursive descent over the expression; `self.i` is how far Exim's pointer has got."""

    def __init__(self, text: str, decimal: bool) -> None:
        self.s = text
        self.i = 0
        self.decimal = decimal

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.s[j] if j < len(self.s) else ""

    def skip_space(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in C_SPACE:
            self.i += 1

    def expr(self, endket: bool) -> int:
        x = self.op_or()
        if endket:
            if self.peek() != ")":
                raise ExpansionError("expecting closing parenthesis")
            self.i += 1
            self.skip_space()
        elif self.i < len(self.s):
            raise ExpansionError("expecting operator")
        return x

    def scan_number(self) -> int:
        """sscanf("%lld") or sscanf("%lli") from a digit: the value, saturated; moves self.i."""
        s, j = self.s, self.i
        if self.decimal or s[j] != "0":
            k = j
            while k < len(s) and s[k] in _DIGITS:
                k += 1
            value = int(s[j:k])
        elif s[j + 1 : j + 2] in ("x", "X"):
            # glibc consumes "0x" even when no hex digit follows, and yields 0
            k = j + 2
            while k < len(s) and s[k] in _HEX:
                k += 1
            value = int(s[j + 2 : k] or "0", 16)
        else:
            k = j + 1
            while k < len(s) and s[k] in "01234567":
                k += 1
            value = int(s[j:k], 8)
        self.i = k
        return min(value, INT64_MAX)

    def number(self) -> int:
        self.skip_space()
        ch = self.peek()
        if ch and ch in _DIGITS:
            n = self.scan_number()
            factor = _SUFFIX.get(self.peek().lower()) if self.peek() else None
            if factor is not None:
                n = wrap_int(n * factor)
                self.i += 1
            self.skip_space()
            return n
        if ch == "(":
            self.i += 1
            return self.expr(endket=True)
        raise ExpansionError("expecting number or opening parenthesis")

    def unary(self) -> int:
        self.skip_space()
        op = self.peek()
        if op and op in "+-~":
            self.i += 1
            x = self.unary()
            if op == "-":
                return wrap_int(-x)
            return wrap_int(~x) if op == "~" else x
        return self.number()

    def mult(self) -> int:
        x = self.unary()
        while (op := self.peek()) and op in "*/%":
            self.i += 1
            y = self.unary()
            if y == -1 and x == INT64_MIN and op != "*":
                x = INT64_MAX  # Exim dodges the SIGFPE of MIN / -1 this way
                continue
            if op == "*":
                x = wrap_int(x * y)
                continue
            if y == 0:
                raise ExpansionError("divide by zero" if op == "/" else "modulo by zero")
            quotient = abs(x) // abs(y)
            if (x < 0) != (y < 0):
                quotient = -quotient  # C division truncates towards zero
            x = quotient if op == "/" else x - quotient * y
        return x

    def sum(self) -> int:
        x = self.mult()
        while (op := self.peek()) and op in "+-":
            self.i += 1
            y = self.mult()
            # Exim's check looks only at x on the positive side (a typo there),
            # and at both operands on the negative side; the rest wraps.
            if x >= _HALF or (x <= -_HALF and y <= -_HALF):
                raise ExpansionError("overflow in sum" if op == "+" else "overflow in difference")
            x = wrap_int(x + y if op == "+" else x - y)
        return x

    def shift(self) -> int:
        x = self.sum()
        while (op := self.peek()) and op in "<>" and self.peek(1) == op:
            self.i += 2
            y = self.sum() & 63  # the x86-64 shift instruction uses the count modulo 64
            x = wrap_int(x << y) if op == "<" else x >> y
        return x

    def op_and(self) -> int:
        x = self.shift()
        while self.peek() == "&":
            self.i += 1
            x &= self.shift()
        return x

    def op_xor(self) -> int:
        x = self.op_and()
        while self.peek() == "^":
            self.i += 1
            x ^= self.op_and()
        return x

    def op_or(self) -> int:
        x = self.op_xor()
        while self.peek() == "|":
            self.i += 1
            x |= self.op_xor()
        return x


def evaluate(text: str, decimal: bool = False) -> int:
    """${eval:text} (decimal=False) or ${eval10:text} (decimal=True)."""
    ev = _Evaluator(text, decimal)
    try:
        return ev.expr(endket=False)
    except ExpansionError as exc:
        raise ExpansionError(
            f'error in expression evaluation: {exc.message} (after processing "{text[: ev.i]}")'
        ) from None
