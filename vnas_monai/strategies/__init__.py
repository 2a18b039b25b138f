"""Search strategies that know only the search-space protocol (:mod:`vnas_monai.spaces.protocol`).

MB-NAS's local search (Bosma et al. 2022, §2.3; issue 17): :func:`run_local_search` over any space whose encodings
have ``neighbours`` (or name their variables, :class:`vnas_monai.spaces.protocol.VariableEncoding`) and a digest;
each candidate is scored by trials (one encoding x fold x seed) run in process or on Dask distributed
(:mod:`vnas_monai.strategies.trials`) and archived as each finishes (:mod:`vnas_monai.strategies.archive`).
The differentiable strategies are the engine's (:class:`vnas_monai.engine.VNASSearchTrainer`).
"""

from .archive import TrialArchive, read_jsonl, without_time
from .local_search import PAPER_BUDGET, SearchResult, local_search, run_local_search, search_variables
from .trials import DaskRunner, SerialRunner, Trial, TrialError, TrialResult, TrialRunner, execute_trial

__all__ = [
    "DaskRunner",
    "PAPER_BUDGET",
    "SearchResult",
    "SerialRunner",
    "Trial",
    "TrialArchive",
    "TrialError",
    "TrialResult",
    "TrialRunner",
    "execute_trial",
    "local_search",
    "read_jsonl",
    "run_local_search",
    "search_variables",
    "without_time",
]
