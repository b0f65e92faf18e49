"""Segments rendered on different Ray nodes (real raylets via ray.cluster_utils.Cluster)."""

from __future__ import annotations

import pytest
import ray
from ray.cluster_utils import Cluster

from ecg_ray import RenderOptions
from ecg_ray.rendering.renderer import Renderer

from .frames import caption_mask, frame_numbers
from .test_render import CUES, expected_caption_frames


@pytest.fixture(scope="module")
def cluster():
    if ray.is_initialized():
        ray.shutdown()
    # The head holds the driver and the finalizer but no CPU for segment actors, so every
    # segment must run on a worker node and travel back through the object store.
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    workers = [c.add_node(num_cpus=1) for _ in range(2)]
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False)
    yield c, workers
    ray.shutdown()
    c.shutdown()


def test_segments_on_two_worker_nodes_join_correctly(cluster, numbered, tmp_path):
    c, workers = cluster
    r = Renderer(max_actors=2)
    try:
        out = tmp_path / "multi.mp4"
        res = r.render(str(numbered), CUES, str(out), RenderOptions(segments=4))
        nodes = {info["node_id"] for info in r.actor_info.values()}
        head = ray.get_runtime_context().get_node_id()
    finally:
        r.close()
    assert head not in nodes and len(nodes) == 2, nodes
    assert set(res.nodes) == nodes
    assert frame_numbers(out) == list(range(100))
    shown = {i for i, m in enumerate(caption_mask(out, numbered)) if m}
    assert shown == expected_caption_frames()
