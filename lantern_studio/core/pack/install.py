"""Importing a pack: check it fully, then write its files so that either all of them
arrive or nothing changes.

Everything is first written into a staging directory on the same file system (inside
the target directory, or beside it when it does not exist yet), with each file flushed
to disk. Only then is anything moved into place, by renames, which need no free space:
a full disk, a quota or a read-only directory is found while staging and leaves
nothing behind, not even an empty ``DIR/`` or ``DIR/traces/``. Symbolic links are never
written through: ``--into`` itself, a planted ``DIR/traces`` link and a target that is
a link are refused.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from ..atomic import atomic_write
from ..errors import PackError
from ..keys import KeyStore
from .read import read_pack

_TRACES = "traces"


def import_pack(
    path: str | os.PathLike[str],
    into_dir: str | os.PathLike[str],
    overwrite: bool = False,
    trust_store: KeyStore | None = None,
) -> list[Path]:
    """Check a pack fully, then write its references to ``into_dir/<slug>.md`` and traces to ``into_dir/traces/``.

    Nothing is written if any check fails or if a target exists and ``overwrite`` is
    false; a failure while writing leaves ``into_dir`` as it was. Returns the written paths.
    """
    pack = read_pack(path, trust_store)
    into = Path(into_dir)
    plan: dict[str, bytes] = {}
    for name, text in sorted(pack.references.items()):
        plan[name.split("/", 1)[1]] = text.encode("utf-8")
    for name, data in sorted(pack.traces.items()):
        plan[f"{_TRACES}/{name.split('/', 1)[1]}"] = data
    _check_targets(into, plan, overwrite)

    exists = os.path.lexists(into)
    missing_parents = [] if exists else [p for p in reversed(into.parents) if not os.path.lexists(p)]
    try:
        for parent in missing_parents:
            parent.mkdir()
        stage = _make_stage(into if exists else into.parent, into.name)
    except OSError as exc:
        _remove_dirs(missing_parents)
        raise PackError(f"Import failed while writing into {into} ({exc.strerror or exc}).") from None
    try:
        try:
            _write_stage(stage, plan)
            if exists:
                _move_into(stage, into, plan)
            else:
                os.rename(stage, into)
        except OSError as exc:
            raise PackError(f"Import failed while writing into {into} ({exc.strerror or exc}).") from None
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        _remove_dirs(missing_parents)
        raise
    if exists:
        shutil.rmtree(stage, ignore_errors=True)
    return [into / relative for relative in plan]


def _check_targets(into: Path, plan: dict[str, bytes], overwrite: bool) -> None:
    """Refuse links, non-directories and (without ``overwrite``) existing files, before anything is written."""
    if into.is_symlink():
        raise PackError(f"Import refused: {into} is a symbolic link; give the real directory.")
    if os.path.lexists(into) and not into.is_dir():
        raise PackError(f"Import refused: {into} is not a directory.")
    traces = into / _TRACES
    if any(r.startswith(f"{_TRACES}/") for r in plan):
        if traces.is_symlink():
            raise PackError(f"Import refused: {traces} is a symbolic link, which import does not write through.")
        if os.path.lexists(traces) and not traces.is_dir():
            raise PackError(f"Import refused: {traces} is not a directory.")
    for relative in plan:
        target = into / relative
        if os.path.lexists(target):
            if target.is_dir() and not target.is_symlink():
                raise PackError(f"Import refused: {target} is a directory.")
            if not overwrite:
                raise PackError(f"Import refused: {target} already exists (use --overwrite to replace it).")


def _make_stage(parent: Path, name: str) -> Path:
    stage = parent / f".{name}.import-{secrets.token_hex(6)}.tmp"
    stage.mkdir()  # the umask's mode, like any directory: the stage may become DIR itself
    return stage


def _write_stage(stage: Path, plan: dict[str, bytes]) -> None:
    for relative, data in plan.items():
        target = stage / relative
        if not target.parent.is_dir():
            target.parent.mkdir()
        atomic_write(target, data)


def _move_into(stage: Path, into: Path, plan: dict[str, bytes]) -> None:
    """Rename every staged file over its target; a missing ``traces/`` moves over as one directory."""
    staged_traces = stage / _TRACES
    if staged_traces.is_dir() and not os.path.lexists(into / _TRACES):
        os.rename(staged_traces, into / _TRACES)
    for relative in plan:
        source = stage / relative
        if os.path.lexists(source):
            os.replace(source, into / relative)


def _remove_dirs(created: list[Path]) -> None:
    for directory in reversed(created):
        try:
            directory.rmdir()
        except OSError:
            pass
