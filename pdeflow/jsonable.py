"""``json.dumps`` defaults shared by every writer of JSON in pdeflow (summaries, reference files)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def jsonable(obj):
    """numpy scalars and arrays, sets, tuples and paths as JSON values; TypeError otherwise."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    if isinstance(obj, tuple):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialize {type(obj).__name__}")


def jsonable_or_repr(obj):
    """As :func:`jsonable`, with anything else written as its repr (provenance of user objects)."""
    try:
        return jsonable(obj)
    except TypeError:
        return repr(obj)
