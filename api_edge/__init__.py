"""The thin HTTP edge: authenticate, build a command, send it, map the reply. No business rules."""
