"""A minimal OpenAI-compatible chat server over a real transformers model, for tests of HTTP clients.

It speaks ``POST /v1/chat/completions`` (the chat template, greedy generation, the OpenAI response
shape) and ``GET /v1/models``; anything else is a 404. It records every request body it served.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from tests.support.http import LocalServer, QuietHandler


class ChatServer(LocalServer):
    def __init__(self, model_dir: Path, *, max_new_tokens: int = 32) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        self.model_name = Path(model_dir).name
        self.max_new_tokens = max_new_tokens
        self.requests: list[dict] = []
        self.answers: list[str] = []
        self.lock = threading.Lock()
        super().__init__(self._handler())
        self.base_url = f"{self.origin}/v1"

    def complete(self, body: dict) -> str:
        encoded = self.tokenizer.apply_chat_template(
            body["messages"], add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        ids = encoded["input_ids"]
        limit = min(int(body.get("max_tokens") or self.max_new_tokens), self.max_new_tokens)
        with self.lock, self.torch.no_grad():
            out = self.model.generate(
                ids, attention_mask=self.torch.ones_like(ids), max_new_tokens=limit, do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
            )  # fmt: skip
        return self.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)

    def _handler(self):
        server = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                if self.path == "/v1/models":
                    self.send_json(
                        200, {"object": "list", "data": [{"id": server.model_name, "object": "model"}]}
                    )
                else:
                    self.send_json(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:
                if self.path != "/v1/chat/completions":
                    self.send_json(404, {"error": {"message": f"no route {self.path}"}})
                    return
                body = json.loads(self.read_body())
                server.requests.append(body)
                try:
                    text = server.complete(body)
                except Exception as exc:  # a server answers 500, it does not drop the connection
                    self.send_json(500, {"error": {"message": f"{type(exc).__name__}: {exc}"}})
                    return
                server.answers.append(text)
                self.send_json(
                    200,
                    {
                        "id": f"chatcmpl-{len(server.requests)}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model", server.model_name),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": "length",
                            }
                        ],
                    },
                )

        return Handler


def main(argv: list[str] | None = None) -> None:
    """``--model DIR``: serve a real model (prints ``port N``)."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a local transformers model folder")
    parser.add_argument("--max-new-tokens", type=int, default=160)
    args = parser.parse_args(argv)
    server = ChatServer(args.model, max_new_tokens=args.max_new_tokens)
    sys.stdout.write(f"port {server.port}\n")
    sys.stdout.flush()
    server.httpd.serve_forever()


if __name__ == "__main__":
    main()
