"""The experiments behind experiments/*.py: occupancy forecasting and the letters network.

Modules (imported by name, ``from rnn_jax.tasks import occupancy``; nothing is imported here,
so importing one experiment does not import the other):

* ``occupancy``: the occupancy experiment end to end (``DataSource``, ``PRESETS``, ``run``,
  ``evaluate``, ``main``) under train_occupancy.py.
* ``forecasting``: a finished run's forecast of the newest window (``load_run``, ``forecast``,
  ``forecast_text``) under forecast.py.
* ``letters``: the notes' letters network trained by plain SGD (``LettersConfig``, ``train``,
  ``make_epoch``, ``evaluate``), re-exporting the data names of rnn_jax.data.letters.
* ``letters_run``: the letters run under train_letters.py: data in, training, a run directory.
* ``rundir``: run directories: the ``--out`` checks, leftovers of killed writes, staging,
  config.json with the library versions.
"""
