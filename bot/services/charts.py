"""Statistics charts as PNG bytes, sized for phones, with Chinese text.

Uses ``Figure`` + ``FigureCanvasAgg`` only (never pyplot) and passes the CJK font by file path to every
text artist, so neither ``rcParams`` nor the global font manager is touched. The font is Noto Sans CJK SC
(SIL OFL 1.1) from the ``mplfonts`` wheel; its ``mplfonts init`` command is *not* needed.
Rendering is CPU-bound (~150 ms): from async code use the ``*_async`` wrappers, which run it on one
dedicated thread (matplotlib caches a ~9 MB font object per thread, so a single thread keeps memory low).
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import io
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # matplotlib is imported on first use: it costs ~25 MB a bot that never draws need not pay
    from matplotlib.axes import Axes
    from matplotlib.font_manager import FontProperties

WIDTH_PX = 1080
DPI = 150
_W = WIDTH_PX / DPI  # figure width, inches
_FONT_PACKAGE, _FONT_FILE = "mplfonts", "fonts/NotoSansCJKsc-Regular.otf"
_BAR, _LINE, _MUTED = "#3a6ea5", "#e07b39", "#6b7280"
_TITLE, _HEAD, _TEXT = 19, 16, 14  # font sizes, pt (at 150 dpi: ~40, 33, 29 px)
_ROW, _EMPTY, _TREND, _GAP = 0.5, 0.8, 2.4, 0.3  # heights, inches
_LOCK = threading.Lock()  # matplotlib is not guaranteed thread-safe; renders are short, so serialise
_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="charts")


@dataclass(frozen=True)
class Bar:
    label: str
    value: float


@dataclass(frozen=True)
class TrendPoint:
    label: str  # e.g. "W47"
    value: float


@dataclass(frozen=True)
class StatsChart:
    title: str
    groups: list[tuple[str, list[Bar]]]
    trend_title: str
    trend: list[TrendPoint]
    empty_text: str


@cache
def cjk_font_path() -> Path:
    """Path of the bundled Simplified-Chinese font (located without importing ``mplfonts``)."""
    spec = importlib.util.find_spec(_FONT_PACKAGE)
    for root in (spec.submodule_search_locations or []) if spec else []:
        if (path := Path(root) / _FONT_FILE).is_file():
            return path
    raise FileNotFoundError(f"CJK font {_FONT_FILE} not found: install the {_FONT_PACKAGE!r} package")


@cache
def _font(size: float) -> FontProperties:
    from matplotlib.font_manager import FontProperties

    return FontProperties(fname=cjk_font_path(), size=size)


@cache
def _charset() -> frozenset[int]:
    from matplotlib.ft2font import FT2Font

    return frozenset(FT2Font(str(cjk_font_path())).get_charmap())


def _label(text: str, width: int, max_lines: int = 2) -> str:
    """Font-safe text wrapped at ``width`` columns (CJK = 2), cut with "…" after ``max_lines`` lines."""
    chars = _charset()
    text = "".join(c if ord(c) in chars else "?" for c in " ".join(text.split()))
    lines, cur = [], ""
    for ch in text:
        if _cols(cur + ch) > width:
            head, space, tail = cur.rpartition(" ")
            lines.append(head if space and head else cur)
            cur = tail if space and head else ""
        cur += ch
    lines.append(cur)
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], lines[max_lines - 1][:-1].rstrip() + "…"]
    return "\n".join(line.strip() for line in lines).replace("$", r"\$")  # "\$": no mathtext


def _cols(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _num(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _plain(ax: Axes, keep: str) -> None:
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(side == keep)
    ax.tick_params(length=0, pad=8)


def _bars(ax: Axes, bars: Sequence[Bar]) -> None:
    items = sorted(bars, key=lambda b: b.value, reverse=True)
    ys, values = list(range(len(items))), [b.value for b in items]
    container = ax.barh(ys, values, height=0.64, color=_BAR)
    ax.bar_label(container, [_num(v) for v in values], padding=6, fontproperties=_font(_TEXT))
    ax.set_yticks(ys, [_label(b.label, 22) for b in items], fontproperties=_font(_TEXT))
    top, low = max(*values, 0), min(*values, 0)
    ax.set_xlim(low * 1.2, (top or 1) * 1.2)
    ax.set_ylim(len(items) - 0.5, -0.5)
    ax.xaxis.set_visible(False)
    _plain(ax, "left")


def _trend(ax: Axes, points: Sequence[TrendPoint]) -> None:
    xs, values, font = list(range(len(points))), [p.value for p in points], _font(_TEXT)
    ax.plot(xs, values, color=_LINE, linewidth=3, marker="o", markersize=9)
    ax.fill_between(xs, values, color=_LINE, alpha=0.12)
    for x, v in zip(xs, values, strict=True):
        ax.annotate(_num(v), (x, v), (0, 10), textcoords="offset points", ha="center", fontproperties=font)
    ax.set_xticks(xs, [_label(p.label, 8, 1) for p in points], fontproperties=font)
    ax.set_xlim(-0.5, len(xs) - 0.5)
    ax.set_ylim(min(*values, 0), (max(*values, 0) or 1) * 1.3)
    ax.yaxis.set_visible(False)
    _plain(ax, "bottom")


def _empty(ax: Axes, text: str) -> None:
    ax.set_axis_off()
    ax.text(0.5, 0.5, _label(text, 60), ha="center", va="center", color=_MUTED, fontproperties=_font(_TEXT))


Panel = tuple[str, Sequence[Bar] | Sequence[TrendPoint]]


def _png(title: str, panels: list[Panel], empty_text: str) -> bytes:
    with _LOCK:
        png = _render(title, panels, empty_text)
    gc.collect()  # a figure is a web of reference cycles holding a ~10 MB pixel buffer: free it now
    return png


def _render(title: str, panels: list[Panel], empty_text: str) -> bytes:
    title_text = _label(title, 46)
    layout, y = [], 0.35 + 0.45 * (title_text.count("\n") + 1)  # (title, data, axes top, height), inches
    for head, data in panels:
        is_trend = bool(data) and isinstance(data[0], TrendPoint)
        body = _EMPTY if not data else _TREND if is_trend else _ROW * len(data)
        y += 0.5 if head else 0.0
        layout.append((head, data, y, body))
        y += body + (0.45 if is_trend else 0.0) + _GAP  # trend: room for the week labels
    total = round(y * DPI) / DPI  # whole pixels
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(_W, total), dpi=DPI, facecolor="white")
    canvas = FigureCanvasAgg(fig)
    fig.text(0.04, 1 - 0.3 / total, title_text, va="top", fontproperties=_font(_TITLE))
    for head, data, top, body in layout:
        if head:
            head_text = _label(head, 56, 1)
            fig.text(0.04, 1 - (top - 0.45) / total, head_text, va="top", fontproperties=_font(_HEAD))
        bar_panel = bool(data) and isinstance(data[0], Bar)
        left = 0.4 if bar_panel else 0.06
        ax = fig.add_axes((left, 1 - (top + body) / total, 0.94 - left, body / total))
        if not data:
            _empty(ax, empty_text)
        elif bar_panel:
            _bars(ax, [d for d in data if isinstance(d, Bar)])
        else:
            _trend(ax, [d for d in data if isinstance(d, TrendPoint)])
    canvas.draw()  # type: ignore[no-untyped-call]
    from PIL import Image  # Pillow: matplotlib's own image dependency

    # A chart is a handful of flat colours and their anti-aliased edges: a 64-colour palette looks the same,
    # and the PNG is about a third of the RGBA one (quicker to upload from the bot and to load on a phone)
    # and quicker to encode. The octree stores each colour bucket's average, so the background comes out
    # 254-grey: near-white entries are set back to white. zlib level 1: a third of the default's time.
    size = canvas.get_width_height()
    rgba = Image.frombuffer("RGBA", size, canvas.buffer_rgba(), "raw", "RGBA", 0, 1)  # type: ignore[no-untyped-call]
    palette = rgba.convert("RGB").quantize(64, method=Image.Quantize.FASTOCTREE)
    colours = palette.getpalette() or []
    palette.putpalette(
        [255 if min(colours[i - i % 3 : i - i % 3 + 3]) >= 250 else c for i, c in enumerate(colours)]
    )
    buf = io.BytesIO()
    palette.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def render_stats_chart(chart: StatsChart) -> bytes:
    """Weekly statistics: one bar panel per group, then the weekly trend line. PNG, 1080 px wide."""
    panels: list[Panel] = [*chart.groups, (chart.trend_title, chart.trend)]
    return _png(chart.title, panels, chart.empty_text)


def render_bar_chart(title: str, bars: list[Bar], empty_text: str) -> bytes:
    """A single horizontal bar panel (e.g. problem categories). PNG, 1080 px wide."""
    return _png(title, [("", bars)], empty_text)


_CACHE: OrderedDict[str, bytes] = OrderedDict()  # chart content -> PNG, most recently used last
CACHE_SIZE = 32  # about 5 MB


async def render_stats_chart_async(chart: StatsChart) -> bytes:
    """``render_stats_chart`` on the charts thread; use this from handlers and jobs.

    The same figures give the same picture, so recent PNGs are kept by content: supervisors paging back
    and forth, several of them opening the same week, or the Monday digest to every supervisor of one
    language render once."""
    key = repr(chart)
    if (png := _CACHE.get(key)) is not None:
        _CACHE.move_to_end(key)
        return png
    png = await asyncio.get_running_loop().run_in_executor(_EXECUTOR, render_stats_chart, chart)
    _CACHE[key] = png
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return png


async def render_bar_chart_async(title: str, bars: list[Bar], empty_text: str) -> bytes:
    return await asyncio.get_running_loop().run_in_executor(
        _EXECUTOR, render_bar_chart, title, bars, empty_text
    )
