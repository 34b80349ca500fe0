"""The blocking front end: SyncSession on a shared background event loop."""
