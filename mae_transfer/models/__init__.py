from .mae import MAE_MODELS, MaskedAutoencoderViT, build_mae, encoder_arch
from .masking import mask_noise
from .pos_embed import sincos_2d

__all__ = ["MAE_MODELS", "encoder_arch", "MaskedAutoencoderViT", "build_mae", "mask_noise", "sincos_2d"]
