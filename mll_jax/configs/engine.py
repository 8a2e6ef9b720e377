"""Engine defaults, read wherever a batch size is not given (kept here, free of JAX, so the CLI can show them)."""

from __future__ import annotations

__all__ = ["BATCH_SIZE", "IN_FLIGHT_BYTES", "STEP_ROWS", "STRATEGY_BUDGET_S", "STRATEGY_MARGIN", "STRATEGY_REPEATS"]

BATCH_SIZE = 512  # images per engine batch; set by hand (benchmarks/throughput.py measures the engine at it)
# Rows a step the engine measures against computing a whole batch at once (those that divide the batch). Chosen by
# benchmarks/throughput.py's demo CNN on CPU, 2,048 rows a dispatch, interleaved: 512 rows a step 68-75k images/s,
# 256 88-107k, 128 115-129k, 64 108-119k, 32 80-88k; a step below 64 rows gained nothing there.
STEP_ROWS = (256, 128, 64)
# The loop is kept unless another strategy is this much faster: a guard set by hand above the few percent
# that repeated timings of one group differ by on a shared machine, not tuned on any split.
STRATEGY_MARGIN = 1.05
STRATEGY_REPEATS = 7  # rounds of timed calls, one per strategy a round (median), after one warm-up each; set by hand
# Seconds of timed calls after which no further round starts (the first always runs): a round of the three
# strategies for 16 demo CNNs at batch 512 takes about 0.5 s on CPU, one EfficientNet-Lite0 call at batch 512
# 9-14 s. Set by hand.
STRATEGY_BUDGET_S = 2.0
# Inputs and outputs of dispatches the engine leaves queued on the device before the host reads the oldest
# outputs: enough that a GPU never idles while the host reads (a 4,096-row chunk of 28x28 images is 3 MiB,
# of 64x64 RGB 48 MiB), small next to any device's memory. Set by hand, not tuned on any split.
IN_FLIGHT_BYTES = 256 * 2**20
