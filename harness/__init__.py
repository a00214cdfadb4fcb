"""The harness: suites -> case matrix -> checks -> one results file per run, then verified and published.

The stages a run goes through, one package each:

- suite/     the suite document (schema), loading it from YAML with each field's line (load, yaml_source), the
             case matrix and its shards (matrix), the prompts (prompts), and the suite a results file recorded
- run/       the one case loop for `run` and `reproduce` (runner), the engines a backend builds (pool), the
             journal a run resumes from, throughput, and the environment and lock a run records
- backends/  the engines under test behind one interface: bi-bench, transformers, vllm, openai
- checks/    one file per check: its parameters, its claim, and what it compares
- results/   the results file: base types, observations (packed, repeats), metrics and verdicts, the summary,
             and the reproduction file
- verify/    what is done with a results file: validate (recompute), reproduce (re-execute), compare, merge
- site/      the static leaderboard: load, figures, render, export (templates and static beside them)
- cli/       the `bi-bench` command and its console output
"""
if __name__ != "bi_bench.harness":  # imported as the top-level `harness` from the repository root
    from bi_bench.kernels.handover import hand_over

    hand_over(__name__)
