"""The whole stack through `omniflow dev` on free ports (shared with the benchmarks)."""

from bench.stack import READY_TIMEOUT, DevStack, run_dev_expecting_failure

__all__ = ["READY_TIMEOUT", "DevStack", "run_dev_expecting_failure"]
