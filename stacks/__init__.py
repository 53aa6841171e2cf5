"""The Pulumi program: config schema (``config``) and the one composition (``composition``)."""
