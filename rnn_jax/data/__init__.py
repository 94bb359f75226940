"""Occupancy data, a CSV (or the built-in synthetic series) to a grid to windows, each step a
pure function of the one before::

    read_csv(path) / synthetic_readings()  ->  Readings   (UTC times, people, capacity or None)
    to_grid(readings, step, max_gap)        ->  Grid       (one value per step, NaN in gaps)
    make_dataset(readings, WindowSpec())    ->  Dataset    (train / val / test windows)
    newest_window(readings, spec, capacity) ->  the newest complete window, for forecasting

``readings`` describes the campus gym file; ``letter_recognition`` is not re-exported here.
"""
from rnn_jax.data.faults import DEFAULT_MAX_FLAT_HOURS
from rnn_jax.data.grid import N_CALENDAR, Grid, calendar_features, to_grid
from rnn_jax.data.readings import (GYM_TIME_COLUMN, GYM_VALUE_COLUMN, Readings, before,
                                    read_csv)
from rnn_jax.data.synthetic import synthetic_readings
from rnn_jax.data.timestamps import check_timezone
from rnn_jax.data.windows import (FEATURES, LEVELS, SPLITS, TASKS, Dataset, NewestWindow, Split,
                                  WindowSpec, levels_of, make_dataset, newest_window)

__all__ = [
    "DEFAULT_MAX_FLAT_HOURS", "FEATURES", "GYM_TIME_COLUMN", "GYM_VALUE_COLUMN", "LEVELS", "N_CALENDAR", "SPLITS", "TASKS",
    "Dataset", "Grid", "NewestWindow", "Readings", "Split", "WindowSpec", "before",
    "calendar_features", "check_timezone", "levels_of", "make_dataset", "newest_window",
    "read_csv", "to_grid", "synthetic_readings",
]
