from django.db import models


class Heartbeat(models.Model):
    """Last time a periodic process proved it was alive; /readyz reads the one named "beat"."""

    name = models.CharField(max_length=64, unique=True)
    seen_at = models.DateTimeField()
    beats = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name} @ {self.seen_at:%Y-%m-%d %H:%M:%S}"
