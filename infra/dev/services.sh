#!/usr/bin/env bash
# Make sure the services the integration tests use run on this machine: PostgreSQL (db `test`,
# trust auth on 127.0.0.1:5432) and Redis (127.0.0.1:6379); and a Compose client, which the
# tests use to validate docker-compose.yml (`docker compose` v2, or Debian's docker-compose). Starts them when installed but
# stopped; installs them with apt when missing and we are root. Never fails the build: tests that
# need an absent service skip and say why (CI sets GEDRAG_TEST_REQUIRE_SERVICES=1 to fail instead).
set -u
up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! up 5432; then
  if ! command -v pg_ctlcluster >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  if command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    sleep 2
    su postgres -c "psql -qtc \"SELECT 1 FROM pg_database WHERE datname='test'\" | grep -q 1 || createdb test" 2>/dev/null || true
  fi
fi
if ! up 6379; then
  if ! command -v redis-server >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  fi
  if command -v redis-server >/dev/null; then
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
    sleep 1
  fi
fi
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
  fi
fi
for p in 5432 6379; do
  if up "$p"; then echo "services: 127.0.0.1:$p up"; else echo "services: 127.0.0.1:$p DOWN (tests that need it will skip)"; fi
done
exit 0
