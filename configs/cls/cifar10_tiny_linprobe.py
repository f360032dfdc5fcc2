# CPU-sized Table 10 on the CIFAR-10 subset: probe on cached frozen features (center crops).
from mae_transfer.config import load_config
from mae_transfer.paths import shared_data

config = load_config("linprobe_vit_base.py", relative_to=__file__).replace(
    model="mae_vit_tiny_patch4",
    data_path=shared_data("cifar10"),
    val_split="test",
    input_size=32,
    epochs=90,
    warmup_epochs=10,
    batch_size=256,
    accum_iter=1,
    blr=0.1,
    cache_features=True,
    num_workers=1,
    output_dir="output/cls/cifar10_tiny_linprobe",
    recipe="",
)
