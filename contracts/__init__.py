"""Message contracts of CBS: the only coupling between processes.

Every command, reply and event is a frozen pydantic model here. A breaking change is a new
`.v2` model, never an edit. This package imports nothing else of the project.
"""
