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
  # Each supervisor stops its worker's whole process group (the main process and its pool children),
  # killing what is left after a grace period; the web server is a plain child.
  kill "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 1 15); do kill -0 "${pids[@]}" 2>/dev/null || break; sleep 1; done
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
# a subshell. COMMAND runs in a process group of its own (setsid), so the worker and its pool children
# are stopped together: TERM to the group on Ctrl-C (KILL after STOP_GRACE_S), and whatever the group
# still holds when the worker's main process dies (killed, crashed) is killed before the restart. Pool
# children also die with their parent on their own (PR_SET_PDEATHSIG, text2grad_web/celery.py).
STOP_GRACE_S=${STOP_GRACE_S:-10}
supervise() {
  local name=$1 logfile=$2
  shift 2
  (
    child=0
    stop_group() {
      [ "$child" -gt 0 ] || exit 0
      kill -TERM -- "-$child" 2>/dev/null
      for _ in $(seq 1 "$STOP_GRACE_S"); do kill -0 -- "-$child" 2>/dev/null || exit 0; sleep 1; done
      kill -KILL -- "-$child" 2>/dev/null
      exit 0
    }
    trap stop_group TERM INT
    delay=1
    while true; do
      started=$(date +%s)
      setsid "$@" >>"$logfile" 2>&1 &
      child=$!
      wait "$child"
      code=$?
      kill -KILL -- "-$child" 2>/dev/null && log "$name left processes behind; killed its process group"
      child=0
      up=$(( $(date +%s) - started ))
      [ "$up" -ge 60 ] && delay=1
      log "$name exited with status $code after ${up}s; restarting in ${delay}s (log: $logfile)"
      sleep "$delay" &
      wait $!
      delay=$(( delay * 2 > 60 ? 60 : delay * 2 ))
    done
  ) &
  pids+=($!)
}

# Threads per lane, so the lanes do not oversubscribe the cores (every lane at its default would start
# one torch/OpenMP thread per core, and two busy lanes on two cores then run each other several times
# slower). Interactive work (rewards, Suggest spans) is short: one thread per pool process. Of the
# remaining cores a third goes to generation and the rest to training, at least one each; on 2 cores
# that is 1 + 1 (+ the interactive lane's short bursts). T2G_{INTERACTIVE,GENERATION,TRAINING}_THREADS
# override each.
CORES=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
GEN_THREADS=${T2G_GENERATION_THREADS:-$(( (CORES - 1) / 3 > 1 ? (CORES - 1) / 3 : 1 ))}
TRAIN_THREADS=${T2G_TRAINING_THREADS:-$(( CORES - 1 - GEN_THREADS > 1 ? CORES - 1 - GEN_THREADS : 1 ))}
INTERACTIVE_THREADS=${T2G_INTERACTIVE_THREADS:-1}
threads() {  # the environment that caps one process's compute threads (torch, OpenMP, BLAS, tokenizers)
  echo "T2G_TORCH_THREADS=$1 OMP_NUM_THREADS=$1 MKL_NUM_THREADS=$1 OPENBLAS_NUM_THREADS=$1" \
    "TOKENIZERS_PARALLELISM=false"
}
log "threads per process on $CORES cores: interactive $INTERACTIVE_THREADS, generation $GEN_THREADS," \
  "training $TRAIN_THREADS"

# Lanes (docs/architecture.md): interactive work (token rewards, Suggest spans, exports) has a worker of
# its own, so it never waits behind generation or training; generation and training each keep their model
# loaded between tasks. Gossip, mingle and event heartbeats are off: nothing here uses them, and their
# reconnection paths crash a worker on a broker outage (liveness: the workers' own beats and probe tasks,
# jobs/liveness.py).
# -B: the interactive worker also runs the beat (CELERY_BEAT_SCHEDULE in settings), and it reads the
# housekeeping queue the beat's ticks go to, beside its own.
CELERY=("$BIN/celery" -A text2grad_web worker --without-gossip --without-mingle --without-heartbeat -l info)
# shellcheck disable=SC2046  # threads' words are NAME=VALUE assignments for env
supervise "interactive worker" var/log/worker-interactive.log env $(threads "$INTERACTIVE_THREADS") \
  "${CELERY[@]}" -B -n "interactive@%h" -Q interactive,housekeeping -c "${T2G_INTERACTIVE_CONCURRENCY:-2}"
# shellcheck disable=SC2046
supervise "generation worker" var/log/worker.log env $(threads "$GEN_THREADS") \
  "${CELERY[@]}" -n "default@%h" -Q default,generation -c 1
# shellcheck disable=SC2046
supervise "training worker" var/log/worker-training.log env $(threads "$TRAIN_THREADS") \
  "${CELERY[@]}" -n "training@%h" -Q training -c 1
# The endpoint role: an OpenAI-compatible API over the studio's versions (docs/api.md, "The OpenAI-compatible
# endpoint"), its own process with the generation engine (the web server imports no torch). T2G_ENDPOINT=0
# leaves it out (it keeps a model loaded).
ENDPOINT_PORT=${T2G_ENDPOINT_PORT:-8001}
if [ "${T2G_ENDPOINT:-1}" != "0" ]; then
  # shellcheck disable=SC2046
  supervise "endpoint" var/log/endpoint.log env $(threads "$GEN_THREADS") \
    "$BIN/python" manage.py serve_openai --host "$HOST" --port "$ENDPOINT_PORT"
fi

# Machine critics run code in the sandbox (its own processes, with their own limits) or wait on an LLM
# endpoint: a lane of their own, one run at a time, one compute thread.
# shellcheck disable=SC2046
supervise "critics worker" var/log/worker-critics.log env $(threads 1) \
  "${CELERY[@]}" -n "critics@%h" -Q critics -c 1
$BIN/gunicorn text2grad_web.wsgi -c python:text2grad_web.gunicorn_conf -b "$HOST:$PORT" --access-logfile - &
web=$!
pids+=($web)

echo
echo "Text2Grad Studio is running at http://$HOST:$PORT/  (worker logs: var/log/worker*.log)"
[ "${T2G_ENDPOINT:-1}" != "0" ] && echo "OpenAI-compatible endpoint: http://$HOST:$ENDPOINT_PORT/v1 (keys: Training → API keys)"
[ -f var/demo-credentials.txt ] && cat var/demo-credentials.txt
echo "Press Ctrl-C to stop."
wait "$web"
code=$?
[ "$stopping" -eq 0 ] && log "web server exited with status $code; stopping the workers"
exit "$code"
