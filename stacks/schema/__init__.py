"""Config schema of the ``mlstack:`` namespace, one module per section.

``stacks.config`` assembles the sections into :class:`stacks.config.StackConfig`
and loads it; components never import from here.
"""
