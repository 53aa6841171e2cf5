"""mlstack's CrossGuard policy pack: rules in :mod:`policy.rules`, engine in :mod:`policy.core`.

``python -m policy`` / ``pulumi preview --policy-pack policy`` serve the pack
(``policy/__main__.py``); ``mlstack policy <stack>`` runs the same rules offline.
"""
