# COCO with large-scale jitter (scale 0.1-2.0 of 1024, crop to 1024), flip; test: longest side 1024.
# Padding to the 1024 square happens in the model (square_pad), in training and in inference.
import detectron2.data.transforms as T
from detectron2 import model_zoo
from detectron2.config import LazyCall as L
from detectron2.evaluation import COCOEvaluator

from mae_transfer.det.data import SkipUnreadableMapper

image_size = 1024

dataloader = model_zoo.get_config("common/data/coco.py").dataloader
dataloader.train.mapper.augmentations = [
    L(T.RandomFlip)(horizontal=True),
    L(T.ResizeScale)(min_scale=0.1, max_scale=2.0, target_height=image_size, target_width=image_size),
    L(T.FixedSizeCrop)(crop_size=(image_size, image_size), pad=False),
]
dataloader.train.mapper._target_ = SkipUnreadableMapper  # DatasetMapper that skips (and names) corrupt images
dataloader.train.mapper.image_format = "RGB"
dataloader.train.mapper.recompute_boxes = True
dataloader.train.total_batch_size = 64
dataloader.test.mapper.augmentations = [
    L(T.ResizeShortestEdge)(short_edge_length=image_size, max_size=image_size)
]
# the pure-Python COCOeval: detectron2's fast C++ evaluator is not in the pure-Python wheel
dataloader.evaluator = L(COCOEvaluator)(
    dataset_name="${..test.dataset.names}", use_fast_impl=False, tasks=("bbox", "segm")
)

# COCO-format datasets to validate and register before training: name -> {json, images[, categories]}
# (categories: keep the annotations of these category names only, e.g. ["person"]).
# The standard COCO 2017 split is found under $DETECTRON2_DATASETS/coco (or --coco-root).
datasets = {}
