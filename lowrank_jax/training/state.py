"""The training state and its sharding over a data-parallel device mesh."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


@struct.dataclass
class TrainState:
    step: jax.Array        # int32 scalar: optimizer updates done
    params: Any
    opt_state: Any
    rng: jax.Array         # uint32 key data: the run's training key; steps fold their index in


def make_mesh(num_devices: int) -> Mesh:
    return Mesh(np.array(jax.devices()[:num_devices]), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(DATA_AXIS))


def init_state(model, optimizer: optax.GradientTransformation, seed: int, seq_len: int) -> TrainState:
    init_key, train_key = jax.random.split(jax.random.key(seed))
    params = model.init(init_key, jnp.zeros((1, seq_len - 1), jnp.int32))["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=optimizer.init(params), rng=jax.random.key_data(train_key))


def state_shardings(abstract_state: TrainState, mesh: Mesh):
    """Every leaf replicated: plain data parallelism."""
    return jax.tree.map(lambda _: replicated(mesh), abstract_state)


def abstract_state(model, optimizer, seed: int, seq_len: int, mesh: Mesh):
    """Shapes, dtypes and shardings of the state, without computing it (for restoring)."""
    shapes = jax.eval_shape(lambda: init_state(model, optimizer, seed, seq_len))
    shardings = state_shardings(shapes, mesh)
    return jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                        shapes, shardings)


def create_state(model, optimizer, seed: int, seq_len: int, abstract: TrainState) -> TrainState:
    """The initial state, made directly with the shardings `abstract` (from abstract_state) holds."""
    return jax.jit(lambda: init_state(model, optimizer, seed, seq_len),
                   out_shardings=jax.tree.map(lambda s: s.sharding, abstract))()
