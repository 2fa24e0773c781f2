#!/usr/bin/env bash
# Long fuzz campaigns over marginloss's public entry points (see docs/RELIABILITY.md).
#
#   tools/fuzz.sh [RUNS] [TARGET...]     # default: 10^7 runs of each target
#
# Targets: fuzz_pointwise fuzz_rows fuzz_class fuzz_batch (crates/marginloss-fuzz/tests/fuzz.rs).
# Engine (ENGINE=…):
#   libfuzzer (default)  coverage-guided libFuzzer through cargo-bolero, on stable Rust
#                        with no sanitizer (`--sanitizer NONE`), profile `fuzz` (release +
#                        debug assertions + overflow checks). The corpus grows under
#                        crates/marginloss-fuzz/tests/__fuzz__/<target>/corpus (git-ignored);
#                        a failing input lands in …/crashes and is replayed by `cargo test`.
#   random               bolero's random engine under `cargo test --release` (no coverage
#                        feedback; the fallback where libFuzzer cannot be built).
# FUZZ_TIME=600s caps each target's run time as well.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-10000000}
shift || true
if [ $# -gt 0 ]; then TARGETS=("$@"); else TARGETS=(fuzz_pointwise fuzz_rows fuzz_class fuzz_batch); fi
ENGINE=${ENGINE:-libfuzzer}
mkdir -p target
status=0
for t in "${TARGETS[@]}"; do
  log="target/fuzz-$t.log"
  start=$(date +%s)
  if [ "$ENGINE" = libfuzzer ]; then
    command -v cargo-bolero >/dev/null || cargo install cargo-bolero --version 0.13.5 --locked
    if ! cargo bolero test -p marginloss-fuzz "$t" --engine libfuzzer --sanitizer NONE \
        --runs "$RUNS" ${FUZZ_TIME:+-T "$FUZZ_TIME"} >"$log" 2>&1; then
      status=1
      echo "$t: FAILED, see $log"
    fi
    runs=$(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1 || true)
  else
    if ! BOLERO_RANDOM_ITERATIONS="$RUNS" cargo test --release -p marginloss-fuzz --test fuzz "$t" \
        -- --exact --nocapture >"$log" 2>&1; then
      status=1
      echo "$t: FAILED, see $log"
    fi
    runs=$(grep -Eo 'run time: [^|]*\| iterations/s: [0-9]+ \| rng inputs: [0-9]+' "$log" | tail -1 || true)
  fi
  echo "$t ($ENGINE): ${runs:-no summary} (wall $(( $(date +%s) - start )) s)"
done
exit $status
