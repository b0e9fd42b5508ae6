"""Several runs in one invocation: sweeps (``sweep``, planned by ``plan``) and the AU search
(``au_search``, its search logic in ``au_boundary``), both built on ``runs`` (reserve an id,
run one variant in this process, record a run that could not start) and ``processes`` (runs
as concurrent processes released together)."""
