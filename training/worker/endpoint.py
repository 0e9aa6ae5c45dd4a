"""The OpenAI-compatible endpoint's Django side: keys, model names, loading versions, accounting.

The HTTP server and the scheduler are the core's (:mod:`text2grad.openai_server`, no Django);
this module is the :class:`~text2grad.openai_server.Backend` it asks. It runs in its own process
(``manage.py serve_openai``, the ``endpoint`` role of ``scripts/run.sh`` and docker-compose), never in the
web process, which imports no torch.

- A key is checked on every request (``training.services.api_keys``): a revoked key stops working at
  once, in every endpoint process. Rate limits count in the shared cache.
- A model name is a version the key may use, or a project's alias of the active version; the alias is
  resolved per request, so a promotion or roll-back reaches the next request.
- Versions load from the artifact store like a generation worker's (``runtime.base_dir`` /
  ``adapter_dir``), each into its own engine, the base and tokenizer shared by all.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Hashable

from django.conf import settings
from django.db import connections

from text2grad import model_store
from text2grad.openai_server import ApiError, make_server, model_not_found
from training.models import ApiKey, ModelVersion
from training.services import api_keys

from .runtime import adapter_dir, base_dir, configure_threads

logger = logging.getLogger(__name__)


class StudioBackend:
    """Keys, model names and versions from the studio's database and artifact store."""

    def __init__(self) -> None:
        configure_threads()
        self.base = base_dir()
        self.tokenizer = model_store.load_tokenizer(self.base)
        config = json.loads((self.base / "config.json").read_text())
        self.context_length = int(config.get("max_position_embeddings") or 2048)
        self.max_tokens = settings.T2G_ENDPOINT_MAX_TOKENS

    def authenticate(self, api_key: str, ip: str | None) -> ApiKey:
        key = api_keys.api_key_authenticate(api_key)
        if key is None:
            api_keys.api_key_record_refusal(key=None, reason="key", detail=api_key[:12], ip=ip)
            raise ApiError(
                401,
                f"Incorrect API key provided: {api_key[:8]}****. Create one on the API keys page.",
                code="invalid_api_key",
            )
        return key

    def admit(self, principal: ApiKey, ip: str | None) -> None:
        wait_s = api_keys.rate_limit_admit(principal)
        if wait_s:
            api_keys.api_key_record_refusal(key=principal, reason="rate", detail="rate limit", ip=ip)
            raise ApiError(
                429,
                f"Rate limit reached: {principal.rate_limit_per_minute} requests a minute for this key. "
                f"Try again in {wait_s} s.",
                type="requests",
                code="rate_limit_exceeded",
                headers={"Retry-After": str(wait_s)},
            )

    def list_models(self, principal: ApiKey) -> list[dict]:
        return [
            {"id": m.id, "created": int(m.version.created_at.timestamp()), "owned_by": m.owned_by}
            for m in api_keys.api_key_models(principal)
        ]

    def resolve(self, principal: ApiKey, model: str, ip: str | None) -> Hashable:
        served = api_keys.api_key_resolve(principal, model)
        if served is None:
            api_keys.api_key_record_refusal(key=principal, reason="model", detail=model, ip=ip)
            raise model_not_found(model)
        # A version's adapter never changes once published: its id names the loaded engine.
        return served.version.pk

    def load(self, model_key: Hashable):
        try:
            version = ModelVersion.objects.get(pk=model_key)
            folder = adapter_dir(version) if version.has_adapter else None
            return model_store.load(self.base, folder)
        finally:
            connections.close_all()

    def record(self, principal: ApiKey, *, endpoint: str, model: str, usage: dict, ip: str | None) -> None:
        api_keys.api_key_record_use(
            key=principal,
            endpoint=endpoint,
            model=model,
            prompt_tokens=usage["prompt_tokens"],
            completion_tokens=usage["completion_tokens"],
            ip=ip,
        )

    def release(self) -> None:
        # Each request runs in a thread of its own: its connection must not outlive it.
        connections.close_all()


def endpoint_server(*, host: str, port: int):
    """The endpoint's HTTP server, ready to ``serve_forever()``."""
    return make_server(
        StudioBackend(),
        host=host,
        port=port,
        max_batch=settings.T2G_ENDPOINT_BATCH,
        max_models=settings.T2G_ENDPOINT_MAX_MODELS,
    )
