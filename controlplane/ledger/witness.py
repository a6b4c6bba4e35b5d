"""A witness outside the database: cosigned tree heads in an append-only file per ledger.

The database owner can rewrite the chain and every checkpoint stored beside it. A witness keeps, on
another volume and under its own Ed25519 key (never the ledger key), a log of every tree head it has
cosigned, and refuses to cosign one that does not extend the last (C2SP tlog-witness): the same seq
must come with the same hash, and a larger tree with an RFC 9162 consistency proof from the last
cosigned tree. A rewritten history then either cannot be cosigned or disagrees with the witness log.

The log is `<CONTROLPLANE_WITNESS_DIR>/<ledger>.jsonl`, one JSON object a line, fsync'd before the
cosignature is returned. Each record carries the tree head (seq, head hash, tree size, Merkle root, the
ledger's key id and signature), the consistency proof from the previous record's tree, the hash of the
previous record line (`prev`) and its position (`index`), the time, and the witness key id and
signature over the RFC 8785 bytes of everything else. `witness_log_verify` checks a log with nothing
but the witness public key.

The witness key comes from `CONTROLPLANE_WITNESS_KEY` (base64 of the 32-byte seed; the setting, else the
environment variable); in development (`CONTROLPLANE_LEDGER_AUTOGENERATE_KEY`) one is generated on first
use in `<CONTROLPLANE_WITNESS_DIR>/witness.key` (mode 0600).

Optionally a tree head is also POSTed to an external witness (`witness_post`) that answers with its
own record; the answer's cosignature is checked against that witness's pinned public key.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings

from controlplane.kernel.canonical import canonical_bytes, format_time
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger import crypto
from controlplane.ledger.merkle import proof_from_hex, verify_consistency
from controlplane.ledger.treehead import tree_head_only, tree_head_problem
from controlplane.ledger.verify import Failure

FORMAT = "controlplane-witness-record/v1"
GENESIS_PREV = "0" * 64
_LEDGER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
# The fields a record copies from the signed tree head, under the record's names.
_HEAD_FIELDS = {
    "seq": "seq",
    "head_hash": "head_hash",
    "tree_size": "tree_size",
    "root": "root",
    "ledger_key_id": "key_id",
    "ledger_signature": "signature",
}


def witness_dir() -> Path:
    """Where witness logs live (`CONTROLPLANE_WITNESS_DIR`, default `var/witness` in the project)."""
    default = Path(settings.BASE_DIR) / "var" / "witness"
    return Path(getattr(settings, "CONTROLPLANE_WITNESS_DIR", default))


def _configured_seed() -> str:
    return str(
        getattr(settings, "CONTROLPLANE_WITNESS_KEY", "") or os.environ.get("CONTROLPLANE_WITNESS_KEY", "")
    )


def witness_private_key(directory: Path | None = None) -> Ed25519PrivateKey:
    """The witness key: `CONTROLPLANE_WITNESS_KEY`, or in development a generated key file."""
    seed = _configured_seed().strip()
    if seed:
        return Ed25519PrivateKey.from_private_bytes(crypto.unb64(seed))
    path = (directory or witness_dir()) / "witness.key"
    if path.exists():
        return Ed25519PrivateKey.from_private_bytes(crypto.unb64(path.read_text().strip()))
    if not getattr(settings, "CONTROLPLANE_LEDGER_AUTOGENERATE_KEY", False):
        raise ControlPlaneError("LEDGER_WITNESS_UNAVAILABLE", "no witness key: set CONTROLPLANE_WITNESS_KEY")
    private_key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process generated it first: use theirs
        return witness_private_key(directory)
    with os.fdopen(fd, "w") as handle:
        handle.write(crypto.b64(crypto.seed_bytes(private_key)) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return private_key


def record_hash(record: dict[str, Any]) -> str:
    """The hash the next record's `prev` names: SHA-256 of the record's RFC 8785 bytes."""
    return hashlib.sha256(canonical_bytes(record)).hexdigest()


def _signed_part(record: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in record.items() if name != "witness_signature"}


def witness_record_verify(record: Any, witness_public_key: str) -> bool:
    """Whether `record` is a well-formed witness record cosigned by the key `witness_public_key` (base64)."""
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        return False
    signature = record.get("witness_signature")
    if not isinstance(signature, str):
        return False
    try:
        key_id = crypto.key_id_for(crypto.unb64(witness_public_key))
    except ValueError:
        return False
    if record.get("witness_key_id") != key_id:
        return False
    try:
        message = canonical_bytes(_signed_part(record))
    except ControlPlaneError:
        return False
    return crypto.verify_signature(witness_public_key, signature, message)


def witness_record_matches(record: dict[str, Any], tree_head: dict[str, Any]) -> bool:
    """Whether a witness record cosigns exactly this signed tree head."""
    return record.get("ledger") == tree_head.get("ledger") and all(
        record.get(ours) == tree_head.get(theirs) for ours, theirs in _HEAD_FIELDS.items()
    )


def _last_line(handle: Any) -> bytes | None:
    """The last non-empty line of a file open for reading in binary, read from its end."""
    handle.seek(0, os.SEEK_END)
    end = handle.tell()
    block, data = 4096, b""
    position = end
    while position > 0:
        step = min(block, position)
        position -= step
        handle.seek(position)
        data = handle.read(step) + data
        stripped = data.rstrip(b"\n")
        if b"\n" in stripped:
            return stripped.rsplit(b"\n", 1)[1]
        block *= 2
    stripped = data.rstrip(b"\n")
    return stripped or None


class Witness:
    """A witness: a directory of append-only logs (one per ledger) and the key that cosigns into them."""

    def __init__(self, directory: Path, private_key: Ed25519PrivateKey) -> None:
        self.directory = Path(directory)
        self._signer = crypto.Signer(private_key)
        self.public_key = crypto.b64(crypto.public_bytes(private_key))
        self.key_id = crypto.key_id_for(crypto.public_bytes(private_key))

    def log_path(self, ledger: str) -> Path:
        if not _LEDGER_NAME.fullmatch(ledger):
            raise ControlPlaneError("LEDGER_WITNESS_INVALID", f"{ledger!r} is not a ledger name")
        return self.directory / f"{ledger}.jsonl"

    def records(self, ledger: str) -> list[dict[str, Any]]:
        """Every record of the ledger's log, oldest first (unchecked: see `witness_log_verify`)."""
        path = self.log_path(ledger)
        return list(_read_records(path)) if path.exists() else []

    def last(self, ledger: str) -> dict[str, Any] | None:
        """The last record of the ledger's log, checked against this witness's key."""
        path = self.log_path(ledger)
        if not path.exists():
            return None
        with path.open("rb") as handle:
            return self._parse_own(_last_line(handle))

    def _parse_own(self, line: bytes | None) -> dict[str, Any] | None:
        if line is None:
            return None
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ControlPlaneError(
                "LEDGER_WITNESS_INVALID", "the witness log's last line is not JSON"
            ) from exc
        if not witness_record_verify(record, self.public_key):
            raise ControlPlaneError(
                "LEDGER_WITNESS_INVALID", "the witness log's last record is not cosigned by this witness"
            )
        return record

    def cosign(
        self,
        tree_head: dict[str, Any],
        *,
        consistency_proof: Sequence[str] | None = None,
        ledger_public_key: str | None = None,
    ) -> dict[str, Any]:
        """Cosign a signed tree head if it extends the last one cosigned, append it, and return the record.

        The same seq with the same tree head returns the record already written. A smaller seq, the same
        seq with another hash or root, or a larger tree without a consistency proof from the last
        cosigned tree that verifies refuses with LEDGER_FORKED naming the seq. With `ledger_public_key`
        (base64) the ledger's signature is checked first (LEDGER_SIGNATURE_INVALID).
        """
        problem = tree_head_problem(tree_head)
        if problem:
            raise ControlPlaneError("LEDGER_WITNESS_INVALID", f"cannot cosign: {problem}")
        statement = tree_head_only(tree_head)
        if ledger_public_key is not None and not crypto.verify_signature(
            ledger_public_key, tree_head["signature"], canonical_bytes(statement)
        ):
            raise ControlPlaneError(
                "LEDGER_SIGNATURE_INVALID", f"the ledger signature of the tree head at seq {statement['seq']}"
            )
        path = self.log_path(statement["ledger"])
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        created = not path.exists()
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "r+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # one cosigner at a time; released on close
            last = self._parse_own(_last_line(handle))
            if last is not None and _same_head(last, tree_head):
                return last
            proof = _extends(last, statement, consistency_proof)
            record = self._record(tree_head, last, proof)
            handle.seek(0, os.SEEK_END)
            handle.write(orjson.dumps(record) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        if created:
            _fsync_dir(self.directory)
        return record

    def _record(
        self, tree_head: dict[str, Any], last: dict[str, Any] | None, proof: list[str]
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "format": FORMAT,
            "ledger": tree_head["ledger"],
            "index": 0 if last is None else last["index"] + 1,
            "prev": GENESIS_PREV if last is None else record_hash(last),
            **{ours: tree_head[theirs] for ours, theirs in _HEAD_FIELDS.items()},
            "consistency_from": None if last is None else last["tree_size"],
            "consistency_proof": proof,
            "time": format_time(datetime.now(UTC)),
            "witness_key_id": self.key_id,
        }
        record["witness_signature"] = crypto.b64(self._signer.sign(canonical_bytes(record)))
        return record


def _same_head(record: dict[str, Any], tree_head: dict[str, Any]) -> bool:
    return (
        record["seq"] == tree_head["seq"]
        and record["head_hash"] == tree_head["head_hash"]
        and (record["root"] == tree_head["root"])
    )


def _forked(seq: int, detail: str) -> ControlPlaneError:
    return ControlPlaneError("LEDGER_FORKED", f"seq {seq}: {detail}", extra={"seq": seq})


def _extends(
    last: dict[str, Any] | None, statement: dict[str, Any], consistency_proof: Sequence[str] | None
) -> list[str]:
    """The consistency proof (hex) that makes `statement` extend `last`; raises LEDGER_FORKED otherwise."""
    seq = statement["seq"]
    if last is None:
        return []
    if seq < last["seq"]:
        raise _forked(seq, f"the witness already cosigned seq {last['seq']}; it does not go back")
    if seq == last["seq"]:
        raise _forked(seq, "the witness cosigned another hash or root at this seq")
    if consistency_proof is None:
        raise _forked(seq, f"no consistency proof from the cosigned tree of size {last['tree_size']}")
    try:
        nodes = proof_from_hex(consistency_proof)
        old_root, new_root = bytes.fromhex(last["root"]), bytes.fromhex(statement["root"])
    except (TypeError, ValueError) as exc:
        raise _forked(seq, "the consistency proof is not a list of 32-byte hex nodes") from exc
    if not verify_consistency(last["tree_size"], statement["tree_size"], old_root, new_root, nodes):
        raise _forked(
            seq, f"the tree does not extend the cosigned tree of size {last['tree_size']} (proof fails)"
        )
    return [node.hex() for node in nodes]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_records(path: Path) -> Iterator[Any]:
    with Path(path).open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ControlPlaneError("LEDGER_WITNESS_INVALID", f"line {number} is not JSON") from exc


def witness_default() -> Witness:
    """The witness this deployment runs (its directory and key from the settings)."""
    directory = witness_dir()
    return Witness(directory, witness_private_key(directory))


def witness_cosign(
    checkpoint_statement: dict[str, Any],
    *,
    consistency_proof: Sequence[str] | None = None,
    ledger_public_key: str | None = None,
    witness: Witness | None = None,
) -> dict[str, Any]:
    """Cosign a signed tree head with the deployment's witness (see `Witness.cosign`)."""
    return (witness or witness_default()).cosign(
        checkpoint_statement, consistency_proof=consistency_proof, ledger_public_key=ledger_public_key
    )


# --- Checking a log alone ----------------------------------------------------------------------------


@dataclass
class WitnessLogResult:
    ok: bool
    records: int
    last: dict[str, Any] | None
    failure: Failure | None = None

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": self.ok,
            "records_checked": self.records,
            "last_seq": self.last["seq"] if self.last else None,
            "last_head_hash": self.last["head_hash"] if self.last else None,
        }
        if self.failure:
            body.update(failed_seq=self.failure.seq, code=self.failure.code, detail=self.failure.detail)
        return body


def witness_log_verify(
    path: Path | str, witness_public_key: str, *, ledger_keys: dict[str, str] | None = None
) -> WitnessLogResult:
    """Check a witness log with nothing but the witness's public key (base64).

    Every record: cosigned by that key (LEDGER_WITNESS_INVALID), at its position and naming the hash of
    the record before it (LEDGER_WITNESS_INVALID: a record removed, inserted or reordered), with a larger
    seq than the one before and tree size equal to its seq, and a consistency proof from the previous
    record's tree that verifies (LEDGER_FORKED). With `ledger_keys` (key id -> base64 public key, the
    pinned ledger keys) each tree head's ledger signature is checked too (LEDGER_KEY_UNTRUSTED,
    LEDGER_SIGNATURE_INVALID).
    """
    count, last = 0, None
    try:
        records = _read_records(Path(path))
        for record in records:
            failure = _check_record(record, last, count, witness_public_key, ledger_keys)
            if failure:
                return WitnessLogResult(False, count, last, failure)
            count, last = count + 1, record
    except ControlPlaneError as exc:
        seq = last["seq"] + 1 if last else 1
        return WitnessLogResult(False, count, last, Failure(seq, exc.code, exc.detail))
    except OSError as exc:
        return WitnessLogResult(False, 0, None, Failure(0, "LEDGER_WITNESS_INVALID", f"cannot read: {exc}"))
    return WitnessLogResult(True, count, last)


def _check_record(
    record: Any,
    last: dict[str, Any] | None,
    index: int,
    witness_public_key: str,
    ledger_keys: dict[str, str] | None,
) -> Failure | None:
    seq = record.get("seq") if isinstance(record, dict) else None
    at = seq if isinstance(seq, int) else (last["seq"] + 1 if last else 1)
    if not witness_record_verify(record, witness_public_key):
        return Failure(at, "LEDGER_WITNESS_INVALID", f"record {index} is not cosigned by the witness key")
    head = {theirs: record.get(ours) for ours, theirs in _HEAD_FIELDS.items()} | {
        "ledger": record.get("ledger")
    }
    problem = tree_head_problem(head)
    if problem:
        return Failure(at, "LEDGER_WITNESS_INVALID", f"record {index}: {problem}")
    if record.get("index") != index or record.get("prev") != (
        GENESIS_PREV if last is None else record_hash(last)
    ):
        return Failure(seq, "LEDGER_WITNESS_INVALID", f"record {index} does not follow the record before it")
    if last is not None:
        if record["ledger"] != last["ledger"]:
            return Failure(seq, "LEDGER_WITNESS_INVALID", f"record {index} is for another ledger")
        if seq <= last["seq"]:
            return Failure(seq, "LEDGER_FORKED", f"seq {seq} does not follow the cosigned seq {last['seq']}")
        try:
            _extends(last, tree_head_only(head), record.get("consistency_proof"))
        except ControlPlaneError as exc:
            return Failure(seq, exc.code, exc.detail)
        if record.get("consistency_from") != last["tree_size"]:
            return Failure(seq, "LEDGER_FORKED", f"seq {seq}: the proof is not from the previous tree")
    if ledger_keys is not None:
        public_key = ledger_keys.get(head["key_id"])
        if public_key is None:
            return Failure(seq, "LEDGER_KEY_UNTRUSTED", f"ledger key {head['key_id']} is not pinned")
        if not crypto.verify_signature(public_key, head["signature"], canonical_bytes(tree_head_only(head))):
            return Failure(
                seq, "LEDGER_SIGNATURE_INVALID", f"the ledger signature at seq {seq} does not verify"
            )
    return None


# --- The witness against the chain ------------------------------------------------------------------


def witness_chain_check(
    record: dict[str, Any],
    *,
    head_seq: int | None,
    hash_at: Callable[[int], str | None],
    root_at: Callable[[int], bytes] | None = None,
) -> Failure | None:
    """Whether the chain agrees with a witness record: LEDGER_TRUNCATED when the record names a seq beyond
    the chain's head, LEDGER_FORKED when the chain's hash (or Merkle root) at that seq differs."""
    seq = record["seq"]
    if head_seq is None or seq > head_seq:
        return Failure(
            seq, "LEDGER_TRUNCATED", f"the witness cosigned seq {seq}; the chain ends at seq {head_seq}"
        )
    if hash_at(seq) != record["head_hash"]:
        return Failure(seq, "LEDGER_FORKED", f"the chain's hash at seq {seq} differs from the witness")
    if root_at is not None and root_at(seq).hex() != record["root"]:
        return Failure(seq, "LEDGER_FORKED", f"the Merkle root at seq {seq} differs from the witness")
    return None


# --- An external witness over HTTP ------------------------------------------------------------------


def witness_http_answer(witness: Witness, body: bytes) -> tuple[int, bytes]:
    """Serve one cosigning request (the body `witness_post` sends): (HTTP status, JSON answer)."""
    try:
        request = orjson.loads(body)
        tree_head, proof = request["tree_head"], request.get("consistency_proof")
        record = witness.cosign(tree_head, consistency_proof=proof)
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        return 400, orjson.dumps({"code": "VALIDATION_FAILED", "detail": f"not a cosigning request: {exc}"})
    except ControlPlaneError as exc:
        return exc.status, orjson.dumps(exc.as_dict())
    return 200, orjson.dumps(record)


def witness_post(
    tree_head: dict[str, Any],
    *,
    consistency_proof: Sequence[str] | None = None,
    url: str | None = None,
    witness_public_key: str | None = None,
    timeout: float = 5.0,
) -> dict[str, Any] | None:
    """POST a signed tree head to the external witness and return its checked cosigned record.

    `url` and `witness_public_key` default to the settings `CONTROLPLANE_WITNESS_URL` and
    `CONTROLPLANE_WITNESS_URL_PUBLIC_KEY`; without a URL nothing is sent (None). The answer must be a
    record for exactly this tree head, cosigned by the pinned key (LEDGER_WITNESS_INVALID); a witness
    refusing with LEDGER_FORKED is raised as such; an unreachable witness is LEDGER_WITNESS_UNAVAILABLE.
    """
    url = url if url is not None else getattr(settings, "CONTROLPLANE_WITNESS_URL", "")
    if not url:
        return None
    public_key = witness_public_key or getattr(settings, "CONTROLPLANE_WITNESS_URL_PUBLIC_KEY", "")
    if not public_key:
        raise ControlPlaneError(
            "LEDGER_WITNESS_UNAVAILABLE", "no public key is pinned for the external witness"
        )
    if not url.startswith(("https://", "http://")):
        raise ControlPlaneError("LEDGER_WITNESS_UNAVAILABLE", "the witness URL must be http(s)")
    body = orjson.dumps({"tree_head": tree_head, "consistency_proof": list(consistency_proof or [])})
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            answer = orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        refusal = _refusal(exc)
        if refusal.get("code") == "LEDGER_FORKED":
            raise ControlPlaneError("LEDGER_FORKED", f"external witness: {refusal.get('detail')}") from exc
        raise ControlPlaneError(
            "LEDGER_WITNESS_UNAVAILABLE", f"external witness answered {exc.code}: {refusal.get('detail')}"
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise ControlPlaneError("LEDGER_WITNESS_UNAVAILABLE", f"external witness unreachable: {exc}") from exc
    except orjson.JSONDecodeError as exc:
        raise ControlPlaneError(
            "LEDGER_WITNESS_INVALID", "the external witness's answer is not JSON"
        ) from exc
    if not witness_record_verify(answer, public_key) or not witness_record_matches(answer, tree_head):
        raise ControlPlaneError(
            "LEDGER_WITNESS_INVALID", "the external witness's answer is not a cosignature of this tree head"
        )
    return answer


def _refusal(error: urllib.error.HTTPError) -> dict[str, Any]:
    try:
        body = orjson.loads(error.read())
    except (orjson.JSONDecodeError, OSError):
        return {}
    return body if isinstance(body, dict) else {}
