#!/usr/bin/env bash
# Regression check: a small CartPole sweep (GA, random search and ES, 5 seeds, 500k frames each) and the speed
# benchmark's CartPole sections, compared with the committed baseline results/baselines/ci_cartpole.
# About a minute on 2 cores. Exit status: 0 no regression, 1 a regression (a statistically supported score
# drop beyond the tolerance, a throughput drop below half the baseline on the same machine, a benchmark
# ratio below half the baseline's, or an algorithm whose runs all failed), 2 the check itself failed.
#
#   scripts/regression_check.sh                  # the check (what CI runs); extra args go to `analyze compare`,
#                                                #   e.g. --markdown regression.md (a PR comment), --no-history
#   scripts/regression_check.sh --promote        # re-make the baseline the same way, then commit it:
#                                                #   git add results/baselines/ci_cartpole
set -euo pipefail
cd "$(dirname "$0")/.."

BASELINE=ci_cartpole
work=$(mktemp -d "${TMPDIR:-/tmp}/regression_check.XXXXXX")
trap 'rm -rf "$work"' EXIT

mode=compare
if [[ "${1:-}" == "--promote" ]]; then
  mode=promote
  shift
fi

echo "regression check: CartPole sweep (ga, random, es; seeds 0-4; 500k frames) ..." >&2
if ! python -m neuroevo_bench -m algo=ga,random,es env=CartPole seed=0,1,2,3,4 budget.frames=500000 \
    eval.every_frames=100000 progress_every_s=1000 name=ci_check "hydra.sweep.dir=$work/runs" \
    '~hydra.callbacks.analyze' >"$work/sweep.log" 2>&1; then
  tail -n 40 "$work/sweep.log" >&2
  echo "regression check: the sweep failed (log above)" >&2
  exit 2
fi

echo "regression check: speed benchmark (ga_vs_naive, eval_vs_ideal, es_vs_ga) ..." >&2
if ! python -m neuroevo_bench.bench --only ga_vs_naive eval_vs_ideal es_vs_ga --json "$work/bench.json" >"$work/bench.log" 2>&1; then
  cat "$work/bench.log" >&2
  echo "regression check: the speed benchmark failed (log above)" >&2
  exit 2
fi

# (no exec: the EXIT trap must still remove the work directory)
if [[ $mode == promote ]]; then
  python -m neuroevo_bench.analyze promote "$work/runs" --name "$BASELINE" --bench "$work/bench.json" --force "$@"
else
  python -m neuroevo_bench.analyze compare "$work/runs" --baseline "$BASELINE" --bench "$work/bench.json" "$@"
fi
