# configs/mini/gpu/det_balloon.py at 64px, batch 2, for 2 iterations without loader workers (the CPU smoke of
# reproduce_gpu.sh): the same model and pipeline, cheap enough for the test suite.
from .det_balloon import dataloader, datasets, entry, lr_multiplier, model, optimizer, train

image_size = 64
model.backbone.bottom_up.update(img_size=image_size, window_size=2)
model.backbone.square_pad = image_size
flip, resize, crop = dataloader.train.mapper.augmentations
resize.update(target_height=image_size, target_width=image_size)
crop.crop_size = (image_size, image_size)
dataloader.test.mapper.augmentations[0].update(short_edge_length=image_size, max_size=image_size)
dataloader.train.total_batch_size = 2
dataloader.train.num_workers = 0
dataloader.test.num_workers = 0
train.max_iter = train.eval_period = 2
