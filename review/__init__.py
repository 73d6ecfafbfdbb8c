"""The manager's pipeline review: funnel metrics, the week's changes and at-risk deals as
of a date, as one typed :class:`review.schemas.Review`, rendered to a self-contained page.

``review.metrics`` defines each funnel metric once (``leadscore demo`` prints from the
same definitions); ``review.at_risk`` scores the open deals through serving's own path;
``review.build`` assembles the review and ``review.render`` turns it into HTML.
"""
