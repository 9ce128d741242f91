#!/usr/bin/env bash
# Makes this machine ready to run or test CBS: Python venv with the project installed,
# PostgreSQL and RabbitMQ running on loopback (installed with apt on Debian when missing).
# Safe to run again: each step checks before it acts.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[prepare]\033[0m %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=0
apt_install() {
  command -v apt-get >/dev/null || { echo "$* missing and no apt-get here: install it by hand" >&2; exit 1; }
  if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  say "installing Python 3.11+"; apt_install python3 python3-venv python3-dev
  PYTHON=python3
fi

# --- PostgreSQL -------------------------------------------------------------------------
if ! command -v pg_ctlcluster >/dev/null; then
  say "installing PostgreSQL"; apt_install postgresql
  fresh_pg=1
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  say "starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if [ "${fresh_pg:-0}" = 1 ]; then
  # A fresh Debian cluster asks passwords on TCP; local development trusts loopback only.
  hba=$(ls /etc/postgresql/*/main/pg_hba.conf | head -n1)
  as_root sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main reload
fi
pg_isready -q -h 127.0.0.1 -p 5432 || { echo "PostgreSQL is not answering on 127.0.0.1:5432" >&2; exit 1; }
# A server without autovacuum never analyzes a table, and the workers' statements, prepared once
# per pooled connection, keep the plans PostgreSQL made for them on empty tables: the ledger's
# group commit came to read its whole inbox each time (bus/db.py, UPKEEP_SETTINGS). Some machines
# of this kind turn it off in a conf.d file; ALTER SYSTEM overrides that, and a reload applies it.
pg_admin() { psql -q -X -h 127.0.0.1 -p 5432 -U postgres -d postgres -At "$@"; }
if [ "$(pg_admin -c 'SHOW autovacuum')" != on ]; then
  say "turning PostgreSQL's autovacuum on (it was off: tables would never be analyzed)"
  pg_admin -c 'ALTER SYSTEM SET autovacuum = on' -c 'SELECT pg_reload_conf()' >/dev/null
  for _ in $(seq 1 10); do [ "$(pg_admin -c 'SHOW autovacuum')" = on ] && break; sleep 0.5; done
  [ "$(pg_admin -c 'SHOW autovacuum')" = on ] || { echo "PostgreSQL's autovacuum is still off" >&2; exit 1; }
fi

# --- RabbitMQ ---------------------------------------------------------------------------
if ! command -v rabbitmqctl >/dev/null; then
  say "installing RabbitMQ"; apt_install rabbitmq-server
fi
# With the default soft limit of 1024 open files, RabbitMQ 3.10's file handle cache (927 handles)
# runs out once two vhosts' quorum queues, tap streams and message stores coexist, as they do in
# `make test` (the end-to-end package's and a test's own), and every process that asks it for a
# handle then waits forever: declaring a queue, `rabbitmqctl status`, the whole node (seen here on
# 2026-12-06, and on 2026-12-07, when CI's run hung in `cbs migrate` until its time ran out).
# A machine that starts RabbitMQ as root with `rabbitmq-server -detached` gets that limit (its su
# to the rabbitmq user resets the soft limit): such a node, or one that does not answer, is
# stopped here and started again with the hard limit.
MIN_RABBITMQ_FILES=10000
rabbitmq_pid() {  # the node tests and `make run` use (it listens on 5672, or is `rabbit` in epmd); empty if none
  for port in 5672 $(epmd -names 2>/dev/null | awk '$2 == "rabbit" {print $5}'); do
    pid=$(ss -Hltnp "sport = :$port" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2)
    if [ -n "$pid" ]; then echo "$pid"; return; fi
  done
}
open_files_limit() {  # the soft limit; "unlimited" as a number that passes
  awk '/^Max open files/ {print ($4 == "unlimited" ? 1000000000 : $4)}' "/proc/$1/limits" 2>/dev/null || true
}
# Bounded twice, and with no pipe: rabbitmqctl runs its Erlang CLI through su, in a session of its
# own, which `timeout` cannot kill; a pipe would wait for that CLI as long as the node hangs.
rabbitmq_answers() { timeout 90 rabbitmqctl -q status --timeout 60 >/dev/null 2>&1; }
node_pid=$(rabbitmq_pid) healthy=0
if [ -n "$node_pid" ]; then
  limit=$(open_files_limit "$node_pid")
  if [ "$limit" -lt "$MIN_RABBITMQ_FILES" ]; then
    say "restarting RabbitMQ: its limit of $limit open files is below $MIN_RABBITMQ_FILES"
  elif rabbitmq_answers; then
    healthy=1
  else
    say "restarting RabbitMQ: it does not answer"
  fi
  if [ "$healthy" = 0 ]; then
    as_root timeout 120 rabbitmqctl -q stop >/dev/null 2>&1 || true
    if kill -0 "$node_pid" 2>/dev/null; then as_root kill -9 "$node_pid" || true; fi
    for _ in $(seq 1 30); do kill -0 "$node_pid" 2>/dev/null || break; sleep 1; done
  fi
elif rabbitmq_answers; then
  healthy=1  # a node this script cannot see (no `ss` here): taken as it is
fi
if [ "$healthy" = 0 ]; then
  say "starting RabbitMQ"
  # Run as root, rabbitmq-server re-executes itself as the rabbitmq user through su, which
  # resets the soft limit: raise it in the rabbitmq user's own shell.
  start_rabbitmq='ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec rabbitmq-server -detached'
  if id rabbitmq >/dev/null 2>&1; then
    as_root su rabbitmq -s /bin/sh -c "$start_rabbitmq" || true
  else
    as_root sh -c "$start_rabbitmq" || true
  fi
fi
# `rabbitmq-server -detached` returns before the node has registered with epmd, and
# `await_startup` fails at once on a node it cannot reach: wait for the node to answer first.
for _ in $(seq 1 120); do as_root rabbitmqctl -q ping >/dev/null 2>&1 && break; sleep 1; done
as_root rabbitmqctl -q await_startup --timeout 120 >/dev/null
limit=$(open_files_limit "$(rabbitmq_pid)")
if [ -n "$limit" ] && [ "$limit" -lt "$MIN_RABBITMQ_FILES" ]; then
  echo "RabbitMQ runs with a limit of $limit open files, below $MIN_RABBITMQ_FILES: raise the rabbitmq user's hard limit (ulimit -Hn)" >&2
  exit 1
fi
# The management API: the containers' `cbs migrate` makes the broker users through it (compose.yaml),
# and a test checks that path here too. Idempotent.
# And its Prometheus exporter (port 15692): the dashboards' queue panels (deploy/prometheus), which
# tests/e2e/test_dashboards.py scrapes.
as_root rabbitmq-plugins enable --quiet rabbitmq_management rabbitmq_prometheus >/dev/null

# --- Redis (shared rate limits when CBS_REDIS_URL is set; the tests use it) ------------------
if ! command -v redis-server >/dev/null; then
  say "installing Redis"; apt_install redis-server
fi
if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  say "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  for _ in $(seq 1 20); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.5; done
fi

# --- A Unicode font for statements as PDF (api_edge/statement_doc.py; without it, Latin-1 only) ---
if [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] && command -v apt-get >/dev/null; then
  say "installing fonts-dejavu-core"; apt_install fonts-dejavu-core
fi

# --- Python environment -----------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"; "$PYTHON" -m venv .venv
fi
stamp=.venv/.cbs-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  say "installing CBS and its dependencies"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test]'
  touch "$stamp"
fi
say "ready"
