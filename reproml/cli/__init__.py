"""`reproml ...`: every verb's argument parsing and printing; the parts it calls return data.

The verbs live in `reproml.cli.main` (the console script's `main`). May import every other part of the
package; nothing imports it (checked by tests/test_parts.py).
"""
