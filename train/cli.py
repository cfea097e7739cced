"""Command-line parsing shared by the entry points: --config FILE[:ARG], --config.FIELD=VALUE, --workdir.

Config files are ml_collections files with get_config(), as in the Flax examples;
`FILE:ARG` passes ARG to get_config (e.g. configs/abc_sort.py:standard).
Overrides are parsed by the type of the field they replace, and a misspelt field
gets a one-sentence error with the closest known name.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import difflib
import importlib.util
import inspect
import math
import os
import traceback
from types import SimpleNamespace

import ml_collections
from absl import logging

import configs
from configs.base import make_config
from lowrank_jax.training.config import OPTIONAL_FIELDS
from train.errors import UserError

CONFIG_FOLDER = os.path.dirname(configs.__file__)
DEFAULT_CONFIG = os.path.join(CONFIG_FOLDER, "abc_sort.py")
OVERRIDE_PREFIX = "--config."
TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")
OPEN_FIELD = ["model", "attention_kwargs"]  # takes keys a config file did not list
BASE_FIELDS = [name for name in make_config("abc_sort", {}) if name not in OPTIONAL_FIELDS]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default unless it has none worth showing or says it itself."""

    def _get_help_string(self, action):
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class RawEpilogFormatter(HelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Keeps the line breaks of a description or epilog that lists things."""


class Parser(argparse.ArgumentParser):
    """An entry point's flags; a bad one is one sentence (a UserError), not usage and exit.
    `doc` is the entry point's docstring: its first paragraph after the usage line is the
    description --help shows; defaults are shown beside each option."""

    def __init__(self, doc: str | None = None, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(description=kwargs.pop("description", None) or description(doc),
                         **kwargs)
        logging.set_verbosity(logging.ERROR)  # Orbax's info and warnings are not for end users

    def error(self, message):  # argparse would print usage and exit; we want one sentence
        raise UserError(f"{message}; see --help.")


def description(doc: str | None) -> str | None:
    """The paragraph after a docstring's usage lines, joined into one."""
    if not doc:
        return None
    paragraphs = [p for p in doc.strip().split("\n\n") if p.strip()]
    return " ".join(paragraphs[1 if len(paragraphs) > 1 else 0].split())


def make_output_folder(out: str) -> None:
    """--out as a folder, made if new; one sentence if it cannot be."""
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as err:
        raise UserError(f"--out {out!r} cannot be made a folder ({err.strerror}); pass a folder "
                        "you can write to.") from None


def check_folder_can_be_made(path: str, flag: str = "--out") -> None:
    """One sentence now, before long work, if `path` could not be made a folder later."""
    parent = os.path.abspath(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise UserError(f"{flag} {path!r} cannot be made a folder ({parent} is not a folder "
                        "you can write to); pass a folder you can write to.")


def number_list(kind):
    """An argparse type: comma-separated numbers (the one list style of every tool)."""
    def parse(text: str) -> list:
        try:
            values = [kind(part) for part in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a comma-separated list of {kind.__name__}s") from None
        if not all(math.isfinite(x) for x in values):
            raise argparse.ArgumentTypeError(f"{text!r} has a value that is not finite")
        return values
    parse.__name__ = f"{kind.__name__} list"
    return parse


def word_list(choices):
    """An argparse type: comma-separated names from `choices`."""
    def parse(text: str) -> list[str]:
        words = text.split(",")
        bad = [w for w in words if w not in choices]
        if bad:
            raise argparse.ArgumentTypeError(
                f"{bad[0]!r} is not one of {', '.join(choices)}")
        return words
    parse.__name__ = "name list"
    return parse


def shipped_configs() -> list[str]:
    return sorted(os.path.splitext(f)[0] for f in os.listdir(CONFIG_FOLDER)
                  if f.endswith(".py") and f not in ("__init__.py", "base.py"))


CONFIG_EPILOG = ("Shipped configs: {names}. --config takes one of them by name (NAME or "
                 "NAME:ARG, from any directory) or a path to a config file. Override any "
                 "field with --config.FIELD=VALUE, e.g. --config.steps=3000 "
                 "--config.model.attention_kwargs.strict=true.")


def parse_flags(argv: list[str], program: str, doc: str, workdir: bool,
                dry_run: bool = False) -> SimpleNamespace:
    """--config, --config.FIELD=VALUE overrides, and --workdir (required unless `workdir`,
    which defaults it to runs/<config name>); `dry_run` adds --dry-run."""
    parser = Parser(prog=program, doc=doc,
                    epilog=CONFIG_EPILOG.format(names=", ".join(shipped_configs())))
    parser.add_argument("--config", default="abc_sort",
                        help="a shipped config's NAME[:ARG], or a config file FILE[:ARG] "
                             "(ARG goes to get_config)")
    parser.add_argument("--workdir", required=not workdir,
                        help="checkpoints and metrics (default: runs/<config name>)"
                        if workdir else "the folder a training run wrote")
    if dry_run:
        parser.add_argument("--dry-run", action="store_true",
                            help="print the resolved config and the parameter count; write "
                                 "nothing, train nothing")
    args, rest = parser.parse_known_args(argv[1:])
    unknown = [a for a in rest if not a.startswith(OVERRIDE_PREFIX)]
    if unknown:
        raise UserError(f"unknown argument {unknown[0]!r}; see --help.")
    if args.workdir == "":
        raise UserError("--workdir is empty; give a folder.")
    path, _, arg = args.config.partition(":")
    name = os.path.splitext(os.path.basename(path))[0] + (f"_{arg}" if arg else "")
    return SimpleNamespace(config=args.config, config_name=name, workdir=args.workdir,
                           dry_run=getattr(args, "dry_run", False),
                           overrides=[a[len(OVERRIDE_PREFIX):] for a in rest])


def config_path(path: str) -> str:
    """A config file as given, or a shipped config by name (abc_sort, configs/abc_sort.py)
    from any directory."""
    if os.path.isfile(path):
        return path
    shipped = os.path.join(CONFIG_FOLDER, os.path.basename(path))
    for candidate in (shipped, shipped + ".py"):
        if os.path.isfile(candidate) and os.path.basename(candidate) != "__init__.py":
            return candidate
    raise UserError(f"--config {path!r} is neither a config file nor a shipped config; "
                    f"shipped: {', '.join(shipped_configs())}.")


def load_config_file(spec: str) -> ml_collections.ConfigDict:
    path, _, arg = spec.partition(":")
    path = config_path(path)
    if not path.endswith(".py"):
        raise UserError(f"--config {path!r} is not a config file: it must be a Python file "
                        "(.py) with a get_config() function.")
    module_spec = importlib.util.spec_from_file_location("experiment_config", path)
    module = importlib.util.module_from_spec(module_spec)
    with config_file_errors(spec, path):
        module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise UserError(f"--config {path!r} has no get_config() function.")
    if arg and not inspect.signature(module.get_config).parameters:
        raise UserError(f"--config {spec!r}: get_config() of {path!r} takes no argument.")
    with config_file_errors(spec, path):
        config = module.get_config(arg) if arg else module.get_config()
    check_complete(config, path)
    return config


@contextlib.contextmanager
def config_file_errors(spec: str, path: str):
    """Any error raised running a config file, as one sentence naming its file and line;
    a ValueError is the config's own refusal of its argument, told as it is."""
    try:
        yield
    except SyntaxError as err:
        raise UserError(f"--config {path!r} line {err.lineno}: {err.msg}.") from None
    except ValueError as err:
        raise UserError(f"--config {spec!r}: {err}") from None
    except Exception as err:
        lines = [frame.lineno for frame in traceback.extract_tb(err.__traceback__)
                 if os.path.abspath(frame.filename) == os.path.abspath(path)]
        where = f" line {lines[-1]}" if lines else ""
        raise UserError(f"--config {path!r}{where} raised {type(err).__name__}: {err}.") from None


def check_complete(config, path: str) -> None:
    """A config file's get_config() must return a whole ConfigDict (configs/base.py makes one)."""
    if not isinstance(config, ml_collections.ConfigDict):
        raise UserError(f"--config {path!r}: get_config() returned a {type(config).__name__}, "
                        "not an ml_collections.ConfigDict; build it with configs/base.py's "
                        "make_config or make_lm_config.")
    missing = [name for name in BASE_FIELDS if name not in config]
    if missing:
        raise UserError(f"--config {path!r}: the config has no field {', '.join(missing)}; "
                        "build it with configs/base.py's make_config or make_lm_config.")


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
        where = ".".join(parts[:depth]) or "the config"
        if not isinstance(node, ml_collections.ConfigDict):
            raise UserError(f"--config.{field}: {where} is a value, not a section; write "
                            f"--config.{where}=VALUE.")
        if part not in node:
            known = list(node.keys())
            close = difflib.get_close_matches(part, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known fields: {', '.join(known)}."
            raise UserError(f"--config.{field}: {where} has no field {part!r}{hint}")
        if depth < len(parts) - 1:
            node = node[part]
    if isinstance(node[parts[-1]], ml_collections.ConfigDict):
        raise UserError(f"--config.{field}: {field} is a section, not a value; set one of "
                        f"its fields, as --config.{field}.FIELD=VALUE.")
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
