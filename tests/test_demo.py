"""`make demo`: the terminal demo starts on a freshly seeded district, answers a scripted session as a
newcomer would type it, saves the chart, and exits cleanly."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60

# A visit from start to confirm as the liaison (the seeded first enterprise has an open problem, so the
# follow-up checkpoint comes first), then the supervisor's weekly statistics with the chart.
SESSION = [
    "/as liaison",
    "/visit",
    "1",  # the first enterprise
    "2",  # checkpoint: Continue ›
    "1",  # topic: policy explanation
    "3",  # topic: collecting problems
    "6",  # Done ›
    "走访了企业，<b>了解</b>用工情况 & 诉求。",  # notes, with HTML-like text that must be shown as typed
    "/location",
    "/photo",
    "1",  # photos: Done ›
    "5",  # party organisation: no change ›
    "1",  # ✔ Confirm
    "/as supervisor",
    "/stats",
    "/quit",
]


def run_demo(out: Path, lines: list[str], *, fresh: bool) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "demo", *(["--fresh"] if fresh else []), "--out", str(out)],
        input="".join(f"{line}\n" for line in lines),
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        cwd=out.parent,  # nothing of the developer's (.env, demo/out) is read or written
        timeout=TIMEOUT,  # subprocess.run kills the demo if it hangs
    )


def assert_clean_exit(result: subprocess.CompletedProcess[str]) -> None:
    transcript = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, transcript
    assert result.stdout.rstrip().endswith("bye"), transcript
    assert "Traceback" not in result.stdout + result.stderr, transcript
    assert "the bot logged an error" not in result.stdout, transcript
    assert result.stderr == "", transcript


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_scripted_session_logs_a_visit_and_saves_the_chart(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_demo(out, SESSION, fresh=True)
    assert_clean_exit(result)
    text = result.stdout

    # Every input is echoed after the persona's prompt, so the transcript reads like a chat.
    assert "liaison> /visit" in text and "supervisor> /stats" in text
    assert "--- you are now 王督导, the supervisor ---" in text
    # Buttons are numbered, edits are marked, and the bot's HTML is not shown as tags.
    assert "   [1] " in text and "🤖 (edited) " in text
    assert "变压器容量不足" in text  # the checkpoint showed the enterprise's open problem
    assert "走访记录：走访了企业，<b>了解</b>用工情况 & 诉求。" in text  # the user's text, as typed
    assert all("了解" in line for line in text.splitlines() if "<b>" in line or "</" in line)
    assert "&amp;" not in text and "&lt;" not in text

    saved = re.search(r"走访已保存，编号 (V-\d{4}-\d{4})", text)
    assert saved, text
    assert "统计：" in text and "走访：" in text

    charts = sorted(out.glob("photo-supervisor-*.png"))
    assert len(charts) == 1, sorted(p.name for p in out.iterdir())
    assert f"[photo saved to {charts[0].relative_to(tmp_path)}]" in text
    width, height = png_size(charts[0])
    assert width >= 600 and height >= 400
    assert (out / "demo.db").exists() and (out / "demo.log").exists()


def test_an_unfinished_visit_goes_on_in_the_next_run(tmp_path: Path) -> None:
    """The demo database keeps the conversation; the next run (without --fresh) can continue it."""
    out = tmp_path / "out"
    first = run_demo(out, ["/visit", "1"], fresh=True)  # input simply ends: also a clean exit
    assert_clean_exit(first)
    assert "变压器容量不足" in first.stdout

    second = run_demo(out, ["/visit", "1", "/quit"], fresh=False)
    assert_clean_exit(second)
    assert "您有一项未完成的走访记录" in second.stdout
    resumed = second.stdout.split("liaison> 1", 1)[1]
    assert "🤖 (edited) 🏢" in resumed and "变压器容量不足" in resumed, second.stdout
