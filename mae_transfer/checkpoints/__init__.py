from .convert import (
    LoadReport,
    apply_to_model,
    detect_source,
    infer_vit_arch,
    read_vit_checkpoint,
    resize_pos_embed,
    resize_rel_pos_table,
    to_canonical,
)
from .io import extract_state_dict, load_checkpoint, save_atomic

__all__ = [
    "LoadReport",
    "apply_to_model",
    "detect_source",
    "infer_vit_arch",
    "read_vit_checkpoint",
    "resize_pos_embed",
    "resize_rel_pos_table",
    "to_canonical",
    "extract_state_dict",
    "load_checkpoint",
    "save_atomic",
]
