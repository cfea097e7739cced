"""What every attention variant shares: head layout, the causal mask, the masked softmax.

Shapes use nanodo-style suffixes: B batch, L query length, S key length, H heads,
D head width, E model width.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn
try:
    # jax's own cuDNN binding, under jax.nn.dot_product_attention: the one way to give cuDNN
    # queries and keys narrower than the values (narrow_cudnn_attention). It is private, so a
    # jax that moves it costs only that route (zero-padding takes over), never the import.
    from jax._src.cudnn import fused_attention_stablehlo as cudnn_fmha
except ImportError:
    cudnn_fmha = None

from lowrank_jax.partitioning import logical

# PyTorch's nn.Linear default (kaiming_uniform with a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
# The seeds are PyTorch; their models train with this init, so ours start where theirs do.
torch_linear_init = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")

ATTENTION_WEIGHTS = "attention_weights"
# With the queries scaled, the weights are softmax(queries keys^T, masked): what the seed-004
# analysis (lowrank_jax.analysis) needs to refit keys to a layer's attention.
ATTENTION_QUERIES = "attention_scaled_queries"
ATTENTION_VALUES = "attention_values"


# The (E, H, D) kernel's fan-in is E, as for the (E, H*D) matrix it stands for.
head_kernel_init = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform", in_axis=0,
                                                    out_axis=(1, 2))


class HeadProjection(nn.Module):
    """x (B, L, E) -> (B, L, H, D) for one of query/key/value.

    `fold_DR` (D, r) right-multiplies kernel and bias before they meet x: x (W U) + b U
    equals (x W + b) U, at r/D of the cost of projecting to D and then to r.
    """

    cfg: Any

    @nn.compact
    def __call__(self, x_BLE: jax.Array, fold_DR: jax.Array | None = None) -> jax.Array:
        cfg = self.cfg
        kernel_EHD = self.param("kernel", logical(head_kernel_init, "embed", "heads", "head_dim"),
                                (cfg.d_model, cfg.n_heads, cfg.d_head), cfg.storage_dtype)
        bias_HD = (self.param("bias", nn.initializers.zeros, (cfg.n_heads, cfg.d_head),
                              cfg.storage_dtype) if cfg.use_bias else None)
        if fold_DR is not None:
            kernel_EHD = jnp.einsum("ehd,dr->ehr", kernel_EHD, fold_DR)
            bias_HD = None if bias_HD is None else bias_HD @ fold_DR
        dtype = cfg.compute_dtype
        y_BLHD = jnp.einsum("ble,ehd->blhd", x_BLE.astype(dtype), kernel_EHD.astype(dtype))
        return y_BLHD if bias_HD is None else y_BLHD + bias_HD.astype(dtype)


def output_projection(cfg, use_bias: bool, kernel_init=torch_linear_init) -> nn.Module:
    """Merged heads (B, L, H, D) -> (B, L, E)."""
    return nn.DenseGeneral(features=cfg.d_model, axis=(-2, -1), use_bias=use_bias,
                           kernel_init=logical(kernel_init, "heads", "head_dim", "embed"),
                           dtype=cfg.compute_dtype,
                           param_dtype=cfg.storage_dtype, name="out")


HALF_DTYPES = (jnp.bfloat16, jnp.float16)


def fast_hardware(dtype, backend: str | None = None) -> bool:
    """Fast paths (cuDNN flash attention, the Pallas kernel) run on a GPU in bf16/fp16;
    elsewhere, and in float32, every variant takes its plain einsum form."""
    return (backend or jax.default_backend()) == "gpu" and dtype in HALF_DTYPES


def cudnn_head_fits(width: int) -> bool:
    """cuDNN's fused kernel takes head widths that are multiples of 8, up to 128."""
    return width % 8 == 0 and width <= 128


def token_fast_path(cfg, backend: str | None = None) -> bool:
    """Whether a variant that attends to every earlier token (standard, deep_qkv, lowrank_qk)
    runs cuDNN: half precision on a GPU and a head width cuDNN takes, with or without a
    padding mask (padded_cudnn_attention)."""
    return fast_hardware(cfg.compute_dtype, backend) and cudnn_head_fits(cfg.d_head)


def cudnn_attention(q_BLHK, k_BSHK, v_BSHD, *, causal: bool, scale: float,
                    lengths_B=None) -> jax.Array:
    """Flash attention through cuDNN. `lengths_B`: each row's real tokens are its first
    lengths_B[b] (queries and keys). Queries and keys narrower than the values (lowrank_qk's
    r) go to cuDNN as they are where it takes them, else zero-padded to the values' width:
    the extra columns add 0 to every score."""
    if q_BLHK.shape[-1] != v_BSHD.shape[-1]:
        try:
            return narrow_cudnn_attention(q_BLHK, k_BSHK, v_BSHD, causal=causal, scale=scale,
                                          lengths_B=lengths_B)
        except NotImplementedError:   # cuDNN older than 9.10, or a GPU before Hopper
            pad = v_BSHD.shape[-1] - q_BLHK.shape[-1]
            q_BLHK, k_BSHK = (jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, pad)))
                              for x in (q_BLHK, k_BSHK))
    return jax.nn.dot_product_attention(q_BLHK, k_BSHK, v_BSHD, scale=scale, is_causal=causal,
                                        query_seq_lengths=lengths_B,
                                        key_value_seq_lengths=lengths_B, implementation="cudnn")


def narrow_cudnn_attention(q_BLHR, k_BSHR, v_BSHD, *, causal: bool, scale: float,
                           lengths_B=None) -> jax.Array:
    """cuDNN with queries and keys r wide against d-wide values, through jax's cuDNN binding:
    jax.nn.dot_product_attention refuses unequal widths, but cuDNN >= 9.10 on Hopper takes
    them (its multi-head latent attention case), doing r/d of the score matmul's work.
    benchmarks/cudnn_mla_qk.py measured it: 1.03-1.10x cuDNN at d = 64 from 1K to 32K."""
    if cudnn_fmha is None:
        raise NotImplementedError("this jax has no jax._src.cudnn.fused_attention_stablehlo")
    mask_type = {(False, False): cudnn_fmha.MaskType.NO_MASK,
                 (True, False): cudnn_fmha.MaskType.CAUSAL,
                 (False, True): cudnn_fmha.MaskType.PADDING,
                 (True, True): cudnn_fmha.MaskType.PADDING_CAUSAL}[causal, lengths_B is not None]
    return cudnn_fmha.dot_product_attention(q_BLHR, k_BSHR, v_BSHD, None, None, lengths_B,
                                            lengths_B, scale=scale, mask_type=mask_type)


def padded_cudnn_attention(q_BLHK, k_BLHK, v_BLHD, padding_mask_BL, *, causal: bool,
                           scale: float) -> jax.Array:
    """Self-attention under any padding mask through cuDNN, which masks by lengths only:
    each row's real tokens are moved to its front (a stable sort, so they keep their order
    and the causal mask among them is unchanged), attended by lengths, and moved back.
    Positions are already in q and k, so the move changes nothing else, and no (B, H, L, L)
    mask or weights exist. Padded queries' outputs differ from the masked softmax's (both
    finite); nothing reads them."""
    order_BL = jnp.argsort(~padding_mask_BL, axis=1, stable=True)
    # At least 1: an all-padding row (a filler row of the last eval batch) stays finite.
    lengths_B = jnp.maximum(padding_mask_BL.sum(1, dtype=jnp.int32), 1)
    q, k, v = (jnp.take_along_axis(x, order_BL[:, :, None, None], axis=1)
               for x in (q_BLHK, k_BLHK, v_BLHD))
    out_BLHD = cudnn_attention(q, k, v, causal=causal, scale=scale, lengths_B=lengths_B)
    back_BL = jnp.argsort(order_BL, axis=1)
    return jnp.take_along_axis(out_BLHD, back_BL[:, :, None, None], axis=1)


def at_least_float32(dtype):
    return jnp.promote_types(dtype, jnp.float32)


def causal_mask_LS(length: int) -> jax.Array:
    return jnp.tril(jnp.ones((length, length), dtype=bool))


def self_attention_mask(length: int, causal: bool, padding_mask_BL=None) -> jax.Array:
    """Which keys each query may see: (L, L), or (B, 1, L, L) with a padding mask.

    Padded keys are hidden from every query. A query always sees itself, so no row is
    empty: a padded query then attends to itself alone, and its (ignored) output stays
    finite instead of NaN, which would reach real positions through 0 * NaN.
    """
    mask_LL = causal_mask_LS(length) if causal else jnp.ones((length, length), bool)
    if padding_mask_BL is None:
        return mask_LL
    visible_B1LL = mask_LL & padding_mask_BL[:, None, None, :]
    return visible_B1LL | jnp.eye(length, dtype=bool)


def softmax_attention(q_BLHD, k_BSHD, v_BSHD, mask_LS, scale):
    """softmax(q k^T * scale, masked) v with the softmax in float32 or wider.

    `mask_LS` is (L, S) or anything that broadcasts to (B, H, L, S). Returns
    (out_BLHD, probs_BHLS). Masked entries get probability exactly 0, so a masked key
    cannot change the output, bit for bit.
    """
    scores_BHLS = jnp.einsum("blhd,bshd->bhls", q_BLHD, k_BSHD,
                             preferred_element_type=at_least_float32(q_BLHD.dtype)) * scale
    scores_BHLS = jnp.where(mask_LS, scores_BHLS, -jnp.inf)
    probs_BHLS = jax.nn.softmax(scores_BHLS, axis=-1)
    out_BLHD = jnp.einsum("bhls,bshd->blhd", probs_BHLS.astype(v_BSHD.dtype), v_BSHD)
    return out_BLHD, probs_BHLS


def self_attention(module: nn.Module, q_BLHD, k_BLHD, v_BLHD, *, causal: bool,
                   padding_mask_BL, scale) -> jax.Array:
    """Softmax attention of a sequence to itself (causal or not, padding hidden); the module
    sows the weights, the scaled queries and the values. Returns out_BLHD."""
    mask = self_attention_mask(q_BLHD.shape[1], causal, padding_mask_BL)
    out_BLHD, probs_BHLL = softmax_attention(q_BLHD, k_BLHD, v_BLHD, mask, scale)
    sow_weights(module, probs_BHLL)
    module.sow("intermediates", ATTENTION_QUERIES, q_BLHD * scale)
    module.sow("intermediates", ATTENTION_VALUES, v_BLHD)
    return out_BLHD


def sow_weights(module: nn.Module, probs_BHLS) -> None:
    """Stores attention weights when the caller asked for `mutable=["intermediates"]`."""
    module.sow("intermediates", ATTENTION_WEIGHTS, probs_BHLS)


def wants_weights(module: nn.Module) -> bool:
    return module.is_mutable_collection("intermediates")
