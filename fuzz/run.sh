#!/usr/bin/env bash
# Builds the fuzz targets with coverage instrumentation on the stable
# toolchain and runs each for SECONDS: fuzz/run.sh SECONDS [TARGET...]
# (all targets by default).
#
# Each target first replays every file of its committed corpus
# (fuzz/corpus/<target>/: seeds, and minimised crashers kept as regression
# tests), then fuzzes on a working corpus in fuzz/target/corpus/<target>/
# that grows from run to run. A crash's input goes to
# fuzz/artifacts/<target>/. One summary line per target; the exit status
# is non-zero if any target crashed, and the artifact is named.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_TARGETS=(sip_parse user_agent relay_proxy stream_framing media_calls ice srtp media_session)

die() { printf 'error: %s\n' "$*" >&2; exit 1; }

[ $# -ge 1 ] && [[ "$1" =~ ^[1-9][0-9]*$ ]] || die "usage: fuzz/run.sh SECONDS [TARGET...] (targets: ${ALL_TARGETS[*]})"
seconds=$1
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")
for t in "${targets[@]}"; do
    [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || die "unknown target $t (targets: ${ALL_TARGETS[*]})"
done
# libfuzzer-sys compiles libFuzzer itself with the C++ compiler.
command -v c++ >/dev/null || die "no C++ compiler: install g++ (tests/tools/setup.sh does)"

# The coverage flags go to the target only (--target keeps them off build
# scripts and proc macros); libFuzzer links in as the program's main.
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares" CARGO_TARGET_DIR=fuzz/target cargo build --release --target x86_64-unknown-linux-gnu --manifest-path fuzz/Cargo.toml

bin=fuzz/target/x86_64-unknown-linux-gnu/release
logs=fuzz/target/logs
mkdir -p "$logs"
failed=()
printf '\n%-14s %8s %12s %9s  %s\n' target seconds executions exec/s crashes
for t in "${targets[@]}"; do
    mkdir -p "fuzz/target/corpus/$t" "fuzz/artifacts/$t" "fuzz/corpus/$t"
    log="$logs/$t.log"
    started=$SECONDS
    status=0
    # The working corpus comes first: libFuzzer adds what it finds there,
    # and only reads the committed one.
    "$bin/$t" -max_total_time="$seconds" -timeout=25 -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$t/" \
        "fuzz/target/corpus/$t" "fuzz/corpus/$t" >"$log" 2>&1 || status=$?
    elapsed=$((SECONDS - started))
    # "Done N runs in S second(s)" when the time ran out; the stat lines
    # are printed after a crash too.
    done_line=$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -n 1 || true)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    if [ -n "$done_line" ]; then
        elapsed=$(sed -E 's/^Done [0-9]+ runs in ([0-9]+) second.*/\1/' <<<"$done_line")
    fi
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    # A committed crasher that still crashes is named as such.
    if [ -n "$artifact" ]; then
        for committed in "fuzz/corpus/$t"/*; do
            if cmp -s "$committed" "$artifact"; then
                artifact="$artifact (= $committed)"
                break
            fi
        done
    fi
    if [ "$status" -ne 0 ] || [ -n "$artifact" ]; then
        crashes="1: ${artifact:-no artifact, see $log}"
        failed+=("$t")
    else
        crashes=0
    fi
    printf '%-14s %8s %12s %9s  %s\n' "$t" "$elapsed" "${runs:--}" "${rate:--}" "$crashes"
done

if [ ${#failed[@]} -gt 0 ]; then
    printf '\nCrashed: %s (logs in %s; replay one input with %s/<target> <file>)\n' \
        "${failed[*]}" "$logs" "$bin" >&2
    exit 1
fi
