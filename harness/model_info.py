"""What was tested: the model's identity (revision or weights digest), architecture, size and logit precision."""
from __future__ import annotations

from bi_bench.engine import LLM
from bi_bench.harness.results import ModelRecord


def model_record(llm: LLM) -> ModelRecord:
    source = llm.source
    weights_dir = source.weights_dir
    # Hub snapshots live in .../snapshots/<commit>/, so the folder name is the revision.
    revision = weights_dir.name if weights_dir is not None and weights_dir.parent.name == "snapshots" else None
    return ModelRecord(
        id=source.model_id,
        dtype=llm.config.dtype,
        revision=revision,
        weights_sha256=source.weights_sha256(),
        architecture=(source.config.architectures or [source.config.model_type])[0],
        params_count=llm.num_parameters,
        synthetic_weights=source.synthetic_weights,
        lm_head_fp32=llm.config.lm_head_fp32,
    )
