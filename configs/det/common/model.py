# Mask R-CNN with the contract backbone + FPN, heads as in Li et al. / MAE App. A.3:
# 2-conv RPN, 4conv+1fc box head with norm, norm in the mask head, SyncBN (tolerant of empty batches),
# inputs padded to a 1024 square in training and inference. FoldedFPN is detectron2's FPN with the lateral
# 1x1 convs run inside the pyramid's upsampling (same parameters and math, less compute).
from detectron2 import model_zoo
from detectron2.config import LazyCall as L
from detectron2.modeling.backbone.fpn import LastLevelMaxPool

from mae_transfer.det.modeling import Detectron2Backbone, FoldedFPN

image_size = 1024

model = model_zoo.get_config("common/models/mask_rcnn_fpn.py").model
model.backbone = L(FoldedFPN)(
    bottom_up=L(Detectron2Backbone)(
        name="mae_vit_b",  # any registered backbone (--backbone)
        weights="",  # any supported checkpoint (--weights); empty = random init
        source="auto",  # checkpoint format: auto | vit | mae | supervised | mocov3 | beit
        img_size=image_size,
        drop_path_rate=0.1,
    ),
    in_features=["s4", "s8", "s16", "s32"],
    out_channels=256,
    norm="naiveSyncBN_N",
    top_block=L(LastLevelMaxPool)(),
    square_pad=image_size,
)
# MAE/timm encoders are trained on RGB images normalized with ImageNet statistics
model.pixel_mean = [123.675, 116.28, 103.53]
model.pixel_std = [58.395, 57.12, 57.375]
model.input_format = "RGB"
model.proposal_generator.head.conv_dims = [-1, -1]
model.roi_heads.box_head.conv_dims = [256, 256, 256, 256]
model.roi_heads.box_head.fc_dims = [1024]
model.roi_heads.box_head.conv_norm = "naiveSyncBN_N"
model.roi_heads.mask_head.conv_norm = "naiveSyncBN_N"
