#!/bin/sh
# Runs ProVerif on the Sovereign-Chain models and checks every result against
# the expectation written in the model (its "EXPECT:" line, one word per query,
# in order: "true" = proved, "false" = an attack or a trace was found).
# The library is sc.pvl (v1) unless the model names another on a "LIB:" line
# (the v2 models: "LIB: sc2.pvl"), a path relative to formal/.
#
#   formal/run.sh                  every model and negative control
#   formal/run.sh main neg/main-no-name-check     only these (paths without .pv)
#
# For each model it writes formal/results/<model>.txt: the ProVerif version,
# the run time, ProVerif's verification summary and, when a query is false,
# whether ProVerif rebuilt an attack trace.  The full output goes to
# $SC_PV_LOG (default: a temporary directory), as it is long.  Exit status:
# 0 when every result is as expected, 1 when one is not, 2 when ProVerif is
# missing.  ProVerif is not part of this repository: build ProVerif 2.05 from
# its sources and put the `proverif` binary on PATH (see formal/README.md).
set -u
here=$(cd "$(dirname "$0")" && pwd)
cd "$here" || exit 2

if ! command -v proverif >/dev/null 2>&1; then
  echo "run.sh: error: 'proverif' is not on PATH; build ProVerif 2.05 (see formal/README.md) and retry" >&2
  exit 2
fi
version=$(proverif --help 2>&1 | head -n 1 | sed 's/\. Cryptographic.*//')
case "$version" in
  *2.05*) ;;
  *) echo "run.sh: warning: the recorded results were made with ProVerif 2.05, this is: $version" >&2 ;;
esac

timeout_s=${SC_PV_TIMEOUT:-3600}
logdir=${SC_PV_LOG:-$(mktemp -d)}
mkdir -p results/neg "$logdir/neg"

if [ $# -gt 0 ]; then
  models="$*"
else
  models=$(ls *.pv neg/*.pv | sed 's/\.pv$//')
fi

status=0
for m in $models; do
  file="$m.pv"
  if [ ! -f "$file" ]; then
    echo "run.sh: error: no model $file" >&2
    status=1
    continue
  fi
  expect=$(sed -n 's/.*EXPECT: *\([a-z ]*\)\*).*/\1/p' "$file" | head -n 1 | xargs)
  if [ -z "$expect" ]; then
    echo "run.sh: error: $file has no EXPECT line" >&2
    status=1
    continue
  fi
  lib=$(sed -n 's/.*LIB: *\([^ ]*\.pvl\).*/\1/p' "$file" | head -n 1)
  lib=${lib:-sc.pvl}
  if [ ! -f "$lib" ]; then
    echo "run.sh: error: $file names the library $lib, which does not exist" >&2
    status=1
    continue
  fi
  start=$(date +%s)
  timeout "$timeout_s" nice proverif -lib "$lib" "$file" > "$logdir/$m.log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  got=$(sed -n 's/^RESULT .* is \(true\|false\)\.$/\1/p; s/^RESULT .* cannot be proved\.$/unproved/p' "$logdir/$m.log" | xargs)
  if [ "$rc" -ne 0 ]; then
    verdict="FAILED (proverif exit $rc$( [ "$rc" -eq 124 ] && echo ", timeout ${timeout_s} s"))"
    status=1
  elif [ "$got" = "$expect" ]; then
    verdict="as expected"
  else
    verdict="UNEXPECTED (expected: $expect)"
    status=1
  fi
  {
    echo "model: formal/$file"
    [ "$lib" = sc.pvl ] || echo "library: formal/$lib"
    echo "proverif: $version"
    echo "wall time: ${secs} s (nice, on a shared machine)"
    echo "expected: $expect"
    echo "got:      $got"
    echo "verdict:  $verdict"
    echo
    sed -n '/^Verification summary:/,/^-----*$/p' "$logdir/$m.log"
    # for a query that is false: whether ProVerif rebuilt a concrete attack trace
    grep -E '^(A trace has been found|Could not find a trace)' "$logdir/$m.log" | sort | uniq -c
  } > "results/$m.txt"
  printf '%-40s %6s s  %s\n' "$m" "$secs" "$verdict"
done
exit $status
