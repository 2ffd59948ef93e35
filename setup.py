"""Build hook: ship ``resources/`` and ``references/`` inside the wheel.

All metadata lives in pyproject.toml. In a checkout the two folders sit beside the package
and ``lantern_studio.paths._shipped`` finds them there; a built wheel carries copies as
package data at ``lantern_studio/_shipped/<name>``. Editable installs skip the copy (the
checkout's folders are used directly).
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = ("resources", "references")


class build_py_with_shipped(build_py):  # noqa: N801 (setuptools command naming)
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for name in SHIPPED:
            source = ROOT / name
            if source.is_dir():
                self.copy_tree(str(source), str(Path(self.build_lib) / "lantern_studio" / "_shipped" / name))


setup(cmdclass={"build_py": build_py_with_shipped})
