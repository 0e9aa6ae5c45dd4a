#!/usr/bin/env bash
# Start the web server and a Celery worker together on the embedded defaults; Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
mkdir -p var/log

pids=()
cleanup() {
  trap - INT TERM EXIT
  kill "${pids[@]}" 2>/dev/null || true
  # A worker in the middle of a long task would finish it first; give it a moment, then stop it.
  for _ in 1 2 3 4 5; do kill -0 "${pids[@]}" 2>/dev/null || break; sleep 1; done
  pkill -KILL -P "$(IFS=,; echo "${pids[*]}")" 2>/dev/null || true
  kill -KILL "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
# Ctrl-C (or a TERM from a supervisor) is how this is meant to stop: clean up and exit 0, so `make run`
# ends quietly instead of reporting "make: *** [run] Error 1".
trap 'cleanup; exit 0' INT TERM
trap cleanup EXIT

# Nothing runs before the workers start: jobs still marked running were cut off by the last stop.
$BIN/python manage.py recover_jobs

# One worker process per queue kind: generation and training each keep their model loaded between tasks.
# -B: this worker also runs the beat that schedules housekeeping (CELERY_BEAT_SCHEDULE in settings).
$BIN/celery -A text2grad_web worker -B -n "default@%h" -Q default,generation -c 1 -l info >>var/log/worker.log 2>&1 &
pids+=($!)
$BIN/celery -A text2grad_web worker -n "training@%h" -Q training -c 1 -l info >>var/log/worker-training.log 2>&1 &
pids+=($!)
$BIN/gunicorn text2grad_web.wsgi -c python:text2grad_web.gunicorn_conf -b "$HOST:$PORT" --access-logfile - &
pids+=($!)

echo
echo "Text2Grad Studio is running at http://$HOST:$PORT/  (worker logs: var/log/worker*.log)"
[ -f var/demo-credentials.txt ] && cat var/demo-credentials.txt
echo "Press Ctrl-C to stop."
wait -n "${pids[@]}"
