"""Bring your own CRM export: declarative mappings from an export to the data contract.

A mapping is one YAML file (``spec.py`` is its schema; ``document.py`` keeps every key's
line, so an error names the key and its line), usually laid over a shipped preset
(``presets/``: salesforce, hubspot, flat-leads, flat-deals). ``convert.py`` turns the
export's files into the contract's tables with where each row came from, ``values.py``
converts one column (value maps, lookups, time zones, dates, currencies), and
``importing.py`` validates the result with the loader's rules and writes the tables and
the report: `leadscore import`.
"""
