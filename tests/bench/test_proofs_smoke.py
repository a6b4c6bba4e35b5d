"""The proofs benchmark at a tiny size: every proof is made and verified, and the report renders."""

from __future__ import annotations

from bench import proofs


def test_proofs_bench_measures_every_part_at_a_tiny_size():
    lines: list[str] = []
    results = proofs.proofs_bench(leaves=1000, proofs=50, checkpoints=5, log=lines.append)
    assert results["leaves"] == 1000 and results["build_s"] >= 0
    full, older = results["inclusion"]["full tree"], results["inclusion"]["older checkpoint"]
    assert (
        full["tree_size"] == 1000
        and older["tree_size"] < 1000
        and older["tree_size"] & (older["tree_size"] - 1)
    )
    assert full["generated_per_s"] > 0 and full["verified_per_s"] > 0
    assert full["nodes_max"] == 10 and full["bytes_max"] == 320 and full["json_bytes_max"] > 640
    assert results["consistency"]["proofs"] == 12 and results["consistency"]["verified_per_s"] > 0
    assert results["cosigning"]["checkpoints"] == 5
    assert results["cosigning"]["cosign_latency_us"]["count"] == 5
    assert results["cosigning"]["consistency_proof_latency_us"]["count"] == 4
    assert any("witness cosigning" in line for line in lines)
    markdown = "\n".join(proofs.report({"proofs": results}))
    assert (
        "## Merkle proofs and witness cosigning" in markdown
        and "| inclusion, full tree | 1,000 |" in markdown
    )
    assert proofs.report({}) == []
