"""Storage components: the model-artifact bucket (``model_bucket``) and its key layout
(``layout``, pure functions shared with the config schema and the ``mlstack model`` CLI)."""
