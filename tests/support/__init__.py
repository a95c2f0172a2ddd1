"""Test support: a real OpenBao server, Vault seeding helpers and the Nomad API double."""
