"""Builders of packs by hand, shared by the pack tests: each hostile zip is made here with ``zipfile``."""

from __future__ import annotations

import base64
import hashlib
import struct
import warnings
import zipfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lantern_studio.core.keys import raw_public_bytes
from lantern_studio.core.pack import canonical_json

REF = """---
title: {title}
slug: {slug}
version: 1.0.0
author: Ann <ann@example.org>
status: draft
links: [{links}]
---
# Intent
Be kind.
# Always
- Say hello.
"""


def write_ref(directory: Path, slug: str, links: tuple[str, ...] = (), filename: str | None = None) -> Path:
    path = directory / (filename or f"{slug}.md")
    path.write_text(REF.format(title=slug.replace("-", " ").title(), slug=slug, links=", ".join(links)), "utf-8")
    return path


def ref_bytes(slug: str, links: tuple[str, ...] = ()) -> bytes:
    return REF.format(title=slug.title(), slug=slug, links=", ".join(links)).encode()


def manifest_for(files: dict[str, bytes], **overrides) -> dict:
    manifest = {
        "format": "lantern-pack",
        "format_version": 1,
        "name": "Test",
        "slug": "test-a",
        "version": "1.0.0",
        "author": None,
        "created": None,
        "description": "",
        "entry": "references/test-a.md",
        "loop": {},
        "model_hint": None,
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
    }
    manifest.update(overrides)
    return manifest


def build_zip(path: Path, entries: list[tuple[str | zipfile.ZipInfo, bytes]], compression=zipfile.ZIP_DEFLATED) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names we build on purpose
        with zipfile.ZipFile(path, "w", compression) as zf:
            for name, data in entries:
                zf.writestr(name, data)
    return path


def build_pack(path: Path, files: dict[str, bytes] | None = None, *, manifest=None, key=None, extra=()) -> Path:
    """A pack made by hand: ``files`` plus a manifest for them, optionally signed, plus ``extra`` entries."""
    files = {"references/test-a.md": ref_bytes("test-a")} if files is None else files
    manifest_bytes = manifest if isinstance(manifest, bytes) else canonical_json(manifest or manifest_for(files))
    entries = [("manifest.json", manifest_bytes), *files.items(), *extra]
    if key is not None:
        entries.append(("signature.json", signature_for(key, manifest_bytes)))
    return build_zip(path, entries)


def signature_for(key: Ed25519PrivateKey, data: bytes) -> bytes:
    return canonical_json(
        {
            "algorithm": "ed25519",
            "public_key": base64.b64encode(raw_public_bytes(key)).decode(),
            "signature": base64.b64encode(key.sign(data)).decode(),
        }
    )


def patch_central_sizes(
    path: Path,
    name: str,
    *,
    file_size: int | None = None,
    compress_size: int | None = None,
    flag_bits: int | None = None,
) -> None:
    """Rewrite what one central-directory record declares (what a crafted zip does)."""
    data = bytearray(path.read_bytes())
    encoded = name.encode()
    pos = 0
    while (pos := data.find(b"PK\x01\x02", pos)) >= 0:
        name_len = struct.unpack_from("<H", data, pos + 28)[0]
        if data[pos + 46 : pos + 46 + name_len] == encoded:
            if compress_size is not None:
                struct.pack_into("<I", data, pos + 20, compress_size)
            if file_size is not None:
                struct.pack_into("<I", data, pos + 24, file_size)
            if flag_bits is not None:
                struct.pack_into("<H", data, pos + 8, flag_bits)
        pos += 4
    path.write_bytes(bytes(data))


def lantern_runner(monkeypatch, capsys):
    """``run(*argv) -> (code, stdout, stderr)`` through the real ``cli.main``, pack and keys groups only."""
    from lantern_studio import cli

    monkeypatch.setattr(cli, "COMMAND_MODULES", ("pack", "keys"))

    def run(*argv: object) -> tuple[int, str, str]:
        code = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


class Tmpfs:
    """Small tmpfs mounts (full disks, read-only directories) for tests, unmounted at teardown."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.mounted: list[Path] = []

    def mount(self, name: str, size: str = "256k", *, read_only: bool = False) -> Path:
        import subprocess

        import pytest

        point = self.base / name
        point.mkdir(parents=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                              capture_output=True, text=True, check=False)  # fmt: skip
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode})")
        self.mounted.append(point)
        return point

    def remount_read_only(self, point: Path) -> None:
        import subprocess

        subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True, capture_output=True)

    def unmount_all(self) -> None:
        import subprocess

        for point in reversed(self.mounted):
            subprocess.run(["umount", "-l", str(point)], check=False, capture_output=True)
        self.mounted.clear()


def call_on_fifo(fifo: Path, call, timeout: float = 20.0):
    """``call()`` in a thread, for code that might block opening ``fifo``: returns what it returned
    or raised; if it is still blocked after ``timeout`` seconds, opens the FIFO's write end to
    release it and fails the test (a hang is a failure, not a hung suite)."""
    import os
    import threading

    import pytest

    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        thread.join(timeout)
        pytest.fail(f"opening the FIFO {fifo} blocked for {timeout} s")
    return outcome[0]
