"""Helpers for the allow-rule tests: code that lives in its own module and file, so a rule can
match it by module (``blocking_helpers.legacy``), path (``*/blocking_helpers/legacy.py``) or
function (``read_config``, ``blocking_helpers.legacy.LegacyStore.load``)."""
