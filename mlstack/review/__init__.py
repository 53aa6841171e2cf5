"""PR review without credentials: diff, parity, policy and cost over offline synth graphs.

Modules: :mod:`~mlstack.review.gitrefs` (temporary worktrees at a git ref, synth there
in a subprocess), :mod:`~mlstack.review.diff` (resource-graph diff and renderers),
:mod:`~mlstack.review.parity` (dev/prod shape and knob check),
:mod:`~mlstack.review.policy_check` (the ``policy/`` rules over a graph),
:mod:`~mlstack.review.cost` (monthly estimate from dated prices),
:mod:`~mlstack.review.review` (all of it as one Markdown report for CI).
"""
