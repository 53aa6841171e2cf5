"""Delivery tooling: state backend bootstrap, Pulumi CLI access, history, rollback."""
