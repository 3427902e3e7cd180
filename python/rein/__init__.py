"""rein — compiled Rein objectives as PyTorch losses (docs/python.md).

    import rein
    obj = rein.Objective("lang/std/grpo.rein", eps_low=0.2)
    loss, metrics = obj(logp, old_logp=old, reward=r, mask=m, group=g)
    loss.backward()
"""

from ._lib import ABI_VERSION, LIB_PATH
from .errors import ReinError
from .objective import Objective
from .step import MicroBatch, Step

__version__ = "0.1.0"
__all__ = ["Objective", "Step", "MicroBatch", "ReinError", "ABI_VERSION", "LIB_PATH"]
