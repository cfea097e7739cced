"""Eight fake CPU devices for the whole suite (multi-device tests compare them with one),
and one thread per XLA op, which is faster for the suite's tiny models. Both must be
set before JAX starts its backend. JAX's persistent compilation cache, shared by the
workers and the `python -m ...` runs the tests start (they inherit the environment): many
tests compile the same programs, each in a fresh process."""
import os
import shutil
import tempfile
import time

os.environ["XLA_FLAGS"] = " ".join([
    os.environ.get("XLA_FLAGS", ""), "--xla_force_host_platform_device_count=8",
    "--xla_cpu_multi_thread_eigen=false", "intra_op_parallelism_threads=1"]).strip()


def compilation_cache_dir() -> str:
    """A folder of this test run's own, which its xdist workers share. JAX writes an entry
    in place, so a run killed mid-write leaves it torn: a later run must not read it, and
    the main process removes the folders of runs older than a day."""
    parent = os.path.join(tempfile.gettempdir(), f"lowrank-jax-tests-{os.getuid()}")
    if "PYTEST_XDIST_WORKER" not in os.environ and os.path.isdir(parent):
        for name in os.listdir(parent):
            if time.time() - os.path.getmtime(os.path.join(parent, name)) > 86_400:
                shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
    return os.path.join(parent, os.environ.get("PYTEST_XDIST_TESTRUNUID", f"pid{os.getpid()}"))


os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", compilation_cache_dir())

import contextlib  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402

from lowrank_jax import ATTENTIONS, UserError, ModelConfig  # noqa: E402


def small_config(**changes) -> ModelConfig:
    base = dict(vocab_size=11, max_len=16, d_model=16, n_layers=2, n_heads=4, d_ff=24,
                embed_init_std=0.5)
    return ModelConfig(**{**base, **changes})


def variant_cases(causal: bool = True) -> list[tuple[str, dict]]:
    """(variant, attention_kwargs) for each registered variant's EXAMPLES that a small model
    of this causality takes: the case lists of the suite, so registering a variant tests it."""
    cases = []
    for name, variant in ATTENTIONS.items():
        for kwargs in variant.EXAMPLES:
            try:
                small_config(attention=name, attention_kwargs=kwargs, causal=causal)
            except UserError:
                continue
            cases.append((name, kwargs))
    return cases


def choices_message(field: str, value, allowed) -> str:
    """The regex of validation.check_choice's sentence."""
    import re

    return re.escape(f"{field}={value!r} is not allowed; choose one of "
                     f"{', '.join(map(repr, allowed))}.")


@pytest.fixture
def key():
    return jax.random.key(0)


@contextlib.contextmanager
def x64():
    """float64 JAX for the span of a reference comparison."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)


def float64_config(**changes) -> ModelConfig:
    with x64():
        return small_config(dtype="float64", param_dtype="float64", **changes)


# The modules whose tests take longest, started first: under pytest-xdist (--dist
# loadscope: a module's tests, and so its module fixtures, stay on one worker) a long
# module that starts last would leave the other workers idle at the end.
LONGEST_FIRST = ("test_interruptions.py", "test_readme.py", "test_faults.py",
                 "test_sharding.py", "test_training.py", "test_text.py", "test_classification.py",
                 "test_generate.py", "test_cli.py", "test_mqar.py", "test_fast_paths.py",
                 "test_multi_gpu.py")


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)
