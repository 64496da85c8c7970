"""The book layer: what the book's experiment chapters call, kept out of the training library.

Nothing in ``tsallis_ref``'s core (losses, estimators, trainer, data) imports this package; it imports them.
It needs the ``book`` extra (pandas for its tables; matplotlib for :mod:`tsallis_ref.plotting`).

* :mod:`~tsallis_ref.experiments.runs`: the benchmark runs of the paper's §7
  (:class:`~tsallis_ref.experiments.runs.Settings`, :func:`~tsallis_ref.experiments.runs.run_method`,
  :func:`~tsallis_ref.experiments.runs.evaluate_base`, :func:`~tsallis_ref.experiments.runs.shared_base_model`).
* :mod:`~tsallis_ref.experiments.paper`: the paper's Tables 1-3 as data, with our rows beside them.
* :mod:`~tsallis_ref.experiments.records`: readers of recorded runs (GPU step costs, SmolLM2 cold-start curves).
* :mod:`~tsallis_ref.experiments.miniature_records`: the analysis of the miniature chapter's recorded runs
  (outcomes, the best stable learning rate, the escape step against p0 and its fit to Theorem 5.2).

Every public name is also available here (``from tsallis_ref import experiments as X; X.run_method(...)``).
"""

from . import miniature_records  # noqa: F401  (used as X.miniature_records.<name>)
from .paper import *  # noqa: F401,F403
from .paper import __all__ as _paper_all
from .records import *  # noqa: F401,F403
from .records import __all__ as _records_all
from .runs import *  # noqa: F401,F403
from .runs import __all__ as _runs_all

__all__ = [*_runs_all, *_paper_all, *_records_all, "miniature_records"]
