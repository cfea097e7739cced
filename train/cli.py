"""Command-line parsing shared by the entry points: --config FILE[:ARG], --config.FIELD=VALUE, --workdir.

Config files are ml_collections files with get_config(), as in the Flax examples;
`FILE:ARG` passes ARG to get_config (e.g. configs/abc_sort.py:standard).
Overrides are parsed by the type of the field they replace, and a misspelt field
gets a one-sentence error with the closest known name.
"""
from __future__ import annotations

import argparse
import ast
import difflib
import importlib.util
import inspect
import os
from types import SimpleNamespace

import ml_collections
from absl import logging

import configs
from train.errors import UserError

DEFAULT_CONFIG = os.path.join(os.path.dirname(configs.__file__), "abc_sort.py")
OVERRIDE_PREFIX = "--config."
TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")
OPEN_FIELD = ["model", "attention_kwargs"]  # takes keys a config file did not list


class Parser(argparse.ArgumentParser):
    """An entry point's flags; a bad one is one sentence (a UserError), not usage and exit."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        logging.set_verbosity(logging.ERROR)  # Orbax's info and warnings are not for end users

    def error(self, message):  # argparse would print usage and exit; we want one sentence
        raise UserError(f"{message}; see --help.")


def parse_flags(argv: list[str], program: str, workdir: bool) -> SimpleNamespace:
    parser = Parser(prog=program, description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG,
                        help="an ml_collections config file, optionally FILE:ARG for get_config(ARG)")
    parser.add_argument("--workdir", required=not workdir,
                        help="checkpoints and metrics (default runs/<config name>)")
    args, rest = parser.parse_known_args(argv[1:])
    unknown = [a for a in rest if not a.startswith(OVERRIDE_PREFIX)]
    if unknown:
        raise UserError(f"unknown argument {unknown[0]!r}; see --help.")
    path, _, arg = args.config.partition(":")
    name = os.path.splitext(os.path.basename(path))[0] + (f"_{arg}" if arg else "")
    return SimpleNamespace(config=args.config, config_name=name, workdir=args.workdir,
                           overrides=[a[len(OVERRIDE_PREFIX):] for a in rest])


def load_config_file(spec: str) -> ml_collections.ConfigDict:
    path, _, arg = spec.partition(":")
    if not os.path.isfile(path):
        raise UserError(f"--config {path!r} is not a file; pass a config file such as configs/abc_sort.py.")
    module_spec = importlib.util.spec_from_file_location("experiment_config", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise UserError(f"--config {path!r} has no get_config() function.")
    if arg and not inspect.signature(module.get_config).parameters:
        raise UserError(f"--config {spec!r}: get_config() of {path!r} takes no argument.")
    try:
        return module.get_config(arg) if arg else module.get_config()
    except ValueError as err:  # a config file's own refusal of its argument
        raise UserError(f"--config {spec!r}: {err}") from None


def parse_value(field: str, text: str, current):
    def fail(kind):
        raise UserError(f"--config.{field}={text!r} is not allowed; it must be {kind}.")
    if isinstance(current, bool):
        if text.lower() not in TRUE + FALSE:
            fail("true or false")
        return text.lower() in TRUE
    for kind, name in ((int, "an integer"), (float, "a number")):
        if isinstance(current, kind):
            try:
                return kind(text)
            except ValueError:
                fail(name)
    if current is None:  # an unset option: read numbers and booleans as such
        if text.lower() in TRUE[:1] + FALSE[:1]:
            return text.lower() == "true"
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
    return text


def apply_override(config: ml_collections.ConfigDict, override: str) -> None:
    if "=" not in override:
        raise UserError(f"--config.{override} has no value; write --config.{override}=VALUE.")
    field, text = override.split("=", 1)
    node, parts = config, field.split(".")
    for depth, part in enumerate(parts):
        if parts[:depth] == OPEN_FIELD and depth == len(parts) - 1 and part not in node:
            # A variant option the config file did not list: ModelConfig checks its name.
            node[part] = parse_value(field, text, None)
            return
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            where = ".".join(parts[:depth]) or "the config"
            known = list(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
            close = difflib.get_close_matches(part, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known fields: {', '.join(known)}."
            raise UserError(f"--config.{field}: {where} has no field {part!r}{hint}")
        if depth < len(parts) - 1:
            node = node[part]
    node[parts[-1]] = parse_value(field, text, node[parts[-1]])


def load_config(flags: SimpleNamespace) -> ml_collections.ConfigDict:
    config = load_config_file(flags.config)
    for override in flags.overrides:
        apply_override(config, override)
    configure_xla(config)
    return config


def configure_xla(config) -> None:
    """Tiny models run faster with one thread per op on CPU (XLA reads this when it starts)."""
    if config.get("cpu_single_thread", False):
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false"
                                   " intra_op_parallelism_threads=1").strip()
