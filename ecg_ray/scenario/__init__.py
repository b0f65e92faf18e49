"""What the caller's scenario becomes: validated, migrated from v1.3, normalized to MotionText v2.0,
its define assets fetched (``normalize``, ``migrate_v13``, ``assets``, ``plugins``, ``files``, ``model``)."""
