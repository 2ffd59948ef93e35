"""Remote terrain: the engine against a real llama-server on 127.0.0.1 (started by the suite),
compared with the local engine on the same model, and every failure mode of a server."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import one_sentence
from lantern_studio.core.backend import SIDECAR
from lantern_studio.core.engine import Engine
from lantern_studio.core.errors import ContextOverflow, LanternError
from lantern_studio.core.events import Done, Failed, TokenEvent, Transcript
from lantern_studio.core.remote import (RemoteSettings, ServerAuthError, ServerDisconnected, ServerHTTPError,
                                        ServerModelMismatch, ServerProtocolError, ServerTimeout, ServerUnavailable,
                                        check_model, connect)
from lantern_studio.core.remote.llama_server import _parse_completion
from lantern_studio.core.remote.openai_compat import parse_top_logprobs
from lantern_studio.core.remote.rows import fill_logprob, is_filled, row_from_top
from lantern_studio.core.scoring import log_softmax
from lantern_studio.core.settings import LoopSettings, SamplingSettings
from servers import FaultyProxy, LlamaServer, free_port, llama_server  # noqa: F401 (fixture)

PROMPT = "What is the capital of France?"
GREEDY = SamplingSettings(max_tokens=40)
# llama-server and the local engine run the same model on two builds of llama.cpp; over the
# parity runs of benchmarks/bench_remote.py the largest difference of a returned log p was
# 0.0002 nats (docs/remote.md). Five times that leaves room for another prompt.
LOGP_TOLERANCE = 1e-3


def run(engine, reference, mode, sampling=GREEDY, **loop):
    return Transcript().extend(engine.run(PROMPT, reference, LoopSettings(mode=mode, **loop), sampling))


@pytest.fixture(scope="module")
def remote(llama_server):
    eng = Engine(connect(llama_server.url, RemoteSettings(), slots=range(0, 4)))
    yield eng
    eng.close()


# -- rows from top-k: pure functions, fuzzed ------------------------------------------------
@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=-30, max_value=0), min_size=1, max_size=40, unique=True),
       st.integers(min_value=50, max_value=500))
def test_a_filled_row_keeps_the_top_k_and_marks_the_rest(logprobs, n_vocab):
    total = math.fsum(math.exp(x) for x in logprobs)
    logprobs = [x - math.log(total) if total > 1 else x for x in logprobs]  # a valid distribution
    ids = list(range(3, 3 + len(logprobs)))
    row = row_from_top(ids, logprobs, n_vocab)
    assert row.dtype == np.float32 and row.shape == (n_vocab,)
    assert np.allclose(row[ids], logprobs, atol=1e-5)
    fill = fill_logprob(logprobs, n_vocab)
    assert fill < min(logprobs)
    for shifted in (row, log_softmax(row), row + 3.5):
        assert not any(is_filled(shifted, t) for t in ids)
        assert is_filled(shifted, 0) and is_filled(shifted, n_vocab - 1)
    mass = float(np.exp(row.astype(np.float64)).sum())
    tail_mean = (1 - math.fsum(math.exp(x) for x in logprobs)) / (n_vocab - len(ids))
    if tail_mean < math.exp(min(logprobs) - 0.02):  # a true top-k: the tail is spread exactly
        assert math.isclose(mass, 1.0, rel_tol=1e-3, abs_tol=1e-6)
    else:  # not a top-k (the tail outweighs it): the fill is capped below it, never above
        assert mass <= 1.0 + 1e-3


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                     max_leaves=20)


@settings(max_examples=150, deadline=None)
@given(st.one_of(_json, st.fixed_dictionaries({"completion_probabilities": st.lists(
    st.fixed_dictionaries({"id": _json, "top_logprobs": st.lists(st.fixed_dictionaries(
        {"id": st.integers(-3, 60), "logprob": _json}), max_size=4)}), max_size=2)})))
def test_a_malformed_server_answer_is_one_clear_error(answer):
    try:
        ids, lps, _, _ = _parse_completion(answer, 50, "http://x")
    except ServerProtocolError as exc:
        one_sentence(exc)
    else:
        assert ids and all(0 <= i < 50 for i in ids) and all(lp <= 0 for lp in lps)
    try:
        ids, lps = parse_top_logprobs(answer, 50, "http://x")
    except ServerProtocolError as exc:
        one_sentence(exc)
    else:
        assert all(0 <= i < 50 for i in ids)


# -- the vocabulary and the prompt side are the local engine's ------------------------------------
@pytest.mark.model
def test_the_server_reports_the_same_model_and_vocabulary(engine, remote, llama_server):
    lb, rb = engine.backend, remote.backend
    assert rb.n_vocab == lb.n_vocab
    assert rb.pieces() == lb.pieces()
    local_end = {t for t in range(lb.n_vocab) if lb.is_end(t)}
    remote_end = {t for t in range(rb.n_vocab) if rb.is_end(t)}
    # <|im_end|> and <|endoftext|>; the older llama.cpp inside llama-cpp-python also ends on
    # the FIM token <reponame>, which newer builds (llama-server's) no longer do.
    assert remote_end == {0, 2} and remote_end <= local_end
    assert rb.bos_tokens() == lb.bos_tokens()
    assert rb.chat_template() == lb.chat_template()
    assert remote.conversation("Be brief.", PROMPT) == engine.conversation("Be brief.", PROMPT)
    assert rb.tokenize("naïve café <|im_end|>", special=True) == lb.tokenize("naïve café <|im_end|>", special=True)
    assert rb.model_sha256() == lb.model_sha256()  # the server's file is readable here
    assert "SmolLM2" in rb.model_name and llama_server.ctx // llama_server.slots <= rb.n_ctx < llama_server.ctx // 2 and rb.n_seq == 4


@pytest.mark.model
def test_n_probs_are_the_model_distribution_before_sampling(engine, remote):
    """llama-server's n_probs (post_sampling_probs off) equal the local log-softmax of the
    logits: no temperature, no top-k or top-p applied."""
    prompt = engine.conversation("", PROMPT)
    local = log_softmax(engine.backend.forward([engine.prefill(0, prompt)])[0][-1])
    row = remote.backend.forward([remote.prefill(0, prompt)])[0][-1]
    top = np.argsort(local)[::-1][:20]
    assert np.abs(row[top] - local[top]).max() <= LOGP_TOLERANCE
    assert not any(remote.backend.is_estimate(row, int(t)) for t in top)
    assert remote.backend.is_estimate(row, int(np.argsort(local)[0]))
    # A hot temperature and a top-k sampler change nothing: the values come before sampling.
    import httpx
    hot = httpx.post(remote.backend.url + "/completion", timeout=60, json={
        "prompt": prompt, "n_predict": 1, "n_probs": 20, "temperature": 1.7, "top_k": 3, "cache_prompt": True,
        "id_slot": 0}).json()["completion_probabilities"][0]["top_logprobs"]
    assert [e["id"] for e in hot] == [int(t) for t in top]
    assert max(abs(e["logprob"] - float(local[e["id"]])) for e in hot) <= LOGP_TOLERANCE


@pytest.mark.model
@pytest.mark.parametrize("mode", ["none", "observe"])
def test_greedy_runs_match_the_local_engine(engine, remote, conflict_reference, mode):
    local = run(engine, conflict_reference, mode)
    served = run(remote, conflict_reference, mode)
    assert served.failed is None and served.done.stats["stop_reason"] == local.done.stats["stop_reason"]
    assert [t.token_id for t in served.tokens] == [t.token_id for t in local.tokens]
    assert served.answer == local.answer and len(served.tokens) > 5
    b = remote.backend
    plant = [abs(s.logp_plant - t.logp_plant) for s, t in zip(served.tokens, local.tokens)]
    assert max(plant) <= LOGP_TOLERANCE  # greedy tokens are always in the plant's top-k
    if mode == "observe":
        start = served.done.stats["sidecar_prompt_tokens"] - 1  # the row there predicts token 0
        returned = [b.in_top_k(SIDECAR, start + i, s.token_id) for i, s in enumerate(served.tokens)]
        exact = [(s, t) for s, t, r in zip(served.tokens, local.tokens, returned) if r]
        filled = [(s, t) for s, t, r in zip(served.tokens, local.tokens, returned) if r is False]
        assert None not in returned and exact
        assert max(abs(s.logp_ref - t.logp_ref) for s, t in exact) <= LOGP_TOLERANCE
        assert max(abs(s.error - t.error) for s, t in exact) <= 2 * LOGP_TOLERANCE
        for s, t in filled:  # outside the top-k the fill stands below every returned value
            assert s.logp_ref < min(lp for _, lp in s.top_ref)
        assert b.requests > len(served.tokens)  # the sidecar's chunks cost a request per token


@pytest.mark.model
def test_blip_and_guide_run_over_the_server(remote, conflict_reference):
    for mode in ("blip", "guide"):
        tr = run(remote, conflict_reference, mode, SamplingSettings(max_tokens=30))
        assert tr.failed is None, tr.failed
        assert tr.done.stats["mode"] == mode and tr.tokens
        assert all(t.logp_ref is not None for t in tr.answer_tokens)


@pytest.mark.model
def test_attribution_over_a_server_is_refused_in_one_sentence(remote, conflict_reference):
    from lantern_studio.core.attribution import attribute

    with pytest.raises(LanternError) as info:
        attribute(remote, conflict_reference, PROMPT, "Arr, matey! The capital is a port.")
    one_sentence(info.value, "local model")


@pytest.mark.model
def test_a_pack_naming_another_model_is_refused(remote):
    check_model(remote.backend, {"name": "SmolLM2-135M-Instruct", "family": "smollm2"})
    with pytest.raises(ServerModelMismatch) as info:
        check_model(remote.backend, {"name": "gemma-3-270m"})
    one_sentence(info.value, "gemma-3-270m")
    with pytest.raises(ServerModelMismatch):
        check_model(remote.backend, {"sha256": "0" * 64})
    # A trace's model header: the sha256 decides when both sides know it, whatever the name.
    check_model(remote.backend, {"name": "renamed.gguf", "sha256": remote.backend.model_sha256()}, "the trace")


# -- failure modes ------------------------------------------------------------------------------
def test_a_closed_port_is_one_sentence():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ServerUnavailable) as info:
        Engine.load(url)
    one_sentence(info.value, url)


@pytest.fixture
def proxy(llama_server):
    p = FaultyProxy(llama_server.url).start()
    yield p
    p.stop()


@pytest.fixture
def proxied(proxy):
    eng = Engine(connect(proxy.url, RemoteSettings(timeout_s=3.0), slots=range(4, 6)))
    yield eng
    eng.close()


@pytest.mark.model
@pytest.mark.parametrize("mode, error, needle", [
    ("error500", ServerHTTPError, "HTTP 500"),
    ("error401", ServerAuthError, "API key"),
    ("garbage", ServerProtocolError, "not JSON"),
    ("drop", ServerDisconnected, "closed the connection"),
    ("slow", ServerTimeout, "3 s"),
    ("rename", ServerModelMismatch, "another-model.gguf"),
])
def test_a_failing_server_ends_the_run_with_one_sentence(proxy, proxied, mode, error, needle):
    good = Transcript().extend(proxied.run(PROMPT, None, LoopSettings(mode="none"), SamplingSettings(max_tokens=8)))
    assert good.failed is None and len(good.tokens) > 3
    proxy.mode = mode
    with pytest.raises(error) as info:
        proxied.backend.forward([proxied.prefill(0, proxied.conversation("", PROMPT))])
    one_sentence(info.value, needle)
    tr = Transcript().extend(proxied.run(PROMPT, None, LoopSettings(mode="none"), SamplingSettings(max_tokens=8)))
    assert tr.failed is not None and tr.failed.message == str(info.value) and tr.done is None
    proxy.mode = "pass"  # the same engine works again once the server does
    again = Transcript().extend(proxied.run(PROMPT, None, LoopSettings(mode="none"), SamplingSettings(max_tokens=8)))
    assert again.failed is None and again.answer == good.answer


@pytest.mark.model
def test_stop_works_at_once_while_the_server_stalls(proxy, llama_server):
    eng = Engine(connect(proxy.url, RemoteSettings(timeout_s=60.0), slots=range(4, 6)))
    try:
        events: list = []
        proxy.mode, proxy.delay = "slow", 30.0
        worker = threading.Thread(target=lambda: events.extend(
            eng.run(PROMPT, None, LoopSettings(mode="none"), SamplingSettings(max_tokens=20))))
        worker.start()
        deadline = time.monotonic() + 10
        while proxy.completions == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # the request is in flight, the proxy is sitting on it
        t0 = time.perf_counter()
        eng.cancel()
        worker.join(5)
        stopped_in = time.perf_counter() - t0
        assert not worker.is_alive() and stopped_in < 1.0
        assert isinstance(events[-1], Done) and events[-1].stats["stop_reason"] == "cancelled"
        proxy.mode = "pass"
        tr = Transcript().extend(eng.run(PROMPT, None, LoopSettings(mode="none"), SamplingSettings(max_tokens=5)))
        assert tr.failed is None and len(tr.tokens) == 5
    finally:
        eng.close()


@pytest.mark.model
def test_a_server_that_stops_mid_run_loses_nothing(model_path):
    server = LlamaServer(model_path, slots=2, ctx=4096).start()
    eng = Engine(connect(server.url, RemoteSettings(timeout_s=10.0)))
    try:
        events: list = []
        for ev in eng.run(PROMPT, None, LoopSettings(mode="none"), SamplingSettings(max_tokens=60)):
            events.append(ev)
            if isinstance(ev, TokenEvent) and ev.index == 4:
                server.kill()
        tr = Transcript().extend(events)
        assert isinstance(events[-1], Failed)
        one_sentence(LanternError(events[-1].message), server.url)
        assert len(tr.tokens) == 5  # what came before the failure is kept
        server.start()  # the same address comes back: the same engine carries on
        again = Transcript().extend(eng.run(PROMPT, None, LoopSettings(mode="none"), SamplingSettings(max_tokens=5)))
        assert again.failed is None and [t.text for t in again.tokens] == [t.text for t in tr.tokens[:5]]
    finally:
        eng.close()
        server.stop()


@pytest.mark.model
def test_context_overflow_on_the_server_is_one_sentence(remote, llama_server):
    b = remote.backend
    real = b.n_ctx
    too_long = remote.conversation("", "word " * (real + 50))
    with pytest.raises(ContextOverflow) as info:  # caught before sending
        b.forward([remote.prefill(0, too_long)])
    one_sentence(info.value)
    b.n_ctx = 10 * real  # a server that claims more than it holds: its own refusal arrives
    try:
        with pytest.raises(ContextOverflow) as info:
            b.forward([remote.prefill(0, too_long)])
        one_sentence(info.value, llama_server.url)
    finally:
        b.n_ctx = real
        b.truncate(0, 0)


# -- an OpenAI-only completions server (vLLM's API) ----------------------------------------------
@pytest.mark.model
def test_an_openai_completions_server_gives_the_local_tokens(engine, llama_server, conflict_reference):
    from servers import VllmLikeAdapter

    adapter = VllmLikeAdapter(llama_server.url).start()
    try:
        with Engine.load(adapter.url) as served:  # the served model names the built-in smollm2
            assert served.backend.server_kind == "openai-completions" and served.backend.k == 20
            for mode in ("none", "observe"):
                adapter.requests = 0
                local = run(engine, conflict_reference, mode, SamplingSettings(max_tokens=20))
                remote = run(served, conflict_reference, mode, SamplingSettings(max_tokens=20))
                assert [t.token_id for t in remote.tokens] == [t.token_id for t in local.tokens]
                assert max(abs(s.logp_plant - t.logp_plant) for s, t in zip(remote.tokens, local.tokens)) <= LOGP_TOLERANCE
            # a sidecar chunk is one request carrying one prompt per position: one request per
            # plant token, and one per chunk of 8 for the sidecar
            assert adapter.requests <= len(remote.tokens) + len(remote.tokens) // 8 + 3
    finally:
        adapter.stop()


# -- the command line and lantern serve on a server's terrain -------------------------------------
@pytest.mark.model
def test_lantern_run_with_a_server_url(engine, llama_server, tmp_path):
    import json
    import subprocess
    import sys

    from helpers import PIRATE
    from servers import REPO

    ref = tmp_path / "pirate.md"
    ref.write_text(PIRATE, encoding="utf-8")
    cmd = [sys.executable, "-m", "lantern_studio.cli", "run", "--reference", str(ref), "--prompt", PROMPT,
           "--mode", "observe", "--max-tokens", "20", "--json", "--model", llama_server.url]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    from lantern_studio.core.reference import load_reference
    local = Transcript().extend(engine.run(PROMPT, load_reference(ref), LoopSettings(mode="observe"),
                                           SamplingSettings(max_tokens=20)))
    assert out["answer"] == local.answer and out["model"] == connect_name(llama_server.url)
    closed = subprocess.run(cmd[:-1] + [f"http://127.0.0.1:{free_port()}"], capture_output=True, text=True,
                            cwd=REPO, timeout=120, stdin=subprocess.DEVNULL)
    assert closed.returncode == 1 and closed.stderr.startswith("lantern: Nothing answers at")


def connect_name(url: str) -> str:
    from lantern_studio.core.remote import probe

    return probe(url).model


@pytest.mark.model
def test_lantern_serve_on_a_server_terrain(llama_server, tmp_path):
    import httpx

    from helpers import PIRATE
    from lantern_studio.core.pack import export_pack
    from servers import LanternServe

    ref = tmp_path / "pirate.md"
    ref.write_text(PIRATE, encoding="utf-8")
    pack = export_pack([ref], tmp_path / "pirate.lantern", loop={"mode": "observe"})
    served = LanternServe(pack, "--model", llama_server.url, "--workers", "2").start()
    try:
        body = {"model": "pirate", "max_tokens": 12, "messages": [{"role": "user", "content": PROMPT}]}
        r = httpx.post(served.url + "/v1/chat/completions", json=body, timeout=120)
        assert r.status_code == 200, r.text
        lantern = r.json()["lantern"]
        assert lantern["terrain"] == connect_name(llama_server.url) and len(lantern["tokens"]) >= 5
        assert all(t["logp_ref"] is not None for t in lantern["tokens"])
    finally:
        served.stop()


@pytest.mark.model
def test_scores_outside_the_returned_top_k_are_marked_approx(llama_server, conflict_reference):
    """With only the top 2 returned, many of the sidecar's scores are estimates; each token
    event says so exactly when the server did not return its log p."""
    with Engine(connect(llama_server.url, RemoteSettings(n_probs=2), slots=range(4, 6))) as eng:
        tr = run(eng, conflict_reference, "observe", focus=0)  # the whole reference: the rule against Paris
        start = tr.done.stats["sidecar_prompt_tokens"] - 1
        returned = [eng.backend.in_top_k(SIDECAR, start + i, t.token_id) for i, t in enumerate(tr.tokens)]
        assert [t.approx for t in tr.tokens] == [r is False for r in returned]
        assert any(t.approx for t in tr.tokens) and not all(t.approx for t in tr.tokens)
