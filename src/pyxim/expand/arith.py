"""Integer expressions for ${eval} and ${eval10}, with Exim's precedence and messages.

Precedence, loosest first: | ^ & << >> + - * / % unary(+ - ~); parentheses;
numbers may carry K, M or G. ${eval} reads 0x… as hex and 0… as octal;
${eval10} reads every number as decimal. Arithmetic is 64-bit signed.
"""

from __future__ import annotations

from pyxim.errors import ExpansionError

_MAX = (1 << 63) - 1
_MIN = -(1 << 63)


def _wrap(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value & (1 << 63) else value


class _Parser:
    def __init__(self, text: str, decimal: bool) -> None:
        self.s = text
        self.i = 0
        self.decimal = decimal

    def ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i].isspace():
            self.i += 1

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def expr(self, endket: bool) -> int:
        x = self.op_or()
        if endket:
            if self.peek() != ")":
                raise ExpansionError("expecting closing parenthesis")
            self.i += 1
            self.ws()
        elif self.i < len(self.s):
            raise ExpansionError("expecting operator")
        return x

    def number(self) -> int:
        self.ws()
        ch = self.peek()
        if ch.isdigit():
            j = self.i
            if not self.decimal and self.s.startswith(("0x", "0X"), j):
                k = j + 2
                while k < len(self.s) and self.s[k] in "0123456789abcdefABCDEF":
                    k += 1
                n = int(self.s[j + 2 : k] or "0", 16)
            elif not self.decimal and ch == "0":
                k = j + 1
                while k < len(self.s) and self.s[k] in "01234567":
                    k += 1
                n = int(self.s[j:k], 8)
            else:
                k = j
                while k < len(self.s) and self.s[k].isdigit():
                    k += 1
                n = int(self.s[j:k])
            self.i = k
            suffix = self.peek().lower()
            if suffix in ("k", "m", "g"):
                n *= {"k": 1024, "m": 1024 * 1024, "g": 1024 * 1024 * 1024}[suffix]
                self.i += 1
            self.ws()
            return _wrap(n)
        if ch == "(":
            self.i += 1
            return self.expr(endket=True)
        raise ExpansionError("expecting number or opening parenthesis")

    def unary(self) -> int:
        self.ws()
        ch = self.peek()
        if ch in ("+", "-", "~"):
            self.i += 1
            x = self.unary()
            return _wrap(-x) if ch == "-" else _wrap(~x) if ch == "~" else x
        return self.number()

    def mult(self) -> int:
        x = self.unary()
        while self.peek() in ("*", "/", "%") and self.peek():
            op = self.peek()
            self.i += 1
            y = self.unary()
            if op == "*":
                x = _wrap(x * y)
                continue
            if y == -1 and x == _MIN:
                x = _MAX
                continue
            if y == 0:
                raise ExpansionError("divide by zero" if op == "/" else "modulo by zero")
            q = abs(x) // abs(y)
            q = q if (x >= 0) == (y >= 0) else -q  # C truncates towards zero
            x = q if op == "/" else x - q * y
        return x

    def sum(self) -> int:
        x = self.mult()
        while self.peek() in ("+", "-") and self.peek():
            op = self.peek()
            self.i += 1
            y = self.mult()
            if x >= _MAX // 2 or (x <= -(_MAX // 2) and y <= -(_MAX // 2)):
                raise ExpansionError("overflow in sum" if op == "+" else "overflow in difference")
            x = _wrap(x + y if op == "+" else x - y)
        return x

    def shift(self) -> int:
        x = self.sum()
        while self.peek() in ("<", ">") and self.s[self.i : self.i + 2] in ("<<", ">>"):
            op = self.peek()
            self.i += 2
            y = self.sum()
            x = _wrap(x << y) if op == "<" else x >> y
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
    parser = _Parser(text, decimal)
    try:
        return parser.expr(endket=False)
    except ExpansionError as exc:
        raise ExpansionError(
            f'error in expression evaluation: {exc.message} (after processing "{text[: parser.i]}")'
        ) from None
