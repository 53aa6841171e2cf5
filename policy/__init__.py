"""mlstack's CrossGuard policy pack: rules in :mod:`policy.rules`, engine in :mod:`policy.core`.

The rules are one module per area with one registry (``policy.rules.RULES``).

``python -m policy`` / ``pulumi preview --policy-pack policy`` serve the pack
(``policy/__main__.py``); ``mlstack policy <stack>`` runs the same rules offline.
"""
