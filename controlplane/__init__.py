"""Control Plane: the Django project and its core apps."""

from controlplane.celery import app as celery_app

__all__ = ["celery_app"]
