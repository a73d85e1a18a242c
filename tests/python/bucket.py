"""Writes into a NATS Object Store bucket with nats-py, the way another
team's tooling would: the tests check that such entries never stop an
instance from following the rules bucket.

    python bucket.py NATS_URL BUCKET put NAME TEXT
    python bucket.py NATS_URL BUCKET delete NAME

Prints nothing; exits non-zero with the error when the write fails.
"""

import asyncio
import sys

import nats


async def main(url: str, bucket: str, action: str, name: str, text: str | None) -> None:
    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=0)
    try:
        js = nc.jetstream(timeout=5)
        store = await js.object_store(bucket)
        if action == "put":
            await store.put(name, (text or "").encode())
        elif action == "delete":
            # nats-py writes a delete marker whose mtime is "" and whose
            # digest is "": not what a Go or Rust client writes.
            await store.delete(name)
        else:
            raise SystemExit(f"unknown action {action!r} (put or delete)")
    finally:
        await nc.close()


if __name__ == "__main__":
    if len(sys.argv) not in (5, 6):
        raise SystemExit(__doc__)
    asyncio.run(main(*sys.argv[1:5], sys.argv[5] if len(sys.argv) == 6 else None))
