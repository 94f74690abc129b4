"""Signal sources: synthetic signals (`synthetic`), signal files (`files`) and the stream publisher.

`files` is not imported here because pyarrow is slow to import and most callers do not need it.
"""

from harness.producer.synthetic import KINDS, generate_signals

__all__ = ["KINDS", "generate_signals"]
