"""GGUF files the user already has, found where other tools keep them; nothing is copied.

Places (each honours its tool's environment variable): LM Studio (``~/.lmstudio/models``,
``~/.cache/lm-studio/models``), llama.cpp's download cache (``LLAMA_CACHE``,
``~/.cache/llama.cpp``), the Hugging Face hub cache (``HF_HUB_CACHE``/``HF_HOME``,
``~/.cache/huggingface/hub/*/snapshots/*/…gguf``) and Ollama (``OLLAMA_MODELS``,
``~/.ollama/models``: blobs named by their manifests, kept only if they start with the GGUF
signature).

Every walk is bounded (depth, number of entries), follows no directory symlinks, and treats
a dangling or looping link, an unreadable file or a directory named ``x.gguf`` as not a
model: a scan never raises.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

GGUF_MAGIC = b"GGUF"
MAX_ENTRIES = 20_000  # directory entries visited per place
MAX_DEPTH = 6
MAX_MANIFEST_BYTES = 1 << 20
OLLAMA_MODEL_LAYER = "application/vnd.ollama.image.model"


@dataclass(frozen=True)
class FoundModel:
    name: str
    path: Path
    source: str
    size: int


def usual_places() -> list[tuple[str, Path]]:
    home = Path.home()
    env = os.environ.get
    places: list[tuple[str, Path]] = [
        ("LM Studio", home / ".lmstudio" / "models"),
        ("LM Studio", home / ".cache" / "lm-studio" / "models"),
    ]
    if env("LLAMA_CACHE"):
        places.append(("llama.cpp cache", Path(env("LLAMA_CACHE", ""))))
    elif sys.platform == "darwin":
        places.append(("llama.cpp cache", home / "Library" / "Caches" / "llama.cpp"))
    elif sys.platform == "win32" and env("LOCALAPPDATA"):
        places.append(("llama.cpp cache", Path(env("LOCALAPPDATA", "")) / "llama.cpp"))
    else:
        places.append(("llama.cpp cache", Path(env("XDG_CACHE_HOME") or home / ".cache") / "llama.cpp"))
    if env("HF_HUB_CACHE"):
        places.append(("Hugging Face cache", Path(env("HF_HUB_CACHE", ""))))
    else:
        hf_home = Path(env("HF_HOME") or Path(env("XDG_CACHE_HOME") or home / ".cache") / "huggingface")
        places.append(("Hugging Face cache", hf_home / "hub"))
    places.append(("Ollama", Path(env("OLLAMA_MODELS") or home / ".ollama" / "models")))
    return places


def find_local_models(places: list[tuple[str, Path]] | None = None) -> list[FoundModel]:
    """Every GGUF in the usual places, one row per file (a file reachable twice, e.g. via a
    Hugging Face snapshot link, is listed once)."""
    seen: set[tuple[int, int]] = set()
    out: list[FoundModel] = []
    for source, root in places if places is not None else usual_places():
        finder = _ollama if source == "Ollama" else _hf if source == "Hugging Face cache" else _walk_ggufs
        try:
            found = list(finder(root, source))
        except OSError:
            continue
        for model in found:
            st = safe_stat(model.path)
            if st is None:
                continue
            key = (st.st_dev, st.st_ino)
            if key not in seen:
                seen.add(key)
                out.append(model)
    return out


def safe_stat(path: Path) -> os.stat_result | None:
    """The stat of a regular file at ``path`` (following links), else None: missing, a
    dangling or looping link, a directory, a FIFO, no permission."""
    try:
        st = path.stat()
    except (OSError, ValueError):
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def has_gguf_magic(path: Path) -> bool:
    if safe_stat(path) is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError:
        return False
    try:
        return os.read(fd, 4) == GGUF_MAGIC
    except OSError:
        return False
    finally:
        os.close(fd)


def _walk_ggufs(root: Path, source: str) -> Iterator[FoundModel]:
    budget = [MAX_ENTRIES]
    for path in _walk(root, 0, budget):
        if path.name.lower().endswith(".gguf"):
            st = safe_stat(path)
            if st is not None and _is_first_shard(path.name):
                yield FoundModel(path.name[:-5], path, source, st.st_size)


def _walk(directory: Path, depth: int, budget: list[int]) -> Iterator[Path]:
    if depth > MAX_DEPTH:
        return
    try:
        with os.scandir(directory) as it:
            entries = []
            for entry in it:
                budget[0] -= 1
                if budget[0] < 0:
                    break
                entries.append(entry)
    except OSError:
        return
    for entry in sorted(entries, key=lambda e: e.name):
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            continue
        if is_dir:
            yield from _walk(Path(entry.path), depth + 1, budget)
        else:
            yield Path(entry.path)


def _is_first_shard(name: str) -> bool:
    # llama.cpp loads split models from their first part, "x-00001-of-00003.gguf".
    stem = name[:-5]
    if "-of-" in stem:
        head, _, total = stem.rpartition("-of-")
        part = head.rpartition("-")[2]
        if part.isdigit() and total.isdigit():
            return int(part) == 1
    return True


def _hf(root: Path, source: str) -> Iterator[FoundModel]:
    budget = [MAX_ENTRIES]
    for repo in _children(root, budget):
        if not repo.name.startswith("models--"):
            continue
        label = repo.name[len("models--"):].replace("--", "/")
        for snapshot in _children(repo / "snapshots", budget):
            for path in _walk(snapshot, 2, budget):  # repos may keep files in sub-folders
                if path.name.lower().endswith(".gguf") and _is_first_shard(path.name):
                    st = safe_stat(path)  # snapshot entries are links into blobs/
                    if st is not None:
                        yield FoundModel(f"{label}/{path.name[:-5]}", path, source, st.st_size)


def _children(directory: Path, budget: list[int]) -> list[Path]:
    out = []
    try:
        with os.scandir(directory) as it:
            for entry in it:
                budget[0] -= 1
                if budget[0] < 0:
                    break
                try:
                    if entry.is_dir(follow_symlinks=False):
                        out.append(Path(entry.path))
                except OSError:
                    continue
    except OSError:
        return []
    return sorted(out)


def _ollama(root: Path, source: str) -> Iterator[FoundModel]:
    """Blobs named by the manifests that point at them as their model layer."""
    names: dict[str, str] = {}
    manifests = root / "manifests"
    budget = [MAX_ENTRIES]
    for path in _walk(manifests, 0, budget):
        try:
            rel = path.relative_to(manifests).parts
        except ValueError:
            continue
        digest = _model_digest(path)
        if digest and len(rel) >= 2:
            # registry.ollama.ai/library/llama3.2/1b -> llama3.2:1b; other namespaces keep theirs
            model, tag = rel[-2], rel[-1]
            namespace = rel[-3] if len(rel) >= 3 and rel[-3] != "library" else ""
            names.setdefault(digest, f"{namespace + '/' if namespace else ''}{model}:{tag}")
    for digest, name in sorted(names.items(), key=lambda kv: kv[1]):
        blob = root / "blobs" / f"sha256-{digest}"
        st = safe_stat(blob)
        if st is not None and has_gguf_magic(blob):
            yield FoundModel(name, blob, source, st.st_size)


def _model_digest(path: Path) -> str | None:
    st = safe_stat(path)
    if st is None or st.st_size > MAX_MANIFEST_BYTES:
        return None
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    layers = data.get("layers") if isinstance(data, dict) else None
    if not isinstance(layers, list):
        return None
    for layer in layers:
        if isinstance(layer, dict) and layer.get("mediaType") == OLLAMA_MODEL_LAYER:
            digest = layer.get("digest")
            if isinstance(digest, str) and digest.startswith("sha256:"):
                hexpart = digest[len("sha256:"):]
                if len(hexpart) == 64 and all(c in "0123456789abcdef" for c in hexpart):
                    return hexpart
    return None


__all__ = ["FoundModel", "find_local_models", "usual_places", "safe_stat", "has_gguf_magic"]
