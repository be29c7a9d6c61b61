"""What the entry points share: every error a user can cause ends as one line on stderr and exit status 2.

Used by train.py, evaluate.py and `python -m datamodules.check` only (they are the code that knows Hydra;
library code raises ordinary exceptions that name the file, row or setting at fault). A traceback is shown
only with MERLIN_DEBUG=1.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# Exit status of an error the user can fix (a bad setting, file or database), as argparse uses it.
USAGE_ERROR = 2


def user_error_types() -> tuple[type[BaseException], ...]:
    """Exception types that describe a fault in the user's input or environment, not a bug of MERLin."""
    from datamodules.samples import SampleError
    from preprocessing.features import FeatureError
    from training.guard import LeakageError
    from training.rundir import RunDirError
    from training.settings import SettingError

    # ValueError covers SampleError/ReaderError and EvaluationError; OSError covers missing files, a full
    # disk, permissions and read-only folders (atomic writes name the file being written).
    return (ValueError, OSError, SampleError, FeatureError, RunDirError, SettingError, LeakageError)


def user_message(err: BaseException) -> str | None:
    """The one-line message of a user error, or None if `err` is not one (a bug: let it raise).

    Hydra's `instantiate` wraps whatever the target raised in an InstantiationException ("Error in call to
    target ... full_key ..."); the user's error is its cause. A target that cannot be found or called with
    the given arguments (a misspelt key, say) is a configuration error in itself.
    """
    from hydra.errors import InstantiationException

    wrapper = None
    while isinstance(err, InstantiationException):
        wrapper = err
        if err.__cause__ is None:
            return " ".join(str(err).split())
        err = err.__cause__
    if isinstance(err, user_error_types()):
        return str(err)
    if wrapper is not None and isinstance(err, TypeError):
        # e.g. "read_synthetic() got an unexpected keyword argument 'num_subject'"
        target = str(wrapper).split("'")[1] if "'" in str(wrapper) else "a config target"
        return f"{target}: {err}"
    return None


def report_error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


@contextmanager
def exit_on_user_error(on_error: Callable[[str], None] | None = None) -> Iterator[None]:
    """Turn a user error raised in the block into `error: <message>` on stderr and exit status 2.

    on_error: also called with the message (train.py writes it to the run's log). Bugs, SystemExit and
    KeyboardInterrupt pass through unchanged; with MERLIN_DEBUG=1 every error does.
    """
    try:
        yield
    except Exception as err:
        message = user_message(err)
        if message is None or os.environ.get("MERLIN_DEBUG"):
            raise
        if on_error is not None:
            on_error(message)
        report_error(message)
        sys.exit(USAGE_ERROR)
