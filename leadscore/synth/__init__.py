"""The synthetic CRM, one module per concern; ``leadscore.generator`` runs the phases in order.

- ``vocab``: the values a CRM field takes and what each does to hidden intent or quality.
- ``sampling``: vectorised draws (Poisson emissions, quarter-end clocks).
- ``accounts``, ``leads``: companies, and the leads on them with their hidden intent chain.
- ``deal_chain``: the deal's stage x regime Markov chain, its exact win probabilities.
- ``deals``: reps and the rounds of deals (new business, then what won deals bring).
- ``deal_history``: amounts, close dates, pushes and cuts, stage rows, deal activities.
- ``activities``: who each activity touched and in which direction.
- ``tables``, ``truth_tables``: the Arrow tables a CRM shows, and the hidden state behind them.

Every phase draws from the one ``np.random.Generator`` it is given, in a fixed order: the
same seed gives the same bytes however the code is laid out.
"""
