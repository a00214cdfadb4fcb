"""`bi-bench ls`: the models, kernel variants and checks this install knows."""
from __future__ import annotations

from rich.table import Table

from bi_bench.engine import ALIASES, resolve, random_architectures
from bi_bench.harness.backends import BACKENDS, CAPABILITIES
from bi_bench.harness.checks import CHECKS
from bi_bench.kernels import variants


def models_table() -> Table:
    table = Table(title="models (also: a local directory, a .gguf file or a Hugging Face hub id)")
    for column in ("id", "weights", "layers", "hidden", "heads (q/kv)", "vocab"):
        table.add_column(column)
    for alias, target in ALIASES.items():
        table.add_row(alias, f"real ({target})", "", "", "", "")
    for arch in random_architectures():
        config = resolve(f"random:{arch}").config
        table.add_row(f"random:{arch}", "synthetic", str(config.num_hidden_layers), str(config.hidden_size),
                      f"{config.num_attention_heads}/{config.num_key_value_heads}", str(config.vocab_size))
    return table


def kernels_table() -> Table:
    table = Table(title="kernel variants")
    for column in ("op", "variant", "devices", "dtypes", "batch invariant", "tp invariant", "description"):
        table.add_column(column, no_wrap=column in ("op", "variant"))
    for v in variants():
        dtypes = ",".join(str(d).removeprefix("torch.") for d in v.dtypes)
        table.add_row(v.op, v.name, ",".join(v.devices), dtypes, _yes(v.batch_invariant), _yes(v.tp_invariant),
                      v.description)
    return table


def checks_table() -> Table:
    table = Table(title="checks (suite: checks: {name: {params}})")
    for column in ("check", "default-mode control", "parameters (defaults)", "description"):
        table.add_column(column, no_wrap=column == "check")
    for spec in CHECKS.values():
        defaults = spec.params().model_dump(exclude={"control"})
        table.add_row(spec.name, _yes(spec.control), ", ".join(f"{k}={v}" for k, v in defaults.items()) or "-",
                      spec.description)
    return table


def backends_table() -> Table:
    table = Table(title="backends: engines under test (suite: models: [{backend: {name: ...}}])")
    for column in ("backend", "modes", "logprobs", *CAPABILITIES, "varies", "description"):
        table.add_column(column, no_wrap=column == "backend")
    for backend in BACKENDS.values():
        caps = backend.capabilities
        table.add_row(backend.name, ",".join(caps.modes), caps.logprobs, *(_yes(c in caps.can) for c in CAPABILITIES),
                      ",".join(sorted(caps.settings)) or "-", backend.description)
    return table


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"
