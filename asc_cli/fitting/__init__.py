"""``asc fit``: the search for the most accurate model that fits a named microcontroller
(:mod:`asc_cli.fitting.search`), its space (:mod:`~asc_cli.fitting.space`), the feasibility check
before training (:mod:`~asc_cli.fitting.feasibility`), the Pareto front (:mod:`~asc_cli.fitting.pareto`),
the finalists' proof (:mod:`~asc_cli.fitting.prove`) and the report (:mod:`~asc_cli.fitting.report`).
The public names are ``asc_cli.fit``, ``asc_cli.FitResult`` and ``asc_cli.SearchSpace`` (docs/fit.md)."""
