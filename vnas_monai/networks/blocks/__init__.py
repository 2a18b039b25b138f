from .mixed import MixedOp

__all__ = ["MixedOp"]
