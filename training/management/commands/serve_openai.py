"""Serve the studio's model versions through an OpenAI-compatible API (the ``endpoint`` role)."""

import logging

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Serve /v1/models, /v1/completions and /v1/chat/completions with the studio's versions "
        "(API keys from the API keys page). Its own process: the web process imports no torch."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.T2G_ENDPOINT_HOST)
        parser.add_argument("--port", type=int, default=settings.T2G_ENDPOINT_PORT)

    def handle(self, *args, **options):
        from training.worker.endpoint import endpoint_server

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
        server = endpoint_server(host=options["host"], port=options["port"])
        host, port = server.server_address[:2]
        # Tests and supervisors wait for this line; port 0 picks a free port, printed here.
        self.stdout.write(f"OpenAI-compatible endpoint listening on http://{host}:{port}/v1", ending="\n")
        self.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
            server.scheduler.stop()
