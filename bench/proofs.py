"""Merkle proofs and witness cosigning: what receipts and the witness cost over a 1,000,000-event tree.

The tree is built from synthetic 32-byte event hashes (the leaf input of an event is its chain hash, so
nothing else about the events matters here) by `controlplane.ledger.merkle.MerkleTree`, which keeps
every complete subtree's hash per level. Measured, on one process:

- build          — leaf hashes plus every level, for the whole tree (one SHA-256 a node)
- inclusion      — RFC 9162 audit paths for random leaves of the full tree and of an older tree size
                   (a checkpoint that is not a power of two), generated and verified per second
- consistency    — proofs between random pairs of checkpoint sizes, generated and verified per second
- proof size     — nodes and bytes of an inclusion proof (and as the JSON hex a receipt carries)
- cosigning      — `Witness.cosign` per checkpoint: check the tree head, verify the consistency proof
                   from the last cosigned tree, sign, append one line and fsync; the consistency proof's
                   generation is timed apart

Throughput comes from a tight loop; latency percentiles from timing each call with `perf_counter_ns`.
"""

from __future__ import annotations

import hashlib
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench.loadgen import percentile


def _summary_us(samples_ns: list[int]) -> dict[str, float | None]:
    ordered = sorted(samples_ns)

    def us(value: float | None) -> float | None:
        return None if value is None else round(value / 1000, 2)

    return {
        "p50": us(percentile(ordered, 0.50)),
        "p99": us(percentile(ordered, 0.99)),
        "max": us(ordered[-1] if ordered else None),
        "count": len(ordered),
    }


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def proofs_bench(
    *,
    leaves: int = 1_000_000,
    proofs: int = 20_000,
    checkpoints: int = 50,
    seed: int = 6962,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Proof generation and verification rates, proof sizes and witness cosigning time (module docstring)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from controlplane.ledger import crypto
    from controlplane.ledger.merkle import MerkleTree, proof_hex, verify_consistency, verify_inclusion
    from controlplane.ledger.treehead import tree_head_for_tree, tree_head_sign
    from controlplane.ledger.witness import Witness

    rng = random.Random(seed)

    def event_hash(index: int) -> str:  # the chain hash of event seq index + 1, made up
        return hashlib.sha256(index.to_bytes(8, "big")).hexdigest()

    started = time.perf_counter()
    tree = MerkleTree.from_event_hashes(map(event_hash, range(leaves)))
    build_s = time.perf_counter() - started
    stored = sum(len(level) for level in tree._levels)
    log(f"  tree of {leaves:,} leaves built in {build_s:.2f} s ({stored / 2**20:.0f} MiB of node hashes)")
    results: dict[str, Any] = {
        "leaves": leaves,
        "build_s": round(build_s, 3),
        "stored_mib": round(stored / 2**20, 1),
    }

    older = max(1, leaves - leaves // 7 - 3)  # an older checkpoint whose size is not a power of two
    inclusion: dict[str, Any] = {}
    for label, size in (("full tree", leaves), ("older checkpoint", older)):
        root = tree.root(size)
        indices = [rng.randrange(size) for _ in range(proofs)]
        started = time.perf_counter()
        paths = [tree.inclusion_proof(i, size) for i in indices]
        gen_s = time.perf_counter() - started
        leaf_hashes = [tree.leaf(i) for i in indices]
        started = time.perf_counter()
        verdicts = [
            verify_inclusion(leaf, i, size, path, root)
            for leaf, i, path in zip(leaf_hashes, indices, paths, strict=True)
        ]
        ver_s = time.perf_counter() - started
        if not all(verdicts):
            raise RuntimeError("an inclusion proof did not verify")
        latency = []
        for i in indices[: min(proofs, 2000)]:
            t0 = time.perf_counter_ns()
            tree.inclusion_proof(i, size)
            latency.append(time.perf_counter_ns() - t0)
        nodes = [len(path) for path in paths]
        inclusion[label] = {
            "tree_size": size,
            "proofs": proofs,
            "generated_per_s": round(_rate(proofs, gen_s)),
            "verified_per_s": round(_rate(proofs, ver_s)),
            "generate_latency_us": _summary_us(latency),
            "nodes_max": max(nodes),
            "nodes_mean": round(sum(nodes) / len(nodes), 2),
            "bytes_max": max(nodes) * 32,
            "json_bytes_max": max(len(orjson.dumps(proof_hex(p))) for p in paths[:200]),
        }
        row = inclusion[label]
        log(
            f"  inclusion ({label}, size {size:,}): {row['generated_per_s']:,} generated/s, "
            f"{row['verified_per_s']:,} verified/s, {row['nodes_max']} nodes ({row['bytes_max']} bytes)"
        )
    results["inclusion"] = inclusion

    pairs = []
    for _ in range(max(1, proofs // 4)):
        a, b = sorted(rng.randrange(1, leaves + 1) for _ in range(2))
        pairs.append((a, b))
    roots = {n: tree.root(n) for pair in pairs for n in pair}
    started = time.perf_counter()
    consistency = [tree.consistency_proof(a, b) for a, b in pairs]
    gen_s = time.perf_counter() - started
    started = time.perf_counter()
    verdicts = [
        verify_consistency(a, b, roots[a], roots[b], p) for (a, b), p in zip(pairs, consistency, strict=True)
    ]
    ver_s = time.perf_counter() - started
    if not all(verdicts):
        raise RuntimeError("a consistency proof did not verify")
    results["consistency"] = {
        "proofs": len(pairs),
        "generated_per_s": round(_rate(len(pairs), gen_s)),
        "verified_per_s": round(_rate(len(pairs), ver_s)),
        "nodes_max": max(len(p) for p in consistency),
    }
    log(
        f"  consistency: {results['consistency']['generated_per_s']:,} generated/s, "
        f"{results['consistency']['verified_per_s']:,} verified/s"
    )

    ledger_key = Ed25519PrivateKey.generate()
    ledger_signer = crypto.Signer(ledger_key)
    ledger_key_id = crypto.key_id_for(crypto.public_bytes(ledger_key))
    sizes = sorted({max(1, leaves * (i + 1) // checkpoints) for i in range(checkpoints)})
    cosign_ns: list[int] = []
    proof_ns: list[int] = []
    with tempfile.TemporaryDirectory(prefix="bench-witness-") as directory:
        wit = Witness(Path(directory), Ed25519PrivateKey.generate())
        previous = None
        for size in sizes:
            head = tree_head_sign(
                tree_head_for_tree(tree, head_hash=event_hash(size - 1), size=size),
                key_id=ledger_key_id,
                signer=ledger_signer,
            )
            t0 = time.perf_counter_ns()
            proof = None if previous is None else proof_hex(tree.consistency_proof(previous, size))
            t1 = time.perf_counter_ns()
            wit.cosign(head, consistency_proof=proof)
            t2 = time.perf_counter_ns()
            if previous is not None:
                proof_ns.append(t1 - t0)
            cosign_ns.append(t2 - t1)
            previous = size
        log_bytes = wit.log_path("controlplane").stat().st_size
    results["cosigning"] = {
        "checkpoints": len(sizes),
        "cosign_latency_us": _summary_us(cosign_ns),
        "consistency_proof_latency_us": _summary_us(proof_ns),
        "log_bytes_per_record": round(log_bytes / len(sizes)),
    }
    cosigning = results["cosigning"]
    log(
        f"  witness cosigning: p50 {cosigning['cosign_latency_us']['p50']} us a checkpoint (fsync included), "
        f"consistency proof p50 {cosigning['consistency_proof_latency_us']['p50']} us"
    )
    return results


def report(results: dict[str, Any]) -> list[str]:
    """The Markdown section of bench/results/latest.md (empty when the part did not run)."""
    proofs = results.get("proofs")
    if not proofs:
        return []
    out = [
        "## Merkle proofs and witness cosigning",
        "",
        f"RFC 9162 tree over {proofs['leaves']:,} event hashes, built in {proofs['build_s']} s "
        f"({proofs['stored_mib']} MiB of node hashes kept per level); one process.",
        "",
        "| proofs | tree size | generated/s | verified/s | nodes (max) | bytes (max) | JSON bytes (max) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, row in proofs["inclusion"].items():
        out.append(
            f"| inclusion, {label} | {row['tree_size']:,} | {row['generated_per_s']:,} | "
            f"{row['verified_per_s']:,} | {row['nodes_max']} | {row['bytes_max']} | {row['json_bytes_max']} |"
        )
    row = proofs["consistency"]
    out.append(
        f"| consistency, random pairs | ≤ {proofs['leaves']:,} | {row['generated_per_s']:,} | "
        f"{row['verified_per_s']:,} | {row['nodes_max']} | {row['nodes_max'] * 32} | – |"
    )
    cosigning = proofs["cosigning"]
    latency, proof = cosigning["cosign_latency_us"], cosigning["consistency_proof_latency_us"]
    out += [
        "",
        f"Witness cosigning over {cosigning['checkpoints']} checkpoints: p50 {latency['p50']} us, p99 "
        f"{latency['p99']} us, max {latency['max']} us per checkpoint (tree-head check, consistency "
        f"proof verification, Ed25519 signature, one fsync'd line of ~{cosigning['log_bytes_per_record']} "
        f"bytes); generating the consistency proof: p50 {proof['p50']} us.",
        "",
    ]
    return out
