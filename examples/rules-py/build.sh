#!/usr/bin/env bash
# Builds the Python rules into a component for the beaker:inventory/rules
# world:
#
#   examples/rules-py/build.sh        ->  target/rules-py/beaker_rules_py.wasm
#   examples/rules-py/build.sh test   ->  runs the unit tests under CPython
#
# Everything comes from the pinned packages in requirements.txt, installed
# into .venv/; nothing is downloaded while building (componentize-py ships
# CPython and its standard library inside the package). Re-running is cheap:
# the packages are reinstalled only when requirements.txt changes, and the
# component is rebuilt only when the source, the WIT or the pins are newer
# than it.
#
# Environment:
#   BEAKER_RULES_PY_OUT   where to write the component
#                         (default: <repo>/target/rules-py/beaker_rules_py.wasm)
#   PYTHON                the interpreter for the virtualenv (default: python3)
#   FORCE=1               rebuild even if the component looks up to date
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${BEAKER_RULES_PY_OUT:-$root/target/rules-py/beaker_rules_py.wasm}
wit=$root/wit
cd "$here"

# 1. The pinned tools, in a virtualenv of their own.
if [[ ! -f .venv/installed || requirements.txt -nt .venv/installed ]]; then
    echo "rules-py: installing pinned packages (pip)" >&2
    "${PYTHON:-python3}" -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
    touch .venv/installed
fi
cpy=.venv/bin/componentize-py

if [[ ${1:-} == test ]]; then
    # The generated bindings let the source run under CPython as it is.
    rm -rf bindings
    "$cpy" --quiet -d "$wit" -w rules bindings bindings
    PYTHONPATH=src:bindings .venv/bin/python -m unittest discover -s test -v
    exit
fi

# 2. Nothing to do when the component is newer than everything it is made of.
if [[ -z ${FORCE:-} && -f $out ]] &&
    [[ -z $(find src "$wit" requirements.txt build.sh -newer "$out" -type f -print -quit) ]]; then
    echo "rules-py: up to date: $out" >&2
    exit 0
fi

# 3. Build. --stub-wasi replaces every WASI import with a stub that traps:
#    the rules need no console, clock, randomness, file or socket once the
#    interpreter has been initialised (which happens at build time), and
#    without those imports the component loads in a host that links no WASI.
#    The price: anything that does reach WASI at run time (a print, an
#    uncaught exception's traceback) traps, and the host reports a trap.
mkdir -p "$(dirname "$out")"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
start=$SECONDS
"$cpy" --quiet -d "$wit" -w rules componentize --stub-wasi -p src app -o "$tmp"

# 4. Refuse a component that imports more than the world's types.
imports=$(python3 imports.py "$tmp")
unexpected=$(grep -v -e '^type ' -e '^instance beaker:inventory/types@' <<<"$imports" || true)
if [[ -n $unexpected ]]; then
    echo "rules-py: the component imports more than beaker:inventory/types:" >&2
    echo "$unexpected" >&2
    exit 1
fi

mv "$tmp" "$out"
trap - EXIT
echo "rules-py: built $out ($(stat -c %s "$out") bytes, $((SECONDS - start)) s); imports: $(grep '^instance' <<<"$imports" | cut -d' ' -f2 | tr '\n' ' ')" >&2
