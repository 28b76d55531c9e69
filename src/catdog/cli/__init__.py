"""The `catdog` command: a thin Typer layer over the library (parse -> one library call -> print).

Each command group lives in its own module and registers itself on `app`. Library imports happen
inside the command bodies so that `catdog --help` stays instant (TensorFlow takes seconds to import).
Only `CatdogError` and failures of the machine (permission denied, a full or read-only disk: see
catdog.outputs.environment_error) are turned into a one-line message and exit code 1; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import gc
import sys

import typer

from catdog.errors import CatdogError

app = typer.Typer(
    name="catdog",
    help="Turn a folder of labeled photos into a trained, exported image classifier.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from catdog._version import __version__

        typer.echo(f"catdog {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print catdog's version and exit."),
) -> None:
    """Turn a folder of labeled photos into a trained, exported image classifier."""


def fail(message: str, code: int = 1) -> None:
    """Print one red line on stderr and exit non-zero."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=code)


def handle_errors(fn):
    """Decorator for commands: CatdogError or a machine's failure -> one line on stderr, exit 1; Ctrl-C -> 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CatdogError as e:
            fail(str(e))
        except Exception as e:
            from catdog.outputs import environment_error

            message = environment_error(e)
            if message is None:
                raise
            fail(message)
        except KeyboardInterrupt:
            typer.secho("interrupted", fg=typer.colors.YELLOW, err=True)
            raise typer.Exit(code=130) from None

    return wrapper


def _quiet_tensorflow() -> None:
    """Import TensorFlow up front without its C++ banner, unless only --help was asked for; not for `pack`,
    which imports it (as quietly) once its workers are checking images, to overlap the two."""
    args = sys.argv[1:]
    if args and args[0] != "pack" and not any(a in ("--help", "-h", "--version") for a in args):
        import catdog._tf  # noqa: F401


def _register_commands() -> None:
    import importlib

    for module in ("pack", "train", "evaluate", "predict", "export", "demo", "serve"):
        importlib.import_module(f"catdog.cli.{module}")


def main() -> None:
    _quiet_tensorflow()
    _register_commands()
    try:
        app()
    finally:
        # The process ends here. Python's shutdown then garbage-collects every object TensorFlow and Keras
        # created, 1.3-1.9 s on this 2-core machine after any command; frozen objects are left alone.
        gc.freeze()


if __name__ == "__main__":  # python -m catdog.cli
    sys.exit(main())
