"""Issue 12, packs: each hole found by attacking the CLI has a case here, and each class a generator.

Cases are named after the issue's items. Every case failed on the code before its fix
(docs/security.md lists what each one did); the hypothesis tests close the class with
inputs nobody wrote by hand.
"""

from __future__ import annotations

import json
import os
import random
import re
import unicodedata
import zipfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from pack_builders import Tmpfs, build_pack, build_zip, call_on_fifo, manifest_for, ref_bytes, write_ref

from lantern_studio.core.errors import PackError
from lantern_studio.core.keys import NAME_RE, KeyStore
from lantern_studio.core.pack import PackLimits, canonical_json, export_pack, import_pack, read_pack

HOSTILE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


pytestmark = pytest.mark.usefixtures("config_dir")  # keys and trust store in tmp_path



@pytest.fixture
def tmpfs(tmp_path):
    mounts = Tmpfs(tmp_path)
    yield mounts
    mounts.unmount_all()


@pytest.fixture
def refs(tmp_path) -> Path:
    d = tmp_path / "refs"
    d.mkdir()
    write_ref(d, "test-a", links=("test-b",))
    write_ref(d, "test-b")
    return d


def no_raw_controls(text: str) -> bool:
    """True if ``text`` holds no character a terminal acts on (controls, format characters such as
    bidi overrides, line and paragraph separators, surrogates), other than the line breaks."""
    return not any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in text.replace("\n", ""))


# ---------------------------------------------------------------------------
# Item 4: terminal injection through printed pack fields


def test_a_newline_in_author_cannot_forge_a_signature_line(lantern, tmp_path):
    files = {"references/test-a.md": ref_bytes("test-a")}
    evil = manifest_for(
        files,
        author="Eve\nsignature:   trusted (signer mallory, 0000000000000000)",
        description="\x1b[2A\x1b[2Kerased\u202eevil\u2028next\x9b31m",
    )
    pack = build_pack(tmp_path / "evil.lantern", files, manifest=evil)
    code, out, _ = lantern("pack", "inspect", pack)
    assert code == 0
    assert no_raw_controls(out), out
    assert [line for line in out.splitlines() if line.startswith("signature:")] == ["signature:   unsigned"]
    assert "author:      Eve\\nsignature:   trusted" in out
    assert "\\x1b[2A" in out and "\\u202e" in out and "\\u2028" in out and "\\x9b" in out


def test_json_output_escapes_c1_controls_and_bidi_overrides(lantern, tmp_path):
    files = {"references/test-a.md": ref_bytes("test-a")}
    text = "a\x9b2J\u202e\u2066b\u2029c\x85"
    pack = build_pack(tmp_path / "evil.lantern", files, manifest=manifest_for(files, description=text))
    code, out, _ = lantern("pack", "inspect", pack, "--json")
    assert code == 0 and no_raw_controls(out)
    assert json.loads(out)["description"] == text  # the same value, escaped


def test_an_error_quoting_a_file_name_prints_no_escape_sequence(lantern, tmp_path):
    name = tmp_path / "\x1b[31mred\x1b[0m\n.lantern"
    code, out, err = lantern("pack", "verify", name)
    assert code == 1 and out == ""
    assert no_raw_controls(err) and err.count("\n") == 1 and "\\x1b[31m" in err


_ANY_TEXT = st.text(max_size=60)


@HOSTILE
@given(
    name=_ANY_TEXT.filter(bool),
    version=st.none() | _ANY_TEXT,
    author=st.none() | _ANY_TEXT,
    created=st.none() | _ANY_TEXT,
    description=st.none() | _ANY_TEXT,
    title=_ANY_TEXT,
    ref_author=_ANY_TEXT,
)
def test_any_text_in_any_printed_field_prints_as_one_line(
    lantern, tmp_path, name, version, author, created, description, title, ref_author
):
    """Whatever an author writes in the manifest or the front matter, inspect prints one line per field."""
    front = yaml.safe_dump({"title": title, "slug": "test-a", "author": ref_author, "version": "1"}, allow_unicode=True)
    reference = f"---\n{front}---\n# Intent\nBe kind.\n".encode()
    files = {"references/test-a.md": reference}
    manifest = manifest_for(files, name=name, version=version, author=author, created=created, description=description)
    pack = build_pack(tmp_path / "any.lantern", files, manifest=manifest)
    try:
        read_pack(pack)
    except PackError:
        assume(False)  # e.g. a title the reference parser refuses: nothing is printed from it
    code, out, err = lantern("pack", "inspect", pack)
    assert code == 0, err
    assert no_raw_controls(out)
    loop_lines = 1
    expected = 7 + (1 if description else 0) + 1 + 1 + 1 + 1 + loop_lines  # fields, references:, 1 ref, files:, 1 file
    assert out.endswith("\n") and len(out.split("\n")) - 1 == expected, out
    lines = out.split("\n")
    assert lines[2].startswith("author:      ") and lines[6].startswith("signature:   unsigned")
    code, out, _ = lantern("pack", "inspect", pack, "--json")
    assert code == 0 and no_raw_controls(out)
    info = json.loads(out)
    assert (info["name"], info["author"], info["description"]) == (name, author, description)


# ---------------------------------------------------------------------------
# Item 5: export must not overwrite its own input


def _alias(kind: str, target: Path, tmp_path: Path) -> Path:
    if kind == "same-path":
        return target
    if kind == "dot-dot-path":
        return target.parent / ".." / target.parent.name / target.name
    if kind == "symlink":
        link = tmp_path / "link.lantern"
        link.symlink_to(target)
        return link
    if kind == "hard-link":
        link = tmp_path / "hard.lantern"
        os.link(target, link)
        return link
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["same-path", "dot-dot-path", "symlink", "hard-link"])
@pytest.mark.parametrize("which", ["entry", "linked-reference", "trace"])
def test_export_refuses_an_output_that_is_one_of_its_inputs(lantern, refs, tmp_path, kind, which):
    trace = tmp_path / "run.jsonl"
    trace.write_text('{"kind": "token"}\n', "utf-8")
    target = {"entry": refs / "test-a.md", "linked-reference": refs / "test-b.md", "trace": trace}[which]
    before = {p: p.read_bytes() for p in (refs / "test-a.md", refs / "test-b.md", trace)}
    out = _alias(kind, target, tmp_path)
    code, _, err = lantern("pack", "export", refs / "test-a.md", "-o", out, "--include-traces", trace)
    assert code == 1 and "is one of the pack's inputs" in err and err.count("\n") == 1
    assert {p: p.read_bytes() for p in before} == before


# ---------------------------------------------------------------------------
# Item 6: names are matched whole (no "$" before a final newline)


def test_an_entry_name_ending_in_a_newline_is_refused(tmp_path):
    files = {"references/test-a.md": ref_bytes("test-a"), "references/beta.md\n": ref_bytes("beta")}
    pack = build_pack(tmp_path / "nl.lantern", files)
    with pytest.raises(PackError, match="is not allowed"):
        read_pack(pack)
    with pytest.raises(PackError):
        import_pack(pack, tmp_path / "into")
    assert not (tmp_path / "into").exists()


def test_a_manifest_slug_or_digest_ending_in_a_newline_is_refused(tmp_path):
    files = {"references/test-a.md": ref_bytes("test-a")}
    with pytest.raises(PackError, match="'slug' must use only"):
        read_pack(build_pack(tmp_path / "a.lantern", files, manifest=manifest_for(files, slug="test-a\n")))
    manifest = manifest_for(files)
    manifest["files"]["references/test-a.md"] += "\n"
    with pytest.raises(PackError, match="not 64 lowercase hex digits"):
        read_pack(build_pack(tmp_path / "b.lantern", files, manifest=manifest))


def _spec_slug(s: str) -> bool:
    return 1 <= len(s) <= 100 and all(c in "abcdefghijklmnopqrstuvwxyz0123456789-" for c in s)


def _spec_trace_stem(s: str) -> bool:
    allowed = "abcdefghijklmnopqrstuvwxyz0123456789._-"
    return 1 <= len(s) <= 100 and s[0] in allowed[:36] and all(c in allowed for c in s)


def _spec_key_name(s: str) -> bool:
    alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return 1 <= len(s) <= 64 and s[0] in alnum and all(c in alnum + "._-" for c in s)


_NAME_TEXT = st.text(alphabet=st.sampled_from("az09-._Z\n\r\t /\\\x00\u2028é"), max_size=110) | st.text(max_size=20)


@settings(max_examples=400, deadline=None)
@given(s=_NAME_TEXT)
def test_every_name_pattern_accepts_exactly_its_specification(s):
    from lantern_studio.core.pack.manifest import REFERENCE_NAME_RE, SHA256_RE, SLUG_RE, TRACE_NAME_RE

    assert bool(SLUG_RE.fullmatch(s)) == _spec_slug(s)
    assert bool(REFERENCE_NAME_RE.fullmatch(f"references/{s}.md")) == _spec_slug(s)
    assert bool(TRACE_NAME_RE.fullmatch(f"traces/{s}.jsonl")) == _spec_trace_stem(s)
    assert bool(NAME_RE.fullmatch(s)) == _spec_key_name(s)
    assert bool(SHA256_RE.fullmatch(s)) == (len(s) == 64 and all(c in "0123456789abcdef" for c in s))


@HOSTILE
@given(stem=_NAME_TEXT, tail=st.sampled_from([".md", ".md\n", ".md\r\n", ".md\x00", ".md ", ".md/", ".MD"]))
@example(stem="beta", tail=".md\n")
def test_a_pack_entry_is_accepted_only_if_its_name_is_a_slug(tmp_path, stem, tail):
    files = {"references/test-a.md": ref_bytes("test-a")}
    extra_name = f"references/{stem}{tail}"
    assume(extra_name != "references/test-a.md")
    # A valid reference for the slug whenever the stem is one: only the name can be refused.
    files[extra_name] = f'---\nslug: "{stem}"\n---\n# Intent\nBe kind.\n'.encode() if _spec_slug(stem) else b"x"
    reserved = stem in ("con", "prn", "aux", "nul") or re.fullmatch(r"(com|lpt)[1-9]", stem) is not None
    acceptable = _spec_slug(stem) and tail == ".md" and not reserved
    pack = build_pack(tmp_path / "n.lantern", files)
    try:
        result = read_pack(pack)
    except PackError:
        assert not acceptable
        return
    assert acceptable and extra_name in result.references


# ---------------------------------------------------------------------------
# Item 9 (export part): a read-only directory is one sentence, and nothing is left behind


def test_export_into_a_read_only_directory_is_one_sentence(lantern, refs, tmpfs):
    mount = tmpfs.mount("ro")
    tmpfs.remount_read_only(mount)
    code, out, err = lantern("pack", "export", refs / "test-a.md", "-o", mount / "a.lantern")
    assert (code, out) == (1, "")
    assert err.startswith("lantern: The pack could not be written to ") and "Read-only file system" in err
    assert err.count("\n") == 1 and list(mount.iterdir()) == []


def test_export_onto_a_full_disk_leaves_nothing(refs, tmpfs, tmp_path):
    mount = tmpfs.mount("full", size="64k")
    trace = tmp_path / "big.jsonl"
    rng = random.Random(1)
    trace.write_text("".join(json.dumps({"kind": "x", "v": rng.randbytes(48).hex()}) + "\n" for _ in range(2000)))
    with pytest.raises(PackError, match="could not be written") as caught:
        export_pack([refs / "test-a.md"], mount / "a.lantern", trace_paths=[trace])
    assert "\n" not in str(caught.value) and list(mount.iterdir()) == []


def test_export_takes_a_pack_meta_and_keeps_the_old_keywords(refs, tmp_path):
    from lantern_studio.core.pack import PackMeta

    meta = PackMeta(name="Kind", version="2", description="d", created="2025-01-01T00:00:00Z")
    first = export_pack([refs / "test-a.md"], tmp_path / "1.lantern", meta)
    second = export_pack([refs / "test-a.md"], tmp_path / "2.lantern", name="Kind", version="2", description="d",
                         created="2025-01-01T00:00:00Z")  # fmt: skip
    assert first.read_bytes() == second.read_bytes()
    assert read_pack(first).manifest["name"] == "Kind"
    with pytest.raises(TypeError, match="colour"):
        export_pack([refs / "test-a.md"], tmp_path / "3.lantern", colour="red")


# ---------------------------------------------------------------------------
# Item 12: parsing work is bounded, not only the bytes


def test_the_issue_case_is_refused_before_any_parsing(tmp_path):
    """997 references of just under 64 KB each (below the ratio check): refused from the directory alone."""
    body = b"- Say hello.\n" * 5000
    files = {f"references/r{i:03d}.md": body for i in range(997)}
    pack = build_pack(tmp_path / "many.lantern", files, manifest=manifest_for(files, entry="references/r000.md"))
    with pytest.raises(PackError, match=r"has 997 references, more than the limit of 256"):
        read_pack(pack)


def test_reference_bytes_are_bounded_as_declared_and_as_read(tmp_path):
    big = b"---\nslug: r0\n---\n# Intent\n" + bytes(random.Random(2).choices(b"abcdefgh \n", k=1_900_000))
    files = {f"references/r{i}.md": big.replace(b"r0", f"r{i}".encode(), 1) for i in range(5)}
    pack = build_pack(tmp_path / "big.lantern", files, manifest=manifest_for(files, entry="references/r0.md", slug="r0"))
    with pytest.raises(PackError, match=r"references declare \d+ bytes in total, more than the limit of 4194304"):
        read_pack(pack)


def test_reference_lines_are_bounded_before_parsing(tmp_path, monkeypatch):
    from lantern_studio.core.pack import read as read_module

    rng = random.Random(4)  # headings, the costliest line to parse; random so that they do not compress 100:1
    files = {f"references/r{i}.md": f"---\nslug: r{i}\n---\n".encode()
             + "".join(f"# {rng.randrange(256):02x}\n" for _ in range(25_000)).encode() for i in range(5)}  # fmt: skip
    pack = build_pack(tmp_path / "lines.lantern", files, manifest=manifest_for(files, entry="references/r0.md", slug="r0"))
    parsed: list[str] = []
    monkeypatch.setattr(read_module, "parse_references", lambda refs: parsed.extend(refs) or {})
    with pytest.raises(PackError, match="more than 100000 lines in total"):
        read_pack(pack)
    assert parsed == []  # refused before any parsing began


def test_export_refuses_what_the_reader_would_refuse_for_parse_work(tmp_path):
    d = tmp_path / "refs"
    d.mkdir()
    slugs = [f"r{i:03d}" for i in range(3)]
    for i, slug in enumerate(slugs):
        write_ref(d, slug, links=tuple(slugs[i + 1 : i + 2]))
    with pytest.raises(PackError, match="at most 2 references"):
        export_pack([d / "r000.md"], tmp_path / "a.lantern", limits=PackLimits(max_references=2))


# ---------------------------------------------------------------------------
# Item 13: a full disk during import leaves nothing partial


def _big_trace_pack(tmp_path: Path) -> Path:
    rng = random.Random(3)
    trace = "".join(json.dumps({"kind": "x", "v": rng.randbytes(48).hex()}) + "\n" for _ in range(3000)).encode()
    files = {"references/test-a.md": ref_bytes("test-a"), "references/test-b.md": ref_bytes("test-b"),
             "traces/run.jsonl": trace}  # fmt: skip
    return build_pack(tmp_path / "big.lantern", files)


def test_disk_full_during_import_into_a_new_directory_leaves_nothing(tmp_path, tmpfs):
    pack = _big_trace_pack(tmp_path)
    mount = tmpfs.mount("full", size="128k")
    into = mount / "refs" / "imported"
    with pytest.raises(PackError, match="Import failed while writing into") as caught:
        import_pack(pack, into)
    assert "\n" not in str(caught.value)
    assert list(mount.iterdir()) == []  # no DIR/, no DIR/traces/, no parent, no stage


def test_disk_full_during_import_into_an_existing_directory_changes_nothing(tmp_path, tmpfs):
    pack = _big_trace_pack(tmp_path)
    mount = tmpfs.mount("full", size="128k")
    into = mount / "refs"
    into.mkdir()
    (into / "mine.md").write_text("my own work", "utf-8")
    with pytest.raises(PackError, match="Import failed while writing into"):
        import_pack(pack, into)
    assert [p.name for p in into.iterdir()] == ["mine.md"]
    assert (into / "mine.md").read_text("utf-8") == "my own work"


def test_import_into_a_read_only_directory_is_one_sentence(lantern, tmp_path, tmpfs):
    pack = _big_trace_pack(tmp_path)
    mount = tmpfs.mount("ro")
    tmpfs.remount_read_only(mount)
    code, _, err = lantern("pack", "import", pack, "--into", mount / "x")
    assert code == 1 and "Import failed while writing into" in err and err.count("\n") == 1


def test_import_over_existing_files_replaces_them_and_leaves_no_stage(refs, tmp_path):
    trace = tmp_path / "run.jsonl"
    trace.write_text('{"kind": "token"}\n', "utf-8")
    pack = export_pack([refs / "test-a.md"], tmp_path / "a.lantern", trace_paths=[trace])
    into = tmp_path / "in"
    import_pack(pack, into)
    (into / "test-a.md").write_text("old", "utf-8")
    written = import_pack(pack, into, overwrite=True)
    assert (into / "test-a.md").read_bytes() == (refs / "test-a.md").read_bytes()
    assert sorted(p.name for p in into.iterdir()) == ["test-a.md", "test-b.md", "traces"]
    assert sorted(p.relative_to(into).as_posix() for p in written) == ["test-a.md", "test-b.md", "traces/run.jsonl"]


# ---------------------------------------------------------------------------
# Decided: links at the target are never written through


def test_into_that_is_a_symlink_is_refused(refs, tmp_path):
    pack = export_pack([refs / "test-a.md"], tmp_path / "a.lantern")
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(PackError, match="is a symbolic link"):
        import_pack(pack, tmp_path / "link")
    assert list(real.iterdir()) == []


def test_a_planted_traces_symlink_is_refused(refs, tmp_path):
    trace = tmp_path / "run.jsonl"
    trace.write_text('{"kind": "token"}\n', "utf-8")
    pack = export_pack([refs / "test-a.md"], tmp_path / "a.lantern", trace_paths=[trace])
    into, elsewhere = tmp_path / "in", tmp_path / "elsewhere"
    into.mkdir()
    elsewhere.mkdir()
    (into / "traces").symlink_to(elsewhere)
    with pytest.raises(PackError, match="symbolic link, which import does not write through"):
        import_pack(pack, into, overwrite=True)
    assert list(elsewhere.iterdir()) == [] and sorted(p.name for p in into.iterdir()) == ["traces"]


def test_a_target_that_is_a_symlink_is_replaced_not_followed(refs, tmp_path):
    pack = export_pack([refs / "test-a.md"], tmp_path / "a.lantern")
    into = tmp_path / "in"
    into.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious", "utf-8")
    (into / "test-a.md").symlink_to(victim)
    with pytest.raises(PackError, match="already exists"):
        import_pack(pack, into)
    import_pack(pack, into, overwrite=True)
    assert victim.read_text("utf-8") == "precious" and not (into / "test-a.md").is_symlink()


# ---------------------------------------------------------------------------
# Decided: a pack is exactly a zip (no stub before it, nothing after it, no comment, no gaps)


@pytest.fixture
def signed_pack(refs, tmp_path) -> Path:
    store = KeyStore()
    store.generate("me")
    return export_pack([refs / "test-a.md"], tmp_path / "signed.lantern", signing_key=store.load_private("me"))


def test_our_own_packs_pass_the_layout_check(signed_pack):
    assert read_pack(signed_pack).verdict == "trusted"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: b"MZ\x90\x00 a stub that runs first\n" + d, "before its zip archive|does not start where"),
        (lambda d: d + b"trailing bytes", "data after the end of its zip archive"),
        (lambda d: d[:-2] + b"\x05\x00hello", "data after the end of its zip archive|zip comment"),
    ],
    ids=["prepended-stub", "trailing-data", "zip-comment"],
)
def test_a_signed_pack_with_extra_bytes_is_refused(signed_pack, change, message):
    signed_pack.write_bytes(change(signed_pack.read_bytes()))
    with pytest.raises(PackError, match=message):
        read_pack(signed_pack)


def test_a_gap_between_entries_is_refused(tmp_path):
    files = {"references/test-a.md": ref_bytes("test-a")}
    manifest = canonical_json(manifest_for(files))
    path = tmp_path / "gap.lantern"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("manifest.json", manifest)
        zf.fp.write(b"hidden payload no signature covers")  # type: ignore[union-attr]
        zf.start_dir = zf.fp.tell()  # type: ignore[union-attr]
        zf.writestr("references/test-a.md", files["references/test-a.md"])
    with pytest.raises(PackError, match="does not start where the previous one ends"):
        read_pack(path)


@HOSTILE
@given(prefix=st.binary(max_size=64), suffix=st.binary(max_size=64))
def test_no_bytes_around_a_valid_pack_are_ever_accepted(signed_pack, tmp_path, prefix, suffix):
    assume(prefix or suffix)
    changed = tmp_path / "changed.lantern"
    changed.write_bytes(prefix + signed_pack.read_bytes() + suffix)
    with pytest.raises(PackError):
        read_pack(changed)


def test_a_pack_that_is_a_fifo_is_refused_at_once(tmp_path):
    fifo = tmp_path / "pack.lantern"
    os.mkfifo(fifo)
    result = call_on_fifo(fifo, lambda: read_pack(fifo))
    assert isinstance(result, PackError) and "cannot be read" in str(result)


def test_build_zip_still_makes_duplicate_names(tmp_path):
    """The builders used above make what they say (a guard for the tests themselves)."""
    path = build_zip(tmp_path / "d.zip", [("a", b"1"), ("a", b"2")])
    with zipfile.ZipFile(path) as zf:
        assert [i.filename for i in zf.infolist()] == ["a", "a"]
