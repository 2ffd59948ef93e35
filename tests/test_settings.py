"""Settings: every wrong value is a SettingsError that names the setting in one sentence."""

from __future__ import annotations

import pytest
from helpers import one_sentence

from lantern_studio.core.errors import LanternError, SettingsError
from lantern_studio.core.settings import (
    EngineSettings,
    LoopSettings,
    SamplingSettings,
    loop_overrides,
)

# -- LoopSettings ---------------------------------------------------------------------------

@pytest.mark.parametrize("name, value", [
    ("mode", "fast"),
    ("threshold", "high"),
    ("threshold", 101.0),
    ("kp", float("nan")),
    ("ki", float("inf")),
    ("kd", -100.5),
    ("gamma", None),
    ("gamma_max", True),
    ("window", 0),
    ("window", 2.5),
    ("cooldown", -1),
    ("max_blips", True),
    ("max_blips", 1001),
    ("chunk", 0),
    ("chunk", 513),
    ("rewind", "paragraph"),
    ("rewind", "tokens:"),
    ("rewind", "tokens:-2"),
    ("rewind", 4),
    ("blip_style", "shout"),
    ("blip_choice", "random"),
])
def test_loop_settings_reject_bad_values_naming_the_setting(name, value):
    with pytest.raises(SettingsError) as info:
        LoopSettings(**{name: value})
    one_sentence(info.value, f"'{name}'")
    assert isinstance(info.value, LanternError)


def test_loop_settings_defaults_are_the_measured_ones():
    """docs/evaluation.json holds a run of today's variants: on its tune split, where defaults
    are chosen, the default does at least as well as every other variant measured (the
    baselines, itself without each of its parts, other modes), and the blip defaults beat
    system-turn blips."""
    import json
    from pathlib import Path

    from lantern_studio.core.evaluation import Evaluation

    data = json.loads((Path(__file__).resolve().parents[1] / "docs" / "evaluation.json").read_text())
    ev = Evaluation.from_json(data)
    tune = ev.table("tune")
    assert LoopSettings.from_mapping(ev.variants["default"]) == LoopSettings()
    assert len(tune) >= 8, "the evaluation measured too few variants to choose defaults from"
    for rival, cell in tune.items():
        assert tune["default"]["passed"] >= cell["passed"], rival
    assert tune["blip"]["passed"] >= tune["blip-system-turn"]["passed"]
    s = LoopSettings()
    assert s.blip_style == "inline-note"
    assert s.rewind == "sentence" and s.rewind_tokens is None
    assert LoopSettings.from_mapping(s.to_dict()) == s


@pytest.mark.parametrize("mode", ["none", "prompt", "observe", "blip", "guide"])
def test_every_documented_mode_is_accepted(mode):
    assert LoopSettings(mode=mode).mode == mode


def test_range_edges_are_inclusive():
    s = LoopSettings(threshold=100.0, kd=-100.0, window=1, cooldown=0, max_blips=0, chunk=512)
    assert (s.threshold, s.kd, s.window, s.cooldown, s.max_blips, s.chunk) == (100.0, -100.0, 1, 0, 0, 512)


@pytest.mark.parametrize("rewind, tokens", [("none", 0), ("sentence", None), ("tokens:4", 4),
                                            ("tokens:0", 0), ("tokens:12", 12)])
def test_rewind_tokens(rewind, tokens):
    assert LoopSettings(rewind=rewind).rewind_tokens == tokens


def test_adaptive_guide_only_when_gamma_max_exceeds_gamma_min():
    assert not LoopSettings(gamma_min=0.0, gamma_max=0.0).adaptive_guide
    assert LoopSettings(gamma_min=0.5, gamma_max=2.0).adaptive_guide
    assert not LoopSettings(gamma_min=2.0, gamma_max=2.0).adaptive_guide


# -- from_mapping / updated ---------------------------------------------------------------

def test_from_mapping_applies_values_over_the_base():
    base = LoopSettings(mode="observe", window=4)
    s = LoopSettings.from_mapping({"threshold": 2.5, "rewind": "tokens:4"}, base=base)
    assert (s.mode, s.window, s.threshold, s.rewind, s.rewind_tokens) == ("observe", 4, 2.5, "tokens:4", 4)
    assert base.threshold == LoopSettings().threshold  # the base is not changed


def test_from_mapping_none_gives_base_or_defaults():
    base = LoopSettings(mode="guide")
    assert LoopSettings.from_mapping(None) == LoopSettings()
    assert LoopSettings.from_mapping(None, base=base) is base


@pytest.mark.parametrize("data", [["mode", "blip"], "mode: blip", 3])
def test_from_mapping_rejects_non_mappings(data):
    with pytest.raises(SettingsError) as info:
        LoopSettings.from_mapping(data)
    one_sentence(info.value, "'loop'", "mapping")


def test_from_mapping_unknown_key_is_named_with_the_known_ones():
    with pytest.raises(SettingsError) as info:
        LoopSettings.from_mapping({"threshold": 2, "treshold": 2})
    message = one_sentence(info.value, "'treshold'")
    assert "threshold" in message.split("known:")[1]


@pytest.mark.parametrize("name, value, word", [
    ("threshold", "2", "number"),
    ("kp", [1], "number"),
    ("ki", None, "number"),
    ("window", 2.0, "whole number"),
    ("window", "8", "whole number"),
    ("cooldown", 1.5, "whole number"),
    ("mode", 1, "text"),
    ("rewind", 4, "text"),
])
def test_from_mapping_wrong_types(name, value, word):
    with pytest.raises(SettingsError) as info:
        LoopSettings.from_mapping({name: value})
    one_sentence(info.value, f"'{name}'", word)


@pytest.mark.parametrize("name", ["threshold", "kp", "gamma", "window", "max_blips"])
def test_from_mapping_rejects_bools_for_numbers(name):
    with pytest.raises(SettingsError) as info:
        LoopSettings.from_mapping({name: True})
    one_sentence(info.value, f"'{name}'")


def test_ints_are_accepted_for_floats_and_become_floats():
    s = LoopSettings.from_mapping({"threshold": 2, "kp": 0, "gamma": 3})
    assert (s.threshold, s.kp, s.gamma) == (2.0, 0.0, 3.0)
    assert all(type(v) is float for v in (s.threshold, s.kp, s.gamma))
    assert loop_overrides({"ki": 1})["ki"] == 1.0


def test_from_mapping_values_are_range_checked_too():
    with pytest.raises(SettingsError) as info:
        LoopSettings.from_mapping({"threshold": 1000})
    one_sentence(info.value, "'threshold'", "100")


def test_updated_checks_names_types_and_ranges():
    s = LoopSettings()
    assert s.updated(mode="observe", cooldown=3) == LoopSettings(mode="observe", cooldown=3)
    for changes, name in [({"nope": 1}, "'nope'"), ({"window": 0}, "'window'"),
                          ({"max_blips": "4"}, "'max_blips'"), ({"mode": "loud"}, "'mode'")]:
        with pytest.raises(SettingsError) as info:
            s.updated(**changes)
        one_sentence(info.value, name)
    assert s == LoopSettings()  # frozen: unchanged after failures


def test_settings_are_frozen():
    s = LoopSettings()
    with pytest.raises(AttributeError):
        s.threshold = 3.0  # type: ignore[misc]


# -- SamplingSettings ---------------------------------------------------------------------

@pytest.mark.parametrize("name, value", [
    ("temperature", -0.1), ("temperature", 5.5), ("temperature", "hot"), ("temperature", False),
    ("top_k", -1), ("top_k", 4.0), ("top_k", True),
    ("top_p", 1.01), ("top_p", -0.5),
    ("seed", -1), ("seed", 2**32), ("seed", 1.0),
    ("max_tokens", 0), ("max_tokens", 100_001), ("max_tokens", "200"),
])
def test_sampling_settings_reject_bad_values(name, value):
    with pytest.raises(SettingsError) as info:
        SamplingSettings(**{name: value})
    one_sentence(info.value, f"'{name}'")


def test_sampling_settings_greedy_and_ints_for_floats():
    assert SamplingSettings().greedy
    assert not SamplingSettings(temperature=0.7).greedy
    s = SamplingSettings(temperature=1, top_p=1, seed=2**32 - 1, max_tokens=1)
    assert (s.temperature, s.top_p, s.seed, s.max_tokens) == (1, 1, 2**32 - 1, 1)


# -- EngineSettings -----------------------------------------------------------------------

@pytest.mark.parametrize("name, value", [
    ("n_ctx", 255), ("n_ctx", 4096.0), ("n_ctx", (1 << 20) + 1),
    ("n_threads", -1), ("n_threads", 1025), ("n_threads", True),
    ("n_batch", 0), ("n_batch", 257), ("n_batch", 32.0),
    ("extra_sequences", -1), ("extra_sequences", 63),
])
def test_engine_settings_reject_bad_values(name, value):
    with pytest.raises(SettingsError) as info:
        EngineSettings(**{name: value})
    one_sentence(info.value, f"'{name}'")


def test_engine_settings_defaults_and_limits():
    s = EngineSettings()
    assert s.n_batch == 32 and s.n_ctx >= 256 and s.n_threads == 0
    assert EngineSettings(n_ctx=256, n_batch=256, extra_sequences=62).n_batch == 256
