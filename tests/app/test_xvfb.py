"""The studio as a desktop user sees it: a real X server (Xvfb), Qt's real xcb platform, the
window found with xdotool, a screenshot of the screen, a clean quit with Ctrl+Q."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.xvfb, pytest.mark.slow]

GRAB = ("import sys\nfrom PySide6.QtGui import QGuiApplication\napp = QGuiApplication([])\n"
        "shot = app.primaryScreen().grabWindow(0)\nimg = shot.toImage()\n"
        "colours = {img.pixel(x, y) for x in range(0, img.width(), 37) for y in range(0, img.height(), 29)}\n"
        "print(img.width(), img.height(), len(colours))\nsys.exit(0 if shot.save(sys.argv[1]) else 1)\n")


def _free_display() -> int:
    for n in range(71, 120):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            return n
    raise RuntimeError("no free X display number")


@pytest.fixture
def xserver():
    xvfb, xdotool = shutil.which("Xvfb"), shutil.which("xdotool")
    if not xvfb or not xdotool:
        if os.environ.get("LANTERN_REQUIRE_XVFB"):
            pytest.fail("Xvfb and xdotool are needed for this test (make test installs them).")
        pytest.skip("Xvfb or xdotool is not installed (apt-get install xvfb xdotool)")
    n = _free_display()
    proc = subprocess.Popen([xvfb, f":{n}", "-screen", "0", "1366x768x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while not Path(f"/tmp/.X11-unix/X{n}").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("Xvfb did not start")
        time.sleep(0.05)
    yield f":{n}"
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_the_studio_runs_on_a_real_x_display(xserver, tmp_path):
    env = dict(os.environ, DISPLAY=xserver, QT_QPA_PLATFORM="xcb",
               LANTERN_CONFIG_DIR=str(tmp_path / "config"), LANTERN_DATA_DIR=str(tmp_path / "data"))
    env.pop("WAYLAND_DISPLAY", None)
    log = (tmp_path / "studio.log").open("w+")
    script = Path(sys.executable).with_name("lantern-studio")  # what `make run` starts
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "lantern_studio.app.main"]
    studio = subprocess.Popen([*command, "--reference", str(REPO / "references" / "otc-analgesics.md")],
                              env=env, cwd=REPO,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        found = subprocess.run(["xdotool", "search", "--sync", "--onlyvisible", "--name", "Lantern Studio"],
                               env=env, capture_output=True, text=True, timeout=60)
        assert found.returncode == 0 and found.stdout.split(), _log(log)
        window = found.stdout.split()[0]
        time.sleep(1.5)  # the model loads after the window is up
        shot = tmp_path / "screen.png"
        grab = subprocess.run([sys.executable, "-c", GRAB, str(shot)], env=env, capture_output=True, text=True,
                              timeout=60)
        assert grab.returncode == 0, grab.stderr
        width, height, colours = map(int, grab.stdout.split())
        assert (width, height) == (1366, 768) and colours > 20, "the screen shows no window"
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        # No window manager on Xvfb: give the window the keyboard focus directly, then press keys
        # through XTEST as a keyboard would (Qt ignores events sent to a window with --window).
        subprocess.run(["xdotool", "windowfocus", "--sync", window], env=env, timeout=20)
        subprocess.run(["xdotool", "key", "ctrl+q"], env=env, timeout=20)
        assert studio.wait(30) == 0, _log(log)
    finally:
        if studio.poll() is None:
            studio.kill()
            studio.wait(10)
    text = _log(log)
    assert "Could not load the Qt platform plugin" not in text and "Traceback" not in text, text


def _log(fh) -> str:
    fh.flush()
    fh.seek(0)
    return fh.read()


HOVER = """
import sys
from PySide6.QtCore import QPoint, QSettings, QTimer
from PySide6.QtWidgets import QApplication, QToolTip
app = QApplication([])
from lantern_studio.app.main_window import MainWindow
w = MainWindow(QSettings(sys.argv[1], QSettings.Format.IniFormat), interactive=False)
w.resize(1000, 700)
w.show()
tab = w.add_tab("# Intent\\nx\\n\\n# Never\\n- a rather long bad detector line here `regex: (unclosed`\\n")
def report():
    e = tab.editor
    r = e.blockBoundingGeometry(e.document().findBlockByNumber(4)).translated(e.contentOffset())
    for x in (10, 150, 300):
        g = e.viewport().mapToGlobal(QPoint(x, int(r.center().y())))
        print(g.x(), g.y(), flush=True)
QTimer.singleShot(500, report)
seen = {"last": None}
def poll():
    now = (QToolTip.isVisible(), QToolTip.text())
    if now != seen["last"]:
        seen["last"] = now
        if now[0]:
            print("TIP", now[1] == tab.error, file=sys.stderr, flush=True)
timer = QTimer()
timer.timeout.connect(poll)
timer.start(100)
QTimer.singleShot(45000, app.quit)
app.exec()
"""


def test_parse_error_tooltip_shows_on_hover_without_focus(xserver, tmp_path):
    """Hovering the error line shows the message, also when the window is not the active one
    (no window manager here: the studio window never becomes active, as when a terminal or
    the Compare dialog has the focus)."""
    env = dict(os.environ, DISPLAY=xserver, QT_QPA_PLATFORM="xcb",
               LANTERN_CONFIG_DIR=str(tmp_path / "config"), LANTERN_DATA_DIR=str(tmp_path / "data"))
    env.pop("WAYLAND_DISPLAY", None)
    out, err = (tmp_path / "hover.out").open("w+"), (tmp_path / "hover.err").open("w+")
    proc = subprocess.Popen([sys.executable, "-c", HOVER, str(tmp_path / "s.ini")], env=env, cwd=REPO,
                            stdout=out, stderr=err)
    try:
        deadline = time.monotonic() + 60
        while len(Path(out.name).read_text().split()) < 6:
            assert proc.poll() is None and time.monotonic() < deadline, Path(err.name).read_text()
            time.sleep(0.2)
        points = Path(out.name).read_text().split()
        for x, y in zip(points[::2], points[1::2]):
            subprocess.run(["xdotool", "mousemove", "5", "760"], env=env, timeout=10)
            time.sleep(0.8)
            subprocess.run(["xdotool", "mousemove", x, y], env=env, timeout=10)
            time.sleep(1.6)
    finally:
        proc.kill()
        proc.wait(10)
    shown = [line for line in Path(err.name).read_text().splitlines() if line.startswith("TIP")]
    assert shown and all(line == "TIP True" for line in shown), shown
