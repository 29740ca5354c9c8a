"""The control plane's HTTP side: the Stripe webhook (and, later, the customer dashboard)."""

from norex.web.webhook import create_app

__all__ = ["create_app"]
