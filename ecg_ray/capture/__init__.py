"""The caption page: one Chromium per segment actor, MotionText seeked frame by frame, the changed
captions captured (``browser``, ``overlay``, ``web/``)."""
