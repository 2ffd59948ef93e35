"""Time and memory of reading hostile packs that stay below the zip-bomb limits; print JSON.

Usage: ``python benchmarks/bench_hostile_pack.py [--cases issue12,most-bytes,...]``.
Each case is built by hand with ``zipfile`` (export would refuse it) and read with
``read_pack`` in a fresh subprocess, which reports its wall time and peak RSS. Run it
with ``PYTHONPATH`` pointing at another checkout to measure that code instead: the
script uses only ``read_pack``, which every version has.

Cases:

* ``issue12``: issue 12 item 12, 997 references of 65,535 bytes each (just under the
  64 KB floor of the ratio check), each a list of 5,000 one-line rules;
* ``most-bytes``: 256 references of 16 KB of the same shape (the 4 MB of references a
  pack may hold, but 322,000 lines, more than the 100,000-line limit);
* ``most-bytes-long-lines``: 4 MB of references again, in lines of 150 characters
  (29,000 lines): the most bytes of parsing the limits accept;
* ``most-lines``: 256 references of 387 lines each (99,328 lines), every line a
  level-1 heading, the costliest line to parse: the most lines the limits accept.
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

_LONG = "- Say hello to everyone who asks, and say it kindly, plainly and in one short sentence, " \
        "with no lists, no headings and no markup.\n"
CASES = {"issue12": (997, 65535, "- Say hello.\n"), "most-bytes": (256, 16 * 1024, "- Say hello.\n"),
         "most-bytes-long-lines": (256, 16 * 1024, _LONG), "most-lines": (256, 55 + 380 * 4, "# a\n")}  # fmt: skip


def build(path: Path, count: int, size: int, line: str) -> None:
    files = {}
    for i in range(count):
        head = f"---\ntitle: R\nslug: r{i:03d}\n---\n# Intent\nBe kind.\n# Always\n"
        body = head + line * ((size - len(head)) // len(line))
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
    # cwd is the temporary directory: with "-c", the current directory comes first on sys.path,
    # and PYTHONPATH must decide which checkout is measured.
    done = subprocess.run([sys.executable, "-c", _MEASURE, str(path)], capture_output=True, text=True, env=env,
                          cwd=path.parent, check=True)  # fmt: skip
    seconds, max_rss_kb, outcome = eval(done.stdout.strip().splitlines()[-1])  # noqa: S307 - our own repr
    return {"read_s": round(seconds, 3), "peak_rss_mb": round(max_rss_kb / 1024), "outcome": outcome}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES))
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="lantern-hostile-") as tmp:
        for name in args.cases.split(","):
            count, size, line = CASES[name]
            path = Path(tmp) / f"{name}.lantern"
            build(path, count, size, line)
            results[name] = {"references": count, "reference_bytes": size, "line": line,
                             "pack_bytes": path.stat().st_size, **measure(path)}  # fmt: skip
    print(json.dumps({"python": platform.python_version(), "machine": platform.machine(),
                      "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                      "results": results}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
