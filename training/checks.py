"""System checks: a misconfigured model fails `manage.py check` (and start-up) with a clear message."""

from pathlib import Path

from django.conf import settings
from django.core.checks import Error, register


@register()
def base_model_configured(app_configs, **kwargs):
    ref = settings.T2G_BASE_MODEL
    if ref and not (Path(ref).expanduser() / "config.json").is_file():
        return [
            Error(
                f"T2G_BASE_MODEL={ref!r} is not a local model folder (no config.json there).",
                hint="Point it at a folder saved with save_pretrained, or unset it for the embedded SmolLM2.",
                id="t2g.E001",
            )
        ]
    return []
