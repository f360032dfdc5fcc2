from .config import PretrainConfig
from .engine import export_encoder, pretrain

__all__ = ["PretrainConfig", "pretrain", "export_encoder"]
