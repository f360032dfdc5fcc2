"""mmsegmentation harness. Importing this package provides ``mmcv.ops`` on mmcv-lite (mmseg cannot be
imported without it) and registers the project's types in mmseg's registries, so any mmseg config can use
them with ``custom_imports = dict(imports=["mae_transfer.seg"])``:

  MODELS:                      MMSegBackbone          (any registered backbone, by name)
  OPTIM_WRAPPER_CONSTRUCTORS:  ContractLayerDecayConstructor  (the shared layer-decay / no-wd rule)
  DATASETS:                    LabelFolderDataset     (images + label PNGs + classes.txt)
  METRICS:                     IoUMetricPerClass      (mmseg's IoUMetric + per-class IoU in the results)
  HOOKS:                       MetricsJSONHook        (writes work_dir/metrics.json after every evaluation)
                               NonFiniteLossHook      (stops on a NaN / inf loss with a one-line error)

mmengine's checkpoint reading and writing are patched only by ``compat.patch_mmengine()``, which
``tools/train_seg.py`` calls at the start of a run (a script of one's own running mmengine's Runner on
these types calls it too, for weights_only resume and atomic checkpoints).
"""

from . import compat

compat.provide_mmcv_ops()

from .datasets import LabelFolderDataset  # noqa: E402
from .hooks import MetricsJSONHook, NonFiniteLossHook  # noqa: E402
from .metrics import IoUMetricPerClass  # noqa: E402
from .modeling import ContractLayerDecayConstructor, MMSegBackbone  # noqa: E402

__all__ = [
    "MMSegBackbone",
    "ContractLayerDecayConstructor",
    "LabelFolderDataset",
    "IoUMetricPerClass",
    "MetricsJSONHook",
    "NonFiniteLossHook",
]
