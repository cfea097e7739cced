"""Independent float64 NumPy references, written from the seeds' math (not from our modules).

Each takes the Flax parameter tree (converted to float64) so weights are shared exactly.
"""
import numpy as np

from lowrank_jax.attention.lowrank_qk import fixed_u

EPS = 1e-5


def f64(tree):
    if isinstance(tree, dict):
        return {k: f64(v) for k, v in tree.items()}
    return np.asarray(tree, np.float64)


def softmax(x, axis=-1):
    z = np.exp(x - x.max(axis=axis, keepdims=True))
    return z / z.sum(axis=axis, keepdims=True)


def layer_norm(p, x):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + EPS) * p["scale"] + p["bias"]


def rms_norm(p, x):
    return x / np.sqrt((x ** 2).mean(-1, keepdims=True) + EPS) * p["scale"]


def gelu(x):  # tanh approximation, as jax.nn.gelu's default
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


ACT = {"relu": lambda x: np.maximum(x, 0), "gelu": gelu}
NORM = {"layernorm": layer_norm, "rmsnorm": rms_norm}


def softmax_attention(q, k, v, causal=True, padding_mask=None, d_scale=None):
    """q, k (B, L, H, R), v (B, L, H, D) -> out (B, L, H, D), probs (B, H, L, L).
    Scores are divided by sqrt(d_scale), by default sqrt(R). Query i sees key j when
    (j <= i or not causal) and j is a real token; it always sees itself."""
    scores = np.einsum("blhd,bshd->bhls", q, k) / np.sqrt(d_scale or q.shape[-1])
    batch, length = q.shape[:2]
    visible = np.ones((batch, 1, length, length), bool)
    if causal:
        visible &= np.tril(np.ones((length, length), bool))
    if padding_mask is not None:
        visible &= padding_mask[:, None, None, :].astype(bool)
    visible |= np.eye(length, dtype=bool)
    scores = np.where(visible, scores, -np.inf)
    probs = softmax(scores)
    return np.einsum("bhls,bshd->blhd", probs, v), probs


def project_heads(p, x):
    out = np.einsum("ble,ehd->blhd", x, p["kernel"])
    return out + p["bias"] if "bias" in p else out


def merge_heads(p, o):
    out = np.einsum("blhd,hde->ble", o, p["kernel"])
    return out + p["bias"] if "bias" in p else out


def standard_attention(p, x, cfg, padding_mask=None):
    q, k, v = (project_heads(p[n], x) for n in ("query", "key", "value"))
    out, probs = softmax_attention(q, k, v, cfg.causal, padding_mask)
    return merge_heads(p["out"], out), probs


def deep_qkv_weight(p, name, kw):
    """Seed 001: W[h] = softmax(A[h] @ B[h] / temp, over D) (* base[h] unless strict), the
    softmax times D with unit_gate."""
    W = softmax(np.einsum("her,hrd->hed", p[f"{name}_A"], p[f"{name}_B"]) / max(kw["temp"], 1e-6))
    W = W * W.shape[-1] if kw["unit_gate"] else W
    return W if kw["strict"] else p[f"{name}_base"] * W


def deep_qkv_attention(p, x, cfg, padding_mask=None):
    kw = cfg.attention_kwargs
    q, k, v = (np.einsum("ble,hed->blhd", x, deep_qkv_weight(p, n, kw))
               for n in ("query", "key", "value"))
    out, probs = softmax_attention(q, k, v, cfg.causal, padding_mask)
    return merge_heads(p["out"], out), probs


def lowrank_u(p, kw):
    """U: the learnt parameter, or with learn_u=False the library's fixed orthonormal U (an
    input to the reference, as the parameters are)."""
    d_head = p["query"]["kernel"].shape[-1]
    return p["U"] if kw["learn_u"] else np.float64(fixed_u(d_head, kw["r"]))


def lowrank_qk_attention(p, x, cfg, padding_mask=None):
    """Seed 000, unfolded: Q' = (x W_q + b_q) U, K' = (x W_k + b_k) U, scores / sqrt(d_k)."""
    q, k, v = (project_heads(p[n], x) for n in ("query", "key", "value"))
    U = lowrank_u(p, cfg.attention_kwargs)
    out, probs = softmax_attention(q @ U, k @ U, v, cfg.causal, padding_mask, d_scale=cfg.d_head)
    return merge_heads(p["out"], out), probs


def pooled(max_len, span, columns):
    """projection="pool" from its definition: in each span of positions, slot s averages
    positions ceil(s span / c) up to (not including) ceil((s + 1) span / c)."""
    P = np.zeros((max_len, columns))
    for start in range(0, max_len, span):
        for s in range(columns):
            first, end = -(-s * span // columns), -(-(s + 1) * span // columns)
            P[start + first:start + end, s] = 1 / (end - first)
    return P


def linformer_attention(p, x, cfg, padding_mask=None, shared_E=None):
    """Seed 002 from its definition, one query at a time (independent of the block algebra).

    Bidirectional: K' = E[:L]^T K, V' = F[:L]^T V; each query attends to the k rows.
    Causal: query i sees E_j^T K_j for every block j before its own, then K[start..i].
    """
    kw = cfg.attention_kwargs
    q, k, v = (project_heads(p[n], x) for n in ("query", "key", "value"))
    if padding_mask is not None:
        k, v = k * padding_mask[:, :, None, None], v * padding_mask[:, :, None, None]
    if kw["projection"] == "pool":
        E = F = pooled(cfg.max_len, kw["block_size"] if kw["causal"] else cfg.max_len,
                       kw["block_slots"] if kw["causal"] else kw["k"])
    else:
        E = shared_E if kw["sharing"] == "layerwise" else p["E"]
        F = E if kw["sharing"] in ("kv", "layerwise") else p["F"]
    batch, length, heads, d = q.shape
    out = np.zeros_like(v)
    if kw["causal"]:  # the slots of the blocks this input has, then one block of local keys
        n_slots_all = -(-length // kw["block_size"]) * kw["block_slots"]
        width = n_slots_all + kw["block_size"]
    else:
        width = kw["k"]
    probs = np.zeros((batch, heads, length, width))
    for h in range(heads):
        Eh, Fh = (P[h] if P.ndim == 3 else P for P in (E, F))
        for bi in range(batch):
            for i in range(length):
                if not kw["causal"]:
                    keys, values = Eh[:length].T @ k[bi, :, h], Fh[:length].T @ v[bi, :, h]
                else:
                    size = kw["block_size"]
                    start = i // size * size
                    keys = [Eh[j:j + size].T @ k[bi, j:j + size, h] for j in range(0, start, size)]
                    values = [Fh[j:j + size].T @ v[bi, j:j + size, h] for j in range(0, start, size)]
                    own = [j for j in range(start, i + 1)
                           if j == i or padding_mask is None or padding_mask[bi, j]]
                    keys = np.concatenate(keys + [k[bi, own, h]])
                    values = np.concatenate(values + [v[bi, own, h]])
                w = softmax(keys @ q[bi, i, h] / np.sqrt(d))
                out[bi, i, h] = w @ values
                if kw["causal"]:  # slots of completed blocks, then the own block's keys
                    n_slots = start // kw["block_size"] * kw["block_slots"]
                    probs[bi, h, i, :n_slots] = w[:n_slots]
                    probs[bi, h, i, n_slots_all + np.array(own) - start] = w[n_slots:]
                else:
                    probs[bi, h, i] = w
    return merge_heads(p["out"], out), probs


ATTENTION = {"standard": standard_attention, "deep_qkv": deep_qkv_attention,
             "lowrank_qk": lowrank_qk_attention, "linformer": linformer_attention}


def dense(p, x):
    out = x @ p["kernel"]
    return out + p["bias"] if "bias" in p else out


def lowrank_linear(p, x):
    """Seed 003: x W with W = U V^T."""
    return x @ (p["U"] @ p["V"].T)


def ffn_layer(p, x):
    return lowrank_linear(p, x) if "U" in p else dense(p, x)


def layer_attention(p, i, x, cfg, padding_mask=None):
    """(out, weights) of layer i's attention on x, with the module every layer shares."""
    shared = {"shared_E": p["linformer_shared"]["E"]} if "linformer_shared" in p else {}
    return ATTENTION[cfg.attention](p[f"block_{i}"]["attention"], x, cfg, padding_mask, **shared)


def trunk(p, tokens, cfg, padding_mask=None):
    """Embeddings, blocks and final norm in float64, dropout off."""
    length = tokens.shape[1]
    x = p["token_embed"]["embedding"][tokens] + p["pos_embed"][:length]
    norm = NORM[cfg.norm]
    for i in range(cfg.n_layers):
        b = p[f"block_{i}"]
        attn = lambda h: layer_attention(p, i, h, cfg, padding_mask)[0]
        ffn = lambda h: ffn_layer(b["ffn"]["down"], ACT[cfg.activation](ffn_layer(b["ffn"]["up"], h)))
        for f, n in ((attn, "norm1"), (ffn, "norm2")):
            if cfg.norm_position == "pre":
                x = x + f(norm(b[n], x))
            else:
                x = norm(b[n], x + f(x))
    return norm(p["final_norm"], x)


def gpt(params, tokens, cfg, padding_mask=None):
    """Logits (B, L, V) of the GPT."""
    p = f64(params)
    x = trunk(p, tokens, cfg, padding_mask)
    if cfg.tie_embeddings:
        return x @ p["token_embed"]["embedding"].T
    return dense(p["lm_head"], x)


def classifier(params, tokens, cfg, padding_mask):
    """Class logits: the mean of the trunk's outputs over real tokens, then a linear layer."""
    p = f64(params)
    x = trunk(p, tokens, cfg, padding_mask)
    w = padding_mask[..., None].astype(np.float64)
    return dense(p["classifier"], (x * w).sum(1) / w.sum(1))
