#!/usr/bin/env bash
# Installs the test OIDC providers' Node packages exactly as pinned in package-lock.json.
# CI calls this before the tests: `bash tests/oidc-provider/install.sh` (needs node >= 20 and npm).
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "error: node and npm are needed for the OIDC provider tests (apt-get install nodejs npm)" >&2
    exit 1
fi
npm ci --no-audit --no-fund --loglevel=error
node -e "import('oidc-provider').then(() => import('jose')).then(() => console.log('ok: oidc-provider and jose installed'))" 2>&1 \
    | grep -v 'Unsupported runtime'
