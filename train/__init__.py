"""Entry points and everything with side effects: files, terminal, checkpoints."""
