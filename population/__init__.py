"""The population engine: a Bulk FHIR export (NDJSON) indexed by patient, evaluated against every
enabled policy in worker processes (``population.engine``), counted into an uptake tally
(``population.uptake``) and rendered as the commissioners' report (``population.report``).
The ``iport-cds evaluate --population`` command calls it; it imports no Flask and no ``cli``.
"""
