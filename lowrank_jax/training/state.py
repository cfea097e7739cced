"""The training state and its sharding over a (data, fsdp) device mesh.

The batch splits over both axes. Every weight is annotated with logical axis names (Flax
logical partitioning, in the model's modules); RULES maps "embed" (d_model) to the fsdp
axis, so parameters and optimizer state are split along d_model over fsdp devices and
replicated over data devices. fsdp=1 is plain data parallelism."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import flax.linen as nn
from flax import struct
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from lowrank_jax.partitioning import named_axes

DATA_AXIS, FSDP_AXIS = "data", "fsdp"
RULES = (("embed", FSDP_AXIS),)   # logical axis -> mesh axis; every other axis stays whole


@struct.dataclass
class TrainState:
    step: jax.Array        # int32 scalar: optimizer updates done
    params: Any
    opt_state: Any
    rng: jax.Array         # uint32 key data: the run's training key; steps fold their index in


def make_mesh(data: int, fsdp: int = 1) -> Mesh:
    devices = np.array(jax.devices()[:data * fsdp]).reshape(data, fsdp)
    return Mesh(devices, (DATA_AXIS, FSDP_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P((DATA_AXIS, FSDP_AXIS)))


def init_state(model, optimizer: optax.GradientTransformation, seed: int, seq_len: int) -> TrainState:
    """With its weights (and their optimizer moments) boxed in their logical axis names."""
    init_key, train_key = jax.random.split(jax.random.key(seed))
    with named_axes():
        params = model.init(init_key, jnp.zeros((1, seq_len - 1), jnp.int32))["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=optimizer.init(params), rng=jax.random.key_data(train_key))


def state_shardings(abstract: TrainState):
    """The shardings an abstract state (from abstract_state) holds."""
    return jax.tree.map(lambda s: s.sharding, abstract)


def abstract_state(model, optimizer, seed: int, seq_len: int, mesh: Mesh):
    """Shapes, dtypes and shardings of the state, without computing it (for restoring)."""
    boxed = jax.eval_shape(lambda: init_state(model, optimizer, seed, seq_len))
    shardings = nn.logical_to_mesh_sharding(nn.get_partition_spec(boxed), mesh, RULES)
    return jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                        nn.unbox(boxed), shardings)


def create_state(model, optimizer, seed: int, seq_len: int, abstract: TrainState) -> TrainState:
    """The initial state, made directly with the shardings `abstract` (from abstract_state) holds."""
    return jax.jit(lambda: nn.unbox(init_state(model, optimizer, seed, seq_len)),
                   out_shardings=state_shardings(abstract))()
