"""Several hosts: one process per host, each started with the same command and three
environment variables (the JAX_* names jax.distributed uses):

    JAX_COORDINATOR_ADDRESS=host0:1234 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=0 python -m train ...

Process 0 is the primary: it alone holds the workdir's lock and writes metrics, TensorBoard
and config.json, and its stdout is the run's log (the others' is silenced, it would repeat
it); every process takes part in each step and in Orbax's checkpoints, so the workdir must
be one shared folder."""
from __future__ import annotations

import os
import sys

import jax
import numpy as np

from lowrank_jax.validation import is_digits
from train.errors import UserError

ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


def start_from_environment() -> None:
    """jax.distributed.initialize from the environment, before any JAX computation; a
    no-op when JAX_COORDINATOR_ADDRESS is unset (one host)."""
    if "JAX_COORDINATOR_ADDRESS" not in os.environ:
        return
    values = [os.environ.get(name, "") for name in ENV]
    count, index = (int(v) if is_digits(v) else -1 for v in values[1:])
    if count < 1 or not 0 <= index < count:
        raise UserError(f"JAX_NUM_PROCESSES={values[1]!r} and JAX_PROCESS_ID={values[2]!r} are "
                        "not allowed with JAX_COORDINATOR_ADDRESS; give the number of processes "
                        "and this one's index, from 0.")
    if os.environ.get("JAX_PLATFORMS", "") == "cpu":  # CPU devices talk over gloo
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(values[0], count, index)
    if index:  # the file descriptor too: the collectives' C++ reports print there
        sys.stdout.flush()
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def is_primary() -> bool:
    return jax.process_index() == 0


def agreed_stop(requested: int | None) -> int | None:
    """The stop signal every process acts on at this point of the loop: the first process's
    (by index) that has one, or None. A signal often reaches one host only, and hosts that
    stopped at different steps would wait for each other's collectives forever. One
    process alone needs no agreement; several pay one small collective per call."""
    if jax.process_count() == 1:
        return requested
    from jax.experimental import multihost_utils

    asked = multihost_utils.process_allgather(np.int32(requested or 0))
    return next((int(signum) for signum in asked if signum), None)
