"""Time and memory of reading hostile packs that stay below the zip-bomb limits; print JSON.

Usage: ``python benchmarks/bench_hostile_pack.py [--cases issue12,largest-accepted]``.
Each case is built by hand with ``zipfile`` (export would refuse it) and read with
``read_pack`` in a fresh subprocess, which reports its wall time and peak RSS. Run it
with ``PYTHONPATH`` pointing at another checkout to measure that code instead: the
script uses only ``read_pack``, which every version has.

Cases:

* ``issue12``: issue 12 item 12, 997 references of 65,535 bytes each (just under the
  64 KB floor of the ratio check), each a list of 5,000 one-line rules;
* ``largest-accepted``: the most parsing the limits allow, 256 references of 32 KB
  (8 MB of references in all) of the same shape.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

_MEASURE = """
import resource, sys, time
from lantern_studio.core.errors import PackError
from lantern_studio.core.pack import read_pack
start = time.perf_counter()
try:
    outcome = read_pack(sys.argv[1]).verdict
except PackError as exc:
    outcome = "refused: " + str(exc)
seconds = time.perf_counter() - start
print(repr((seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, outcome)))
"""

CASES = {"issue12": (997, 65535), "largest-accepted": (256, 32 * 1024)}


def build(path: Path, count: int, size: int) -> None:
    files = {}
    for i in range(count):
        head = f"---\ntitle: R\nslug: r{i:03d}\n---\n# Intent\nBe kind.\n# Always\n"
        body = head + "- Say hello.\n" * ((size - len(head)) // 13)
        files[f"references/r{i:03d}.md"] = (body + "x" * (size - len(body))).encode()
    manifest = {
        "format": "lantern-pack", "format_version": 1, "name": "Hostile", "slug": "r000", "version": None,
        "author": None, "created": None, "description": "", "entry": "references/r000.md", "loop": {},
        "model_hint": None, "files": {k: hashlib.sha256(v).hexdigest() for k, v in files.items()},
    }  # fmt: skip
    data = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", data)
        for name in sorted(files):
            zf.writestr(name, files[name])


def measure(path: Path) -> dict[str, object]:
    env = dict(os.environ, LANTERN_CONFIG_DIR=str(path.parent / "config"))
    done = subprocess.run([sys.executable, "-c", _MEASURE, str(path)], capture_output=True, text=True, env=env,
                          check=True)  # fmt: skip
    seconds, max_rss_kb, outcome = eval(done.stdout.strip().splitlines()[-1])  # noqa: S307 - our own repr
    return {"read_s": round(seconds, 3), "peak_rss_mb": round(max_rss_kb / 1024), "outcome": outcome}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES))
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="lantern-hostile-") as tmp:
        for name in args.cases.split(","):
            count, size = CASES[name]
            path = Path(tmp) / f"{name}.lantern"
            build(path, count, size)
            results[name] = {"references": count, "reference_bytes": size, "pack_bytes": path.stat().st_size,
                             **measure(path)}  # fmt: skip
    print(json.dumps({"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
                      "results": results}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
