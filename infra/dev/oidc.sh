#!/usr/bin/env bash
# Install a real OpenID Connect provider (npm oidc-provider, OpenID Certified, pinned by
# infra/dev/oidc/package-lock.json) for the single sign-on tests (tests/e2e/test_sso.py), which
# run it on loopback (infra/dev/oidc/server.mjs). Needs Node.js >= 20 and npm. Idempotent:
# nothing to do when the lock file is already installed. Never fails the build: the tests skip
# and say why when Node.js or the package is missing (CI sets GEDRAG_TEST_REQUIRE_SERVICES=1 so
# that they fail instead).
set -u
cd "$(dirname "$0")/oidc" || exit 0
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "oidc: Node.js >= 20 and npm are not installed; the single sign-on tests will skip"
  exit 0
fi
stamp="node_modules/.installed-$(sha1sum package-lock.json | cut -c1-12)"
if [ ! -e "$stamp" ]; then
  npm ci --no-audit --no-fund --loglevel=error && touch "$stamp"
fi
echo "oidc: oidc-provider $(node -p "require('./node_modules/oidc-provider/package.json').version" 2>/dev/null || echo '(not installed)') on Node.js $(node --version)"
exit 0
