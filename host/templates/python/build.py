"""Builds the component {{name}}.wasm from app.py with componentize-py:

    python3 build.py [OUT.wasm]

componentize-py is taken from $KAPPA_COMPONENTIZE_PY (the path of the
executable) when set, else from ./.venv, else from PATH. Install it with:

    python3 -m venv .venv && .venv/bin/pip install -r requirements.txt
"""

import os
import shutil
import subprocess
import sys

# The version this project is written and tested against (requirements.txt).
COMPONENTIZE_PY_VERSION = "0.25.1"

HERE = os.path.dirname(os.path.abspath(__file__))


def find_componentize_py():
    explicit = os.environ.get("KAPPA_COMPONENTIZE_PY")
    if explicit:
        return explicit
    local = os.path.join(HERE, ".venv", "bin", "componentize-py")
    if os.access(local, os.X_OK):
        return local
    found = shutil.which("componentize-py")
    if found:
        return found
    sys.exit(
        "componentize-py not found: run\n"
        "  python3 -m venv .venv && .venv/bin/pip install -r requirements.txt"
    )


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "{{name}}.wasm")
    tool = find_componentize_py()
    version = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout
    if COMPONENTIZE_PY_VERSION not in version:
        print(
            f"warning: {tool} is {version.strip() or 'of an unknown version'}; "
            f"this project is pinned to componentize-py {COMPONENTIZE_PY_VERSION}",
            file=sys.stderr,
        )
    # Without VIRTUAL_ENV componentize-py bundles only the app and the
    # standard library; add `-p DIR` for other pure-Python dependencies.
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    subprocess.run(
        [tool, "-q", "-d", "wit", "-w", "processor", "componentize", "app", "-p", ".", "-o", out],
        cwd=HERE,
        env=env,
        check=True,
    )
    print(f"built {out} ({os.path.getsize(out)} bytes)")


if __name__ == "__main__":
    main()
