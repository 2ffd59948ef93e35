"""What a person sees in an answer: copies of the reference and broken answers (no model)."""

from __future__ import annotations

import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from lantern_studio.core.answer_checks import LEAK_RUN, copied_run, degenerate, leak, words

REFERENCE = """# Houseplant care

## Always
- Say to water only when the top layer of soil is dry.
- Give temperatures in degrees Celsius.
"""


def test_a_heading_is_a_leak_wherever_it_stands():
    assert leak("Water it weekly.\n## Always\n- water", REFERENCE).startswith("a Markdown heading")
    assert leak("   ### Tips", "") is not None
    assert leak("Use #hashtags and C# freely.", REFERENCE) is None  # not a heading


def test_nine_words_of_the_reference_are_a_copy_eight_are_not():
    copy = "You should water only when the top layer of soil is dry, really."
    assert "words copied from the reference" in leak(copy, REFERENCE)
    eight = "Water only when the top layer of soil feels damp."  # 'water only when the top layer of soil' = 8
    assert leak(eight, REFERENCE) is None
    assert LEAK_RUN == 9


def test_words_the_prompt_already_holds_are_not_a_leak():
    prompt = "Should I water only when the top layer of soil is dry?"
    answer = "Yes: water only when the top layer of soil is dry."
    assert leak(answer, REFERENCE, prompt) is None
    assert leak(answer, REFERENCE) is not None


def test_blip_wrappers_and_template_markers_are_leaks():
    assert leak("Water it (Note: give temperatures in Celsius) weekly.", REFERENCE).startswith("a blip's wrapper")
    assert leak("Sure.<|im_end|>", "").startswith("a chat template marker")


def test_degenerate_answers():
    assert degenerate("") == "empty"
    assert degenerate("  \n ") == "empty"
    assert degenerate("First.\n\n\n\nSecond.") == "runs of blank lines"
    assert degenerate("The answer is no.\n\nThe answer is no.\n\nThe answer is no.").startswith("one sentence 3 times")
    assert degenerate("sorry sorry sorry sorry sorry sorry sorry sorry sorry sorry sorry sorry").startswith("a phrase")
    assert degenerate("Water weekly. Keep it warm. The answer is no. The answer is no.") is None  # twice is fine
    # a word five times, or a phrase four times, back to back, wherever the run starts
    assert degenerate("Oh no, no no no no no!") == "a phrase looping on itself: 'no'"
    assert degenerate("No, no, no, no. Never prop a fire door open.") is None  # four is emphasis
    assert degenerate("So take it easy: step one, step one, step one, step one.") == \
        "a phrase looping on itself: 'step one'"
    assert degenerate("Well step one step one step one, then step two.") is None
    assert degenerate("Paragraph one.\n\nParagraph two.") is None


def test_copied_run_reports_the_longest_run():
    src = "one two three four five six seven eight nine ten eleven"
    ans = "x one two three four five six seven eight nine ten y"
    assert copied_run(ans, src) == "one two three four five six seven eight nine ten"
    assert copied_run("one two three", src) is None


def test_words_keep_inner_apostrophes_and_split_numbers_like_the_leak_check():
    assert words("Don’t take 4,000 mg!") == ["don't", "take", "4", "000", "mg"]


def _finishes(fn, *args) -> bool:
    done = threading.Event()
    threading.Thread(target=lambda: (fn(*args), done.set()), daemon=True).start()
    return done.wait(60)  # a hang guard, not a speed assertion


def test_the_checks_stay_linear_on_hostile_text():
    hostile = ["." * 50_000 + "x", "\n" * 50_000, "a " * 50_000, "# " + " " * 60_000 + "x", "\n \t" * 30_000]
    for text in hostile:
        assert _finishes(degenerate, text)
        assert _finishes(leak, text, text[:20_000], text[:5_000])


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400), st.text(max_size=400))
def test_the_checks_never_raise_and_give_a_reason_or_none(answer, reference):
    for verdict in (leak(answer, reference, ""), degenerate(answer)):
        assert verdict is None or (isinstance(verdict, str) and verdict)
