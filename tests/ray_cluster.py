"""A two-node Ray cluster on 127.0.0.1 for the cluster test: ``python tests/ray_cluster.py``.

A head and a worker node, 1 CPU each, started with Ray's own test utility
(``ray.cluster_utils.Cluster``) in this process's environment (give it
``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN`` to require a token). The worker
node's processes also get ``STUDY_NODE_ROLE=worker``. Prints one JSON line,
``{"address": <GCS address>, "head": <node id>, "worker": <node id>}``, then
reads standard input: the line ``remove`` kills every process of the worker
node (answered by ``removed``); end of input shuts the cluster down.
"""

import json
import os
import sys

from ray.cluster_utils import Cluster


def main() -> None:
    node = dict(node_ip_address="127.0.0.1", num_cpus=1, include_dashboard=False)
    cluster = Cluster(initialize_head=True, head_node_args=node)
    os.environ["STUDY_NODE_ROLE"] = "worker"
    worker = cluster.add_node(**node)
    del os.environ["STUDY_NODE_ROLE"]
    print(json.dumps(dict(address=cluster.address, head=cluster.head_node.node_id, worker=worker.node_id)), flush=True)
    for line in sys.stdin:
        if line.strip() == "remove":
            cluster.remove_node(worker, allow_graceful=False)
            print("removed", flush=True)
    cluster.shutdown()


if __name__ == "__main__":
    main()
