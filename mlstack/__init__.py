"""mlstack tooling: the ``mlstack`` CLI (synth, plan, checks, and the review and delivery tools)."""
