from .config import ClsConfig
from .engine import run_cls
from .model import build_classifier

__all__ = ["ClsConfig", "build_classifier", "run_cls"]
