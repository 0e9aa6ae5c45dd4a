#!/usr/bin/env bash
# Start the web server and the Celery workers together on the embedded defaults; Ctrl-C stops them all.
# The web server is the one process the app cannot do without: if it stops, everything stops. A worker
# that dies is restarted with backoff (logged to var/log/supervisor.log) while the web server stays up.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
mkdir -p var/log
SUPERVISOR_LOG=var/log/supervisor.log

log() { echo "$(date -u +%FT%TZ) $*" | tee -a "$SUPERVISOR_LOG" >&2; }

pids=()
stopping=0
cleanup() {
  stopping=1
  trap - INT TERM EXIT
  kill "${pids[@]}" 2>/dev/null || true
  # A worker in the middle of a long task would finish it first; give it a moment, then stop it.
  for _ in 1 2 3 4 5; do kill -0 "${pids[@]}" 2>/dev/null || break; sleep 1; done
  for pid in "${pids[@]}"; do pkill -KILL -P "$pid" 2>/dev/null || true; done
  kill -KILL "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
# Ctrl-C (or a TERM from a supervisor) is how this is meant to stop: clean up and exit 0, so `make run`
# ends quietly instead of reporting "make: *** [run] Error 1".
trap 'cleanup; exit 0' INT TERM
trap cleanup EXIT

# Nothing runs before the workers start: jobs still marked running were cut off by the last stop.
$BIN/python manage.py recover_jobs

# supervise NAME LOGFILE COMMAND...: run COMMAND, and when it exits start it again after a backoff that
# doubles (1 s .. 60 s) while it keeps dying quickly, and resets once it stayed up for a minute. Runs in
# a subshell; the subshell forwards TERM to the command, so Ctrl-C stops both.
supervise() {
  local name=$1 logfile=$2
  shift 2
  (
    child=0
    trap '[ "$child" -gt 0 ] && kill -TERM "$child" 2>/dev/null; wait "$child" 2>/dev/null; exit 0' TERM INT
    delay=1
    while true; do
      started=$(date +%s)
      "$@" >>"$logfile" 2>&1 &
      child=$!
      wait "$child"
      code=$?
      up=$(( $(date +%s) - started ))
      [ "$up" -ge 60 ] && delay=1
      log "$name exited with status $code after ${up}s; restarting in ${delay}s (log: $logfile)"
      sleep "$delay"
      delay=$(( delay * 2 > 60 ? 60 : delay * 2 ))
    done
  ) &
  pids+=($!)
}

# Lanes (docs/architecture.md): interactive work (token rewards, Suggest spans, exports) has a worker of
# its own, so it never waits behind generation or training; generation and training each keep their model
# loaded between tasks. Gossip, mingle and event heartbeats are off: nothing here uses them, and their
# reconnection paths crash a worker on a broker outage (liveness is the workers' own WorkerBeat rows).
# -B: the interactive worker also runs the beat (CELERY_BEAT_SCHEDULE in settings).
CELERY=("$BIN/celery" -A text2grad_web worker --without-gossip --without-mingle --without-heartbeat -l info)
supervise "interactive worker" var/log/worker-interactive.log \
  "${CELERY[@]}" -B -n "interactive@%h" -Q interactive -c "${T2G_INTERACTIVE_CONCURRENCY:-2}"
supervise "generation worker" var/log/worker.log "${CELERY[@]}" -n "default@%h" -Q default,generation -c 1
supervise "training worker" var/log/worker-training.log "${CELERY[@]}" -n "training@%h" -Q training -c 1
$BIN/gunicorn text2grad_web.wsgi -c python:text2grad_web.gunicorn_conf -b "$HOST:$PORT" --access-logfile - &
web=$!
pids+=($web)

echo
echo "Text2Grad Studio is running at http://$HOST:$PORT/  (worker logs: var/log/worker*.log)"
[ -f var/demo-credentials.txt ] && cat var/demo-credentials.txt
echo "Press Ctrl-C to stop."
wait "$web"
code=$?
[ "$stopping" -eq 0 ] && log "web server exited with status $code; stopping the workers"
exit "$code"
