"""Every number in a request, with its span and its readings.

People write numbers in many ways: "200", "1.2k", "5×10^-4", "2^7", "1/100", "40%",
"half", "two dozen", "five thousandths", 千分之五, 零点三, 一百五十, "2 的 5 次方", "-3".
`find_numbers` finds each one as a `Number` (its span in the text, the text as typed, its
value, its sign kept: "-3" is never 3). `normalise` rewrites the text with every number as
plain decimal digits, keeping a map back to the typed spans, so the keyword patterns of
`agent.mentions` ("200 epochs", "lr 0.01") read numbers in any format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.mentions import parse_number

_ZH_DIGIT = "零〇一二两三四五六七八九"
_ZH_VALUE = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5,
             "六": 6, "七": 7, "八": 8, "九": 9}  # fmt: skip
_ZH_UNIT = {"十": 10, "百": 100, "千": 1000, "万": 10_000}
_ZH_INT = rf"[{_ZH_DIGIT}十百千万]+"

_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000,
}  # fmt: skip
_WORD = "|".join(sorted(_WORDS, key=len, reverse=True))
_WORD_RUN = (
    rf"(?:(?:a|an)[\s-]+(?:hundred|thousand)|(?:{_WORD}))(?:[\s-]+(?:and[\s-]+)?(?:{_WORD}))*"
)
_FRACTIONS = {"half": 2, "halves": 2, "third": 3, "thirds": 3, "quarter": 4, "quarters": 4,
              "tenth": 10, "tenths": 10, "hundredth": 100, "hundredths": 100,
              "thousandth": 1000, "thousandths": 1000}  # fmt: skip
_FRACTION = "|".join(sorted(_FRACTIONS, key=len, reverse=True))

_DEC = r"\d+(?:\.\d+)?|\.\d+"
_SIGN = r"(?:(?<![\w.\-])[-−–](?=\s?\d))?"  # "-3", "lr -0.01"; never the dash of "3-layer"

# (pattern, how to read it); tried in this order at each position, longest first.
_FORMS: list[tuple[str, str]] = [
    (rf"(?P<m>{_DEC})\s*[×xX*]\s*10\s*(?:\^|\*\*)\s*(?P<e>[-−]?\d+)", "sci"),
    (r"(?P<b>\d+)\s*(?:\^|\*\*)\s*(?P<e>[-−]?\d+)", "pow"),
    (r"(?P<b>\d+)\s*的\s*(?P<e>\d+|[一二两三四五六七八九十]+)\s*次方", "pow"),
    (rf"(?P<m>{_DEC})[eE](?P<e>[-+−]?\d+)", "exp"),
    (r"(?P<a>\d+)\s*/\s*(?P<b>\d+)(?![\d/])", "frac"),
    (rf"(?P<v>{_DEC})\s*(?P<k>[kKmM])(?![A-Za-z])", "suffix"),
    (r"(?P<v>\d{1,3}(?:,\d{3})+)(?![\d.])", "comma"),
    (rf"(?P<v>{_DEC})\s*(?:%|percent\b|per\s*cent\b)", "pct"),
    (rf"(?P<v>{_DEC})", "dec"),
    (r"百分之(?P<z>" + _ZH_INT + r"(?:点[" + _ZH_DIGIT + r"]+)?|\d+(?:\.\d+)?)", "zh_pct"),
    (r"千分之(?P<z>" + _ZH_INT + r"|\d+)", "zh_permille"),
    (r"万分之(?P<z>" + _ZH_INT + r"|\d+)", "zh_per10k"),
    (r"(?P<z>[" + _ZH_DIGIT + r"十]+)分之(?P<z2>" + _ZH_INT + r")", "zh_frac"),
    (r"(?<![上下这那每第同单唯统])(?P<z>" + _ZH_INT + r")点(?P<d>[" + _ZH_DIGIT + r"]+)", "zh_dec"),
    (r"(?<![上下这那每第同单唯统万千百])(?P<z>" + _ZH_INT + r")(?![点分])", "zh_int"),
    (rf"(?<![A-Za-z])(?P<w>(?:{_WORD_RUN}|a|an|one|half\s+a))[\s-]+dozens?(?![A-Za-z])", "dozen"),
    (r"(?<![A-Za-z])(?P<w>two|three|four|five)\s+dozen(?![A-Za-z])", "dozen"),
    (r"(?<![A-Za-z])dozens?(?![A-Za-z])", "one_dozen"),
    (rf"(?<![A-Za-z])(?P<w>{_WORD_RUN}|a|an|one)[\s-]+(?P<f>{_FRACTION})(?![A-Za-z])", "wfrac"),
    (r"(?<![A-Za-z])half(?![A-Za-z])", "half"),
    (rf"(?<![A-Za-z])(?P<w>{_WORD_RUN})(?![A-Za-z])", "words"),
]
_COMPILED = [
    (re.compile(_SIGN + r"(?P<body>" + p + ")", re.IGNORECASE), kind) for p, kind in _FORMS
]


def zh_int(text: str) -> int | None:
    """一百五十 -> 150, 三百 -> 300, 两千 -> 2000, 十五 -> 15, 二五 -> 25 (digit by digit)."""
    if not text:
        return None
    if all(ch in _ZH_VALUE for ch in text):
        return int("".join(str(_ZH_VALUE[ch]) for ch in text))
    total, section, digit = 0, 0, None
    for ch in text:
        if ch in _ZH_VALUE:
            digit = _ZH_VALUE[ch]
        elif ch in _ZH_UNIT:
            unit = _ZH_UNIT[ch]
            if unit == 10_000:
                total += (section + (digit or 0)) * unit
                section, digit = 0, None
            else:
                section += (1 if digit is None else digit) * unit
                digit = None
        else:
            return None
    return total + section + (digit or 0)


def _zh_or_int(text: str) -> float | None:
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    if "点" in text:
        whole, _, frac = text.partition("点")
        w = zh_int(whole)
        digits = "".join(str(_ZH_VALUE[c]) for c in frac if c in _ZH_VALUE)
        return None if w is None else float(f"{w}.{digits}")
    value = zh_int(text)
    return None if value is None else float(value)


def _words(text: str) -> float | None:
    text = re.sub(r"^(?:a|an)[\s-]+", "one ", text.strip().lower())
    if text in ("a", "an", "one"):
        return 1.0
    if text == "half a":
        return 0.5
    value = parse_number(text)
    return None if value is None else float(value)


def _tidy(value: float) -> int | float:
    """An integer when the value is one (200.0 -> 200), else the float rounded to 12 digits."""
    if value == int(value) and abs(value) < 1e15:
        return int(value)
    return float(f"{value:.12g}")


def _read(kind: str, m: re.Match[str]) -> float | None:
    g = m.groupdict()
    try:
        if kind == "sci":
            return float(g["m"]) * 10.0 ** int(g["e"].replace("−", "-"))
        if kind == "pow":
            exponent = g["e"]
            e = int(exponent) if exponent.lstrip("-−").isdigit() else zh_int(exponent)
            e = -int(exponent[1:]) if exponent[:1] in "-−" else e
            if e is None or abs(e) > 400:
                return None
            return float(int(g["b"])) ** e
        if kind == "exp":
            return float(f"{g['m']}e{g['e'].replace('−', '-')}")
        if kind == "frac":
            return int(g["a"]) / int(g["b"]) if int(g["b"]) else None
        if kind == "suffix":
            return float(g["v"]) * (1000 if g["k"].lower() == "k" else 1_000_000)
        if kind == "comma":
            return float(g["v"].replace(",", ""))
        if kind == "pct":
            return float(g["v"]) / 100
        if kind == "dec":
            return float(g["v"])
        if kind in ("zh_pct", "zh_permille", "zh_per10k"):
            value = _zh_or_int(g["z"])
            scale = {"zh_pct": 100, "zh_permille": 1000, "zh_per10k": 10_000}[kind]
            return None if value is None else value / scale
        if kind == "zh_frac":
            den, num = zh_int(g["z"]), zh_int(g["z2"])
            return None if not den or num is None else num / den
        if kind == "zh_dec":
            return _zh_or_int(f"{g['z']}点{g['d']}")
        if kind == "zh_int":
            value = zh_int(g["z"])
            return None if value is None else float(value)
        if kind == "dozen":
            w = _words(g["w"])
            return None if w is None else w * 12
        if kind == "one_dozen":
            return 12.0
        if kind == "wfrac":
            w = _words(g["w"])
            return None if w is None else w / _FRACTIONS[g["f"].lower()]
        if kind == "half":
            return 0.5
        if kind == "words":
            return _words(g["w"])
    except (ValueError, OverflowError, ZeroDivisionError):
        return None
    return None


@dataclass(frozen=True)
class Number:
    """One number of the request.

    Attributes:
        start, end: its span in the text (sign included).
        text: as typed ("-3", "1.2k", 千分之三).
        value: what it reads as, sign kept (an int when whole).
        kind: the format it was written in ("dec", "pow", "zh_int", "words", ...).
    """

    start: int
    end: int
    text: str
    value: int | float
    kind: str

    @property
    def whole(self) -> bool:
        return isinstance(self.value, int)

    @property
    def spelled(self) -> bool:
        """Written in words ("five", 一百), not digits: "a GCN" is no number of anything."""
        return self.kind in ("words", "zh_int") and not re.search(r"\d", self.text)


def find_numbers(text: str) -> list[Number]:
    """Every number in `text`, left to right, each span read once (the longest form wins)."""
    out: list[Number] = []
    position = 0
    while position < len(text):
        best: tuple[int, int, re.Match[str], str] | None = None
        for pattern, kind in _COMPILED:
            match = pattern.search(text, position)
            if match is None:
                continue
            key = (match.start(), -(match.end() - match.start()))
            if best is None or key < (best[0], -(best[1] - best[0])):
                best = (match.start(), match.end(), match, kind)
        if best is None:
            break
        start, end, match, kind = best
        value = _read(kind, match)
        if value is not None:
            typed = match.group(0)
            sign = -1 if typed[:1] in "-−–" else 1
            if sign < 0:
                value = -value
            if _is_part_of_word(text, start, end, kind):
                value = None
        if value is not None:
            out.append(Number(start, end, match.group(0), _tidy(value), kind))
        position = max(end, start + 1)
    return out


def _is_part_of_word(text: str, start: int, end: int, kind: str) -> bool:
    """ "GATv2", "ogbn-arxiv2", "c01", "e5": a digit glued to letters is part of a name."""
    if kind not in ("dec", "exp", "suffix"):
        return False
    before = text[start - 1] if start else ""
    after = text[end] if end < len(text) else ""
    return bool(re.match(r"[A-Za-z_]", before)) or bool(
        re.match(r"[A-Za-z_]", after) and kind == "dec"
    )


@dataclass(frozen=True)
class Normalised:
    """The text with every number as plain digits, and where each one came from."""

    text: str
    numbers: list[tuple[int, int, Number]]  # (start, end) in `text`, the number

    def number_at(self, start: int, end: int) -> Number | None:
        """The number whose normalised span holds [start, end)."""
        for s, e, number in self.numbers:
            if s <= start and end <= e:
                return number
        return None


def plain(value: int | float) -> str:
    """200 -> "200", 0.0005 -> "0.0005", -3 -> "-3", 1e12 -> "1000000000000"."""
    if isinstance(value, int):
        return str(value)
    return format(value, "f").rstrip("0").rstrip(".") if abs(value) >= 1e-9 else repr(value)


def normalise(text: str, numbers: list[Number] | None = None) -> Normalised:
    numbers = find_numbers(text) if numbers is None else numbers
    pieces, spans, at, length = [], [], 0, 0
    for number in numbers:
        pieces.append(text[at : number.start])
        length += number.start - at
        digits = plain(abs(number.value))  # the sign stays with the Number, not the keyword
        # a spelled number glued to CJK/latin words gets spaces so patterns see a token
        digits = f" {digits} " if number.kind.startswith("zh") or number.spelled else digits
        spans.append((length + (digits.startswith(" ")), length + len(digits.rstrip()), number))
        pieces.append(digits)
        length += len(digits)
        at = number.end
    pieces.append(text[at:])
    return Normalised("".join(pieces), spans)
