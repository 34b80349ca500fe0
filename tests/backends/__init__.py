"""Session backends written for particular tests (run by the dev server as processes)."""
