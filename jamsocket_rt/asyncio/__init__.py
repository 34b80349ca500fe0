"""The asyncio front end: Session and the shared status watchers."""
