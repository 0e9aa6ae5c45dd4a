"""Worker-side services: the work that loads the model (generation, token rewards, alignment, rounds).

They orchestrate the pure core in :mod:`text2grad` with the apps' rows. Only Celery tasks
(``training/tasks.py``) and management commands import this package; the web process never does
(``make lint`` checks it).
"""
