"""Entry point of the PyInstaller bundle (``dist/lantern-studio/lantern-studio``).

The executable is the desktop studio. Invoked through a link named ``lantern`` (build-dist.sh
puts one beside it), it is the ``lantern`` CLI instead, so the bundle needs no Python either way.
"""

import os
import sys


def _main() -> int:
    if os.path.basename(sys.argv[0]) in ("lantern", "lantern.exe"):
        from lantern_studio.cli import main as cli_main

        return cli_main()
    from lantern_studio.app.main import main as studio_main

    return studio_main()


if __name__ == "__main__":
    sys.exit(_main())
