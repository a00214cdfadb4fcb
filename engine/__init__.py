"""A compact paged-attention inference engine with a batch-invariant mode."""
from bi_bench.engine.llm import LLM
from bi_bench.engine.outputs import RequestOutput, ScoreOutput
from bi_bench.engine.sampling_params import SamplingParams

__all__ = ["LLM", "RequestOutput", "SamplingParams", "ScoreOutput"]
