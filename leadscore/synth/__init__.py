"""The synthetic CRM, one module per concern; ``leadscore.generator`` runs the phases in order.

- ``vocab``: the values a CRM field takes and what each does to hidden intent or quality.
- ``sampling``: vectorised draws (Poisson emissions, quarter-end clocks).
- ``accounts``, ``leads``: companies, and the leads on them with their hidden intent chain.
- ``deal_chain``: the deal's stage x regime Markov chain, its exact win probabilities.
- ``deals``: reps, new-business deals, and the one index space every deal ends up in.
- ``health``: a customer's hidden health chain after the sale, and its expansion rates.
- ``post_sale``: customers, contracts, renewal rounds and expansion deals.
- ``signals``: usage, tickets and surveys (``account_signals``), post-sale engagement.
- ``deal_history``: amounts, close dates, pushes and cuts, stage rows, deal activities.
- ``activities``: who each activity touched and in which direction.
- ``tables``, ``truth_tables``: the Arrow tables a CRM shows, and the hidden state behind them.

Every phase draws from the ``np.random.Generator`` it is given, in a fixed order: the same
seed gives the same bytes however the code is laid out. Pre-sale phases share one
generator, post-sale phases another, so the two parts can change independently.
"""
