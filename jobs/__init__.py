"""Background work shared by both apps: how a change asks for work to run in a worker.

The lowest Django app: it imports neither ``annotations`` nor ``training``. Services record the need for
work with :func:`jobs.dispatch.enqueue` by task *name*, so no service imports a ``tasks`` module and the
web process never loads the code that runs in workers.
"""
