"""Gradient verification and the bad-input / fault case tables.

Gradient checks (the hand gradients of rnn_jax.core against autodiff and finite differences):

    gradcheck     error measures, tolerances, check_rnn / check_mlp and their table
    fd            finite differences, ReLU's kink guard, the guarded step, probe directions
    problems      random RNN and MLP problems (rnn_problem, mlp_problem, to_dtype)
    identity      the notes' side identity y = sin(A x): its Jacobian and VJP

Robustness (tests/verify/test_robustness.py, test_faults.py and docs/robustness.md):

    inputs        small input files (readings and letters CSVs as bytes)
    bad_inputs    BadInput and BAD_INPUTS, the bad command lines of every script
    runner        running a script in-process or as a process; a bad input's violations
    trained       a tiny trained run, for the forecast.py cases and the faults
    observations  Observation (a row of the faults table) and the run-directory probes
    interrupts    SIGKILL, Ctrl-C and --resume of real training processes
    damage        unwritable --out, damaged checkpoints, leftover temporary files
    numerical     an overflowing loss, degenerate windows, extreme logits
    faults        Fault and FAULTS, the table of fault procedures
    report        docs/robustness.md from the cases (experiments/robustness_report.py)

Import the modules themselves (``from rnn_jax.verify import gradcheck``): the package imports
none of them, and no module here imports rnn_jax.train or rnn_jax.tasks until a fault runs.
"""
