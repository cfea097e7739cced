"""Errors a user can fix: printed as one sentence, exit status 2, no traceback."""
import sys
from contextlib import contextmanager

from lowrank_jax.validation import ConfigError

USAGE_EXIT = 2


class UserError(Exception):
    """A problem with the user's input (paths, workdirs, files); the message is one sentence."""


@contextmanager
def exit_on_user_error(program: str):
    try:
        yield
    except (UserError, ConfigError) as err:
        print(f"{program}: error: {err}", file=sys.stderr)
        sys.exit(USAGE_EXIT)
