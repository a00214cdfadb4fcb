"""A compact paged-attention inference engine with a batch-invariant mode."""
if __name__ != "bi_bench.engine":  # imported as the top-level `engine` from the repository root
    from bi_bench.kernels.handover import hand_over

    hand_over(__name__)
else:
    from bi_bench.engine.llm import LLM
    from bi_bench.engine.outputs import RequestOutput, ScoreOutput
    from bi_bench.engine.sampling_params import SamplingParams

    __all__ = ["LLM", "RequestOutput", "SamplingParams", "ScoreOutput"]
