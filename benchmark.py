#!/usr/bin/env python3
"""dnnbench entry point: ``python3 benchmark.py --config config/quickstart.yaml``.

Typed as the README writes it, in a shell where the project's venv is not activated,
``python3`` may lack dnnbench's dependencies: this script then runs itself again under
the project's ``.venv/bin/python`` (made by ``make setup``), or, when there is none,
prints one line saying to run ``make setup``. Only the standard library is used until
the interpreter is known to be the right one.
"""

import importlib.util
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv"
#: what `validate` and `--help` import; without them nothing can start
CORE = ("pydantic", "yaml", "rich")
#: what a run needs besides: missing ones are a reason to prefer the project's venv
RUN = ("numpy", "pandas", "cv2", "torch")
#: set when this script has run itself again, so that it never loops
_AGAIN = "DNNBENCH_VENV_REEXEC"


def _missing(names: tuple) -> list:
    return [n for n in names if importlib.util.find_spec(n) is None]


def _in_venv() -> bool:
    try:
        return Path(sys.prefix).resolve() == VENV.resolve()
    except OSError:
        return False


def _ensure_interpreter() -> None:
    """Run again under the project's venv when this interpreter lacks the dependencies, or
    exit 1 with one line when neither has them."""
    missing = _missing(CORE) + _missing(RUN)
    if not missing:
        return
    venv_python = VENV / "bin" / "python"
    if venv_python.exists() and not _in_venv() and not os.environ.get(_AGAIN):
        os.environ[_AGAIN] = "1"
        os.execv(str(venv_python), [str(venv_python), str(Path(__file__).resolve()), *sys.argv[1:]])
    core = _missing(CORE)
    if core:
        print(f"dnnbench: {sys.executable} lacks {', '.join(core)}; run `make setup` in {HERE} (it makes "
              f".venv), then the same command again", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    _ensure_interpreter()
    try:
        from dnnbench.cli import main
    except KeyboardInterrupt:  # Ctrl-C while the package is still importing: no traceback
        raise SystemExit(130) from None
    raise SystemExit(main())
