"""The harness: suites -> case matrix -> checks -> one results file per run."""
if __name__ != "bi_bench.harness":  # imported as the top-level `harness` from the repository root
    from bi_bench.kernels.handover import hand_over

    hand_over(__name__)
