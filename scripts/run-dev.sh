#!/usr/bin/env bash
# Start web + Celery worker + Celery beat together; Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
HOST=${AETHON_HOST:-127.0.0.1}
PORT=${AETHON_PORT:-8000}
mkdir -p var/log

pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

"$VENV/bin/celery" -A aethon worker --loglevel=INFO --concurrency="${AETHON_WORKERS:-2}" \
  --max-memory-per-child="${AETHON_WORKER_MAX_MEMORY_KB:-1048576}" \
  >var/log/worker.log 2>&1 &
pids+=($!)
"$VENV/bin/celery" -A aethon beat --loglevel=INFO --pidfile= \
  >var/log/beat.log 2>&1 &
pids+=($!)

cat <<MSG

  Aethon is starting at http://$HOST:$PORT/
  Demo login: demo / aethon-demo   (also: approver, viewer — same password)
  Emails (invitations, password resets, alerts) are printed here, not sent:
  the console email backend (set DJANGO_EMAIL_BACKEND to send real mail).
  Worker and scheduler logs: var/log/worker.log, var/log/beat.log
  Press Ctrl-C to stop everything.

MSG
"$VENV/bin/python" manage.py runserver "$HOST:$PORT" &
pids+=($!)
wait -n "${pids[@]}"
echo "A process stopped; shutting the others down (see var/log/)." >&2
