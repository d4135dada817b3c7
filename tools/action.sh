#!/usr/bin/env bash
# The GitHub Action's main step (action.yml): deploy validate|plan|apply in the current directory
# (the workspace), with the compiled binary's permissions (tools/compile.ts; a test keeps the two
# lists equal). Inputs arrive as INPUT_* variables; the output goes to stdout (annotations
# included) and to $GITHUB_STEP_SUMMARY; plan sets changes=true|false in $GITHUB_OUTPUT.
set -euo pipefail
set -f # inputs are split on whitespace, never glob-expanded: -n 'etl/*' stays a pattern
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
permissions=(--allow-net --allow-read=. --allow-write=. "--allow-env=PREFECT_*,DEPLOY_*,NO_COLOR" --allow-run=docker,sh)

command="${INPUT_COMMAND:-plan}"
case "$command" in
  validate | plan | apply) ;;
  *)
    echo "::error title=deploy.ts::The command input must be validate, plan or apply, not \"$command\"."
    exit 1
    ;;
esac
args=("$command")
read -r -d '' -a paths <<<"${INPUT_PATHS:-}" || true
args+=("${paths[@]}")
if [ -n "${INPUT_ENV:-}" ]; then args+=(--env "$INPUT_ENV"); fi
if [ "$command" != validate ] && [ -n "${INPUT_API_URL:-}" ]; then
  args+=(--api-url "$INPUT_API_URL")
fi
if [ -n "${INPUT_OUT:-}" ]; then
  if [ "$command" != plan ]; then
    echo "::error title=deploy.ts::The out input is for plan, not $command."
    exit 1
  fi
  args+=(--out "$INPUT_OUT")
fi
args+=(--format github)
if [ "$command" = plan ]; then args+=(--detailed-exitcode); fi
read -r -d '' -a extra <<<"${INPUT_ARGS:-}" || true
args+=("${extra[@]}")

output="$(mktemp)"
trap 'rm -f "$output"' EXIT
set +e
NO_COLOR=1 "$here/tools/deno" run --frozen --config "$here/deno.json" "${permissions[@]}" \
  "$here/deploy.ts" "${args[@]}" | tee "$output"
status=${PIPESTATUS[0]}
set -e

if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  {
    echo "### deploy $command"
    echo
    echo '```diff'
    grep -v '^::' "$output" || true
    echo '```'
  } >>"$GITHUB_STEP_SUMMARY"
fi
if [ "$command" = plan ]; then
  changes=false
  if [ "$status" -eq 2 ]; then changes=true status=0; fi
  if [ -n "${GITHUB_OUTPUT:-}" ] && [ "$status" -eq 0 ]; then
    echo "changes=$changes" >>"$GITHUB_OUTPUT"
  fi
fi
exit "$status"
