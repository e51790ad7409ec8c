"""What the web process holds: the services of the composition root (`app_services`)."""

from app_services import AppServices

__all__ = ["AppServices"]
