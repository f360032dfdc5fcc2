"""mae-transfer: MAE pretraining, and how an initialization transfers to detection and segmentation."""

from .console import filter_harmless_warnings

# detectron2, mmseg and timm warn at import (torch.jit.script, pkg_resources, ...): the warnings known to be
# harmless here are dropped before anything imports them through this package
filter_harmless_warnings()
