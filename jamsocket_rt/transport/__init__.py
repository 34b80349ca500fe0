"""Socket.IO connections under a Session: the contract and its implementations."""
