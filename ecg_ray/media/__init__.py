"""FFmpeg's side of a segment and a job: probing, decoding, burning captions in, encoding, joining
the segments into the container (``probe``, ``decode``, ``burn``, ``encode``, ``composite``, ``concat``)."""
