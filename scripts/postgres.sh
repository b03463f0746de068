#!/usr/bin/env bash
# Installs (Debian's package) and starts a local PostgreSQL for suanwang's
# tests and benchmarks, creates the role and database `suanwang`, and prints
# the URL to pass as SUANWANG_TEST_POSTGRES or --db. Run as root.
# Data-protecting defaults (fsync, synchronous_commit) are left as they are.
set -euo pipefail

if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    echo "installing PostgreSQL (apt-get)..." >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi
version=$(ls /etc/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" && $4 == "online" {found=1} END {exit !found}'; then
    pg_ctlcluster "$version" main start >&2
fi
for _ in $(seq 1 30); do
    pg_isready -h 127.0.0.1 -p 5432 -q && break
    sleep 1
done
pg_isready -h 127.0.0.1 -p 5432 >&2
runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -c "DO \$\$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'suanwang') THEN
        CREATE ROLE suanwang LOGIN SUPERUSER PASSWORD 'suanwang';
    END IF;
END \$\$;" >&2
if ! runuser -u postgres -- psql -tAc "SELECT 1 FROM pg_database WHERE datname = 'suanwang'" | grep -q 1; then
    runuser -u postgres -- createdb -O suanwang suanwang >&2
fi
echo "postgres://suanwang:suanwang@127.0.0.1:5432/suanwang"
