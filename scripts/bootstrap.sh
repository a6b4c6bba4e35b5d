#!/usr/bin/env bash
# Create .venv (Python >= 3.11) if missing and install requirements.lock.txt into it -- but only when the
# lock file changed since the last successful install (its hash is stamped in .venv/), so this is cheap
# enough to run before every make target.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
lock=requirements.lock.txt
stamp=.venv/.requirements.lock.sha256

if [[ ! -x .venv/bin/python ]]; then
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
        || { echo "bootstrap: need Python >= 3.11; '$python' is missing or older (set PYTHON=...)" >&2; exit 1; }
    echo "bootstrap: creating .venv with $("$python" --version)"
    "$python" -m venv .venv
    rm -f "$stamp"
fi

want=$(sha256sum "$lock" | cut -d' ' -f1)
if [[ ! -f $stamp || $(<"$stamp") != "$want" ]]; then
    echo "bootstrap: installing $lock"
    .venv/bin/python -m pip install -qq --disable-pip-version-check --no-input -r "$lock"
    # Written only after pip succeeded, so a failed install is retried next time.
    echo "$want" >"$stamp"
fi
