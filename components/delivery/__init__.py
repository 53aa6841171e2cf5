"""Delivery components: the identities CI uses to preview and deploy the stacks."""
