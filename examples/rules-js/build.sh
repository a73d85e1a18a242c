#!/usr/bin/env bash
# Builds the JavaScript rules into a component for the beaker:inventory/rules
# world:
#
#   examples/rules-js/build.sh           ->  target/rules-js/beaker_rules_js.wasm
#   examples/rules-js/build.sh quickjs   ->  target/rules-js/beaker_rules_js_quickjs.wasm
#
# The default engine is SpiderMonkey (componentize-js, run under wizer); the
# `quickjs` argument builds with QuickJS instead (componentize-qjs, through
# jco): an eighth of the size and of the memory, but younger, and with a
# known flaw in u32 values of 2^31 and above (see examples/README.md).
#
# Everything comes from the pinned packages in package-lock.json; nothing is
# downloaded while building (the engines ship inside the npm packages).
# Re-running is cheap: the packages are reinstalled only when the lockfile
# changes, and the component is rebuilt only when the source, the WIT or the
# lockfile is newer than it.
#
# Environment:
#   BEAKER_RULES_JS_OUT   where to write the component (default: see above)
#   FORCE=1               rebuild even if the component looks up to date
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
engine=${1:-starlingmonkey}
case $engine in
    starlingmonkey) name=beaker_rules_js ;;
    quickjs) name=beaker_rules_js_quickjs ;;
    *) echo "usage: $0 [starlingmonkey|quickjs]" >&2; exit 2 ;;
esac
out=${BEAKER_RULES_JS_OUT:-$root/target/rules-js/$name.wasm}
wit=$root/wit
cd "$here"

# 1. The pinned tools, at the versions in package-lock.json. Not `npm ci`:
#    a registry that serves only some platforms' builds of the native
#    optional packages (rolldown's, jco's) leaves the others out of the
#    lockfile, and `npm ci` then refuses the lockfile as incomplete.
#    `npm install --no-save` installs the locked versions all the same and
#    never rewrites the lockfile. npm leaves its own copy in node_modules/,
#    which tells us next time whether to redo this.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
    echo "rules-js: installing pinned packages (npm install --no-save)" >&2
    npm install --no-save --no-audit --no-fund --loglevel=error
fi

# 2. Nothing to do when the component is newer than everything it is made of.
if [[ -z ${FORCE:-} && -f $out ]] &&
    [[ -z $(find src "$wit" package-lock.json build.sh -newer "$out" -type f -print -quit) ]]; then
    echo "rules-js: up to date: $out" >&2
    exit 0
fi

# 3. Build, with no WASI: the rules need no console, timers, randomness or
#    fetch, and without them the component imports nothing but the world's
#    own type interface, so it loads in a host that links no WASI at all.
#    The price: an uncaught exception traps instead of printing to stderr
#    (the host reports a trap).
#    - SpiderMonkey: every optional feature disabled.
#    - QuickJS: synchronous exports, and the WASI imports its runtime still
#      has replaced by stubs that trap. (jco resolves the source against its
#      working directory twice, hence the absolute paths.)
mkdir -p "$(dirname "$out")"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
start=$SECONDS
case $engine in
    starlingmonkey)
        ./node_modules/.bin/componentize-js \
            --wit "$wit" --world-name rules \
            --disable stdio random clocks http fetch-event \
            --out "$tmp" src/rules.js
        ;;
    quickjs)
        ./node_modules/.bin/jco componentize --backend quickjs \
            --backend-qjs-disable-async --backend-qjs-stub-wasi \
            --wit "$wit" --world-name rules \
            --out "$tmp" "$here/src/rules.js" >/dev/null
        ;;
esac

# 4. Refuse a component that imports more than the world's types: a newer
#    componentize-js that pulls in WASI again must not slip through unnoticed.
imports=$(./node_modules/.bin/jco wit "$tmp" | sed -n 's/^ *import \([^;]*\);$/\1/p')
unexpected=$(grep -v '^beaker:inventory/types@' <<<"$imports" || true)
if [[ -n $unexpected ]]; then
    echo "rules-js: the component imports more than beaker:inventory/types:" >&2
    echo "$unexpected" >&2
    exit 1
fi

mv "$tmp" "$out"
trap - EXIT
echo "rules-js: built $out ($(stat -c %s "$out") bytes, $((SECONDS - start)) s); imports: $(tr '\n' ' ' <<<"$imports")" >&2
