"""The reference editor without a model: highlighting, marks, preview, saves, autosave."""

from __future__ import annotations

from lantern_studio.app import autosave
from lantern_studio.app.preview import render_preview_html
from lantern_studio.app.reference_editor import ReferenceTab, atomic_write, error_line


def test_heading_gets_a_format(qtbot):
    tab = ReferenceTab("# Intent\nplain text\n")
    qtbot.addWidget(tab)
    doc = tab.editor.document()
    heading = doc.findBlockByNumber(0).layout().formats()
    plain = doc.findBlockByNumber(1).layout().formats()
    assert heading and heading[0].format.fontWeight() > 400
    assert not plain


def test_fence_state_carries_to_next_blocks(qtbot):
    tab = ReferenceTab("# Probes\n```yaml\n# not a heading\n```\n# Heading\n")
    qtbot.addWidget(tab)
    doc = tab.editor.document()
    inside = doc.findBlockByNumber(2).layout().formats()
    after = doc.findBlockByNumber(4).layout().formats()
    code_color = tab.editor.highlighter.formats["code"].foreground().color()
    assert inside and inside[0].format.foreground().color() == code_color
    assert after and after[0].format.fontWeight() > 400


def test_preview_never_shows_raw_html(qtbot):
    text = "# Title\n\n<script>alert('x')</script>\n\n<b onclick='evil()'>bold</b>\n"
    tab = ReferenceTab(text)
    qtbot.addWidget(tab)
    tab.set_preview_visible(True)
    html = tab.preview.toHtml()
    assert "alert" not in tab.preview.toPlainText()
    assert "<script" not in html and "evil" not in html
    assert "Title" in tab.preview.toPlainText()
    assert tab.preview.openLinks() is False
    assert "<script" not in render_preview_html(text)


def test_parse_error_marks_the_line(qtbot):
    tab = ReferenceTab("# Never\n- bad detector `regex: (unclosed`\n")
    qtbot.addWidget(tab)
    assert tab.error and "line 2" in tab.error
    assert error_line(tab.error) == 2
    assert 2 in tab.editor.error_lines
    wavy = [s for s in tab.editor.extraSelections() if s.format.underlineStyle() != 0]
    assert wavy and wavy[0].cursor.blockNumber() == 1
    tab.editor.setPlainText("# Never\n- fine `regex: closed`\n")
    tab.reparse()
    assert not tab.editor.error_lines and tab.reference is not None


def test_find_replace_and_undo(qtbot):
    tab = ReferenceTab("alpha beta alpha\n")
    qtbot.addWidget(tab)
    assert tab.editor.replace_all("alpha", "gamma") == 2
    assert tab.text() == "gamma beta gamma\n"
    tab.editor.undo()
    assert tab.text() == "alpha beta alpha\n"


def test_atomic_save(tmp_path, qtbot):
    folder = tmp_path / "refs"
    folder.mkdir()
    path = folder / "r.md"
    atomic_write(path, "one")
    tab = ReferenceTab("# Intent\nx\n", path)
    qtbot.addWidget(tab)
    tab.editor.appendPlainText("more")
    assert tab.is_dirty()
    tab.save()
    assert path.read_text() == tab.text() and tab.text().endswith("more") and not tab.is_dirty()
    assert [p.name for p in folder.iterdir()] == ["r.md"]  # no temp file left behind


def test_autosave_and_recovery(make_window, tmp_path):
    window = make_window()
    tab = window.new_tab()
    tab.editor.appendPlainText("unsaved words")
    window.autosave_now()
    assert autosave.find_autosaves()
    # a new session finds the text (as after a crash)
    other = make_window()
    assert other.recover_autosaves() == 1
    assert "unsaved words" in other.tab.text()
    assert other.tab.is_dirty()


def test_outline_click_jumps(make_window, paris_file):
    window = make_window()
    window.open_reference(paris_file)
    tree = window.outline
    never = next(tree.topLevelItem(i) for i in range(tree.topLevelItemCount())
                 if tree.topLevelItem(i).text(0) == "Never")
    tree.itemClicked.emit(never.child(0), 0)
    assert window.tab.editor.textCursor().blockNumber() + 1 == window.tab.reference.line_of("never.1")


def test_save_loop_to_reference_keeps_other_bytes(make_window, paris_file):
    window = make_window()
    window.open_reference(paris_file)
    before = window.tab.text()
    window.loop_panel.set_value("threshold", 2.25)
    window.loop_panel.save_button.click()
    after = window.tab.text()
    assert "threshold: 2.25" in after
    assert after.split("---", 2)[2] == before.split("---", 2)[2]
    window.tab.editor.undo()
    assert window.tab.text() == before


# --------------------------------------------------------------------------- highlighter and preview
# They read the document with the parser's own scanner and front matter detector.

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from lantern_studio.app.highlighter import FENCE, FRONT, MAX_LEXED_LINE, next_state  # noqa: E402
from lantern_studio.core.reference.blocks import fenced_lines, front_matter_end, scan_blocks  # noqa: E402


def _formats(tab, line: int):
    return tab.editor.document().findBlockByNumber(line).layout().formats()


def _color(tab, name: str):
    return tab.editor.highlighter.formats[name].foreground().color()


def test_front_matter_closed_by_dots_is_front_matter_everywhere(qtbot):
    text = "---\ntitle: T\n...\n# Heading\n"
    tab = ReferenceTab(text)
    qtbot.addWidget(tab)
    assert _formats(tab, 2)[0].format.foreground().color() == _color(tab, "front")
    assert _formats(tab, 3)[0].format.fontWeight() > 400  # the heading after it is a heading
    assert render_preview_html(text).startswith("<pre>title: T</pre><h1>Heading</h1>")
    assert tab.reference is not None and tab.reference.title == "T"


def test_a_fence_closes_only_with_its_own_kind(qtbot):
    tab = ReferenceTab("~~~\n```\n# still code\n~~~\n# Heading\n")
    qtbot.addWidget(tab)
    assert _formats(tab, 2)[0].format.foreground().color() == _color(tab, "code")
    assert _formats(tab, 4)[0].format.fontWeight() > 400


def test_detectors_and_triggers_are_marked_as_the_parser_reads_them(qtbot):
    line = "- Never x ``regex: a`b`` and `regex: c`"
    tab = ReferenceTab(f"## Never\n{line}\n## Blips\n- when: /dose/ → Say it.\n{'- ' + 'x' * (MAX_LEXED_LINE + 10)} `regex: y`\n")
    qtbot.addWidget(tab)
    marked = {(r.start, r.start + r.length) for r in _formats(tab, 1)
              if r.format.foreground().color() == _color(tab, "detector")}
    assert (line.index("``regex"), line.index("`` and") + 2) in marked
    assert (line.index("`regex: c"), len(line)) in marked
    trigger = [r for r in _formats(tab, 3) if r.format.foreground().color() == _color(tab, "detector")]
    assert trigger and trigger[0].start == 2
    long_line = [r for r in _formats(tab, 4) if r.format.foreground().color() == _color(tab, "detector")]
    assert long_line and long_line[0].length == len("`regex: y`")  # marked, though too long to lex


def test_preview_shows_the_structure_the_parser_sees():
    text = "Title\n=====\n\n<!--\n## Hidden\n- hidden item\n-->\n## Always\n- shown\n"
    html = render_preview_html(text)
    assert "<h1>" not in html and "Hidden" not in html and "hidden item" not in html
    assert "<h2>Always</h2>" in html and "<li>shown</li>" in html


_PIECES = ["---\n", "...\n", "```\n", "~~~\n", "````\n", "``` a`b\n", "~~~ x`y\n", "   ```\n", "    ```\n",
           "text\n", "# h\n", "> quote\n", "\n", "title: x\n", "```yaml\n", "~~~~\n", " ~~~\n", "\t```\n"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_PIECES), max_size=30))
def test_highlighter_line_states_agree_with_the_scanner(pieces):
    """Line by line, the highlighter finds the front matter and the top-level fences the parser finds.

    (Inside list items the highlighter, which sees one line, still takes a fence indented up to
    3 spaces for a fence; the parser's scanner follows the item's indentation.)
    """
    lines = "".join(pieces).split("\n")
    state, front, fenced = -1, set(), set()
    for n, line in enumerate(lines):
        before = state
        state = next_state(state, line, n == 0)
        if FRONT in (state & 3, before & 3 if before >= 0 else 0):
            front.add(n)
        elif FENCE in (state & 3, before & 3 if before >= 0 else 0):
            fenced.add(n)
    end = front_matter_end(lines)
    body = end + 1 if end is not None else 0
    expected_front = set(range(0, end + 1)) if end is not None else (set(range(len(lines))) if front else set())
    assert front == expected_front
    blocks = [b for b in scan_blocks(lines[body:], offset=body) if b.depth == 0]
    scanner_fenced = {i for i in fenced_lines(blocks) if i < len(lines)}
    if lines[-1] == "":  # the empty block after a final newline, which the scanner never sees
        fenced.discard(len(lines) - 1)
    if end is not None or not front:
        assert fenced == scanner_fenced
