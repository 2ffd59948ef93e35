"""Export and verify a signed pack of 200 references; print the timings as JSON.

Usage: ``python benchmarks/bench_pack.py [--references 200] [--repeat 5]``. Each
reference is about 4 KB of Markdown and links to the next, so the export also
exercises link following. No model, no Qt; keys live in a temporary config dir.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path


from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lantern_studio.core.keys import KeyStore, raw_public_bytes
from lantern_studio.core.pack import export_pack, import_pack, read_pack

BODY = """
# Intent
Help the user with topic {i} carefully, and say what you do not know.

# Always
{always}
# Never
{never}
# Style
Plain words, short sentences, no lists longer than five items.

# Probes
```yaml
- prompt: Tell me about topic {i}.
  expect: [topic]
  forbid: [guarantee]
```
"""


def make_references(directory: Path, count: int) -> list[Path]:
    paths = []
    for i in range(count):
        links = f"[ref-{i + 1:03d}]" if i + 1 < count else "[]"
        always = "".join(f"- Always mention caveat {i}.{j} when topic {i} comes up.\n" for j in range(30))
        never = "".join(f"- Never promise outcome {i}.{j}. `regex: promise.{{0,20}}{j}`\n" for j in range(20))
        front = (
            f"---\ntitle: Reference {i}\nslug: ref-{i:03d}\nversion: 1.0.{i}\n"
            f"author: Bench <bench@example.org>\nstatus: reviewed\nlinks: {links}\n---\n"
        )
        path = directory / f"ref-{i:03d}.md"
        path.write_text(front + BODY.format(i=i, always=always, never=never), "utf-8")
        paths.append(path)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--references", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["LANTERN_CONFIG_DIR"] = str(root / "config")
        refs = root / "refs"
        refs.mkdir()
        paths = make_references(refs, args.references)
        key = Ed25519PrivateKey.generate()
        store = KeyStore()
        store.trust(raw_public_bytes(key), name="bench")

        export_s, verify_s, import_s = [], [], []
        outputs = []
        for n in range(args.repeat):
            out = root / f"bench-{n}.lantern"
            t0 = time.perf_counter()
            export_pack([paths[0]], out, signing_key=key)  # the other 199 come in through links
            t1 = time.perf_counter()
            pack = read_pack(out, store)
            t2 = time.perf_counter()
            import_pack(out, root / f"imported-{n}")
            t3 = time.perf_counter()
            assert pack.verdict == "trusted" and len(pack.references) == args.references
            export_s.append(t1 - t0)
            verify_s.append(t2 - t1)
            import_s.append(t3 - t2)
            outputs.append(out.read_bytes())

        result = {
            "references": args.references,
            "repeat": args.repeat,
            "input_bytes": sum(p.stat().st_size for p in paths),
            "pack_bytes": len(outputs[0]),
            "byte_identical": all(o == outputs[0] for o in outputs),
            "export_s": {"median": round(statistics.median(export_s), 4), "min": round(min(export_s), 4)},
            "verify_s": {"median": round(statistics.median(verify_s), 4), "min": round(min(verify_s), 4)},
            "import_s": {"median": round(statistics.median(import_s), 4), "min": round(min(import_s), 4)},
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
        }
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
