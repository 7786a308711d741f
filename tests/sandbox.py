"""``make sandbox``: two real Synapse homeservers, the bridge between them, and a message
crossing each way, so a newcomer sees Passerelle work before reading any code.

Everything lives in ``.sandbox/`` (recreated on each run) and listens on 127.0.0.1 only. In an
interactive terminal it keeps running until Ctrl-C so you can log in with any Matrix client;
elsewhere (or with ``--once``) it stops after the demonstration.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import uuid
from pathlib import Path

from mautrix.types import EventType, RoomID

from tests.harness.bridge import REPO_ROOT
from tests.world import World, start_world

PASSWORD = "passerelle-sandbox"


def _banner(world: World) -> str:
    return f"""
Passerelle sandbox is running (everything on 127.0.0.1; files in {world.root})

  bund.test   (German Matrix)  {world.bund.url}
  tchap.test  (Tchap)          {world.tchap.url}
  bridge                       {world.bridge_url}   metrics: {world.bridge_url}/metrics

Log in with any Matrix client (homeserver URL above), password "{PASSWORD}":
  on bund.test:  max, erika, anna        on tchap.test: jean.dupont-interieur.gouv.fr
Linked rooms: #main, #relay (relay mode on Tchap), #restr (refused: restricted Tchap room)
Bridge config: {world.config_path}
Bridge log:    {world.bridge.log_path}
"""


async def _cross(world: World, sender: str, room: str, receiver: str, target_room: str,
                 text: str) -> None:  # fmt: skip
    await world.users[sender].send_text(world.rooms[room], text)
    seen = await world.users[receiver].wait_for(
        world.rooms[target_room], lambda e: text in e.get("content", {}).get("body", "")
    )
    member = await world.users[receiver].client.get_state_event(
        RoomID(world.rooms[target_room]), EventType.ROOM_MEMBER, seen["sender"]
    )
    print(f"  {room:>11} → {target_room:<11} {member.displayname}: {seen['content']['body']}")


async def main(once: bool) -> int:
    root = REPO_ROOT / ".sandbox"
    shutil.rmtree(root, ignore_errors=True)
    print("Starting two Synapse homeservers and the bridge…", flush=True)
    world = await start_world(Path(root), password=PASSWORD)
    try:
        print(_banner(world))
        tag = uuid.uuid4().hex[:4]
        print("A message crossing each way:")
        await _cross(world, "max", "bund:main", "jean", "tchap:main", f"Hallo aus Berlin ({tag})")
        await _cross(world, "jean", "tchap:main", "max", "bund:main", f"Bonjour de Paris ({tag})")
        await _cross(world, "max", "bund:relay", "jean", "tchap:relay", f"Über den Relay ({tag})")
        if once:
            return 0
        print("\nPress Ctrl-C to stop the sandbox.")
        await asyncio.Event().wait()
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass
    finally:
        await world.stop()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--once", action="store_true", help="stop after the demonstration")
    args = parser.parse_args()
    try:
        sys.exit(asyncio.run(main(args.once or not sys.stdin.isatty())))
    except KeyboardInterrupt:
        sys.exit(0)
