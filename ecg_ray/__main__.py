import sys

from ecg_ray.cli import main

sys.exit(main())
