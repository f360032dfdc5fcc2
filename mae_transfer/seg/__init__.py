"""mmsegmentation harness. Importing this package installs the mmcv-lite compatibility shims (once) and
registers the project's types in mmseg's registries, so any mmseg config can use them with
``custom_imports = dict(imports=["mae_transfer.seg"])``:

  MODELS:                      ContractBackbone       (any registered backbone, by name)
  OPTIM_WRAPPER_CONSTRUCTORS:  ContractLayerDecayConstructor  (the shared layer-decay / no-wd rule)
  DATASETS:                    LabelFolderDataset     (images + label PNGs + classes.txt)
  METRICS:                     IoUMetricPerClass      (mmseg's IoUMetric + per-class IoU in the results)
  HOOKS:                       MetricsJSONHook        (writes work_dir/metrics.json after every evaluation)
                               NonFiniteLossHook      (stops on a NaN / inf loss with a one-line error)
"""
from . import compat

compat.install()

from .datasets import LabelFolderDataset  # noqa: E402
from .modeling import ContractBackbone, ContractLayerDecayConstructor  # noqa: E402
from .hooks import MetricsJSONHook, NonFiniteLossHook  # noqa: E402
from .metrics import IoUMetricPerClass  # noqa: E402

__all__ = ["ContractBackbone", "ContractLayerDecayConstructor", "LabelFolderDataset", "IoUMetricPerClass",
           "MetricsJSONHook", "NonFiniteLossHook"]
