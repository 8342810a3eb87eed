"""Delivery signals other apps listen to (campaigns plans a fallback for a failed WhatsApp
message while its campaign is rerouted).

Sent only after the transaction that changed the rows commits. ``whatsapp_undelivered``:
receivers get ``message_contacts``, a dict of message id -> contact ids whose WhatsApp message
for it was reported undelivered, failed or bounced (ids only, never contact data).
"""

from django.dispatch import Signal

whatsapp_undelivered = Signal()
