#!/usr/bin/env bash
# The benchmark of DESIGN.md §9: pass-through throughput against PgBouncer, the cost of encryption,
# memory per idle connection, all measured in one run. See bench/main.go for what each number means.
#
#   bash bench/run.sh                      # about 7 minutes with the defaults
#   BENCH_SECONDS=3 bash bench/run.sh      # quick look (noisier)
#
# Settings: BENCH_SECONDS (10 per run), BENCH_ROUNDS (2), BENCH_IDLE (2000), BENCH_SCALE (10);
# BENCH_FLEPROXY=/path/to/fleproxy measures that binary instead of building ./cmd/fleproxy.
# Needs Go, gcc and Debian's postgresql-15; installs PgBouncer (and PostgreSQL 15) when missing and
# run as root. Exit status: 0 when everything was measured (targets met or not), 1 when something
# could not be measured, 2 for an invalid setting.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || missing+=(postgresql-15)
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "bench: ${missing[*]} not installed; as root: apt-get install ${missing[*]}" >&2
		exit 1
	fi
	echo "bench: installing ${missing[*]}" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Thousands of idle connections: every one is a socket in the client, two in the proxy.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -z "${BENCH_FLEPROXY:-}" ]; then
	go build -o "$tmp/fleproxy" ./cmd/fleproxy
	export BENCH_FLEPROXY="$tmp/fleproxy"
fi
go build -o "$tmp/bench" ./bench
rc=0
"$tmp/bench" || rc=$?
exit "$rc"
