"""Checking particle methods against their continua: external particle files (check) and sweeps with a verdict (verify)."""
