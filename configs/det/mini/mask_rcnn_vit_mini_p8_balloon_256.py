# The miniature Table 4 at 256px: balloon's median instance (~130 px across in its 1024 px photos) is ~17 px
# at 128px -- two patch-8 tokens -- and ~33 px here. Same encoder (its 16x16 pretraining grid's position
# embedding resized to 32x32), same heads; 256px LSJ and test resize; ~2x the 128px iteration's time. This
# project's choice, measured for the miniature's learning curves (docs/miniature_history.md).
from .mask_rcnn_vit_mini_p8_balloon import dataloader, datasets, entry, lr_multiplier, model, optimizer, train

image_size = 256
model.backbone.bottom_up.update(img_size=image_size, window_size=image_size // 8)
model.backbone.square_pad = image_size
flip, resize, crop = dataloader.train.mapper.augmentations  # the base's LSJ, resized
resize.update(target_height=image_size, target_width=image_size)
crop.crop_size = (image_size, image_size)
dataloader.test.mapper.augmentations[0].update(short_edge_length=image_size, max_size=image_size)
train.output_dir = "output/det/mini_vit_mini_p8_balloon_256"
