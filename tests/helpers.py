"""Helpers several test files share: running an entry point as a user does, checking
its one-sentence errors, fingerprinting a folder, and a tiny text-task config."""
import hashlib
import os
import subprocess
import sys
import time

from configs.lm_standard import get_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = ["--config.steps=4", "--config.warmup_steps=1", "--config.log_every=2",
         "--config.eval_every=4", "--config.checkpoint_every=2", "--config.num_devices=1"]


def user_env():
    env = {**os.environ, "PYTHONPATH": ROOT}
    env.pop("XLA_FLAGS", None)  # as a user's shell: one device
    return env


def run(module, *args, stdin="", cwd=ROOT):
    return subprocess.run([sys.executable, "-m", module, *args], input=stdin, capture_output=True,
                          text=True, cwd=cwd, env=user_env(), timeout=300)


def start(module, *args):
    """`python -m module args` in the background, as a user's shell starts it. Without the
    suite's compilation cache: a test may kill it while it writes an entry (in place)."""
    env = user_env()
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until(ready, process, timeout=120):
    """Polls `ready()` until true; fails if `process` ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline and process.poll() is None, process.stderr.read()
        time.sleep(0.02)


def assert_clean_error(result, message):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def tree_digest(path):
    digest = hashlib.sha256()
    for folder, _, files in sorted(os.walk(path)):
        for name in sorted(files):
            full = os.path.join(folder, name)
            digest.update(full.encode())
            with open(full, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


TINY = dict(max_len=16, d_model=16, n_layers=1, n_heads=2, d_ff=32)


def tiny_config(corpus_dir, cache_dir, **changes):
    config = get_config("local")
    config.model.update(TINY)
    config.data.update(dict(path=str(corpus_dir), glob="*.txt", val_fraction=0.2,
                            cache_dir=str(cache_dir), eval_windows=8, eval_batch_size=4))
    config.update(dict(steps=8, warmup_steps=2, log_every=2, eval_every=4, checkpoint_every=4,
                       batch_size=4, num_devices=1))
    config.update(changes)
    return config


def tensorboard_scalars(folder) -> dict[str, dict[int, float]]:
    """{tag: {step: value}} from the TensorBoard event files in `folder` (TFRecord framing:
    length, its CRC, the Event proto, its CRC)."""
    import glob
    import struct

    from tensorboardX.proto import event_pb2

    scalars = {}
    for path in sorted(glob.glob(os.path.join(str(folder), "events.out.tfevents.*"))):
        with open(path, "rb") as f:
            data = f.read()
        at = 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at:at + 8])
            event = event_pb2.Event()
            event.ParseFromString(data[at + 12:at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                scalars.setdefault(value.tag, {})[event.step] = value.simple_value
    return scalars
