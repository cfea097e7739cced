"""Errors a user can fix (lowrank_jax.validation.UserError, the one type the library and
the entry points raise for bad input): printed as one sentence, exit status 2, no traceback."""
import sys
from contextlib import contextmanager

from lowrank_jax.validation import UserError

USAGE_EXIT = 2

__all__ = ["USAGE_EXIT", "UserError", "exit_on_user_error"]


@contextmanager
def exit_on_user_error(program: str):
    try:
        yield
    except UserError as err:
        print(f"{program}: error: {err}", file=sys.stderr)
        sys.exit(USAGE_EXIT)
