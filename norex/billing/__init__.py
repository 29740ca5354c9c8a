"""Stripe billing: what events mean (core, pure), recording them (store), asking Stripe again (stripe_api)."""
