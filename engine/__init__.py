"""A compact paged-attention inference engine with a batch-invariant mode."""
if __name__ != "bi_bench.engine":  # imported as the top-level `engine` from the repository root
    from bi_bench.kernels.handover import hand_over

    hand_over(__name__)
else:  # the engine's public surface: the harness imports nothing else of it
    from bi_bench.engine.config import DTYPES, EngineConfig
    from bi_bench.engine.layers.sampler import SampleRequest, Sampler
    from bi_bench.engine.llm import LLM
    from bi_bench.engine.loader import ALIASES, ModelLoadError, ModelSource, random_architectures, resolve
    from bi_bench.engine.outputs import RequestOutput, ScoreOutput
    from bi_bench.engine.sampling_params import SamplingParams
    from bi_bench.engine.threads import torch_threads
    from bi_bench.engine.trainer import k3_kl, trainer_logprobs, trainer_model

    __all__ = ["ALIASES", "DTYPES", "EngineConfig", "LLM", "ModelLoadError", "ModelSource", "RequestOutput",
               "SampleRequest", "Sampler", "SamplingParams", "ScoreOutput", "k3_kl", "random_architectures",
               "resolve", "torch_threads", "trainer_logprobs", "trainer_model"]
