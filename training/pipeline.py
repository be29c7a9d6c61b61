"""The input pipeline a checkpoint was trained behind, kept inside it: what predict.py needs and nothing else.

Every checkpoint MERLin writes carries, in its `merlin` provenance entry, a `pipeline` entry: for each named
input the feature spec as plain fields (`preprocessing.features.spec_fields`) and its cache key, the
per-sample normalisation, the standardisation method with the statistics fitted on the fold's training
subjects, and the label map with its class names. With the network config already in the provenance
(`net`), a model can be rebuilt and fed from the checkpoint file alone: `python predict.py ckpt=...` asks
the user for no config. Everything is plain lists, numbers and strings: `torch.load(weights_only=True)`
reads it.

A checkpoint from before this entry (or with a newer `format`) is refused by the reader with a message that
names the file (inference.predictor).
"""

from __future__ import annotations

from collections.abc import Mapping

# Version of the `pipeline` entry. 1: this module.
PIPELINE_FORMAT = 1


def pipeline_config(specs: Mapping, inputs, label_map: str, classes, normalize, standardize) -> dict:
    """The part of the pipeline known before any data is fitted (set on the module by train.py)."""
    from preprocessing.features import spec_fields

    names = list(inputs)
    return {
        "format": PIPELINE_FORMAT,
        "inputs": names,
        "features": {name: spec_fields(specs[name]) for name in names},
        "feature_keys": {name: specs[name].key() for name in names},
        "label_map": str(label_map),
        "classes": list(classes),
        "normalize": _per_input(normalize, names),
        "standardize": _per_input(standardize, names),
    }


def pipeline_record(config: Mapping | None, datamodule) -> dict | None:
    """`config` (pipeline_config) completed with what `datamodule` fitted on its training subjects: the
    standardisation statistics of each input, and the names of fold transforms (which predict.py refuses)."""
    if config is None:
        return None
    micro = getattr(datamodule, "micro", datamodule)  # a paired (macro + micro) data module: the micro side
    stats = {}
    for name in config["inputs"]:
        mean, std = micro.stats[name]
        stats[name] = {
            "mean": mean.detach().cpu().float().tolist(),
            "std": std.detach().cpu().float().tolist(),
        }
    return {**config, "statistics": stats, "fold_transforms": sorted(getattr(micro, "fold_transforms", {}))}


def _per_input(value, names: list[str]) -> dict[str, str]:
    if isinstance(value, Mapping):
        return {name: str(value[name]) for name in names}
    return dict.fromkeys(names, str(value))
