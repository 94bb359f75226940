"""train_occupancy.py on a file with sensor faults: they are masked, counted in the summary line,
config.json and results.json, and --strict refuses the same file."""
from __future__ import annotations

import json

import numpy as np

from conftest import load_script


def faulty_csv(path):
  """10 days of 10-minute readings that change every step by day (08-20) and hold 3 at night,
  with a negative reading, one above the capacity 60 and a value frozen for 46 hours."""
  i = np.arange(10 * 144)
  hour = (i % 144) / 6
  v = np.where((hour >= 8) & (hour < 20), 20 + (i % 7), 3).astype(float)
  v[200], v[300] = -43, 75
  v[4 * 144 + 72:6 * 144 + 60] = 37
  t0 = np.datetime64("2024-03-04T00:00", "m")
  path.write_text("time,people\n" + "".join(
      f"{t0 + np.timedelta64(10 * k, 'm')},{x:g}\n" for k, x in enumerate(v)))
  return path


ARGS = ("--time-column", "time", "--value-column", "people", "--capacity", "60", "--preset",
        "notes", "--hidden-size", "8", "--epochs", "1", "--window", "6", "--no-progress",
        "--no-plots")


def test_faults_are_masked_and_reported(tmp_path, capsys):
  csv = faulty_csv(tmp_path / "faulty.csv")
  main = load_script("train_occupancy.py").main
  assert main(["--csv", str(csv), *ARGS, "--out", str(tmp_path / "run")]) == 0
  out = capsys.readouterr().out
  frozen = 2 * 144 - 12 - 1
  assert (f"({10 * 144 - 2 - frozen} readings; masked {frozen + 2} readings" in out
          and f"negative 1 (0.2 h), above capacity 1 (0.2 h), frozen {frozen}" in out), out
  for name in ("config.json", "results.json"):
    masked = json.loads((tmp_path / "run" / name).read_text())["data"]["masked"]
    assert masked["negative"]["readings"] == 1 and masked["above_capacity"]["readings"] == 1
    assert masked["frozen"]["readings"] == frozen and masked["max_flat_hours"] == 12.0
  assert main(["--csv", str(csv), *ARGS, "--out", str(tmp_path / "strict"), "--strict"]) == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith("error: ") and "line 202: reading '-43'" in err and "\n" not in err
  assert not (tmp_path / "strict").exists()
