"""Starting or joining Ray for `launcher=ray` (datagen and eval): a local cluster listens on loopback only.

Ray's services (GCS, raylet, object manager, every worker's and the driver's gRPC server) bind the node's IP address,
and on Linux `ray.init()` takes the machine's outward-facing address as the node IP — so a plain local `ray.init()`
listens on every interface, and anyone who can reach the machine can submit work to the cluster. Passing
`_node_ip_address="127.0.0.1"` alone does not help: `ray.init` deliberately replaces a loopback node address with
the outward-facing one (`ray._private.services.resolve_ip_for_localhost`, measured on ray 2.60), unless Ray runs
in its single-machine mode (`ray_constants.ENABLE_RAY_CLUSTER` false, the default on macOS and Windows). So a
local cluster is started in that mode, with node IP 127.0.0.1, and checked afterwards: if Ray still reports
another node address the cluster is shut down and the launch refused, rather than left listening on the network.

Joining a remote cluster stays possible: give its address (`ray_address=auto` or `host:port`); that cluster's own
settings decide what it listens on.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Iterator

LOOPBACK = "127.0.0.1"
_SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR


def is_loopback(ip: str) -> bool:
    """127.0.0.0/8, ::1, or an IPv4-mapped loopback address (::ffff:127.0.0.1, what Ray's gRPC servers report)."""
    try:
        addr = ipaddress.ip_address(ip.split("%")[0])
    except ValueError:
        return ip == "localhost"
    mapped = getattr(addr, "ipv4_mapped", None)
    return bool(addr.is_loopback or (mapped is not None and mapped.is_loopback))


@contextlib.contextmanager
def _single_machine_mode() -> Iterator[None]:
    """Ray's single-machine mode for the duration of `ray.init`: node IP = loopback (in this process, and in the
    processes `ray.init` starts, which inherit the environment)."""
    from ray._private import ray_constants

    had_const = hasattr(ray_constants, "ENABLE_RAY_CLUSTER")
    old_const = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    old_env = os.environ.get(_SINGLE_MACHINE_ENV)
    ray_constants.ENABLE_RAY_CLUSTER = False
    os.environ[_SINGLE_MACHINE_ENV] = "0"
    try:
        yield
    finally:
        if had_const:
            ray_constants.ENABLE_RAY_CLUSTER = old_const
        if old_env is None:
            os.environ.pop(_SINGLE_MACHINE_ENV, None)
        else:
            os.environ[_SINGLE_MACHINE_ENV] = old_env


def init_ray(address: str | None, num_cpus: int | None = None) -> bool:
    """Connect this process to Ray; True when this call did (the caller then calls `ray.shutdown()`).

    `address` None: start a new local cluster (`num_cpus` CPUs) whose services listen on 127.0.0.1 only — never
    one found through `RAY_ADDRESS` or a running `ray start`; any other address joins that cluster."""
    try:
        import ray
    except ImportError as e:
        raise RuntimeError("launcher=ray needs Ray: `pip install 'rho-sim[ray]'` (or ray)") from e
    if ray.is_initialized():
        return False
    common = {"include_dashboard": False, "log_to_driver": False}
    if address and address != "local":  # "local" is Ray's word for a new local cluster: the loopback one below
        ray.init(address=address, **common)
        return True
    with _single_machine_mode():
        ray.init(address="local", num_cpus=num_cpus, _node_ip_address=LOOPBACK, **common)
    ip = ray.util.get_node_ip_address()
    if not is_loopback(ip):
        ray.shutdown()
        raise RuntimeError(f"launcher=ray: the local Ray cluster came up on node address {ip}, not loopback, so it "
                           "would listen on the network; it was shut down (this Ray version ignores the single-machine "
                           f"mode rho relies on, {_SINGLE_MACHINE_ENV}=0). Fix: use launcher=local, or run a cluster "
                           "you have firewalled and pass its address (ray_address=host:port)")
    return True
