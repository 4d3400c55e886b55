#!/usr/bin/env bash
# Install Neo4j's own Cypher parser (npm @neo4j-cypher/language-support, pinned by
# infra/dev/cypher/package-lock.json) for tests/unit/test_cypher_statements.py, which has every
# statement of the Neo4j graph store parsed and checked by it. Needs Node.js >= 20 and npm.
# Idempotent: nothing to do when the lock file is already installed. Never fails the build: the
# test skips and says why when Node.js or the package is missing (CI sets
# GEDRAG_TEST_REQUIRE_SERVICES=1 so that it fails instead).
set -u
cd "$(dirname "$0")/cypher" || exit 0
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "cypher: Node.js >= 20 and npm are not installed; the Cypher parser test will skip"
  exit 0
fi
stamp="node_modules/.installed-$(sha1sum package-lock.json | cut -c1-12)"
if [ ! -e "$stamp" ]; then
  # The package declares node >= 24.11.1 but runs on Node.js 20 (the unit test proves it on
  # every run): --engine-strict=false keeps npm's warning a warning.
  npm ci --no-audit --no-fund --engine-strict=false --loglevel=error && touch "$stamp"
fi
echo "cypher: @neo4j-cypher/language-support $(node -p "require('./node_modules/@neo4j-cypher/language-support/package.json').version" 2>/dev/null || echo '(not installed)') on Node.js $(node --version)"
exit 0
