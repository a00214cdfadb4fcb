"""llama.cpp's side of benchmarks/throughput.py, run by the python of `make llama` (.venv-llama), never imported.

    .venv-llama/bin/python benchmarks/llama_cpp_worker.py MODEL.gguf THREADS NEW_TOKENS REQUESTS PROMPTS.json

Greedy generation through llama.cpp's own batch API (the way its `batched` example and its server decode): every
request is a sequence of one context, all prompts prefilled in batches of N_BATCH tokens, then one decode call per
step holding one token of each sequence. Prints one JSON line: a run per request count (seconds, tokens, tok/s).
"""
from __future__ import annotations

import json
import sys
import time

import llama_cpp as L
import numpy as np

N_BATCH = 512


class Context:
    """One llama.cpp context with room for `sequences` sequences of `length` tokens each."""

    def __init__(self, model: L.llama_model_p, sequences: int, length: int, threads: int) -> None:
        params = L.llama_context_default_params()
        params.n_ctx = sequences * length
        params.n_batch = params.n_ubatch = N_BATCH
        params.n_seq_max = sequences
        params.n_threads = params.n_threads_batch = threads
        self.ctx = L.llama_init_from_model(model, params)
        self.vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))
        self.batch = L.llama_batch_init(N_BATCH, 0, 1)

    def close(self) -> None:
        L.llama_batch_free(self.batch)
        L.llama_free(self.ctx)

    def decode(self, entries: list[tuple[int, int, int, bool]]) -> list[int]:
        """entries: (token, position, sequence, wants its next token); the greedy next tokens of those that want."""
        chosen = []
        for start in range(0, len(entries), N_BATCH):
            chunk = entries[start:start + N_BATCH]
            self.batch.n_tokens = len(chunk)
            for i, (token, position, sequence, wanted) in enumerate(chunk):
                self.batch.token[i], self.batch.pos[i], self.batch.logits[i] = token, position, wanted
                self.batch.n_seq_id[i] = 1
                self.batch.seq_id[i][0] = sequence
            if L.llama_decode(self.ctx, self.batch) != 0:
                raise RuntimeError("llama_decode failed")
            for i, entry in enumerate(chunk):
                if entry[3]:
                    logits = np.ctypeslib.as_array(L.llama_get_logits_ith(self.ctx, i), shape=(self.vocab,))
                    chosen.append(int(logits.argmax()))
        return chosen

    def generate(self, prompts: list[list[int]], new_tokens: int) -> list[list[int]]:
        entries = [(token, position, s, position == len(prompt) - 1)
                   for s, prompt in enumerate(prompts) for position, token in enumerate(prompt)]
        outputs = [[token] for token in self.decode(entries)]
        for step in range(1, new_tokens):
            nexts = self.decode([(out[-1], len(prompt) + step - 1, s, True)
                                 for s, (prompt, out) in enumerate(zip(prompts, outputs))])
            for out, token in zip(outputs, nexts):
                out.append(token)
        return outputs


def main() -> None:
    path, threads, new_tokens, requests, prompts_file = sys.argv[1:6]
    prompts = json.loads(open(prompts_file).read())
    L.llama_backend_init()
    model = L.llama_model_load_from_file(path.encode(), L.llama_model_default_params())
    if not model:
        raise SystemExit(f"{path}: llama.cpp could not load it")
    runs = []
    for count in (int(c) for c in requests.split(",")):
        batch = prompts[:count]
        context = Context(model, count, len(batch[0]) + int(new_tokens) + 16, int(threads))
        context.generate(batch[:1], 2)  # warm-up, then a clean cache for the timed run
        L.llama_memory_clear(L.llama_get_memory(context.ctx), True)
        start = time.perf_counter()
        outputs = context.generate(batch, int(new_tokens))
        seconds = time.perf_counter() - start
        context.close()
        tokens = sum(len(out) for out in outputs)
        runs.append({"requests": count, "seconds": seconds, "tokens": tokens, "tok_per_s": tokens / seconds,
                     "first_tokens": outputs[0][:8]})
    L.llama_model_free(model)
    print(json.dumps({"version": L.__version__, "runs": runs}))


if __name__ == "__main__":
    main()
