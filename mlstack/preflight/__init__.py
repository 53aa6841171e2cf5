"""``mlstack preflight <stack>``: read-only checks against the real account before ``pulumi up``.

The stack is synthesized offline first (the same program ``pulumi up`` runs); then
``facts`` collects what the plan depends on outside the program, and ``checks``
verifies each item against AWS with the standard boto3 credential chain
(``AWS_ENDPOINT_URL`` honoured). ``report`` renders one line per check, grouped, or
JSON. Exit codes: 0 all ok, 1 any FAIL, 2 usage/config error or no credentials.
Every check and its fix: docs/operations.md, "Preflight checks".
"""
