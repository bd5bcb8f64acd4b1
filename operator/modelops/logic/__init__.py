"""Pure logic: decisions and desired objects computed from specs and observations, no I/O."""
