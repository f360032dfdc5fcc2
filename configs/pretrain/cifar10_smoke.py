# A minutes-long version of cifar10_tiny (the README's first command): 2 epochs, smaller model.
from mae_transfer.config import load_config

config = load_config("cifar10_tiny.py", relative_to=__file__).replace(
    epochs=2, warmup_epochs=1, output_dir="output/pretrain/cifar10_smoke"
)
