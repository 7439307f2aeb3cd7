"""The station's reliability and security proof: ``python -m reliability [--long]``.

Each category (OCPP fuzzing, power cuts, backend outages, hardware faults, storage faults,
security) tries many hostile or broken situations against the real daemon on 127.0.0.1 and
counts them: tried / survived / lost. The short run of every category is also a test
(``tests/test_reliability_*.py``); the long run's counts are in ``docs/RELIABILITY.md``.
"""
