"""The trainer: ``modelops train``, the training pod's entrypoint (it runs on a laptop too).

It reads a run config (``docs/contracts.md``), loads a dataset by URI, fits an allow-listed
scikit-learn estimator in a preprocessing Pipeline, and writes ``model.skops`` and
``result.json`` atomically, plus the pod's termination message.

Module map, pure pieces first:

- :mod:`modelops.train.config`     -- the run config, parsed and validated (pure);
- :mod:`modelops.train.estimators` -- the allow-list and estimator-spec validation (pure);
- :mod:`modelops.train.sweep`      -- ``expand_sweep`` and ``best_trial`` (pure, no sklearn);
- :mod:`modelops.train.metrics`    -- held-out metrics (pure);
- :mod:`modelops.train.locations`  -- what a run may read and where it may send signed requests (pure);
- :mod:`modelops.train.columns`    -- what is done to each column of a messy table, and the Pipeline (pure);
- :mod:`modelops.train.refstats`   -- reference statistics and the v2 signature (pure);
- :mod:`modelops.train.progress`   -- start, heartbeat and end lines of long fits;
- :mod:`modelops.train.signature`  -- what each input takes: categories, missing values (asks the model);
- :mod:`modelops.train.s3`         -- S3 Signature V4 (pure) and an object GET (I/O);
- :mod:`modelops.train.datasets`   -- fetching and parsing datasets by URI (I/O);
- :mod:`modelops.train.output`     -- atomic files and the termination message (I/O);
- :mod:`modelops.train.runner`     -- one training run, end to end;
- :mod:`modelops.train.cli`        -- argument parsing, exit codes, error reporting.

Importing this package imports nothing heavy, so the operator can use
``modelops.train.sweep`` and ``modelops.train.estimators.ALLOWED_ESTIMATORS`` cheaply.
"""
