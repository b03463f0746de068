#!/usr/bin/env bash
# Schemathesis against a fresh `suanwang serve`: every phase (examples,
# coverage, fuzzing, stateful), every check, at least 50 examples per
# operation, once as a tenant and once as the operator. Exits non-zero on
# any failure.
#
#   scripts/schemathesis.sh [BINARY]     (default: target/release/suanwang)
#
# Environment: SUANWANG_BIN (the binary, if not $1), SCHEMATHESIS_VENV
# (where schemathesis is installed; default target/schemathesis-venv),
# SCHEMATHESIS_EXAMPLES (examples per operation, default 50), SCHEMATHESIS_SEED
# (default 1: the same cases every run).
set -euo pipefail

# Pinned: the CLI's flags changed between major versions (v3 -> v4).
SCHEMATHESIS_VERSION=4.32.5

root=$(cd "$(dirname "$0")/.." && pwd)
binary=${1:-${SUANWANG_BIN:-$root/target/release/suanwang}}
venv=${SCHEMATHESIS_VENV:-$root/target/schemathesis-venv}
examples=${SCHEMATHESIS_EXAMPLES:-50}
seed=${SCHEMATHESIS_SEED:-1}
[ -x "$binary" ] || { echo "schemathesis.sh: no binary at $binary (cargo build --release)" >&2; exit 2; }

if [ "$("$venv/bin/schemathesis" --version 2>/dev/null | awk '{print $NF}')" != "$SCHEMATHESIS_VERSION" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

work=$(mktemp -d -t suanwang-schemathesis-XXXXXX)
server=
cleanup() {
    if [ -n "$server" ]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

operator="swt_$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
# A rate limit this run never meets: 429 is documented, but a run that
# meets it tests the limiter, not the API.
cat >"$work/serve.toml" <<CONFIG
rate_limit_per_s = 1000000
rate_limit_burst = 1000000
CONFIG
SUANWANG_OPERATOR_TOKEN=$operator SUANWANG_LOG=warn \
    "$binary" serve --listen 127.0.0.1:0 --data-dir "$work/data" --config "$work/serve.toml" \
    >"$work/serve.out" 2>"$work/serve.err" &
server=$!
base=
for _ in $(seq 1 300); do
    base=$(sed -n 's|^suanwang serving on \(http://[^ ]*\).*|\1|p' "$work/serve.out" | head -1)
    [ -n "$base" ] && curl -fsS "$base/readyz" >/dev/null 2>&1 && break
    kill -0 "$server" 2>/dev/null || { cat "$work/serve.err" >&2; exit 1; }
    base=
    sleep 0.1
done
[ -n "$base" ] || { echo "schemathesis.sh: the server never became ready" >&2; cat "$work/serve.err" >&2; exit 1; }

tenant=$(curl -fsS -X POST "$base/v1/tenants" -H "Authorization: Bearer $operator" \
    -H 'Content-Type: application/json' -d '{"name": "schemathesis"}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')

# Schemathesis keeps its example database where it runs: in the temp dir.
export SCHEMATHESIS_HOOKS="$root/scripts/schemathesis_hooks.py"
cd "$work"
# Something for the operations on one job or one site to find.
provider=$(curl -fsS -X POST "$base/v1/providers" -H "Authorization: Bearer $operator" \
    -H 'Content-Type: application/json' -d '{"name": "schemathesis"}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
site=$(curl -fsS -X POST "$base/v1/sites" -H "Authorization: Bearer $provider" \
    -H 'Content-Type: application/json' -d '{"name": "schemathesis", "region": "shanghai"}')
SUANWANG_SCHEMATHESIS_SITE=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["id"])' "$site")
site_token=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["token"])' "$site")
SUANWANG_SCHEMATHESIS_JOB=$(curl -fsS -X POST "$base/v1/jobs" -H "Authorization: Bearer $tenant" \
    -H 'Content-Type: application/json' \
    -d '{"name": "schemathesis", "tasks": 3, "resources": {"kind": "cpu"}, "run": {"command": "true"},
         "hours": 1, "bid_yuan_per_unit_hour": 1, "origin": "shanghai"}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
export SUANWANG_SCHEMATHESIS_SITE SUANWANG_SCHEMATHESIS_JOB

status=0
# As the tenant and the operator (what issue 9 asks), and as the provider
# and its site, so that their operations are tested past the 404 too.
for who in tenant operator provider site; do
    case $who in
        tenant) token=$tenant ;;
        operator) token=$operator ;;
        provider) token=$provider ;;
        site) token=$site_token ;;
    esac
    echo "== schemathesis as the $who"
    "$venv/bin/schemathesis" --config-file "$root/scripts/schemathesis.toml" run "$base/v1/openapi.json" \
        --url "$base" \
        --header "Authorization: Bearer $token" \
        --phases examples,coverage,fuzzing,stateful \
        --checks all \
        --max-examples "$examples" \
        --seed "$seed" \
        --workers 1 \
        --request-timeout 40 \
        --report junit --report-dir "$root/target/schemathesis/$who" \
        || status=1
done
if [ "$status" -ne 0 ]; then
    echo "schemathesis.sh: failures; the server's log:" >&2
    tail -50 "$work/serve.err" >&2
fi
exit "$status"
