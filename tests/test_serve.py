"""`lantern serve` as a user runs it (a child process on 127.0.0.1), used through the official
`openai` Python client and plain HTTP: answers with the pack's loop, streaming, concurrency,
disconnects, a full queue, API keys, limits and the refusals at start."""

from __future__ import annotations

import json
import threading
import time

import httpx
import openai
import pytest

from helpers import PIRATE
from lantern_studio.core.keys import KeyStore, raw_public_bytes
from lantern_studio.core.pack import export_pack
from servers import LanternServe

pytestmark = pytest.mark.model

KEY = "test-secret-key"
ASK = [{"role": "system", "content": "You are terse."},
       {"role": "user", "content": "Hello."},
       {"role": "assistant", "content": "Hi."},
       {"role": "user", "content": "What is the capital of France?"}]
# Long enough that a run of 200 tokens is still going when a client leaves.
STORY = [{"role": "user", "content": "Write a long story about a lighthouse keeper and a storm."}]


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    """Keys and trust store of these tests, never the user's (the child processes inherit it)."""
    path = tmp_path_factory.mktemp("config")
    mp = pytest.MonkeyPatch()
    mp.setenv("LANTERN_CONFIG_DIR", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="module")
def pack(tmp_path_factory, config, model_path):
    d = tmp_path_factory.mktemp("pack")
    ref = d / "pirate.md"
    ref.write_text(PIRATE.replace("slug: pirate\n", "slug: pirate\nloop:\n  mode: observe\n"), encoding="utf-8")
    return export_pack([ref], d / "pirate.lantern", model_hint={"family": "smollm2", "name": "SmolLM2-135M-Instruct"})


@pytest.fixture(scope="module")
def served(pack, model_path):
    server = LanternServe(pack, "--model", str(model_path), "--workers", "2", "--queue", "4",
                          "--api-key", KEY, "--max-tokens-limit", "200").start()
    yield server
    server.stop()


@pytest.fixture
def client(served):
    return openai.OpenAI(base_url=served.url + "/v1", api_key=KEY, max_retries=0, timeout=120)


def test_models_lists_the_pack(client):
    models = client.models.list().data
    assert [m.id for m in models] == ["pirate"]
    extra = models[0].model_extra["lantern"]
    assert extra["verdict"] == "unsigned" and extra["mode"] == "observe" and "smollm2" in extra["terrain"].lower()


def test_a_chat_completion_carries_the_loop_figures(client):
    r = client.chat.completions.create(model="pirate", messages=ASK, max_tokens=24)
    text = r.choices[0].message.content
    assert text and r.choices[0].finish_reason in ("stop", "length")
    lantern = r.model_extra["lantern"]
    assert lantern["mode"] == "observe" and lantern["ignored_messages"] == 3
    tokens = lantern["tokens"]
    assert "".join(t["text"] for t in tokens if not t["rewound"]) == text
    assert len(tokens) == r.usage.completion_tokens and r.usage.prompt_tokens > 5
    assert all(t["error"] == pytest.approx(t["logp_plant"] - t["logp_ref"], abs=1e-5) for t in tokens)
    assert lantern["stats"]["stop_reason"] in ("end_of_turn", "max_tokens")


def test_streaming_gives_the_same_answer_as_waiting(client):
    whole = client.chat.completions.create(model="pirate", messages=ASK, max_tokens=24)
    parts, events = [], []
    for c in client.chat.completions.create(model="pirate", messages=ASK, max_tokens=24, stream=True):
        if c.choices and c.choices[0].delta.content:
            parts.append(c.choices[0].delta.content)
        events.append(c.model_extra.get("lantern") or {})
    assert "".join(parts) == whole.choices[0].message.content
    streamed = [t for e in events for t in e.get("tokens", [])]
    assert [t["token_id"] for t in streamed] == [t["token_id"] for t in whole.model_extra["lantern"]["tokens"]]
    assert events[-1]["stats"]["tokens"] == len(streamed)


def test_blip_mode_streams_the_final_text_and_the_loop_events(client):
    chunks = list(client.chat.completions.create(
        model="pirate", messages=[{"role": "user", "content": "Where is the Eiffel Tower?"}], max_tokens=60,
        stream=True, extra_body={"lantern": {"mode": "blip"}}))
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(texts) <= 1  # the answer comes once it is final: a rewind cannot take back sent text
    lantern = [c.model_extra.get("lantern") or {} for c in chunks]
    tokens = [t for e in lantern for t in e.get("tokens", [])]
    final = lantern[-1]
    assert final["stats"]["mode"] == "blip"
    by_index = {t["index"]: t["text"] for t in tokens}
    assert "".join(by_index[i] for i in final["answer_indices"]) == (texts[0] if texts else "")


def test_several_clients_at_once(client):
    answers, errors = [], []

    def ask():
        try:
            r = client.chat.completions.create(model="pirate", messages=ASK, max_tokens=16)
            answers.append(r.choices[0].message.content)
        except Exception as exc:  # collected: the assertion below names it
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and len(answers) == 5
    assert len(set(answers)) == 1  # greedy: every worker answers alike


def test_a_client_that_leaves_mid_stream_cancels_its_run(served):
    before = served.health()["cancelled"]
    body = {"model": "pirate", "messages": STORY, "max_tokens": 200, "stream": True}
    with httpx.stream("POST", served.url + "/v1/chat/completions", json=body, timeout=60,
                      headers={"Authorization": f"Bearer {KEY}"}) as resp:
        assert resp.status_code == 200
        seen = 0
        for line in resp.iter_lines():
            if line.startswith("data: {"):
                seen += 1
            if seen >= 3:
                break  # leaving the block closes the connection
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        h = served.health()
        if h["cancelled"] > before and h["busy"] == 0:
            break
        time.sleep(0.1)
    assert h["cancelled"] == before + 1 and h["busy"] == 0


def test_a_waiting_client_that_gives_up_cancels_its_run(served):
    before = served.health()["cancelled"]
    body = {"model": "pirate", "messages": STORY, "max_tokens": 200}
    with pytest.raises(httpx.ReadTimeout):  # the client gives up and closes the connection
        httpx.post(served.url + "/v1/chat/completions", json=body, timeout=1.0,
                   headers={"Authorization": f"Bearer {KEY}"})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        h = served.health()
        if h["cancelled"] > before and h["busy"] == 0:
            break
        time.sleep(0.1)
    assert h["cancelled"] == before + 1 and h["busy"] == 0


def test_a_bad_or_missing_api_key_is_refused(served):
    bad = openai.OpenAI(base_url=served.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="pirate", messages=ASK, max_tokens=5)
    r = httpx.post(served.url + "/v1/chat/completions", json={"model": "pirate", "messages": ASK})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(served.url + "/health").status_code == 200  # health needs no key


def test_limits_are_enforced_with_clear_errors(client, served):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="pirate", messages=ASK, max_tokens=5000)
    assert "max_tokens" in str(info.value)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=ASK, max_tokens=5)
    huge = {"model": "pirate", "messages": [{"role": "user", "content": "x" * 400_000}]}
    r = httpx.post(served.url + "/v1/chat/completions", content=json.dumps(huge),
                   headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    assert r.status_code == 413
    r = httpx.post(served.url + "/v1/chat/completions", content=b"{not json",
                   headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["message"].endswith(".")


def test_a_full_queue_answers_503_with_retry_after(pack, model_path):
    server = LanternServe(pack, "--model", str(model_path), "--workers", "1", "--queue", "1").start()
    try:
        body = {"model": "pirate", "messages": STORY, "max_tokens": 150, "stream": True}
        with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=60) as running:
            next(line for line in running.iter_lines() if line.startswith("data: {"))  # worker busy
            waiting = threading.Thread(target=lambda: httpx.post(
                server.url + "/v1/chat/completions", json={**body, "stream": False, "max_tokens": 5}, timeout=120))
            waiting.start()
            deadline = time.monotonic() + 10
            while server.health()["queued"] < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            r = httpx.post(server.url + "/v1/chat/completions", json={**body, "stream": False}, timeout=30)
            assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1
            assert r.json()["error"]["code"] == "server_busy"
            with pytest.raises(openai.APIStatusError) as info:
                openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0).chat.completions.create(
                    model="pirate", messages=ASK, max_tokens=5)
            assert info.value.status_code == 503
        waiting.join(120)
        assert server.health()["rejected"] == 2
    finally:
        server.stop()


def test_an_invalid_pack_is_refused_at_start(tmp_path, model_path):
    bad = tmp_path / "bad.lantern"
    bad.write_bytes(b"PK\x03\x04 this is no zip")
    status, err = LanternServe(bad, "--model", str(model_path)).run_to_exit()
    assert status == 1 and err.startswith("lantern: ") and "zip" in err and len(err.strip().splitlines()) == 1


def test_require_trusted_refuses_an_unknown_signer_and_serves_a_trusted_one(tmp_path, config, model_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    ref = tmp_path / "pirate.md"
    ref.write_text(PIRATE, encoding="utf-8")
    key = Ed25519PrivateKey.generate()
    signed = export_pack([ref], tmp_path / "signed.lantern", signing_key=key)
    status, err = LanternServe(signed, "--model", str(model_path), "--require-trusted").run_to_exit()
    assert status == 1 and "trust store" in err
    unsigned = export_pack([ref], tmp_path / "unsigned.lantern")
    status, err = LanternServe(unsigned, "--model", str(model_path), "--require-trusted").run_to_exit()
    assert status == 1 and "unsigned" in err
    KeyStore().trust(raw_public_bytes(key.public_key()), "tester")
    server = LanternServe(signed, "--model", str(model_path), "--require-trusted").start()
    try:
        assert httpx.get(server.url + "/v1/models").json()["data"][0]["lantern"]["verdict"] == "trusted"
    finally:
        server.stop()


def test_a_pack_for_another_model_is_refused(tmp_path, model_path):
    ref = tmp_path / "pirate.md"
    ref.write_text(PIRATE, encoding="utf-8")
    other = export_pack([ref], tmp_path / "other.lantern", model_hint={"family": "gemma", "name": "gemma-3-270m"})
    status, err = LanternServe(other, "--model", str(model_path)).run_to_exit()
    assert status == 1 and "gemma-3-270m" in err


def test_chat_requests_are_read_strictly():
    from helpers import one_sentence
    from lantern_studio.core.settings import LoopSettings
    from lantern_studio.server.chat import RequestError, parse_chat_request

    loop = LoopSettings(mode="observe")

    def parse(**body):
        return parse_chat_request({"model": "pirate", **body}, "pirate", loop, 100, 50, 1000)

    req = parse(messages=[{"role": "system", "content": "ignored"},
                          {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                          {"role": "assistant", "content": "x"}], seed=7, temperature=0.5)
    assert req.prompt == "a\nb" and req.ignored_messages == 2 and req.sampling.max_tokens == 50
    assert req.sampling.seed == 7 and req.sampling.temperature == 0.5 and req.loop.mode == "observe"
    assert parse(messages=[{"role": "user", "content": "q"}], lantern={"mode": "blip"}).loop.mode == "blip"
    for body, needle, status in [
        ({"messages": []}, "messages", 400),
        ({"messages": [{"role": "system", "content": "s"}]}, "no user message", 400),
        ({"messages": [{"role": "user", "content": "q"}], "n": 2}, "one choice", 400),
        ({"messages": [{"role": "user", "content": "q"}], "max_tokens": 101}, "max_tokens", 400),
        ({"messages": [{"role": "user", "content": "q"}], "max_tokens": True}, "max_tokens", 400),
        ({"messages": [{"role": "user", "content": "q"}], "temperature": 9}, "temperature", 400),
        ({"messages": [{"role": "user", "content": "q" * 1001}]}, "1000 characters", 413),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "not text", 400),
        ({"messages": [{"role": "user", "content": "q"}], "lantern": {"mode": "fly"}}, "mode", 400),
        ({"messages": [{"role": "user", "content": "q"}], "stream": "yes"}, "stream", 400),
    ]:
        with pytest.raises(RequestError) as info:
            parse(**body)
        one_sentence(info.value, needle)
        assert info.value.status == status
    with pytest.raises(RequestError) as info:
        parse_chat_request({"model": "gpt-4o", "messages": [{"role": "user", "content": "q"}]}, "pirate", loop,
                           100, 50, 1000)
    assert info.value.status == 404 and info.value.code == "model_not_found"
