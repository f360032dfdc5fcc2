# A Table 4 evaluation candidate (issue 30's seed-variance probe): the balloon miniature's recipe on coco128
# as a one-class `person` task (train2017: 100 photos, 209 persons on 51 of them; val2017: 100 photos, 287
# persons on 58; COCO's RLE masks, 4 crowd regions a split). Every number is the balloon miniature's (this
# project's choice).
from mae_transfer.paths import shared_data

from .mask_rcnn_vit_mini_p8_balloon import dataloader, datasets, entry, lr_multiplier, model, optimizer, train

root = shared_data("coco128")
datasets.update(
    {
        f"coco128_person_{split}": {
            "json": f"{root}/annotations/instances_{split}2017.json",
            "images": f"{root}/{split}2017",
            "categories": ["person"],
        }
        for split in ("train", "val")
    }
)
dataloader.train.dataset.names = "coco128_person_train"
dataloader.test.dataset.names = "coco128_person_val"
train.output_dir = "output/det/mini_vit_mini_p8_coco128_person"
