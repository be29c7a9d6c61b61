"""The leakage canary (`guard.poison_test=true`): proof that nothing fitted on a fold saw its test subject.

While fold k is fitted, its data module serves the held-out subject's inputs as NaN and its labels as an
invalid class (datamodules.datamodule.poisoned_features); the test step alone reads the real rows. NaN is
contagious: one poisoned row in a batch, a normalisation statistic, an AU graph or a generated sample turns
the weights it reaches non-finite, and an invalid label stops a loss or a class count with an error. After
fitting, `check_fitted_weights` names what was reached. A recipe that passes trains exactly the weights of an
unguarded run (tests/test_guard.py), so its guarded predictions are its predictions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch only where it is used: utils.cli imports LeakageError on every error path
    import torch


class LeakageError(RuntimeError):
    """Fitting a fold read its held-out subject's (poisoned) rows."""


def non_finite_tensors(module: torch.nn.Module) -> list[str]:
    """Names of the parameters and floating-point buffers of `module` holding a NaN or an infinity."""
    import torch

    return [
        name
        for name, tensor in module.state_dict().items()
        if torch.is_floating_point(tensor) and not bool(torch.isfinite(tensor).all())
    ]


def check_fitted_weights(module: torch.nn.Module, fold_name: str) -> None:
    """Raise LeakageError when fold `fold_name`'s fitted weights are not finite under the guard."""
    reached = non_finite_tensors(module)
    if reached:
        shown = ", ".join(reached[:5]) + (f" and {len(reached) - 5} more" if len(reached) > 5 else "")
        raise LeakageError(
            f"guard.poison_test: fold {fold_name}'s weights are not finite after fitting ({shown}): "
            "something fitted on this fold read its held-out subject's poisoned rows, so its unguarded "
            "results would have seen the test subject"
        )


def fit_guarded(trainer, module: torch.nn.Module, datamodule, fold_name: str) -> None:
    """`trainer.fit` of a poisoned fold: an error raised while fitting (an invalid label reaching a loss or
    an index, say) or weights left non-finite become one LeakageError naming the fold."""
    try:
        trainer.fit(module, datamodule=datamodule)
    except (IndexError, RuntimeError, ValueError) as err:
        first_line = str(err).splitlines()[0] if str(err) else ""
        raise LeakageError(
            f"guard.poison_test: fitting fold {fold_name} failed ({type(err).__name__}: {first_line}); "
            "if it fits without the guard, something fitted on this fold read its held-out subject's "
            "poisoned rows (NaN inputs, invalid labels)"
        ) from err
    check_fitted_weights(module, fold_name)
