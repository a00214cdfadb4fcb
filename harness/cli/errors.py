"""Bad input ends in one line naming what was wrong, and exit code 2."""
from __future__ import annotations

import functools
import sys
from typing import Callable

import click

from bi_bench.engine import ModelLoadError
from bi_bench.kernels import KernelError

USAGE_ERROR = 2
INPUT_ERRORS = (ModelLoadError, KernelError, ValueError, NotImplementedError, FileNotFoundError)


class InputError(click.ClickException):
    exit_code = USAGE_ERROR

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def one_line_errors(command: Callable) -> Callable:
    """Turns input errors raised under `command` into a single line on stderr and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except INPUT_ERRORS as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(message) from None

    return wrapper


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(USAGE_ERROR)
