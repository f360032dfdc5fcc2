from .config import ClsConfig
from .engine import build_classifier, run_cls

__all__ = ["ClsConfig", "build_classifier", "run_cls"]
