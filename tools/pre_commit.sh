#!/usr/bin/env bash
# The pre-commit hook (.pre-commit-hooks.yaml): deploy validate on the files pre-commit passes,
# in the repository being committed, offline and read-only. Options from the hook's `args`
# (e.g. --strict) come before the files.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NO_COLOR=1 exec "$here/tools/deno" run --frozen --config "$here/deno.json" --allow-read=. \
  "--allow-env=PREFECT_*,DEPLOY_*,NO_COLOR" "$here/deploy.ts" validate "$@"
