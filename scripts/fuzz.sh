#!/usr/bin/env bash
# `make fuzz`: runs each cargo-fuzz target (fuzz/fuzz_targets) for a bounded
# time with libFuzzer.
#
#   FUZZ_SECONDS    seconds per target (default 60; CI runs a short 20)
#   FUZZ_TARGETS    which targets (default: all of them)
#   FUZZ_SANITIZER  none (default: fastest) or address
#
# The seed corpus lives in fuzz/corpus/<target> (committed); what libFuzzer
# discovers goes to target/fuzz-corpus/<target> and stays out of git. A
# failing input is saved under fuzz/artifacts/<target>/ and printed; replay
# it with `cargo fuzz run <target> <file>` (with RUSTC_BOOTSTRAP=1, below).
#
# cargo-fuzz builds with unstable compiler flags (coverage instrumentation);
# the project's toolchain is stable, so the build runs with RUSTC_BOOTSTRAP=1,
# which lets stable rustc accept them. Nothing else is built that way.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
SANITIZER=${FUZZ_SANITIZER:-none}
CARGO_FUZZ_VERSION=0.13.2

SCRIPT=fuzz
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    say "installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi
# The rules target runs the default rules component.
make --no-print-directory rules
# The very dependency versions of the main build.
cp Cargo.lock fuzz/Cargo.lock
export RUSTC_BOOTSTRAP=1
targets=${FUZZ_TARGETS:-$(cargo fuzz list --fuzz-dir fuzz)}
for target in $targets; do
    say "fuzzing $target for ${SECONDS_PER_TARGET}s"
    mkdir -p "target/fuzz-corpus/$target"
    cargo fuzz run --fuzz-dir fuzz --target-dir "$ROOT/target/fuzz" --sanitizer "$SANITIZER" \
        "$target" "target/fuzz-corpus/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -print_final_stats=1
done
say "no target found a failing input"
