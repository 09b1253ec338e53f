"""M/s compiler: parses .ms programs, runs the nanopass pipeline, emits LLVM."""
