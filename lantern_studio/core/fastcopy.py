"""Fast copies: a GGUF requantized locally into a format this CPU's llama.cpp kernels batch.

llama.cpp 0.3.36 multiplies Q4_1, Q5_0, Q5_1 (and the K-quants other than Q4_K) one row
and column at a time on x86, so a batch of tokens costs nearly as much as the same tokens
one by one, which is what the sidecar's chunks need to be cheap. Q4_0 is repacked for
AVX2/AVX-512 and multiplied a block of rows at a time (docs/performance.md, "Model
formats", has the figures that chose it).

``make_fast_copy`` runs llama.cpp's quantizer in a child process, so that it can report
progress (from the quantizer's one log line per tensor) and be cancelled (the child is
killed and its temporary file removed), and checks the disk space first. The file appears
under its final name only when it is complete and its header reads back as the format
asked for.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from .atomic import atomic_output
from .errors import Cancelled, ModelError
from .gguf import GGML_TYPES, GGUFError, GGUFHeader, read_header

# Weight types with a batched kernel in this build on x86-64 (repacked or tinyBLAS); a
# model whose weights are mostly of another type is offered a fast copy. Measured with
# benchmarks/bench_kernels.py (docs/performance.md): a 9-token batch costs 5.2 single tokens
# on Q4_0 and 6.0 on IQ4_NL, against 8.3-8.4 on Q4_1 and Q5_1 and 6.6 on Q5_0. Q8_0 (7.5) is
# listed because a 4-bit copy of it would lose far more than it gains.
BATCHED_TYPES = frozenset({"Q4_0", "Q8_0", "IQ4_NL", "Q4_K", "F16", "F32", "BF16"})
DEFAULT_FAST_FORMAT = "Q4_0"
# Formats the fast copy can target (llama.cpp ftype names), with the tensor type it gives
# to the matrices. Not IQ4_NL, though it is repacked too: its batched and single-token
# kernels sum in different orders, so chunked scores would differ by 0.15 nats.
TARGET_TYPES = {"Q4_0": "Q4_0", "Q8_0": "Q8_0"}

Progress = Callable[[float, str], None]  # fraction done (0..1), what is happening
# Longest first, so "Q4_K_M" is stripped whole and not as "M".
_FORMAT_NAMES = sorted({n for n, _, _ in GGML_TYPES.values()}
                       | {f"{q}_{s}" for q in ("Q2_K", "Q3_K", "Q4_K", "Q5_K") for s in ("S", "M", "L")}
                       | {"IQ2_M", "IQ3_M", "IQ3_XS", "IQ1_M"}, key=len, reverse=True)
_TENSOR_LINE = re.compile(r"\[\s*(\d{1,7})/\s*(\d{1,7})\]")


def needs_fast_copy(path: str | os.PathLike[str]) -> str | None:
    """The weight type of ``path`` if it has no batched kernel here (e.g. "Q4_1"), else None
    (also None when the header cannot be read: the loader reports that)."""
    try:
        weight = read_header(path).weight_type()
    except (OSError, GGUFError):
        return None
    return weight if weight is not None and weight not in BATCHED_TYPES else None


def fast_copy_path(src: str | os.PathLike[str], ftype: str = DEFAULT_FAST_FORMAT,
                   directory: str | os.PathLike[str] | None = None) -> Path:
    """Where the fast copy of ``src`` goes: beside it (or in ``directory``), its format in
    the name in place of the old one (``x.Q4_1.gguf`` -> ``x.Q4_0.gguf``)."""
    src = Path(src)
    stem = src.name[:-5] if src.name.lower().endswith(".gguf") else src.name
    upper = stem.upper()
    for suffix in _FORMAT_NAMES:
        if len(upper) > len(suffix) + 1 and upper.endswith(suffix) and upper[-len(suffix) - 1] in "._-":
            stem = stem[: -len(suffix) - 1]
            break
    return Path(directory or src.parent) / f"{stem}.{ftype}.gguf"


def estimated_size(head: GGUFHeader, ftype: str) -> int:
    """An upper bound on the size of ``head``'s model requantized to ``ftype``: matrices at
    the target type, the embedding and output tensors at the larger of their type and
    Q8_0 (llama.cpp chooses those), vectors unchanged."""
    target = _type_id(TARGET_TYPES.get(ftype, "Q8_0"))
    q8 = _type_id("Q8_0")
    total = head.header_bytes + (1 << 20)
    for t in head.tensors:
        now = _nbytes(t.n_elements, t.type_id)
        if len([d for d in t.shape if d > 1]) < 2:
            total += now
        elif t.name.startswith(("token_embd", "output")):
            total += max(now, _nbytes(t.n_elements, q8), _nbytes(t.n_elements, target))
        else:
            total += max(_nbytes(t.n_elements, target), 0)
    return int(total * 1.02) + (4 << 20)


def check_space(directory: Path, need: int) -> None:
    free = shutil.disk_usage(directory).free
    if free < need:
        raise ModelError(
            f"Not enough free disk space in {directory} for the fast copy ({need / 1e6:.0f} MB needed, {free / 1e6:.0f} MB free).")


def make_fast_copy(src: str | os.PathLike[str], dst: str | os.PathLike[str] | None = None,
                   ftype: str = DEFAULT_FAST_FORMAT, progress: Progress | None = None,
                   cancel: Callable[[], bool] | None = None, n_threads: int = 0) -> Path:
    """Requantize ``src`` to ``ftype`` at ``dst`` (default: ``fast_copy_path(src, ftype)``);
    returns ``dst``. Raises ModelError (bad input, no space, failure) or Cancelled; on
    either nothing is left behind and an existing ``dst`` is untouched."""
    src = Path(src)
    if ftype not in TARGET_TYPES:
        raise ModelError(f"A fast copy can be {', '.join(TARGET_TYPES)}, not {ftype!r}.")
    try:
        head = read_header(src)
    except OSError as exc:
        raise ModelError(f"The model file {src} cannot be read ({exc.strerror or exc}).") from None
    except GGUFError as exc:
        raise ModelError(f"{src.name} is not a usable GGUF model: {exc}") from None
    target = Path(dst) if dst is not None else fast_copy_path(src, ftype)
    if target.resolve() == src.resolve():
        raise ModelError(f"The fast copy would overwrite its own source {src}; choose another name.")
    target.parent.mkdir(parents=True, exist_ok=True)
    check_space(target.parent, estimated_size(head, ftype))
    say = progress or (lambda _f, _m: None)
    say(0.0, f"Converting {src.name} to {ftype}…")
    with atomic_output(target) as tmp:
        _run_child(src, tmp, ftype, n_threads, say, cancel or (lambda: False))
        try:
            got = read_header(tmp).weight_type()
        except (OSError, GGUFError) as exc:
            raise ModelError(f"llama.cpp wrote an unreadable fast copy of {src.name} ({exc}).") from None
        if got != TARGET_TYPES[ftype]:
            raise ModelError(f"llama.cpp wrote {got} weights where {ftype} was asked for; the copy was discarded.")
    say(1.0, f"Wrote {target.name}.")
    return target


def child_command(src: Path, dst: Path, ftype: str, n_threads: int) -> tuple[list[str], str | None]:
    """(argv, executable) of the child that quantizes: ``lantern models _requantize``. In a
    PyInstaller bundle the executable is the studio itself, which acts as the CLI when its
    argv[0] is "lantern" (packaging/entry.py)."""
    args = ["models", "_requantize", str(src), str(dst), ftype, "--threads", str(n_threads)]
    if getattr(sys, "frozen", False):
        return ["lantern", *args], sys.executable
    return [sys.executable, "-m", "lantern_studio.cli", *args], None


def _run_child(src: Path, dst: Path, ftype: str, n_threads: int, say: Progress,
               cancel: Callable[[], bool]) -> None:
    argv, executable = child_command(src, dst, ftype, n_threads)
    env = dict(os.environ)
    if executable is None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_package_root(), env.get("PYTHONPATH")) if p)
    try:
        proc = subprocess.Popen(argv, executable=executable, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
    except OSError as exc:
        raise ModelError(f"The converter could not be started ({exc}).") from None
    lines: queue.Queue[str | None] = queue.Queue()
    errors: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    def pump_errors() -> None:  # read concurrently, so a chatty child cannot fill the pipe and stall
        assert proc.stderr is not None
        errors.extend(proc.stderr)

    readers = [threading.Thread(target=f, daemon=True) for f in (pump, pump_errors)]
    for t in readers:
        t.start()
    try:
        finished = False
        while not finished:
            if cancel():
                raise Cancelled("The fast copy was cancelled.")
            try:
                line = lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                finished = True
            elif line.startswith("progress "):
                done, total = (int(x) for x in line.split()[1:3])
                say(min(done / max(total, 1), 0.99), f"Converting tensor {done} of {total}…")
        rc = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        for t in readers:
            t.join(timeout=5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    err = "".join(errors)
    if rc != 0:
        if "No space left" in err or "ENOSPC" in err:
            raise ModelError("The disk filled up while writing the fast copy; nothing was kept.")
        said = [ln for ln in err.splitlines() if ln.startswith("lantern: ")]
        if said:  # the child's own one-sentence error
            raise ModelError(said[-1].removeprefix("lantern: ").strip())
        how = f"signal {-rc}" if rc < 0 else f"exit status {rc}"
        raise ModelError(f"The converter stopped with {how} while converting {src.name}; nothing was kept.")


def child_main(src: str, dst: str, ftype: str, n_threads: int = 0) -> int:
    """The child's side: quantize, printing ``progress i n`` per tensor on stdout."""
    from .llama_native import quantize_model

    def log(text: str) -> None:
        m = _TENSOR_LINE.match(text)
        if m:
            print(f"progress {m.group(1)} {m.group(2)}", flush=True)

    quantize_model(Path(src), Path(dst), ftype, n_threads, log)
    return 0


def _package_root() -> str:
    # A checkout run without installing (PYTHONPATH=…) must find the same package in the child.
    return str(Path(__file__).resolve().parents[2])


def _nbytes(n: int, type_id: int) -> int:
    _, block, size = GGML_TYPES.get(type_id, ("?", 1, 4))
    return -(-n // block) * size


def _type_id(name: str) -> int:
    return next(i for i, (n, _, _) in GGML_TYPES.items() if n == name)


__all__ = ["BATCHED_TYPES", "DEFAULT_FAST_FORMAT", "make_fast_copy", "needs_fast_copy", "fast_copy_path",
           "estimated_size", "child_main"]
