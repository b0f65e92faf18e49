"""A job from plan to final file: the output grid and segments (``plan``), the segment and join
actors (``actors``, ``segment``), the shared actor pool (``scheduler``), the renderer (``renderer``)."""
