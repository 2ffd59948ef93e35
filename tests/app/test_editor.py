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
