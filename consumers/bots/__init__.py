"""Bots: keyword rules, auto-reply, opt-out compliance and the custom-bot SDK."""
