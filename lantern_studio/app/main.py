"""``lantern-studio``: the desktop studio's entry point."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lantern_studio import __version__

ORGANIZATION = "Lantern Studio"
APPLICATION = "lantern-studio"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lantern-studio", description="The Lantern Studio desktop studio.")
    p.add_argument("--reference", type=Path, help="open this reference (.md)")
    p.add_argument("--pack", type=Path, help="open this reference pack (.lantern)")
    p.add_argument("--model", help="a built-in model name or a GGUF path (default: smollm2)")
    p.add_argument("--prompt", help="put this prompt in the prompt bar")
    p.add_argument("--mode", choices=("none", "prompt", "observe", "blip", "guide"), help="loop mode")
    p.add_argument("--max-tokens", type=int, help="maximum tokens per run")
    p.add_argument("--screenshot", type=Path, metavar="OUT.png",
                   help="load the model, run the prompt once, save the window to OUT.png and exit")
    p.add_argument("--explain", action="store_true",
                   help="with --screenshot: run Explain after the run so the margin shows the heat")
    p.add_argument("--probes", action="store_true",
                   help="with --screenshot: run the reference's probes after the run and show the Probes dock")
    p.add_argument("--size", metavar="WxH", help="with --screenshot: the window's size, e.g. 1024x640")
    p.add_argument("--theme", choices=("light", "dark"), help="with --screenshot: the theme (default: Preferences)")
    p.add_argument("--version", action="version", version=f"lantern-studio {__version__}")
    return p


def configure_settings() -> None:
    """QSettings live as an ini file in ``config_dir()`` (so LANTERN_CONFIG_DIR moves them too)."""
    from PySide6.QtCore import QCoreApplication, QSettings

    from lantern_studio.paths import config_dir

    QCoreApplication.setOrganizationName(ORGANIZATION)
    QCoreApplication.setApplicationName(APPLICATION)
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(config_dir()))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.screenshot and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY") \
            and sys.platform.startswith("linux"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    configure_settings()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    from .main_window import MainWindow
    from .theme import apply_theme

    from PySide6.QtCore import QSettings
    theme = args.theme or str(QSettings().value("theme", "light"))
    apply_theme(app, theme)  # before any plot exists
    window = MainWindow(interactive=not args.screenshot)
    if args.theme:
        window.theme = theme
        window.timeline.set_theme(window.theme)
    if args.size:
        try:
            width, height = (int(v) for v in args.size.lower().split("x"))
        except ValueError:
            print(f"--size wants WIDTHxHEIGHT, like 1024x640, not {args.size!r}.", file=sys.stderr)
            return 2
        window.setMinimumSize(min(width, 960), min(height, 600))
        window.resize(width, height)
    window.show()
    app.processEvents()  # the window is up before anything slow starts
    status = {"code": 0}

    def fail(message: str) -> None:
        print(message, file=sys.stderr)
        status["code"] = 1
        window.close()

    if args.reference:
        if window.open_reference(args.reference) is None:
            if args.screenshot:
                fail(f"The reference {args.reference} cannot be opened.")
                return status["code"]
    elif not args.screenshot:
        window.recover_autosaves()
    if args.pack:
        window.open_pack(args.pack)
    if window.tabs.count() == 0:
        window.new_tab()
    if args.prompt:
        window.prompt_bar.prompt.setText(args.prompt)
    if args.mode:
        window.prompt_bar.mode.setCurrentText(args.mode)
    if args.max_tokens:
        window.prompt_bar.max_tokens.setValue(args.max_tokens)

    if args.screenshot:
        window.hint.hide()  # the first-run hint is for people, not for pictures of the studio
        out = args.screenshot
        prompt = args.prompt or "What is the capital of France?"
        window.prompt_bar.prompt.setText(prompt)

        def shoot(_job=None) -> None:
            app.processEvents()
            if not window.grab().save(str(out)):
                fail(f"The screenshot could not be written to {out}.")
                return
            window.close()

        def on_loaded(_name: str) -> None:
            if not window.run_prompt(prompt):
                fail(window.statusBar().currentMessage() or "The run could not start.")

        def on_finished(job) -> None:
            if job.kind not in ("run", "explain", "probes"):
                return
            end = job.end
            if end is not None and getattr(end, "message", None):
                fail(end.message)
                return
            if job.kind == "run" and args.explain:
                QTimer.singleShot(0, lambda: window.explain() or fail("Explain could not start."))
                return
            if job.kind == "run" and args.probes:
                QTimer.singleShot(0, lambda: window.run_probes(["none", "observe", "blip"])
                                  or fail("The probes could not start."))
                return
            QTimer.singleShot(150, shoot)

        window.session.modelLoaded.connect(on_loaded)
        window.session.modelFailed.connect(fail)
        window.session.jobFinished.connect(on_finished)
        QTimer.singleShot(0, lambda: window.load_model(args.model))
        app.exec()
        return status["code"]

    QTimer.singleShot(0, lambda: window.load_model(args.model))
    app.exec()
    return status["code"]


if __name__ == "__main__":
    sys.exit(main())
