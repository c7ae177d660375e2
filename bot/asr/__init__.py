"""Speech recognition: faster-whisper behind a bounded queue of worker threads."""
