"""Two "hosts" on one machine: two processes, two CPU devices each, one model trained on all four.

    python examples/two_hosts.py            # launches both processes, prints their checksums

On real machines, run the same script with ``--worker`` once per host, each with
``JAX_COORDINATOR_ADDRESS`` (process 0's address and a free port), ``JAX_NUM_PROCESSES``
and ``JAX_PROCESS_ID`` set; each host then contributes the devices it has.
Every wait is bounded: the workers give up after ``--timeout`` seconds and the
launcher kills both if they are not done by then.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEVICES_PER_PROCESS = 2


def worker(timeout_s: int, epochs: int = 3, batch_size: int = 64) -> dict:
    """Join the group, train one MLP on the global mesh, return this process's view of the result."""
    import jax  # imported here: XLA_FLAGS and the JAX_* variables must be set before JAX starts
    import numpy as np
    from flax import nnx

    import mlkit
    from mlkit.train import parallel

    process, processes = parallel.initialize(timeout_s)
    mesh = parallel.data_mesh()  # jax.devices() now lists the devices of every process
    data = mlkit.load_dataset("digits", seed=0)  # the same data on every process (device_put checks it)
    model = mlkit.MLP(data.num_features, hidden=(32,), num_classes=data.num_classes, seed=0)
    config = mlkit.TrainConfig(epochs=epochs, batch_size=batch_size, progress=False)
    history = mlkit.fit(model, data, config, mesh=mesh)
    # Parameters are replicated: each process reads the copy on its first local device.
    local = [np.asarray(p.addressable_data(0)) for p in jax.tree.leaves(nnx.state(model, nnx.Param))]
    digest = hashlib.sha256(b"".join(p.tobytes() for p in local)).hexdigest()
    result = {
        "process": process,
        "processes": processes,
        "devices": mesh.size,
        "local_devices": jax.local_device_count(),
        "per_device_batch": batch_size // mesh.size,
        "status": history.status,
        "train_loss": history.train_loss,
        "checksum": float(sum(p.astype(np.float64).sum() for p in local)),
        "sha256": digest,
    }
    jax.distributed.shutdown()
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(timeout_s: int = 60, processes: int = 2) -> list[dict]:
    """Start ``processes`` workers on 127.0.0.1 and return their results.

    If one fails, the others are stopped at once; past ``timeout_s`` all are killed.
    """
    address = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "JAX_NUM_PROCESSES": str(processes),
        "JAX_COORDINATOR_ADDRESS": address,
        "JAX_COORDINATOR_BIND_ADDRESS": address,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={DEVICES_PER_PROCESS}",
    }
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--timeout", str(timeout_s)]
    with tempfile.TemporaryDirectory() as logs:
        outs = [Path(logs, f"{i}.out") for i in range(processes)]
        errs = [Path(logs, f"{i}.err") for i in range(processes)]
        procs = []
        for i in range(processes):
            with open(outs[i], "w") as out, open(errs[i], "w") as err:
                procs.append(subprocess.Popen(command, env={**env, "JAX_PROCESS_ID": str(i)}, stdout=out, stderr=err))
        deadline = time.monotonic() + timeout_s
        try:
            while None in (codes := [p.poll() for p in procs]) and set(codes) <= {None, 0}:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"The workers did not finish within {timeout_s} s; try --timeout {2 * timeout_s}."
                    )
                time.sleep(0.1)
        finally:
            stopped = [p.poll() is None for p in procs]
            for proc, stop in zip(procs, stopped, strict=True):
                if stop:
                    proc.kill()
                    proc.wait()
        failed = [i for i, p in enumerate(procs) if p.returncode != 0 and not stopped[i]]
        if failed:
            i = failed[0]
            raise RuntimeError(f"Process {i} exited with code {procs[i].returncode}:\n{errs[i].read_text()[-3000:]}")
        return [json.loads(out.read_text().strip().splitlines()[-1]) for out in outs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help="run one process of the group (reads JAX_* variables)")
    parser.add_argument("--timeout", type=int, default=60, help="seconds before any wait gives up")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.timeout)), flush=True)
        return
    results = launch(args.timeout)
    for r in results:
        print(
            f"process {r['process']}/{r['processes']}: {r['local_devices']} local of {r['devices']} devices, "
            f"{r['per_device_batch']} examples per device per step, losses "
            f"{[round(v, 4) for v in r['train_loss']]}, parameter checksum {r['checksum']:.6f} "
            f"(sha256 {r['sha256'][:16]})"
        )
    same = len({r["sha256"] for r in results}) == 1
    print("identical parameters on every process" if same else "PARAMETERS DIFFER between processes")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
