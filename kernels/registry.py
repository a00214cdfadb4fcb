"""Named kernel variants per op, each with the devices, dtypes and batch-invariance it claims."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import torch

OPS = ("matmul", "rmsnorm", "attention", "log_softmax", "all_reduce", "pointwise")
DEVICES = ("cpu", "cuda")
INVARIANT_MODES = ("invariant", "tp-invariant")  # an engine in these modes claims batch invariance
MODES = ("default", *INVARIANT_MODES)
ONE_DEVICE_MODES = MODES[:2]  # what an engine without tensor parallelism runs


@dataclass(frozen=True)
class KernelVariant:
    op: str
    name: str
    fn: Any  # a callable; the pointwise op's is a PointwiseOps of them
    devices: tuple[str, ...]
    dtypes: tuple[torch.dtype, ...]
    batch_invariant: bool
    description: str
    tp_invariant: bool = False
    # On CUDA its launches depend on tensor shapes and device values only, never on host values of the step,
    # so a captured CUDA graph replays it correctly for later steps of the same shapes.
    graph_safe: bool = True
    # matmul only: fused(x, weights, biases) runs several linears that share x in one call, each output with the
    # bits fn(x, weight, bias) gives it alone (`fuses` registers it; `linears` falls back to one call each).
    fused: Callable | None = None
    # log_softmax only: greedy(logits) -> (tokens, logprobs), each row's first maximal index (torch.max's) and fn's
    # value there, without writing the rows' log_softmax (`fuses(name, "log_softmax", "greedy")` registers it;
    # `greedy_pick` falls back to torch.max and fn).
    greedy: Callable | None = None

    def greedy_pick(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.greedy is not None:
            return self.greedy(logits)
        logits = logits.float()
        tokens = logits.max(dim=-1).indices
        return tokens, self.fn(logits).gather(1, tokens[:, None])[:, 0]

    def linears(self, x: torch.Tensor, weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor | None]
                ) -> list[torch.Tensor]:
        if self.fused is not None:
            return self.fused(x, weights, biases)
        return [self.fn(x, weight, bias) for weight, bias in zip(weights, biases)]

    def supports(self, device: str, dtype: torch.dtype | None = None) -> bool:
        return device in self.devices and (dtype is None or dtype in self.dtypes)


@dataclass
class _Registry:
    variants: dict[str, dict[str, KernelVariant]] = field(default_factory=lambda: {op: {} for op in OPS})
    # Preference order per (op, device, mode): the first registered variant that supports the dtype wins, the
    # fallbacks after all others.
    preferred: dict[tuple[str, str, str], list[tuple[bool, str]]] = field(default_factory=dict)


_REGISTRY = _Registry()
FLOATS = (torch.float32, torch.bfloat16, torch.float16)


class KernelError(ValueError):
    pass


def register(op: str, name: str, *, devices: tuple[str, ...], batch_invariant: bool, description: str,
             dtypes: tuple[torch.dtype, ...] = FLOATS, tp_invariant: bool = False, graph_safe: bool = True,
             preferred_for: tuple[str, ...] = (), preferred_on: tuple[str, ...] | None = None,
             fallback: bool = False) -> Callable[[Callable], Callable]:
    """Decorator: registers `fn` as variant `name` of `op`; it is the pick for the modes in `preferred_for` on
    the devices in `preferred_on` (default: all its devices), as a `fallback` only where no other pick applies."""
    if op not in OPS:
        raise KernelError(f"unknown op {op!r}; ops: {', '.join(OPS)}")

    def wrap(fn: Callable) -> Callable:
        _REGISTRY.variants[op][name] = KernelVariant(op, name, fn, devices, dtypes, batch_invariant,
                                                     description, tp_invariant, graph_safe)
        for mode in preferred_for:
            for device in devices if preferred_on is None else preferred_on:
                picks = _REGISTRY.preferred.setdefault((op, device, mode), [])
                picks.append((fallback, name))
                picks.sort(key=lambda pick: pick[0])  # stable: registration order within each kind
        return fn

    return wrap


def fuses(name: str, op: str = "matmul", form: str = "fused") -> Callable[[Callable], Callable]:
    """Decorator: `fn` is variant `name`'s fused form (KernelVariant.fused, or the field `form` names); register the
    variant first."""

    def wrap(fn: Callable) -> Callable:
        _REGISTRY.variants[op][name] = replace(_REGISTRY.variants[op][name], **{form: fn})
        return fn

    return wrap


def variants(op: str | None = None) -> list[KernelVariant]:
    _load_builtin_variants()
    ops = OPS if op is None else (op,)
    return [v for o in ops for v in _REGISTRY.variants[o].values()]


def get(op: str, name: str) -> KernelVariant:
    _load_builtin_variants()
    if op not in OPS:
        raise KernelError(f"unknown op {op!r}; ops: {', '.join(OPS)}")
    try:
        return _REGISTRY.variants[op][name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY.variants[op])) or "none"
        raise KernelError(f"unknown {op} variant {name!r}; known: {known}") from None


def select(op: str, device: str, dtype: torch.dtype, mode: str, override: str | None = None) -> KernelVariant:
    """The variant an engine in `mode` uses for `op`; an override must still honour the mode's claim."""
    _load_builtin_variants()
    if mode not in MODES:
        raise KernelError(f"unknown mode {mode!r}; modes: {', '.join(MODES)}")
    if override is not None:
        variant = get(op, override)
        if not variant.supports(device, dtype):
            raise KernelError(f"{op} variant {override!r} does not run on {device} with {dtype}")
        return variant
    for _, name in _REGISTRY.preferred.get((op, device, mode), []):
        variant = _REGISTRY.variants[op][name]
        if variant.supports(device, dtype):
            return variant
    raise KernelError(f"no {op} variant for mode {mode!r} on {device} with {dtype}")


_loaded = False


def _load_builtin_variants() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    from bi_bench.kernels import all_reduce, cpu, generic  # noqa: F401  (registers on import)
    from bi_bench.kernels import triton as triton_variants  # noqa: F401
