"""OCI ChainIDs (image-spec config.md): the identity of a stack of layers.

chainID(L0) = diffID(L0); chainID(Ln) = sha256(chainID(Ln-1) + " " + diffID(Ln)). Two images
that share their bottom layers share those chain ids, so their layer snapshots are shared.
"""

from __future__ import annotations

from _sha256 import sha256  # hashlib would load OpenSSL: ~3 ms more per unpack


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The chain id of every prefix of ``diff_ids`` (bottom layer first)."""
    chain: list[str] = []
    for diff_id in diff_ids:
        if not chain:
            chain.append(diff_id)
        else:
            text = f"{chain[-1]} {diff_id}".encode()
            chain.append(f"sha256:{sha256(text).hexdigest()}")
    return chain
