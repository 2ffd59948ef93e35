#!/usr/bin/env python3
"""Regenerate docs/screenshots/*.png with the real default model (offscreen when there is no display)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"

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
```
"""

SHOTS = [
    ("studio-blip.png", "blip", "What is the capital of France?", []),
    ("studio-observe.png", "observe", "What is the capital of France?", []),
    ("studio-explain.png", "observe", "What is the capital of France?", ["--explain"]),
]


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        env["QT_QPA_PLATFORM"] = "offscreen"
    with tempfile.TemporaryDirectory() as tmp:
        ref = Path(tmp) / "geo.md"
        ref.write_text(REFERENCE, encoding="utf-8")
        own_config = "LANTERN_CONFIG_DIR" not in env
        for name, mode, prompt, extra in SHOTS:
            if own_config:  # a fresh default layout per shot: the studio saves its geometry on close
                env["LANTERN_CONFIG_DIR"] = str(Path(tmp) / f"config-{name}")
            cmd = [sys.executable, "-m", "lantern_studio.app.main", "--reference", str(ref), "--mode", mode,
                   "--prompt", prompt, "--max-tokens", "60", "--screenshot", str(OUT / name), *extra]
            proc = subprocess.run(cmd, env=env, cwd=ROOT)
            if proc.returncode != 0:
                print(f"{name} failed.", file=sys.stderr)
                return proc.returncode
            print(OUT / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
