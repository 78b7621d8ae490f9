"""The views: one :class:`handgrad.report.Report` rendered for people and machines.

``terminal``       the lines and blocks ``handgrad check`` prints; ``summary`` the one-line table
``digest``         what a failing result says, shared by every view
``html_report``    the static report site (``--html``); ``site`` its index over many records
``markdown_html``  a derivation page typeset for the site (MathML)
``plots``          the figures (matplotlib, Agg); ``evidence`` the data they draw, from public
                   re-runs of a case (:func:`handgrad.check.start_case`)
``notebook``       ``_repr_html_`` of a Report in Jupyter

May import the records and cases, the oracles and the checking; never the grader or the front
doors, and never the private functions of the checking.
"""
