"""A toy search space for the strategy tests: ``n`` categorical variables ``x0 .. x{n-1}`` with ``options`` values
each, and an optional validity rule (``sum <= max_sum``), with cheap synthetic trial functions.

:class:`Toy` has only ``neighbours()`` (the protocol's fallback groups them by the changed ``to_dict()`` key);
:class:`NamedToy` names its variables (``variables()`` / ``with_value``). Both are importable by Dask workers and by
a subprocess (top-level classes and functions)."""

from __future__ import annotations

import itertools
import os
import time

from vnas_monai.spaces.protocol import choices_digest

SPACE = "toy_local_search"


class Toy:
    space = SPACE

    def __init__(self, values, options=3, max_sum=None):
        values = tuple(int(v) for v in values)
        if any(not 0 <= v < options for v in values):
            raise ValueError(f"toy values must be in range({options}); got {values}.")
        if max_sum is not None and sum(values) > max_sum:
            raise ValueError(f"toy values {values} break the rule sum <= {max_sum}.")
        self.values, self.n_options, self.max_sum, self.meta = values, int(options), max_sum, {}

    def to_dict(self):
        return {"space": self.space, **{f"x{i}": v for i, v in enumerate(self.values)}, "n": len(self.values),
                "options": self.n_options, "max_sum": self.max_sum}

    @classmethod
    def from_dict(cls, data):
        return cls([data[f"x{i}"] for i in range(data["n"])], data["options"], data["max_sum"])

    def digest(self):
        return choices_digest(self.space, {"x": list(self.values)})

    def valid(self, values):
        return self.max_sum is None or sum(values) <= self.max_sum

    def neighbours(self):
        out = []
        for i, v in enumerate(self.values):
            for other in range(self.n_options):
                values = self.values[:i] + (other,) + self.values[i + 1:]
                if other != v and self.valid(values):
                    out.append(type(self)(values, self.n_options, self.max_sum))
        return out

    def __repr__(self):
        return f"{type(self).__name__}{self.values}"


class NamedToy(Toy):
    def variables(self):
        return {f"x{i}": list(range(self.n_options)) for i in range(len(self.values))}

    def with_value(self, variable, option):
        i = int(variable[1:])
        values = self.values[:i] + (int(option),) + self.values[i + 1:]
        return type(self)(values, self.n_options, self.max_sum) if self.valid(values) else None


def separable(table):
    """The landscape of a separable score: ``sum_i table[i][x_i]`` for every encoding."""
    return {values: float(sum(row[v] for row, v in zip(table, values)))
            for values in itertools.product(*(range(len(row)) for row in table))}


def toy_trial(encoding, fold, seed, landscape, sleep=0.0, calls=None, with_resources=False):
    """The landscape's score of the encoding plus a fold/seed offset (exact in binary, so means are exact), with
    params and MACs; ``calls``: a file that gets one line per call (``digest fold seed``) before the work starts."""
    if calls is not None:
        with open(calls, "a") as f:
            f.write(f"{encoding.digest()} {fold} {seed}\n")
            f.flush()
            os.fsync(f.fileno())
    if sleep:
        time.sleep(sleep)
    out = {"score": landscape[encoding.values] + 0.25 * fold + 0.125 * seed, "params": 100 + sum(encoding.values),
           "macs": 1000 * (1 + encoding.values[0]), "time_s": float(sleep)}
    if with_resources:
        from distributed import get_worker

        worker = get_worker()
        out["resources"] = dict(worker.state.tasks[worker.get_current_task()].resource_restrictions or {})
    return out


def read_calls(path):
    """The ``(digest, fold, seed)`` of every call logged by :func:`toy_trial`, in order."""
    if not os.path.exists(path):
        return []
    return [(d, int(f), int(s)) for d, f, s in (line.split() for line in open(path).read().splitlines())]
