"""The engine's fp32 projections through oneDNN with weights prepacked once, instead of MKL's ``sgemm``.

A decoding step multiplies a few rows (one per running request) by every weight matrix of the model. On
the studio's CPU (AMD EPYC, AVX-512) PyTorch's fp32 ``F.linear`` goes to MKL, which does not use AVX-512
there; oneDNN picks its kernels by the instruction set, and with the weights reordered once into its
blocked layout the model's 211 matrices took 44 CPU ms at 8 rows against MKL's 76 (docs/benchmarks.md,
issue 25). The result is the same product to float32 rounding (a different summation order: ~1e-6).

:class:`PackedLinears` is a context manager the engine wraps its forwards in: every plain
``torch.nn.Linear`` of the model (fp32, on the CPU) computes through its packed weight while inside, and
is itself again outside, where the same model may be trained. A peft LoRA layer calls its base layer, so
the frozen base weight is packed and the adapters run as peft runs them.

Packed weights are kept per module for as long as the module lives (a ``WeakKeyDictionary``), so the
generation worker's cached model packs once, not once per chunk; a weight changed in place (training,
a merged adapter) or replaced is packed again when next used. The cost is one more copy of the weights
in memory while the model is loaded (538 MB for SmolLM2-135M).

>>> with PackedLinears(model):  # doctest: +SKIP
...     logits = model(input_ids).logits
"""

from __future__ import annotations

import weakref

import torch

# The rows a packed layout is tuned for (oneDNN picks its blocking from a batch-size hint; any number of
# rows works with it, and 8 is the engine's default batch).
PACK_ROWS = 8

_packed: weakref.WeakKeyDictionary[torch.nn.Linear, tuple[tuple[int, int], torch.Tensor]] = (
    weakref.WeakKeyDictionary()
)


def available() -> bool:
    """Whether this PyTorch has oneDNN's packed linear (CPU builds with MKLDNN do)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def packed_weight(linear: torch.nn.Linear) -> torch.Tensor:
    """``linear``'s weight in oneDNN's layout, packed on first use and again after it changes."""
    weight = linear.weight
    stamp = (weight.data_ptr(), weight._version)
    entry = _packed.get(linear)
    if entry is None or entry[0] != stamp:
        entry = (stamp, torch.ops.mkldnn._reorder_linear_weight(weight.detach(), PACK_ROWS))
        _packed[linear] = entry
    return entry[1]


def _packable(module: torch.nn.Module) -> bool:
    weight = getattr(module, "weight", None)
    return (
        type(module) is torch.nn.Linear
        and weight is not None
        and weight.dtype == torch.float32
        and weight.device.type == "cpu"
    )


class PackedLinears:
    """Inside, the model's fp32 CPU ``nn.Linear`` modules compute through their packed weights
    (under ``torch.no_grad``: the packed product has no backward). Does nothing where oneDNN is absent."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.modules = [m for m in model.modules() if _packable(m)] if available() else []
        self.forwards = [self._forward(m) for m in self.modules]
        self.swapped: list[torch.nn.Module] = []

    def pack(self) -> PackedLinears:
        """Pack every weight now (the engine does this when it is built, so its first step is not slow)."""
        for module in self.modules:
            packed_weight(module)
        return self

    @staticmethod
    def _forward(module: torch.nn.Linear):
        def forward(x: torch.Tensor) -> torch.Tensor:
            if x.dtype != torch.float32 or torch.is_grad_enabled():
                return torch.nn.functional.linear(x, module.weight, module.bias)
            return torch.ops.mkldnn._linear_pointwise(x, packed_weight(module), module.bias, "none", [], "")

        return forward

    def __enter__(self) -> PackedLinears:
        self.swapped = []
        for module, forward in zip(self.modules, self.forwards, strict=True):
            if "forward" not in module.__dict__:  # someone else's override stays theirs
                module.forward = forward
                self.swapped.append(module)
        return self

    def __exit__(self, *exc) -> None:
        for module in self.swapped:
            del module.forward  # the class's forward again
        self.swapped = []
