"""The bounded GGUF header reader: real files, hand-made headers, and hostile ones."""

from __future__ import annotations

import os
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lantern_studio.core.gguf import GGUFError, describe, model_kind, read_header


def s(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def kv_str(key: str, value: str) -> bytes:
    return s(key) + struct.pack("<I", 8) + s(value)


def kv_u32(key: str, value: int) -> bytes:
    return s(key) + struct.pack("<I", 4) + struct.pack("<I", value)


def kv_str_array(key: str, values: list[str]) -> bytes:
    return s(key) + struct.pack("<IIQ", 9, 8, len(values)) + b"".join(s(v) for v in values)


def tensor(name: str, shape: tuple[int, ...], type_id: int, offset: int = 0) -> bytes:
    return s(name) + struct.pack("<I", len(shape)) + b"".join(struct.pack("<Q", d) for d in shape) \
        + struct.pack("<IQ", type_id, offset)


def header(kvs: list[bytes], tensors: list[bytes], version: int = 3, pad: int = 64) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs)) + b"".join(kvs) + b"".join(tensors) \
        + b"\0" * pad


def sample(chat_template: bool = True, finetune: str | None = "instruct", name: str = "Tiny") -> bytes:
    kvs = [kv_str("general.architecture", "llama"), kv_str("general.type", "model"), kv_str("general.name", name)]
    if finetune:
        kvs.append(kv_str("general.finetune", finetune))
    kvs += [kv_u32("general.file_type", 3), kv_str_array("tokenizer.ggml.tokens", ["<s>", "a", "b", "ü" * 40])]
    if chat_template:
        kvs.append(kv_str("tokenizer.chat_template", "{% for m in messages %}{{ m.content }}{% endfor %}"))
    tensors = [tensor("token_embd.weight", (64, 1000), 8), tensor("blk.0.attn_q.weight", (64, 64), 3),
               tensor("blk.0.ffn_up.weight", (64, 256), 3), tensor("blk.0.attn_norm.weight", (64,), 0)]
    return header(kvs, tensors)


def write(tmp_path, data: bytes, name: str = "m.gguf"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_reads_metadata_arrays_and_tensors(tmp_path):
    head = read_header(write(tmp_path, sample()))
    assert head.version == 3
    assert head.get_str("general.architecture") == "llama"
    assert head.metadata["general.file_type"] == 3
    assert head.arrays == {"tokenizer.ggml.tokens": 4}  # arrays are counted, not kept
    assert [t.name for t in head.tensors][:2] == ["token_embd.weight", "blk.0.attn_q.weight"]
    # The embedding (Q8_0, 64,000 weights) outweighs the layers, but the layers decide.
    assert head.weight_type() == "Q4_1"
    assert head.type_counts() == {"Q8_0": 64_000, "Q4_1": 64 * 64 + 64 * 256, "F32": 64}


def test_kind_from_metadata(tmp_path):
    assert model_kind(read_header(write(tmp_path, sample())))[0] == "instruct"
    base = read_header(write(tmp_path, sample(chat_template=False, finetune=None, name="Tiny 1B")))
    assert model_kind(base) == ("base", "no chat template and no fine-tune in the metadata")
    named = read_header(write(tmp_path, sample(chat_template=False, finetune=None, name="Tiny 1B Instruct")))
    assert model_kind(named)[0] == "instruct"
    odd = read_header(write(tmp_path, sample(chat_template=False, finetune="merged-ep3")))
    assert model_kind(odd)[0] == "unknown"


def test_the_real_default_model(model_path):
    from lantern_studio.core.models import installed_path

    info = describe(read_header(installed_path("smollm2")))  # the file as pulled
    assert info["kind"] == "instruct" and info["weight_type"] == "Q4_1"
    assert info["architecture"] == "llama" and info["params"] > 100_000_000


@pytest.mark.parametrize("data, needle", [
    (b"", "signature"),
    (b"GGML" + b"\0" * 40, "signature"),
    (b"GGUF" + struct.pack("<I", 99) + b"\0" * 40, "version 99"),
    (b"GGUF" + struct.pack("<IQQ", 3, 0, 1 << 60), "implausible"),
    (b"GGUF" + struct.pack("<IQQ", 3, 1 << 50, 0), "implausible"),
    # A key of 2^62 bytes, a string value of 2^63 bytes, an array of 2^61 strings.
    (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1 << 62), "truncated"),
    (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + s("k") + struct.pack("<IQ", 8, 1 << 63), "truncated"),
    (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + s("k") + struct.pack("<IIQ", 9, 8, 1 << 61), "truncated"),
    (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + s("k") + struct.pack("<IIQ", 9, 9, 2), "unsupported"),
    (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + s("k") + struct.pack("<I", 77), "unknown type"),
    (b"GGUF" + struct.pack("<IQQ", 3, 1, 0) + s("t") + struct.pack("<I", 1000), "dimensions"),
])
def test_hostile_headers_give_one_error_quickly(tmp_path, data, needle):
    path = write(tmp_path, data + b"\0" * 16)
    t0 = time.process_time()
    with pytest.raises(GGUFError, match=needle):
        read_header(path)
    assert time.process_time() - t0 < 1.0  # a bound on work, not a benchmark: nothing was allocated


def test_a_header_larger_than_the_limit_is_refused(tmp_path):
    data = header([kv_str_array("tokenizer.ggml.tokens", ["x" * 100] * 2000)], [])
    with pytest.raises(GGUFError, match="larger than"):
        read_header(write(tmp_path, data), limit=50_000)
    assert read_header(write(tmp_path, data)).arrays["tokenizer.ggml.tokens"] == 2000


def test_strings_that_straddle_read_blocks(tmp_path, monkeypatch):
    from lantern_studio.core import gguf

    monkeypatch.setattr(gguf._Reader, "BLOCK", 7)  # every string crosses a block boundary
    head = read_header(write(tmp_path, sample()))
    assert head.arrays == {"tokenizer.ggml.tokens": 4} and head.weight_type() == "Q4_1"


def test_non_regular_files_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.gguf"
    os.mkfifo(fifo)
    with pytest.raises(GGUFError, match="regular"):
        read_header(fifo)
    zero = tmp_path / "zero.gguf"
    zero.symlink_to("/dev/zero")
    with pytest.raises(GGUFError, match="regular"):
        read_header(zero)
    (tmp_path / "dir.gguf").mkdir()
    with pytest.raises((GGUFError, IsADirectoryError)):
        read_header(tmp_path / "dir.gguf")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 2000), flips=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=6))
def test_damaged_headers_raise_only_gguf_error(tmp_path, cut, flips):
    data = bytearray(sample())
    for at, value in flips:
        if at < len(data):
            data[at] = value
    path = write(tmp_path, bytes(data[: len(data) - cut % len(data)]), "fuzz.gguf")
    try:
        head = read_header(path)
    except GGUFError as exc:
        assert str(exc).endswith(".") and "\n" not in str(exc)
    else:
        describe(head)  # whatever parsed must also describe without error


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400))
def test_random_bytes_after_the_magic(tmp_path, tail):
    path = write(tmp_path, b"GGUF" + struct.pack("<I", 3) + tail, "random.gguf")
    try:
        read_header(path)
    except GGUFError:
        pass
