"""The README is executable: every shell command of its bash blocks runs as written, in
order, in a fresh folder (training runs cut to a few steps), and every Python block runs
after them (the generation example reads the workdir the commands trained)."""
import os
import re
import shlex
import subprocess
import sys

import pytest

from helpers import ROOT

README = os.path.join(ROOT, "README.md")
# Appended to every training command: a few steps, so the examples run in seconds.
SHORT = ["--config.steps=4", "--config.warmup_steps=1", "--config.log_every=2",
         "--config.eval_every=4", "--config.checkpoint_every=4"]
STDIN = {"train.sort_demo": "cab\n"}
NOT_HERE = ("pip", "pytest")   # installing, and this very suite


def blocks(language: str) -> list[str]:
    with open(README, encoding="utf-8") as f:
        return re.findall(rf"```{language}\n(.*?)```", f.read(), re.S)


def shell_commands() -> list[list[str]]:
    """Each `python -m ...` of the bash blocks as argv: continuation lines joined, comments
    dropped, `a && b` split; pip and pytest left out."""
    commands = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                argv = shlex.split(part, comments=True)
                if argv and not any(word in argv[:3] for word in NOT_HERE):
                    assert argv[:2] == ["python", "-m"], f"README command {part!r}"
                    commands.append(argv)
    return commands


def run(argv: list[str], cwd, stdin: str = "") -> subprocess.CompletedProcess:
    """argv[0] is "python": this interpreter, in a user's environment (one device)."""
    env = {**os.environ, "PYTHONPATH": ROOT}
    env.pop("XLA_FLAGS", None)
    return subprocess.run([sys.executable, *argv[1:]], cwd=cwd, env=env, text=True,
                          input=stdin, capture_output=True, timeout=600)


def run_command(argv: list[str], cwd) -> subprocess.CompletedProcess:
    module = argv[2]
    short = SHORT if module == "train" and "--dry-run" not in argv else []
    return run(argv + short, cwd, STDIN.get(module, ""))


@pytest.fixture(scope="module")
def readme_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("readme")
    for argv in shell_commands():
        result = run_command(argv, folder)
        assert result.returncode == 0, f"{shlex.join(argv)}:\n{result.stderr[-2000:]}"
    return folder


def test_the_readme_has_the_quick_start_and_the_examples():
    modules = {argv[2] for argv in shell_commands()}
    assert {"train", "train.sort_demo", "train.evaluate", "train.generate",
            "train.analyze"} <= modules


def test_every_shell_command_runs_as_written(readme_folder):
    assert (readme_folder / "runs" / "abc_sort" / "checkpoints").is_dir()
    assert (readme_folder / "runs" / "lm_linformer_local" / "tokenizer.json").is_file()
    assert (readme_folder / "runs" / "sweep" / "sweep.csv").is_file()


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_every_python_block_runs_as_written(readme_folder, index):
    script = readme_folder / f"block_{index}.py"
    script.write_text(blocks("python")[index], encoding="utf-8")
    result = run(["python", str(script)], readme_folder)
    assert result.returncode == 0, result.stderr[-2000:]
