"""The pipeline forecast: bookings of the current and the next period, with their range.

Pure functions of the CRM tables, an as-of time and the models (``deal_close`` and its
time-to-close companion): no I/O. Training's backtest and the pipeline review both call
:func:`forecast.core.forecast`. Imports ``features`` and ``modeling`` only.
"""
