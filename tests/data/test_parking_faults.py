"""Sensor faults in the parking panel (``../shared/data/parking/``, skipped without it): the
stretches that its README lists as frozen are masked by default, and ordinary days are not.

Each file is read as the panel's runs read it (``occupied``, the README's ``num_all`` as the
capacity, Europe/Berlin). "Masked" is judged against the raw file: a row of the file whose line
is not among the readings. The listed stretches are the README's, in Europe/Berlin local days
(inclusive) or UTC times as it writes them.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import shared_file
from rnn_jax import data

CAPACITY = {"bielefeld_hauptbahnhof": 900, "duesseldorf_schadow_arkaden": 693,
            "dresden_semperoper": 400, "nuernberg_erler_klinik": 200,
            "dresden_budapester_strasse": 127}

# (start, end): "YYYY-MM-DD" local days, inclusive, or "...Z" UTC times
LISTED = {
    "bielefeld_hauptbahnhof": [("2026-03-16T14:35Z", "2026-05-03T12:40Z"),
                               ("2025-12-06", "2025-12-07"), ("2026-02-07", "2026-02-11")],
    "duesseldorf_schadow_arkaden": [("2025-06-08", "2025-06-09"), ("2025-10-04", "2025-10-05"),
                                    ("2026-04-25", "2026-04-26")],
    "dresden_semperoper": [("2025-10-31", "2025-11-03"), ("2025-11-07", "2025-11-12"),
                           ("2025-11-14", "2025-11-24")],
    "nuernberg_erler_klinik": [("2025-04-28T11:40Z", "2025-05-13T09:25Z"),
                               ("2025-06-26T21:15Z", "2025-06-30T11:50Z"),
                               ("2024-10-03", "2024-10-06"), ("2026-04-04", "2026-04-06"),
                               ("2026-05-14", "2026-05-21"), ("2026-05-23", "2026-05-27")],
    "dresden_budapester_strasse": [("2025-10-31", "2025-11-03")],
}
ZONE = "Europe/Berlin"


def interval(start: str, end: str) -> tuple[pd.Timestamp, pd.Timestamp]:
  if start.endswith("Z"):
    return pd.Timestamp(start), pd.Timestamp(end)
  return (pd.Timestamp(start, tz=ZONE).tz_convert("UTC"),
          (pd.Timestamp(end, tz=ZONE) + pd.Timedelta(days=1)).tz_convert("UTC"))


@pytest.fixture(scope="module", params=sorted(CAPACITY))
def parking(request):
  name = request.param
  path = shared_file(f"parking/{name}.csv")
  raw = pd.read_csv(path)
  readings = data.read_csv(path, time_column="timestamp_utc", value_column="occupied",
                           capacity=CAPACITY[name], timezone=ZONE)
  masked = np.ones(len(raw), bool)
  masked[readings.line - 2] = False                 # line 2 is the first data row
  return name, raw, readings, masked, pd.to_datetime(raw["timestamp_utc"], utc=True)


def test_listed_frozen_stretches_are_masked(parking):
  name, raw, readings, masked, utc = parking
  for start, end in LISTED[name]:
    lo, hi = interval(start, end)
    inside = ((utc >= lo) & (utc < hi)).to_numpy()
    share = masked[inside].mean()
    assert share > 0.95, f"{name} {start}..{end}: {share:.3f} of {inside.sum()} rows masked"


def test_ordinary_days_are_not_masked(parking):
  """Outside the listed stretches and the readings that are impossible, under 3% of the rows
  are masked (measured: Nürnberg 2.7%, Düsseldorf 2.4%, Bielefeld 0.65%, Semperoper 0.51%,
  Budapester Straße 0.22%; mostly weekends on which the value never changes, which the README
  counts among the flat days without listing them); on the median day none."""
  name, raw, readings, masked, utc = parking
  listed = np.zeros(len(raw), bool)
  for start, end in LISTED[name]:
    lo, hi = interval(start, end)
    listed |= ((utc >= lo) & (utc < hi)).to_numpy()
  impossible = ((raw["occupied"] < 0) | (raw["occupied"] > CAPACITY[name])).to_numpy()
  ordinary = ~listed & ~impossible
  assert masked[ordinary].mean() < 0.03, f"{name}: {masked[ordinary].mean():.4f}"
  day = utc.dt.tz_convert(ZONE).dt.date.to_numpy()
  per_day = pd.Series(masked[ordinary]).groupby(day[ordinary]).mean()
  assert per_day.median() == 0.0


# docs/forecasting.md, "Sensor faults": frozen readings and the hours they stand for
FROZEN = {"bielefeld_hauptbahnhof": (13536, 1432), "duesseldorf_schadow_arkaden": (5476, 581),
          "dresden_semperoper": (5640, 598), "nuernberg_erler_klinik": (13293, 1430),
          "dresden_budapester_strasse": (1291, 142)}


def test_frozen_counts_are_the_docs(parking):
  name, raw, readings, masked, utc = parking
  frozen = readings.masked()["frozen"]
  assert (frozen["readings"], round(frozen["hours"])) == FROZEN[name]
  assert readings.active_hours[0] in (6, 7) and readings.active_hours[-1] in (20, 22)


def test_impossible_readings_are_the_readmes(parking):
  """Düsseldorf's full code (negative ``free``) gives 2,887 rows above 693; Semperoper's two
  spike rows are negative; the other files have none."""
  name, raw, readings, masked, utc = parking
  expected = {"duesseldorf_schadow_arkaden": (0, 2887), "dresden_semperoper": (2, 0)}
  got = (readings.n_masked_negative, readings.n_masked_above_capacity)
  assert got == expected.get(name, (0, 0))
  assert readings.n_masked == masked.sum()
