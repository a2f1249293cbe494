#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each (default 15)
# and prints, per target: executions, exec/s, coverage, corpus size, crashes.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). Works on stable:
# cargo-fuzz passes nightly-only flags, which RUSTC_BOOTSTRAP=1 lets a stable
# compiler take. New inputs go to fuzz/work/corpus/<target> (not committed);
# the committed seeds in fuzz/corpus/<target> are only read. A crash leaves
# its input in fuzz/work/artifacts/<target>/ and makes the script fail;
# replay it with `cargo fuzz run <target> <file>`.
#
# Environment: SANITIZER (none, the default: the crates forbid unsafe code
# and the build keeps debug assertions and overflow checks; `address` for
# ASan), FUZZ_TARGET_DIR (default fuzz/target), FUZZ_WORK_DIR (fuzz/work),
# FUZZ_CODEGEN_UNITS (cargo-fuzz's default is 1: the fastest fuzzing; CI
# uses 16, a faster build for a short run).
# A unit slower than 30 s is a failure (-timeout); libFuzzer's own "slow
# unit" report (default 10 s) is raised to the same bound, as an input that
# is slow by design must not fail the run: an encrypted key whose scrypt work
# is under sc-pki's bound (1 GiB of mixing, about 3 s in a release build)
# takes 10 s under the fuzzer's coverage instrumentation.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-15}
[ $# -gt 0 ] && shift
export RUSTC_BOOTSTRAP=1
sanitizer=${SANITIZER:-none}
target_dir=${FUZZ_TARGET_DIR:-fuzz/target}
work=${FUZZ_WORK_DIR:-fuzz/work}
build=(-s "$sanitizer" --target-dir "$target_dir")
if [ -n "${FUZZ_CODEGEN_UNITS:-}" ]; then
    build+=(--codegen-units "$FUZZ_CODEGEN_UNITS")
fi

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

cargo fuzz build "${build[@]}" >&2

failed=0
rows=()
for t in "${targets[@]}"; do
    corpus="$work/corpus/$t"
    artifacts="$work/artifacts/$t"
    log="$work/$t.log"
    mkdir -p "$corpus" "$artifacts" "fuzz/corpus/$t"
    echo "fuzzing $t for ${secs}s" >&2
    set +e
    cargo fuzz run "${build[@]}" "$t" "$corpus" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 -timeout=30 -report_slow_units=30 -rss_limit_mb=4096 \
        -artifact_prefix="$artifacts/" >"$log" 2>&1
    rc=$?
    set -e
    stat() { awk -v k="stat::$1:" '$1 == k {print $2}' "$log" | tail -n 1; }
    execs=$(stat number_of_executed_units)
    eps=$(stat average_exec_per_sec)
    cov=$(awk '$3 == "cov:" {c = $4} END {print c}' "$log")
    size=$(find "$corpus" -type f | wc -l)
    crashes=$(find "$artifacts" -type f | wc -l)
    if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
        failed=1
        echo "--- $t failed (exit $rc); last lines of $log:" >&2
        tail -n 30 "$log" >&2
    fi
    rows+=("$(printf '%-24s %12s %9s %7s %8s %8s' "$t" "$execs" "$eps" "${cov:-?}" "$size" "$crashes")")
done

printf '\n%-24s %12s %9s %7s %8s %8s\n' target executions exec/s cov corpus crashes
printf '%s\n' "${rows[@]}"
if [ "$failed" -ne 0 ]; then
    echo "a fuzz target failed: a crash, a timeout or too much memory (inputs under $work/artifacts/), or the run itself (see above)" >&2
    exit 1
fi
