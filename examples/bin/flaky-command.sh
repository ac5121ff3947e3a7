#!/bin/sh
# Fails a given number of times, then succeeds: the seed example's flaky command.
# FLAKY_FAILURES (default 2) is how many calls fail; the count lives in FLAKY_STATE_FILE.
state="${FLAKY_STATE_FILE:-${TMPDIR:-/tmp}/wfkit-flaky-${WFKIT_RUN_ID:-default}}"
failures="${FLAKY_FAILURES:-2}"
count=$(cat "$state" 2>/dev/null || echo 0)
count=$((count + 1))
echo "$count" > "$state"
if [ "$count" -le "$failures" ]; then
  echo "flaky-command: transient failure $count of $failures" >&2
  exit 75
fi
rm -f "$state"
echo "flaky-command: ok after $count calls"
