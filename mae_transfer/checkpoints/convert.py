"""Every Table 4 initialization converted to one canonical ViT key format.

Canonical format = timm ``VisionTransformer`` names (``cls_token``, ``pos_embed``, ``patch_embed.proj.*``,
``blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*``, ``norm.*``), plus, when the source has
them, layer scale as ``blocks.N.ls{1,2}.gamma`` and BEiT relative position tables as
``blocks.N.attn.relative_position_bias_table`` (per block) or ``rel_pos_bias.relative_position_bias_table``
(shared). Keys the encoder never uses (MAE decoder, classification heads, MoCo momentum encoder and
predictor, BEiT's masked-image-modeling head) are set aside as *ignored* and listed in the load report.

Sources (``source=`` or detected from the keys; ``vit`` = any plain timm-key ViT):
  mae       official MAE pretrain / visualize / fine-tuned checkpoints, timm ``*.mae``, this project's own
            pretraining checkpoints and exported encoders
  supervised DeiT / timm ViT state dicts
  mocov3    ``{'state_dict': ...}`` with ``module.base_encoder.`` prefixes
  beit      ``q_bias``/``v_bias``, ``gamma_1``/``gamma_2``, relative position tables
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable

import torch

from ..errors import CheckpointError
from .io import extract_state_dict, load_checkpoint

SOURCES = ("vit", "mae", "supervised", "mocov3", "beit")  # vit/mae/supervised: same timm key family

# keys an encoder never needs, by source family
_IGNORED = re.compile(r"^(decoder_|mask_token|head\.|fc_norm\.|lm_head\.|pre_logits|dist_token|head_dist\.)")


@dataclasses.dataclass
class LoadReport:
    """What happened to every key when a checkpoint was loaded into a model."""

    source: str
    path: str = ""
    loaded: list[str] = dataclasses.field(default_factory=list)
    resized: list[str] = dataclasses.field(default_factory=list)
    new: list[str] = dataclasses.field(default_factory=list)
    ignored: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.path or 'checkpoint'} [{self.source}]: loaded {len(self.loaded)}, resized "
            f"{len(self.resized)}, "
            f"newly initialized {len(self.new)}, ignored {len(self.ignored)}"
        )

    def format(self, max_keys: int = 12) -> str:
        def short(keys: list[str]) -> str:
            keys = _collapse(keys)
            more = f" ... (+{len(keys) - max_keys})" if len(keys) > max_keys else ""
            return ", ".join(keys[:max_keys]) + more

        lines = [self.summary()]
        for title, keys in (
            ("resized", self.resized),
            ("newly initialized", self.new),
            ("ignored", self.ignored),
        ):
            if keys:
                lines.append(f"  {title}: {short(keys)}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _collapse(keys: list[str]) -> list[str]:
    """blocks.0.x, blocks.1.x, ... -> blocks.*.x (readable reports)."""
    seen: dict[str, None] = {}
    for k in keys:
        seen[re.sub(r"\.\d+\.", ".*.", k)] = None
    return list(seen)


def detect_source(state: dict[str, torch.Tensor]) -> str:
    keys = list(state)
    if any(k.startswith(("module.base_encoder.", "base_encoder.", "module.momentum_encoder.")) for k in keys):
        return "mocov3"
    if any(
        k.endswith(("attn.q_bias", "gamma_1"))
        or k.startswith("rel_pos_bias.")
        or "relative_position_bias_table" in k
        for k in keys
    ):
        return "beit"
    if any(k.startswith(("decoder_", "mask_token")) for k in keys):
        return "mae"
    return "vit"  # plain timm key family: DeiT / timm ViT, MAE fine-tuned, exported MAE encoders


def _strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def to_canonical(
    state: dict[str, torch.Tensor], source: str = "auto"
) -> tuple[dict[str, torch.Tensor], list[str], str, list[str]]:
    """Convert a raw state dict; returns (canonical state, ignored keys, source, notes)."""
    if source == "auto":
        source = detect_source(state)
    if source not in SOURCES:
        raise CheckpointError(f"unknown checkpoint source {source!r}; choose from auto, {', '.join(SOURCES)}")
    notes: list[str] = []
    ignored: list[str] = []
    if source == "mocov3":
        prefix = next(
            (p for p in ("module.base_encoder.", "base_encoder.") if any(k.startswith(p) for k in state)),
            None,
        )
        if prefix is None:
            raise CheckpointError("MoCo v3 checkpoint has no 'module.base_encoder.' keys")
        ignored += [k for k in state if not k.startswith(prefix)]  # momentum encoder, predictor
        state = _strip_prefix(state, prefix)
    out: dict[str, torch.Tensor] = {}
    q_bias: dict[str, torch.Tensor] = {}
    v_bias: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        if _IGNORED.match(k) or k.endswith("relative_position_index"):
            ignored.append(k)
            continue
        if source == "beit":
            m = re.match(r"^(blocks\.\d+)\.attn\.(q|v)_bias$", k)
            if m:
                (q_bias if m.group(2) == "q" else v_bias)[m.group(1)] = v
                continue
            k = re.sub(r"\.gamma_([12])$", r".ls\1.gamma", k)
        out[k] = v
    for blk, qb in q_bias.items():
        vb = v_bias.get(blk, torch.zeros_like(qb))
        out[f"{blk}.attn.qkv.bias"] = torch.cat([qb, torch.zeros_like(qb), vb])
    if q_bias:
        notes.append("BEiT q_bias/v_bias merged into qkv.bias (k bias = 0)")
    pos = out.get("pos_embed")
    if (
        "dist_token" in state
        and pos is not None
        and round((pos.shape[1] - 2) ** 0.5) ** 2 == pos.shape[1] - 2
    ):
        out["pos_embed"] = torch.cat([pos[:, :1], pos[:, 2:]], dim=1)  # DeiT-distilled: cls, dist, grid
        notes.append("DeiT distillation token's position embedding dropped (cls + grid kept)")
    if "patch_embed.proj.weight" not in out:
        raise CheckpointError(
            f"{source} checkpoint has no 'patch_embed.proj.weight': not a ViT state dict "
            f"(first keys: {', '.join(list(state)[:3])})"
        )
    return out, ignored, source, notes


def read_vit_checkpoint(path: str, source: str = "auto") -> tuple[dict[str, torch.Tensor], LoadReport, dict]:
    """Load a checkpoint file (weights_only) and convert it; returns (canonical state, report, extras).

    ``extras`` holds non-tensor metadata the file carries (e.g. 'arch' written by this project).
    """
    raw = load_checkpoint(path)
    extras = {k: v for k, v in raw.items() if k == "arch"} if isinstance(raw, dict) else {}
    state = extract_state_dict(raw, path)
    canonical, ignored, src, notes = to_canonical(state, source)
    return canonical, LoadReport(source=src, path=str(path), ignored=ignored, notes=notes), extras


def infer_vit_arch(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Width / depth / patch size / pretraining grid of a canonical ViT state dict."""
    w = state["patch_embed.proj.weight"]
    depth = 1 + max((int(m.group(1)) for k in state if (m := re.match(r"^blocks\.(\d+)\.", k))), default=-1)
    arch: dict[str, Any] = {
        "embed_dim": w.shape[0],
        "patch_size": w.shape[-1],
        "in_chans": w.shape[1],
        "depth": depth,
    }
    if "blocks.0.mlp.fc1.weight" in state:
        arch["mlp_ratio"] = state["blocks.0.mlp.fc1.weight"].shape[0] / w.shape[0]
    if "pos_embed" in state:
        n = state["pos_embed"].shape[1]
        side = int(round((n - 1) ** 0.5))
        arch["has_cls_pos"] = side * side == n - 1
        side = side if arch["has_cls_pos"] else int(round(n**0.5))
        arch["pretrain_grid"] = side
    return arch


def resize_pos_embed(src: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """A (1, [1 +] H*W, C) absolute position embedding resampled (bicubic, timm) to ``target``'s square grid;
    a cls slot is kept, dropped or zero-filled as the target has one (a resizer for ``apply_to_model``)."""
    from timm.layers import resample_abs_pos_embed

    def split(n: int, what: str) -> tuple[int, int]:  # (grid side, cls slots)
        for prefix in (0, 1):
            side = int(round((n - prefix) ** 0.5))
            if side * side == n - prefix:
                return side, prefix
        raise CheckpointError(f"{what} pos_embed with {n} positions is neither a square grid nor grid + cls")

    (s_side, s_cls), (t_side, t_cls) = split(src.shape[1], "checkpoint"), split(target.shape[1], "model")
    cls, grid = src[:, :s_cls], src[:, s_cls:]
    grid = resample_abs_pos_embed(
        grid,
        new_size=[t_side, t_side],
        old_size=[s_side, s_side],
        num_prefix_tokens=0,
        interpolation="bicubic",
        antialias=False,
    )
    if t_cls:
        grid = torch.cat([cls if s_cls else torch.zeros_like(grid[:, :1]), grid], dim=1)
    return grid


def resize_rel_pos_table(src: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """A BEiT-layout relative position bias table (rows (2h-1)(2w-1) [+3 cls rows], heads) resized (bicubic,
    timm) to ``target``'s square window; the 3 cls rows are kept, dropped or zero-filled as the target has
    them."""
    from timm.layers.pos_embed_rel import resize_rel_pos_bias_table_simple

    def split(rows: int) -> tuple[int, int]:  # (table side, cls rows)
        for extra in (0, 3):
            side = int(round((rows - extra) ** 0.5))
            if side * side == rows - extra and side % 2 == 1:
                return side, extra
        raise CheckpointError(f"relative position table with {rows} rows is not a square (2g-1)^2 [+3] table")

    (s_side, s_extra), (t_side, t_extra) = split(src.shape[0]), split(target.shape[0])
    if src.shape[1] != target.shape[1]:
        raise CheckpointError(
            f"relative position table has {src.shape[1]} heads, the model {target.shape[1]}"
        )
    window = ((t_side + 1) // 2,) * 2
    out = resize_rel_pos_bias_table_simple(
        src[: s_side * s_side].float(), window, (t_side * t_side, src.shape[1])
    )
    if t_extra:
        extra = src[s_side * s_side :] if s_extra else torch.zeros(3, src.shape[1])
        out = torch.cat([out, extra.float()], dim=0)
    return out.to(target.dtype)


def apply_to_model(
    model: torch.nn.Module,
    state: dict[str, torch.Tensor],
    report: LoadReport,
    may_be_new: Callable[[str], bool] = lambda k: False,
    resizers: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] | None = None,
) -> LoadReport:
    """Load ``state`` into ``model`` and fill ``report``.

    Per model key: same shape -> loaded; other shape -> resized by ``resizers[key](ckpt, model_tensor)``
    or an error; absent -> newly initialized if ``may_be_new(key)``, else an error naming the key.
    Checkpoint keys the model does not have are *ignored*. Nothing is written into the model unless every
    key is reconciled.
    """
    resizers = resizers or {}
    own = model.state_dict()
    to_load: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    for key, target in own.items():
        if key in state:
            src = state[key]
            if tuple(src.shape) == tuple(target.shape):
                to_load[key] = src
                report.loaded.append(key)
            elif key in resizers:
                try:
                    to_load[key] = resizers[key](src, target)
                except CheckpointError as e:
                    raise CheckpointError(f"{report.path or 'checkpoint'}: {e}") from None
                report.resized.append(f"{key} {tuple(src.shape)}->{tuple(target.shape)}")
            else:
                raise CheckpointError(
                    f"{report.path or 'checkpoint'}: {key} has shape {tuple(src.shape)}, "
                    f"the model needs {tuple(target.shape)}"
                )
        elif may_be_new(key):
            report.new.append(key)
        else:
            missing.append(key)
    if missing:
        raise CheckpointError(
            f"{report.path or 'checkpoint'} [{report.source}] lacks {len(missing)} key(s) the model "
            f"needs, e.g. {', '.join(_collapse(missing)[:3])}"
        )
    report.ignored += [k for k in state if k not in own]
    model.load_state_dict(to_load, strict=False)
    return report
