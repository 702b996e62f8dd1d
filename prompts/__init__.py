"""Every template the project renders, and the one Jinja2 environment that renders them.

Prompts (`planner_*`), explanations (`explain_<kind>.<lang>.j2`), reports (`report.*.j2`)
and the export script (`export_script.py.j2`) are files here, loaded with
`importlib.resources` and rendered by `environment()`: `StrictUndefined` (a missing value is
an error, never an empty string), blocks trimmed, HTML escaped in templates whose name says
`.html`, and the filters below, the only place numbers become text.

Filters: `num` (4 decimals), `pct` (a [0, 1] metric as percent), `p` (a p-value), `sec`
(seconds), `val` (a stored value), `py` (a Python literal, for generated code), `cell` (a
Markdown table cell, HTML escaped), `span` (a per-seed range), `pts` (percentage points),
`md` (Markdown text, HTML escaped).
"""

from __future__ import annotations

import math
from functools import cache
from importlib import resources
from typing import Any

import jinja2


def fmt_num(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def fmt_pct(value: float | None) -> str:
    """0.8123 -> '81.23' (a metric in [0, 1] as percent)."""
    return "n/a" if value is None else f"{100 * value:.2f}"


def fmt_p(value: float | None) -> str:
    """A p-value: 3 significant digits, scientific below 0.001."""
    if value is None:
        return "n/a"
    return f"{value:.2e}" if value < 1e-3 else f"{value:.3f}"


def fmt_value(value: Any) -> str:
    """A stored value as text: floats to 4 significant digits, the rest as is."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def fmt_seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def py_literal(value: Any) -> str:
    """`value` as a Python literal for generated code: None, bools, finite numbers, strings,
    and lists/dicts of them. Anything else is refused, so no stored value becomes code.

    Raises:
        ValueError: a value that has no safe literal (an object, inf, nan).
    """
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} has no Python literal")
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(py_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{py_literal(k)}: {py_literal(v)}" for k, v in value.items())
        return "{" + items + "}"
    raise ValueError(f"a {type(value).__name__} has no Python literal")


SPAN_WORDS = {"en": ("{0} to {1}", "n/a"), "zh": ("{0} 至 {1}", "无")}


def fmt_span(values: list[Any] | None, language: str = "en") -> str:
    """`[120]` -> '120'; `[23, 187]` -> '23 to 187', in Chinese '23 至 187' (a range over
    seeds, `agent.facts.span`)."""
    pattern, none = SPAN_WORDS.get(language, SPAN_WORDS["en"])
    if not values:
        return none
    return str(values[0]) if len(values) == 1 else pattern.format(values[0], values[-1])


def fmt_points(value: float | None) -> str:
    """A difference in percentage points, one decimal: 21.43 -> '21.4'."""
    return "n/a" if value is None else f"{value:.1f}"


def escape_markdown_html(value: Any) -> str:
    """Text for a Markdown page: `<`, `>` and `&` escaped, so stored text never becomes HTML."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def markdown_cell(value: Any) -> str:
    return escape_markdown_html(value).replace("|", "\\|").replace("\n", "<br>")


def read(name: str) -> str:
    """The text of template `name`."""
    return (resources.files("prompts") / name).read_text(encoding="utf-8")


@cache
def environment() -> jinja2.Environment:
    """The one environment every template is rendered with."""
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(read),
        undefined=jinja2.StrictUndefined,
        autoescape=lambda name: name is not None and ".html" in name,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        num=fmt_num,
        pct=fmt_pct,
        p=fmt_p,
        sec=fmt_seconds,
        val=fmt_value,
        py=py_literal,
        cell=markdown_cell,
        span=fmt_span,
        pts=fmt_points,
        md=escape_markdown_html,
    )
    return env


def render(name: str, /, **values: Any) -> str:
    """Render `prompts/<name>` with `values` (a missing value raises)."""
    return environment().get_template(name).render(**values)
