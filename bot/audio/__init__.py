"""Audio front end: PCM frames in, 16 kHz mono speech segments out."""
