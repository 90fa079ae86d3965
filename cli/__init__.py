"""The ``iport-cds`` command line: run the service, load demo patients, evaluate records
offline (one patient or a whole population), and act as a CDS Hooks client.

``cli.main.main(argv)`` is the entry point; each sub-command lives in its own module.
"""
