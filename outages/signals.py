"""Outage signals other apps listen to (campaigns reroutes on open, fails back on close).

Both are sent only after the transaction that changed the window commits, exactly once per
transition. Receivers get ``window`` (an OutageWindow) and ``reopened`` (True when flap damping
turned a recently closed window back on instead of opening a new one).
"""

from django.dispatch import Signal

outage_opened = Signal()
outage_closed = Signal()
