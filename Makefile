# The two commands a new user needs (both set everything up first):
#   make demo   -> renders the built-in sample to demo.mp4
#   make test   -> lint (ruff), type checks (mypy), then the test suite (the image test included)
# And for the production image (docs/operations.md):
#   make image-test -> build ./Dockerfile with podman and test it from the inside (tests/test_image.py)
#   make image      -> build it as ecg-ray:latest (scripts/build_image.sh)
.PHONY: setup demo test bench clean image image-test image-clean

VENV ?= .venv

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/bin/ecg-render demo -o demo.mp4

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m pytest -q tests

image-test: setup
	$(VENV)/bin/python -m pytest -q tests/test_image.py

image:
	bash scripts/build_image.sh localhost/ecg-ray:latest

# The images the builds made and their cached layers; the debootstrap base too.
image-clean:
	-podman rmi localhost/ecg-ray:latest localhost/ecg-ray:test localhost/ecg-ray:dev localhost/ecg-ray-build:web \
	  localhost/ecg-ray-build:python localhost/ecg-debootstrap:bookworm
	podman image prune -f

bench: setup
	$(VENV)/bin/python bench/run_bench.py

clean:
	rm -rf demo.mp4 .pytest_cache
