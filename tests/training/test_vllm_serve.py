"""docs/api.md's vLLM command line, run for real: ``vllm serve BASE --enable-lora --lora-modules NAME=FOLDER``
on the embedded base and a version's adapter download folder, driven by the official ``openai`` client.

It runs only where a CUDA GPU and the optional ``vllm`` package are both present, and skips elsewhere with
the reason (this 2-core machine has neither; ``test_downloads.py`` checks the folder against vLLM's documented
requirements here). vLLM runs in fp32 so that its greedy first token can be compared with plain peft's."""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import base_model_dir
from tests.support.process import stop_process


def _missing() -> str:
    missing = []
    try:
        import torch

        if not torch.cuda.is_available():
            missing.append("no CUDA GPU")
    except ImportError:
        missing.append("no torch")
    if importlib.util.find_spec("vllm") is None:
        missing.append("the optional vllm package is not installed")
    return "; ".join(missing)


pytestmark = [
    pytest.mark.django_db,
    pytest.mark.heavy,
    pytest.mark.skipif(bool(_missing()), reason=f"vllm serve needs a CUDA GPU and vllm: {_missing()}"),
]

LORA_NAME = "t2g-lora"
MESSAGES = [{"role": "user", "content": "Name a colour."}]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _lora_on_the_base(base: Path, into: Path) -> Path:
    """A peft LoRA on the embedded base with weights off zero, so it changes what the model says."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(3)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    peft_model.save_pretrained(into)
    return into


def _peft_first_token(base: Path, adapter: Path) -> str:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), adapter
    )
    ids = tokenizer.apply_chat_template(
        MESSAGES, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )["input_ids"]
    with torch.no_grad():
        return tokenizer.decode([int(model(ids).logits[0, -1].argmax())])


def test_vllm_serves_the_adapter_download_with_enable_lora(tmp_path):
    openai = pytest.importorskip("openai")
    from training.models import ModelVersion
    from training.worker import merge

    base = base_model_dir()
    if not (base / "config.json").is_file():
        pytest.skip(f"no embedded base model at {base}")
    version = ModelVersion.objects.create(
        name="v1-vllm", base_model=str(base), adapter_path=str(_lora_on_the_base(base, tmp_path / "trained"))
    )
    folder = tmp_path / "v1-vllm-adapter"  # what the adapter download untars to
    folder.mkdir()
    merge.adapter_folder_write(version=version, folder=folder, base_model=str(base))
    port = _free_port()
    vllm = shutil.which("vllm", path=str(Path(sys.executable).parent)) or "vllm"
    command = [
        vllm, "serve", str(base), "--enable-lora", "--lora-modules", f"{LORA_NAME}={folder}",
        "--max-lora-rank", "16", "--port", str(port), "--served-model-name", "base",
        "--dtype", "float32", "--max-model-len", "2048", "--gpu-memory-utilization", "0.3", "--enforce-eager",
    ]  # fmt: skip
    log_path = tmp_path / "vllm.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            api = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0)
            deadline = time.monotonic() + 600
            while True:
                assert server.poll() is None, log_path.read_text()[-4000:]
                try:
                    served = {m.id for m in api.models.list()}
                    break
                except openai.APIConnectionError:
                    assert time.monotonic() < deadline, log_path.read_text()[-4000:]
                    time.sleep(2)
            assert {"base", LORA_NAME} <= served
            ask = {"messages": MESSAGES, "temperature": 0, "max_tokens": 8, "seed": 0}
            lora = api.chat.completions.create(model=LORA_NAME, **ask)
            plain = api.chat.completions.create(model="base", **ask)
        finally:
            stop_process(server, grace_s=60)
    answer = lora.choices[0].message.content
    assert lora.usage.completion_tokens >= 1 and answer
    assert answer != plain.choices[0].message.content, "the adapter changed nothing: was it loaded?"
    assert answer.startswith(_peft_first_token(base, folder))  # the download, loaded by plain peft
