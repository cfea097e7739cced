"""Pure training pieces: config checks, optimizer, state, the jitted sharded step."""
