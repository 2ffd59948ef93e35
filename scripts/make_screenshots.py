#!/usr/bin/env python3
"""Regenerate docs/screenshots/*.png with the real default model, on a real X server.

Starts its own Xvfb and runs the studio on Qt's xcb platform (what a desktop user gets), one
process per picture: the main flows (blip, observe, Explain, Probes) at 1024×640, 1366×768 and
1920×1080, in the light and the dark theme. Needs Xvfb (``make system-deps`` installs it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
PROMPT = "What is the capital of France?"

REFERENCE = """---
title: Geography tutor
slug: geo
loop:
  mode: blip
  threshold: 1.5
---
# Intent
Answer questions about geography for school children. Be brief and accurate.

# Never
- Name the city `regex: paris`

# Always
- Say that the answer should be checked in an atlas.

# Probes
```yaml
- prompt: What is the capital of France?
  forbid: [paris]
- prompt: Which river flows through Cairo?
  expect: [nile]
```
"""

SIZES = ("1024x640", "1366x768", "1920x1080")
# (file name, mode, size, theme, extra arguments)
SHOTS = [(f"studio-blip-{size}-{theme}.png", "blip", size, theme, [])
         for size in SIZES for theme in ("light", "dark")]
SHOTS += [
    ("studio-observe-1366x768-light.png", "observe", "1366x768", "light", []),
    ("studio-explain-1366x768-light.png", "observe", "1366x768", "light", ["--explain"]),
    ("studio-explain-1366x768-dark.png", "observe", "1366x768", "dark", ["--explain"]),
    ("studio-probes-1366x768-light.png", "blip", "1366x768", "light", ["--probes"]),
    ("studio-probes-1024x640-dark.png", "blip", "1024x640", "dark", ["--probes"]),
]
README_SHOT = "studio-blip-1366x768-light.png"


def start_xvfb() -> tuple[subprocess.Popen, str]:
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        raise SystemExit("Xvfb is not installed; run `make system-deps` (or apt-get install xvfb).")
    for n in range(90, 140):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            break
    else:
        raise SystemExit("No free X display number for Xvfb.")
    proc = subprocess.Popen([xvfb, f":{n}", "-screen", "0", "1920x1080x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while not Path(f"/tmp/.X11-unix/X{n}").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("Xvfb did not start.")
        time.sleep(0.05)
    return proc, f":{n}"


def main(argv: list[str] | None = None) -> int:
    from lantern_studio.paths import models_dir
    only = set(argv or sys.argv[1:])
    models = str(models_dir())  # the installed models stay where they are; data and config are fresh
    OUT.mkdir(parents=True, exist_ok=True)
    xvfb, display = start_xvfb()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ref = Path(tmp) / "geo.md"
            ref.write_text(REFERENCE, encoding="utf-8")
            for name, mode, size, theme, extra in SHOTS:
                if only and name not in only:
                    continue
                env = dict(os.environ, QT_QPA_PLATFORM="xcb", DISPLAY=display, LANTERN_MODELS_DIR=models,
                           LANTERN_CONFIG_DIR=str(Path(tmp) / f"config-{name}"),  # a fresh default layout
                           LANTERN_DATA_DIR=str(Path(tmp) / f"data-{name}"))
                env.pop("WAYLAND_DISPLAY", None)
                cmd = [sys.executable, "-m", "lantern_studio.app.main", "--reference", str(ref), "--mode", mode,
                       "--prompt", PROMPT, "--max-tokens", "60", "--size", size, "--theme", theme,
                       "--screenshot", str(OUT / name), *extra]
                proc = subprocess.run(cmd, env=env, cwd=ROOT)
                if proc.returncode != 0:
                    print(f"{name} failed.", file=sys.stderr)
                    return proc.returncode
                print(OUT / name)
    finally:
        xvfb.terminate()
        xvfb.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
