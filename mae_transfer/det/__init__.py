"""detectron2 harness: Mask R-CNN on COCO with any contract backbone (see train.py)."""
