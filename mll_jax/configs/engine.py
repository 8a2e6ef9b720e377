"""Engine defaults, read wherever a batch size is not given (kept here, free of JAX, so the CLI can show them)."""

from __future__ import annotations

BATCH_SIZE = 512  # images per engine batch
