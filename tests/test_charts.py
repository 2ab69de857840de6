"""Chart rendering: valid phone-sized PNGs with real Chinese glyphs (no tofu), no global matplotlib state."""

from __future__ import annotations

import gc
import io
import itertools
import subprocess
import sys
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties, fontManager
from matplotlib.ft2font import FT2Font
from matplotlib.image import imread
from numpy.typing import NDArray

from bot.services import charts
from bot.services.charts import (
    Bar,
    StatsChart,
    TrendPoint,
    cjk_font_path,
    render_bar_chart,
    render_bar_chart_async,
    render_stats_chart,
    render_stats_chart_async,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DEJAVU = Path(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf")  # matplotlib's default: no CJK
HANZI = "按部门社区走访次数近周趋势本暂无据组织宣传统战"


@pytest.fixture(autouse=True)
def _warnings_are_errors() -> Iterator[None]:
    # "Glyph ... missing from font(s)" is a UserWarning: it must fail a test even without -W error.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


GROUPS = [
    ("按部门走访次数", [Bar("组织部", 42), Bar("宣传部", 35), Bar("区工商联", 27)]),
    ("按社区走访次数", [Bar("东湖街道幸福里社区", 23), Bar("西城社区", 31)]),
]
TREND = [TrendPoint(f"W{40 + i}", v) for i, v in enumerate([12, 18, 15, 22, 30, 26, 33, 41])]


def _chart(groups: list[tuple[str, list[Bar]]] = GROUPS, trend: list[TrendPoint] = TREND) -> StatsChart:
    return StatsChart("第47周走访统计（11-18 至 11-24）", groups, "近8周走访趋势", trend, "本周暂无数据")


def _pixels(png: bytes) -> NDArray[np.float32]:
    assert png.startswith(PNG_SIGNATURE)
    img: NDArray[np.float32] = imread(io.BytesIO(png), format="png")
    return img


def _glyph(char: str, font: Path) -> NDArray[np.uint8]:
    fig = Figure(figsize=(1, 1), dpi=100)
    FigureCanvasAgg(fig)
    fig.text(0.5, 0.5, char, ha="center", va="center", fontproperties=FontProperties(fname=font, size=40))
    png = io.BytesIO()
    fig.savefig(png, format="png")
    return (_pixels(png.getvalue())[..., 0] * 255).astype(np.uint8)


def test_font_is_noto_sans_cjk_sc_from_the_mplfonts_wheel() -> None:
    path = cjk_font_path()
    assert path.is_file() and path.parent.parent.name == "mplfonts"
    assert FT2Font(str(path)).family_name == "Noto Sans CJK SC"
    assert Path(matplotlib.get_data_path()) not in path.parents  # not copied by `mplfonts init`


def test_font_has_glyphs_for_every_character_used() -> None:
    texts = [*HANZI, *"第（）至…W0123456789,.$-"]
    cjk, dejavu = FT2Font(str(cjk_font_path())), FT2Font(str(DEJAVU))
    assert [c for c in texts if cjk.get_char_index(ord(c)) == 0] == []
    assert all(dejavu.get_char_index(ord(c)) == 0 for c in HANZI)  # control: the check can fail


def test_hanzi_render_as_distinct_glyphs_not_tofu() -> None:
    rendered = [_glyph(c, cjk_font_path()) for c in "组织部宣传"]
    assert all((g < 128).sum() > 200 for g in rendered)  # real ink
    assert len({g.tobytes() for g in rendered}) == len(rendered)  # five different shapes
    # Control: without a CJK font every character becomes the same box, with a warning.
    with pytest.warns(UserWarning, match="missing from font"):
        tofu = [_glyph(c, DEJAVU) for c in "组织部宣传"]
    assert len({g.tobytes() for g in tofu}) == 1


def test_chinese_labels_change_the_chart_pixels() -> None:
    # With tofu, two different labels of the same length would produce identical images.
    a = _pixels(render_bar_chart("问题类别", [Bar("组织部", 3)], "暂无"))
    b = _pixels(render_bar_chart("问题类别", [Bar("宣传部", 3)], "暂无"))
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_stats_chart_is_a_phone_sized_png() -> None:
    img = _pixels(render_stats_chart(_chart()))
    height, width, channels = img.shape
    assert (width, channels) == (charts.WIDTH_PX, 4) == (1080, 4)
    assert 1000 < height < 2500
    assert img[..., :3].min() < 0.3 and img[0, 0, :3].tolist() == [1.0, 1.0, 1.0]  # ink on white


def test_height_grows_by_one_row_per_bar_and_stays_within_telegram_limits() -> None:
    long_name = "区非公有制经济组织和社会组织党工委综合办公室第{}联络站"
    small = _pixels(render_bar_chart("问题类别", [Bar(long_name.format(i), i) for i in range(3)], "暂无"))
    big = _pixels(render_bar_chart("问题类别", [Bar(long_name.format(i), i) for i in range(30)], "暂无"))
    assert big.shape[1] == small.shape[1] == 1080
    assert big.shape[0] - small.shape[0] == 27 * round(charts._ROW * charts.DPI)
    assert big.shape[0] + big.shape[1] <= 10_000 and big.shape[0] / big.shape[1] <= 20  # sendPhoto limits


def test_bars_are_sorted_largest_first() -> None:
    img = _pixels(render_bar_chart("", [Bar("小", 1), Bar("大", 10), Bar("中", 5)], ""))
    blue = np.all(np.abs(img[..., :3] - np.array([0x3A, 0x6E, 0xA5]) / 255) < 0.02, axis=2)
    widths = [int(w) for w in blue.sum(axis=1) if w]  # one run of rows per bar, top to bottom
    runs = [widths[0]] + [w for prev, w in itertools.pairwise(widths) if abs(w - prev) > 5]
    assert len(runs) == 3 and runs == sorted(runs, reverse=True)


def test_long_labels_are_wrapped_and_truncated() -> None:
    label = charts._label("区非公有制经济组织和社会组织党工委综合办公室第三联络服务站", 22)
    lines = label.split("\n")
    assert len(lines) == 2 and lines[-1].endswith("…")
    assert charts._label("Riverside Community Center", 22) == "Riverside Community\nCenter"
    assert charts._label("a $b$ 😀", 22) == r"a \$b\$ ?"  # no mathtext, no missing-glyph warning


def test_empty_data_shows_the_empty_text() -> None:
    empty = _chart(groups=[("按部门走访次数", [])], trend=[])
    img = _pixels(render_stats_chart(empty))
    blank = _pixels(render_stats_chart(StatsChart(empty.title, empty.groups, empty.trend_title, [], "")))
    assert img.shape == blank.shape and not np.array_equal(img, blank)
    assert _pixels(render_bar_chart("问题类别", [], "暂无数据")).shape[1] == 1080
    assert _pixels(render_stats_chart(_chart(groups=[]))).shape[1] == 1080


def test_thirty_long_chinese_bars_render() -> None:
    bars = [Bar(f"第{i}号非公有制企业党建联络服务工作站（高新技术产业开发区）", i * 1.5) for i in range(30)]
    img = _pixels(render_stats_chart(_chart(groups=[("按社区走访次数", bars)])))
    assert img.shape[1] == 1080 and img.shape[0] > 30 * round(charts._ROW * charts.DPI)


def test_no_pyplot_and_no_global_matplotlib_state() -> None:
    rc_before, fonts_before = dict(matplotlib.rcParams), len(fontManager.ttflist)
    render_stats_chart(_chart())
    assert dict(matplotlib.rcParams) == rc_before and len(fontManager.ttflist) == fonts_before
    code = "import sys; import bot.services.charts as c; c.render_bar_chart('类', [c.Bar('组', 1)], '无'); "
    code += "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'"
    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-W", "error", "-c", code]
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_concurrent_renders_are_identical_to_a_serial_one() -> None:
    chart = _chart()
    reference = render_stats_chart(chart)
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert all(png == reference for png in pool.map(render_stats_chart, [chart] * 4))


def test_memory_is_flat_over_repeated_renders() -> None:
    chart = _chart()
    render_stats_chart(chart)
    gc.collect()
    before = len(gc.get_objects())
    for _ in range(5):
        render_stats_chart(chart)
    assert len(gc.get_objects()) - before < 100  # each figure (thousands of objects) is freed


async def test_async_wrappers_render_off_the_event_loop() -> None:
    assert (await render_stats_chart_async(_chart())).startswith(PNG_SIGNATURE)
    assert (await render_bar_chart_async("问题类别", [Bar("融资难", 2)], "暂无")).startswith(PNG_SIGNATURE)


async def test_the_same_figures_render_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[StatsChart] = []
    real = charts.render_stats_chart

    def counting(chart: StatsChart) -> bytes:
        calls.append(chart)
        return real(chart)

    monkeypatch.setattr(charts, "render_stats_chart", counting)
    monkeypatch.setattr(charts, "_CACHE", OrderedDict())
    first = await charts.render_stats_chart_async(_chart())
    assert await charts.render_stats_chart_async(_chart()) == first and len(calls) == 1
    other = StatsChart("另一周", [], "趋势", [], "无")
    assert await charts.render_stats_chart_async(other) != first and len(calls) == 2
    for n in range(charts.CACHE_SIZE):
        await charts.render_stats_chart_async(StatsChart(f"第{n}周", [], "趋势", [], "无"))
    await charts.render_stats_chart_async(_chart())
    assert len(calls) == 3 + charts.CACHE_SIZE  # the oldest were evicted
