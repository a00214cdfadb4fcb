"""What was tested: the model's identity (revision or weights digest), architecture, size and logit precision."""
from __future__ import annotations

import math

from safetensors import safe_open

from bi_bench.engine import ModelSource
from bi_bench.harness.results.file import ModelRecord


def model_record(source: ModelSource, dtype: str, params_count: int, lm_head_fp32: bool) -> ModelRecord:
    weights_dir = source.weights_dir
    # Hub snapshots live in .../snapshots/<commit>/, so the folder name is the revision.
    revision = weights_dir.name if weights_dir is not None and weights_dir.parent.name == "snapshots" else None
    return ModelRecord(
        id=source.model_id,
        dtype=dtype,
        revision=revision,
        weights_sha256=source.weights_sha256(),
        architecture=(source.config.architectures or [source.config.model_type])[0],
        params_count=params_count,
        synthetic_weights=source.synthetic_weights,
        lm_head_fp32=lm_head_fp32,
    )


def stored_parameters(source: ModelSource) -> int:
    """Parameters in the model's safetensors files (a tied lm_head is stored once)."""
    total = 0
    for path in sorted(source.weights_dir.glob("*.safetensors")) if source.weights_dir else []:
        with safe_open(path, "pt") as handle:
            total += sum(math.prod(handle.get_slice(name).get_shape()) for name in handle.keys())
    return total
